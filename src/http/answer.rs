//! Answering over REST: `POST /api/kbs/{kb}/answer`, as JSON or as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Json, Path};
use super::openapi::{
    AnswerEventDoc, ClarifyOptionDoc, MetadataConditionDoc, ReplyDoc, VerdictDoc,
};
use crate::answer::ClarifyOption;
use crate::answer::respond::ReplyEvent;
use crate::document::Citation;
use crate::kb::{AnswerRequest, KnowledgeBase};
use crate::search::MetadataCondition;

pub fn router() -> Router<Arc<KnowledgeBase>> {
    Router::new().route("/api/kbs/{kb}/answer", post(answer))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    #[schema(example = "签收后几天内可以退货？", min_length = 1)]
    question: String,
    /// Passages retrieved, 1 to `search.max_top_k`; default `answer.top_k`.
    #[schema(minimum = 1)]
    top_k: Option<usize>,
    /// Server-sent events instead of one JSON reply.
    #[serde(default)]
    stream: bool,
    /// Time budget in ms; default `answer.deadline_ms` (4500).
    #[schema(minimum = 1, maximum = 300_000)]
    deadline_ms: Option<u64>,
    #[schema(value_type = Option<MetadataConditionDoc>)]
    filter: Option<MetadataCondition>,
}

/// Decides the verdict (answer, not_found, clarify) before any model call, then answers from
/// a grounded prompt within the deadline, or with the best passage when the model cannot.
#[utoipa::path(post, path = "/api/kbs/{kb}/answer", tag = "answer",
    params(("kb" = String, Path)), request_body = AnswerBody,
    responses(
        (status = 200, description = "The reply; with `stream`, server-sent events `start` \
            (verdict, citations, options), `delta` ({\"text\"}) ..., `done` (the reply)",
            content((ReplyDoc = "application/json"), (AnswerEventDoc = "text/event-stream"))),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
        (status = 503, description = "The chat model failed: model_unavailable", body = ErrorBody),
        (status = 504, description = "The chat model was too slow: model_timeout", body = ErrorBody),
    ))]
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

/// The `start` event: what is known before the first word.
#[derive(Serialize, ToSchema)]
pub struct StartEvent {
    #[schema(value_type = VerdictDoc)]
    verdict: &'static str,
    citations: Vec<Citation>,
    #[schema(value_type = Vec<ClarifyOptionDoc>)]
    options: Vec<ClarifyOption>,
}

/// A `delta` event: the next piece of the answer's text.
#[derive(Serialize, ToSchema)]
pub struct DeltaEvent {
    text: String,
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
            } => Event::default().event("start").json_data(StartEvent {
                verdict,
                citations,
                options,
            }),
            ReplyEvent::Delta(text) => Event::default()
                .event("delta")
                .json_data(DeltaEvent { text }),
            ReplyEvent::Done(reply) => Event::default().event("done").json_data(&reply),
        };
        let sse =
            sse.unwrap_or_else(|_| Event::default().event("error").data("unserialisable event"));
        Some((Ok(sse), events))
    })
}
