//! The chat model client: any OpenAI-compatible server, within a deadline.
//!
//! Wire types come from async-openai; the HTTP is driven here with reqwest because lore needs
//! what a general client does not give: every attempt bounded by the caller's deadline, retries
//! for transient errors only (connect failures, timeouts, 429, 5xx), an ordered list of fallback
//! endpoints, and a circuit breaker so a dead local model costs nothing after a few failures.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_openai::types::chat::{CreateChatCompletionResponse, CreateChatCompletionStreamResponse};
use futures::StreamExt as _;
use serde_json::json;
use tokio::sync::mpsc;

use super::prompt::Message;
use crate::config::{LlmConfig, LlmEndpoint};

/// Why a model call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the chat model did not answer before the deadline")]
    Timeout,
    #[error("no chat model is available: {0}")]
    Unavailable(String),
    /// Every endpoint failed recently and rests until its circuit closes again. Opening the
    /// circuit was logged once; each question answered meanwhile is not worth another warning.
    #[error("no chat model is available: every endpoint's circuit is open")]
    CircuitOpen,
    #[error("the chat model sent a reply lore cannot read: {0}")]
    Malformed(String),
}

/// A finished completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub model: String,
}

/// A piece of a streamed completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    /// Which model is answering, sent first.
    Model(String),
    Text(String),
}

struct Endpoint {
    config: LlmEndpoint,
    breaker: Mutex<Breaker>,
}

/// Consecutive failures and, once too many, until when the endpoint is skipped.
#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// How an attempt failed: worth retrying or not.
enum Failure {
    Transient(String),
    Permanent(ChatError),
}

pub struct ChatClient {
    http: reqwest::Client,
    endpoints: Vec<Endpoint>,
    config: LlmConfig,
}

impl ChatClient {
    pub fn new(config: &LlmConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .build()?;
        let endpoints = config
            .endpoints()
            .into_iter()
            .map(|config| Endpoint {
                config,
                breaker: Mutex::new(Breaker::default()),
            })
            .collect();
        Ok(Self {
            http,
            endpoints,
            config: config.clone(),
        })
    }

