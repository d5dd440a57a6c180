//! A scripted OpenAI-compatible server on port 0, for protocol edge cases of the chat client
//! (never as the proof that answering works: that is the end-to-end test with the real model).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the scripted model does on each call.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answers with this text (streamed in two pieces when asked to stream).
    Answer(&'static str),
    /// Waits this long, then answers.
    Slow(Duration, &'static str),
    /// Fails with this status for the first `n` calls, then answers.
    FailFirst(u16, usize, &'static str),
    /// Always fails with this status.
    Fail(u16),
    /// Sends a body that is not a chat completion.
    Malformed,
    /// Streams one piece, then hangs.
    Hang(&'static str),
}

pub struct ScriptedLlm {
    pub base_url: String,
    calls: Arc<AtomicUsize>,
    pub last_request: Arc<std::sync::Mutex<Value>>,
}

#[derive(Clone)]
struct Shared {
    script: Script,
    calls: Arc<AtomicUsize>,
    last_request: Arc<std::sync::Mutex<Value>>,
}

impl ScriptedLlm {
    pub async fn spawn(script: Script) -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let last_request = Arc::new(std::sync::Mutex::new(Value::Null));
        let shared = Shared {
            script,
            calls: Arc::clone(&calls),
            last_request: Arc::clone(&last_request),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(reply))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url,
            calls,
            last_request,
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn completion(text: &str) -> Value {
    json!({ "id": "scripted", "object": "chat.completion", "created": 1, "model": "scripted-model",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }] })
}

fn chunk(text: &str) -> String {
    let body = json!({ "id": "scripted", "object": "chat.completion.chunk", "created": 1, "model": "scripted-model",
        "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] });
    format!("data: {body}\n\n")
}

fn answer(text: &'static str, stream: bool) -> Response {
    if !stream {
        return axum::Json(completion(text)).into_response();
    }
    let middle = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    let body = format!(
        "{}{}data: [DONE]\n\n",
        chunk(&text[..middle]),
        chunk(&text[middle..])
    );
    ([("content-type", "text/event-stream")], body).into_response()
}

async fn reply(State(shared): State<Shared>, axum::Json(request): axum::Json<Value>) -> Response {
    let call = shared.calls.fetch_add(1, Ordering::SeqCst);
    let stream = request["stream"].as_bool().unwrap_or(false);
    if let Ok(mut last) = shared.last_request.lock() {
        *last = request;
    }
    match shared.script {
        Script::Answer(text) => answer(text, stream),
        Script::Slow(delay, text) => {
            tokio::time::sleep(delay).await;
            answer(text, stream)
        }
        Script::FailFirst(status, n, _) if call < n => status_only(status),
        Script::FailFirst(_, _, text) => answer(text, stream),
        Script::Fail(status) => status_only(status),
        Script::Malformed => (
            [("content-type", "application/json")],
            "{\"choices\": \"nope\"}",
        )
            .into_response(),
        Script::Hang(text) => {
            let first = futures::stream::once(async move { Ok::<_, std::io::Error>(chunk(text)) });
            let never = futures::stream::pending();
            let body = axum::body::Body::from_stream(futures::StreamExt::chain(first, never));
            ([("content-type", "text/event-stream")], body).into_response()
        }
    }
}

fn status_only(status: u16) -> Response {
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}
