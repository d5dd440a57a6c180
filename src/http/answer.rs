//! Answering over REST: `POST /api/kbs/{kb}/answer`, as JSON or as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::error::{ApiError, Json};
use crate::answer::respond::ReplyEvent;
use crate::kb::{AnswerRequest, KnowledgeBase};
use crate::search::MetadataCondition;

pub fn router() -> Router<Arc<KnowledgeBase>> {
    Router::new().route("/api/kbs/{kb}/answer", post(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    question: String,
    top_k: Option<usize>,
    #[serde(default)]
    stream: bool,
    deadline_ms: Option<u64>,
    filter: Option<MetadataCondition>,
}

async fn answer(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
    Json(body): Json<AnswerBody>,
) -> Result<Response, ApiError> {
    let request = AnswerRequest {
        question: body.question,
        top_k: body.top_k,
        deadline_ms: body.deadline_ms,
        filter: body.filter,
        history: Vec::new(),
    };
    if body.stream {
        let events = service.answer_stream(&kb, request).await?;
        return Ok(Sse::new(sse_events(events)).into_response());
    }
    Ok(Json(service.answer(&kb, request).await?).into_response())
}

/// `start` (verdict, citations, options), `delta` (text) ..., `done` (the whole reply).
fn sse_events(events: mpsc::Receiver<ReplyEvent>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        let sse = match event {
            ReplyEvent::Start {
                verdict,
                citations,
                options,
            } => Event::default().event("start").json_data(
                json!({ "verdict": verdict, "citations": citations, "options": options }),
            ),
            ReplyEvent::Delta(text) => Event::default()
                .event("delta")
                .json_data(json!({ "text": text })),
            ReplyEvent::Done(reply) => Event::default().event("done").json_data(&reply),
        };
        let sse =
            sse.unwrap_or_else(|_| Event::default().event("error").data("unserialisable event"));
        Some((Ok(sse), events))
    })
}
