//! The OpenAI-compatible front door: any OpenAI client (chatgpt-on-wechat, dify-on-wechat,
//! the official SDKs) can use a knowledge base as a model. `model` is the knowledge base id;
//! the last user message is the question and the turns before it are context.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Json};
use super::openapi::{ChatEventDoc, ReplyDoc};
use crate::answer::respond::{Reply, ReplyEvent};
use crate::answer::{Message, Role};
use crate::auth::Principal;
use crate::error::ErrorCode;
use crate::kb::{AnswerRequest, KnowledgeBase};

/// Earlier messages passed on as conversation context.
const HISTORY_TURNS: usize = 6;

pub fn router() -> Router<Arc<KnowledgeBase>> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
}

/// `GET /v1/models`: OpenAI's list shape.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    object: &'static str,
    data: Vec<Model>,
}

/// A knowledge base, as a model.
#[derive(Serialize, ToSchema)]
pub struct Model {
    /// The knowledge base id: what clients send as `model`.
    id: String,
    #[schema(example = "model")]
    object: &'static str,
    /// Unix time of creation.
    created: i64,
    #[schema(example = "lore")]
    owned_by: &'static str,
}

#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "The knowledge bases this key may use, as models",
        body = ModelList)))]
async fn models(
    State(service): State<Arc<KnowledgeBase>>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<ModelList>, ApiError> {
    let data = service
        .list_kbs()?
        .into_iter()
        .filter(|kb| caller.may_use(&kb.id))
        .map(|kb| Model {
            created: kb.created_at.timestamp(),
            id: kb.id,
            object: "model",
            owned_by: "lore",
        })
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// The part of a chat completion request lore reads; other fields are accepted and ignored,
/// so clients that send `temperature`, `user` or tools still work.
#[derive(Deserialize, ToSchema)]
pub struct ChatRequest {
    /// The knowledge base id.
    #[schema(example = "faq")]
    model: String,
    /// The last user message is the question; earlier user and assistant turns are context;
    /// a client's system prompt is ignored (lore's rules apply).
    messages: Vec<ChatMessage>,
    /// `chat.completion.chunk` events ending `data: [DONE]`.
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct ChatMessage {
    /// OpenAI's roles; only `user` and `assistant` turns are read.
    #[schema(schema_with = super::openapi::chat_roles)]
    role: String,
    /// A string, or content parts of which the `text` ones are read.
    #[serde(default)]
    content: Value,
}

/// A non-streamed chat completion, with lore's whole reply under `lore`.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletion {
    id: String,
    #[schema(example = "chat.completion")]
    object: &'static str,
    created: i64,
    model: String,
    choices: Vec<Choice>,
    usage: Usage,
    #[schema(value_type = ReplyDoc)]
    lore: Reply,
}

#[derive(Serialize, ToSchema)]
pub struct Choice {
    index: u32,
    message: AssistantMessage,
    #[schema(example = "stop")]
    finish_reason: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct AssistantMessage {
    #[schema(example = "assistant")]
    role: &'static str,
    /// The answer, with its sources named at the end.
    content: String,
}

/// Token counts are not measured: always zero.
#[derive(Serialize, ToSchema)]
pub struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

/// Text of a message: a string, or the text parts of a content array.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn split_conversation(messages: &[ChatMessage]) -> Result<(String, Vec<Message>), ApiError> {
    let last_user = messages
        .iter()
        .rposition(|m| m.role == "user")
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "messages must contain a user message",
            )
        })?;
    let question = text_of(&messages[last_user].content);
    let history: Vec<Message> = messages[..last_user]
        .iter()
        .filter_map(|m| match m.role.as_str() {
            "user" => Some(Message::new(Role::User, text_of(&m.content))),
            "assistant" => Some(Message::new(Role::Assistant, text_of(&m.content))),
            _ => None, // the client's own system prompt does not override lore's rules
        })
        .collect();
    let skip = history.len().saturating_sub(HISTORY_TURNS);
    Ok((question, history.into_iter().skip(skip).collect()))
}

/// Answers the last user message from the knowledge base named by `model`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", request_body = ChatRequest,
    responses(
        (status = 200, description = "The completion; with `stream`, `chat.completion.chunk` \
            events ending `data: [DONE]`",
            content((ChatCompletion = "application/json"),
                (ChatEventDoc = "text/event-stream"))),
        (status = 404, description = "No knowledge base with that id: kb_not_found",
            body = ErrorBody),
        (status = 503, description = "The chat model failed: model_unavailable", body = ErrorBody),
        (status = 504, description = "The chat model was too slow: model_timeout", body = ErrorBody),
    ))]
async fn chat_completions(
    State(service): State<Arc<KnowledgeBase>>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    if !caller.may_use(&body.model) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this key may not use knowledge base {}", body.model),
        ));
    }
    let (question, history) = split_conversation(&body.messages)?;
    let request = AnswerRequest {
        question,
        history,
        ..AnswerRequest::default()
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    if body.stream {
        let events = service.answer_stream(&body.model, request).await?;
        return Ok(Sse::new(chunks(events, id, body.model)).into_response());
    }
    let reply = service.answer(&body.model, request).await?;
    let content = with_sources(&reply);
    Ok(Json(ChatCompletion {
        id,
        object: "chat.completion",
        created: Utc::now().timestamp(),
        model: body.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
            },
            finish_reason: "stop",
        }],
        usage: Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
        },
        lore: reply,
    })
    .into_response())
}

/// The answer with its sources named at the end, for chat front ends that show text only.
fn with_sources(reply: &Reply) -> String {
    let sources = sources_line(reply);
    if sources.is_empty() {
        reply.answer.clone()
    } else {
        format!("{}{sources}", reply.answer)
    }
}

fn sources_line(reply: &Reply) -> String {
    let mut titles: Vec<String> = Vec::new();
    for (n, citation) in reply.citations.iter().enumerate() {
        if reply.answer.contains(&format!("[{}]", n + 1)) && !titles.contains(&citation.title) {
            titles.push(citation.title.clone());
        }
    }
    if titles.is_empty() {
        return String::new();
    }
    let label = if crate::answer::Language::of(&reply.answer) == crate::answer::Language::Chinese {
        "来源"
    } else {
        "Sources"
    };
    format!("\n\n{label}：{}", titles.join("；"))
}

/// OpenAI `chat.completion.chunk` events, then `[DONE]`.
fn chunks(
    events: mpsc::Receiver<ReplyEvent>,
    id: String,
    model: String,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let created = Utc::now().timestamp();
    let chunk = move |delta: Value, finish: Value| {
        let body = json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
        Event::default().data(body.to_string())
    };
    futures::stream::unfold((events, false), move |(mut events, finished)| {
        let chunk = chunk.clone();
        async move {
            if finished {
                return None;
            }
            let event = match events.recv().await {
                Some(ReplyEvent::Start { .. }) => {
                    chunk(json!({ "role": "assistant", "content": "" }), Value::Null)
                }
                Some(ReplyEvent::Delta(text)) => chunk(json!({ "content": text }), Value::Null),
                Some(ReplyEvent::Done(reply)) => {
                    let sources = sources_line(&reply);
                    let delta = if sources.is_empty() {
                        json!({})
                    } else {
                        json!({ "content": sources })
                    };
                    // The last chunk carries the sources and the stop reason; [DONE] follows.
                    let _ = events.recv().await;
                    return Some((Ok(chunk(delta, json!("stop"))), (events, true)));
                }
                None => return None,
            };
            Some((Ok(event), (events, false)))
        }
    })
    .chain(futures::stream::once(async {
        Ok(Event::default().data("[DONE]"))
    }))
}