    /// A whole completion, from the first endpoint that answers before `deadline`.
    pub async fn complete(
        &self,
        messages: &[Message],
        deadline: Instant,
    ) -> Result<Completion, ChatError> {
        let mut last = ChatError::CircuitOpen;
        for endpoint in self.endpoints.iter().filter(|e| e.available()) {
            for attempt in 0..=self.config.retries {
                let Some(budget) = self.budget(deadline) else {
                    return Err(ChatError::Timeout);
                };
                match self.complete_once(endpoint, messages, budget).await {
                    Ok(completion) => {
                        endpoint.succeeded();
                        return Ok(completion);
                    }
                    Err(Failure::Permanent(err)) => {
                        endpoint.failed(&self.config);
                        last = err;
                        break;
                    }
                    Err(Failure::Transient(reason)) => {
                        endpoint.failed(&self.config);
                        tracing::warn!(model = %endpoint.config.model, attempt, %reason, "chat model call failed");
                        last = ChatError::Unavailable(reason);
                        if attempt < self.config.retries {
                            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                        }
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            Err(ChatError::Timeout)
        } else {
            Err(last)
        }
    }

    /// A streamed completion: deltas arrive on the channel until the model finishes, fails, or
    /// the deadline passes (then the channel closes with `Err(Timeout)` as its last item).
    /// Fallbacks apply until the first byte of an answer; after that the stream is committed.
    pub async fn stream(
        &self,
        messages: &[Message],
        deadline: Instant,
    ) -> Result<mpsc::Receiver<Result<Delta, ChatError>>, ChatError> {
        let mut last = ChatError::CircuitOpen;
        for endpoint in self.endpoints.iter().filter(|e| e.available()) {
            for attempt in 0..=self.config.retries {
                let Some(budget) = self.budget(deadline) else {
                    return Err(ChatError::Timeout);
                };
                let request = self.request(endpoint, messages, true);
                match tokio::time::timeout(budget, request.send()).await {
                    Err(_) => {
                        endpoint.failed(&self.config);
                        return Err(ChatError::Timeout);
                    }
                    Ok(Err(err)) => {
                        endpoint.failed(&self.config);
                        last = ChatError::Unavailable(err.to_string());
                    }
                    Ok(Ok(response)) if response.status().is_success() => {
                        endpoint.succeeded();
                        return Ok(forward_stream(
                            response,
                            endpoint.config.model.clone(),
                            deadline,
                        ));
                    }
                    Ok(Ok(response)) => {
                        endpoint.failed(&self.config);
                        let status = response.status();
                        last = ChatError::Unavailable(format!("HTTP {status}"));
                        if !transient_status(status) {
                            break;
                        }
                    }
                }
                if attempt < self.config.retries {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        Err(last)
    }

    /// Time left for one attempt: the smaller of the deadline and the per-call timeout.
    fn budget(&self, deadline: Instant) -> Option<Duration> {
        let left = deadline.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then(|| left.min(Duration::from_millis(self.config.timeout_ms)))
    }

    fn request(
        &self,
        endpoint: &Endpoint,
        messages: &[Message],
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let url = format!(
            "{}/chat/completions",
            endpoint.config.base_url.trim_end_matches('/')
        );
        let body = json!({
            "model": endpoint.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "stream": stream,
        });
        let request = self.http.post(url).json(&body);
        match &endpoint.config.api_key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    async fn complete_once(
        &self,
        endpoint: &Endpoint,
        messages: &[Message],
        budget: Duration,
    ) -> Result<Completion, Failure> {
        let call = async {
            let response = self
                .request(endpoint, messages, false)
                .send()
                .await
                .map_err(|err| Failure::Transient(err.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                let reason = format!("HTTP {status}");
                return Err(if transient_status(status) {
                    Failure::Transient(reason)
                } else {
                    Failure::Permanent(ChatError::Unavailable(reason))
                });
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|err| Failure::Transient(err.to_string()))?;
            let parsed: CreateChatCompletionResponse = serde_json::from_slice(&bytes)
                .map_err(|err| Failure::Permanent(ChatError::Malformed(err.to_string())))?;
            let text = parsed
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.message.content)
                .ok_or_else(|| {
                    Failure::Permanent(ChatError::Malformed("no message content".to_owned()))
                })?;
            Ok(Completion {
                text,
                model: parsed.model,
            })
        };
        match tokio::time::timeout(budget, call).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Transient("timed out".to_owned())),
        }
    }
}

impl Endpoint {
    fn available(&self) -> bool {
        let Ok(breaker) = self.breaker.lock() else {
            return true;
        };
        breaker
            .open_until
            .is_none_or(|until| Instant::now() >= until)
    }

    fn succeeded(&self) {
        crate::metrics::record_model_call("ok");
        if let Ok(mut breaker) = self.breaker.lock() {
            *breaker = Breaker::default();
        }
    }

    fn failed(&self, config: &LlmConfig) {
        crate::metrics::record_model_call("failed");
        if let Ok(mut breaker) = self.breaker.lock() {
            breaker.failures += 1;
            if breaker.failures >= config.breaker_failures {
                breaker.open_until =
                    Some(Instant::now() + Duration::from_millis(config.breaker_cooldown_ms));
                tracing::warn!(model = %self.config.model, "chat model circuit opened");
            }
        }
    }
}

fn transient_status(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Reads server-sent events into deltas until `[DONE]`, an error, or the deadline.
fn forward_stream(
    response: reqwest::Response,
    model: String,
    deadline: Instant,
) -> mpsc::Receiver<Result<Delta, ChatError>> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let _ = sender.send(Ok(Delta::Model(model))).await;
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        loop {
            let next = tokio::time::timeout_at(deadline.into(), body.next()).await;
            let chunk = match next {
                Err(_) => {
                    let _ = sender.send(Err(ChatError::Timeout)).await;
                    return;
                }
                Ok(None) => return,
                Ok(Some(Err(err))) => {
                    let _ = sender
                        .send(Err(ChatError::Unavailable(err.to_string())))
                        .await;
                    return;
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line = buffer[..end].trim_end_matches('\r').to_owned();
                buffer.drain(..=end);
                let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                    continue;
                };
                if data == "[DONE]" {
                    return;
                }
                match serde_json::from_str::<CreateChatCompletionStreamResponse>(data) {
                    Ok(event) => {
                        let text: String = event
                            .choices
                            .into_iter()
                            .filter_map(|c| c.delta.content)
                            .collect();
                        if !text.is_empty() && sender.send(Ok(Delta::Text(text))).await.is_err() {
                            return; // the listener went away
                        }
                    }
                    Err(err) => {
                        let _ = sender
                            .send(Err(ChatError::Malformed(err.to_string())))
                            .await;
                        return;
                    }
                }
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::prompt::Role;

    /// A dead model is called `breaker_failures` times, then skipped without a call until the
    /// cooldown ends: the answer path falls back at once instead of waiting on it again.
    #[tokio::test]
    async fn a_dead_model_is_skipped_once_its_circuit_opens() {
        // A port nothing listens on: every connection is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = LlmConfig {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            retries: 0,
            breaker_failures: 2,
            breaker_cooldown_ms: 60_000,
            ..LlmConfig::default()
        };
        let client = ChatClient::new(&config).unwrap();
        let messages = [Message::new(Role::User, "hello")];
        let deadline = || Instant::now() + Duration::from_secs(5);
        for _ in 0..2 {
            let err = client.complete(&messages, deadline()).await.unwrap_err();
            assert!(matches!(err, ChatError::Unavailable(_)), "{err}");
        }
        assert!(matches!(
            client.complete(&messages, deadline()).await.unwrap_err(),
            ChatError::CircuitOpen
        ));
        assert!(matches!(
            client.stream(&messages, deadline()).await.unwrap_err(),
            ChatError::CircuitOpen
        ));
    }
}
