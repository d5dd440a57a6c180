//! From hits to a reply: decide, then either reply at once (not found, clarify) or ask the
//! chat model with the grounded prompt, within the deadline, falling back to an extractive
//! answer (the best passage, cited) when the model cannot make it. Never nothing.

use std::collections::BTreeSet;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use super::chat::{ChatClient, ChatError, Delta};
use super::decide::{ClarifyOption, DecideConfig, Verdict, decide};
use super::prompt::{Language, Message, grounded_prompt};
use super::{clarify_message, not_found_message};
use crate::config::AnswerConfig;
use crate::document::{Citation, Hit};

/// Passages given to the model (and cited).
const PROMPT_PASSAGES: usize = 4;
/// Longest extractive answer, in characters.
const EXTRACT_CHARS: usize = 300;

/// The reply to a question.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reply {
    /// "answer", "not_found" or "clarify".
    pub verdict: &'static str,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub options: Vec<ClarifyOption>,
    /// The model that wrote the answer, if one did.
    pub model: Option<String>,
    /// "extractive" when the model could not answer in time and the best passage stands in.
    pub fallback: Option<&'static str>,
    pub latency_ms: u64,
}

/// What a streamed reply sends, in order: one `Start`, any number of `Delta`s, one `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEvent {
    Start {
        verdict: &'static str,
        citations: Vec<Citation>,
        options: Vec<ClarifyOption>,
    },
    Delta(String),
    Done(Reply),
}

/// Answers questions from hits.
pub struct Responder {
    chat: ChatClient,
    config: AnswerConfig,
}

impl Responder {
    pub fn new(chat: ChatClient, config: AnswerConfig) -> Self {
        Self { chat, config }
    }

    pub fn decide_config(&self) -> DecideConfig {
        self.config.decide_config()
    }

    fn not_found(&self, language: Language) -> String {
        let configured = match language {
            Language::Chinese => &self.config.not_found_zh,
            Language::English => &self.config.not_found_en,
        };
        configured
            .clone()
            .unwrap_or_else(|| not_found_message(language).to_owned())
    }

    /// Streams the reply to `question`; the last event is always `Done`.
    pub fn respond(
        self: &std::sync::Arc<Self>,
        question: String,
        history: Vec<Message>,
        hits: Vec<Hit>,
        tokens: impl Fn(&str) -> BTreeSet<u32>,
        deadline: Instant,
        started: Instant,
    ) -> mpsc::Receiver<ReplyEvent> {
        let (sender, receiver) = mpsc::channel(64);
        let language = Language::of(&question);
        let (verdict, signals) = decide(&question, &hits, &self.decide_config(), &tokens);
        tracing::debug!(?signals, verdict = verdict.name(), "decided");
        let this = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            let done = |verdict, answer, citations, options, model, fallback| {
                crate::metrics::record_answer(verdict, fallback);
                Reply {
                    verdict,
                    answer,
                    citations,
                    options,
                    model,
                    fallback,
                    latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                }
            };
            match verdict {
                Verdict::NotFound => {
                    let text = this.not_found(language);
                    let _ = sender
                        .send(ReplyEvent::Start {
                            verdict: "not_found",
                            citations: vec![],
                            options: vec![],
                        })
                        .await;
                    let _ = sender.send(ReplyEvent::Delta(text.clone())).await;
                    let _ = sender
                        .send(ReplyEvent::Done(done(
                            "not_found",
                            text,
                            vec![],
                            vec![],
                            None,
                            None,
                        )))
                        .await;
                }
                Verdict::Clarify { options } => {
                    let text = clarify_message(language, &options);
                    let _ = sender
                        .send(ReplyEvent::Start {
                            verdict: "clarify",
                            citations: vec![],
                            options: options.clone(),
                        })
                        .await;
                    let _ = sender.send(ReplyEvent::Delta(text.clone())).await;
                    let _ = sender
                        .send(ReplyEvent::Done(done(
                            "clarify",
                            text,
                            vec![],
                            options,
                            None,
                            None,
                        )))
                        .await;
                }
                Verdict::Answer(ordered) => {
                    let passages: Vec<Hit> = ordered.into_iter().take(PROMPT_PASSAGES).collect();
                    let citations: Vec<Citation> = passages.iter().map(Citation::from).collect();
                    let _ = sender
                        .send(ReplyEvent::Start {
                            verdict: "answer",
                            citations: citations.clone(),
                            options: vec![],
                        })
                        .await;
                    let messages = grounded_prompt(&question, &history, &passages);
                    let (text, model, fallback) =
                        this.generate(&messages, &passages, deadline, &sender).await;
                    let _ = sender
                        .send(ReplyEvent::Done(done(
                            "answer",
                            text,
                            citations,
                            vec![],
                            model,
                            fallback,
                        )))
                        .await;
                }
            }
        });
        receiver
    }

    /// Streams the model's answer as deltas; returns the whole text, the model, and whether the
    /// extractive fallback stood in.
    async fn generate(
        &self,
        messages: &[Message],
        passages: &[Hit],
        deadline: Instant,
        sender: &mpsc::Sender<ReplyEvent>,
    ) -> (String, Option<String>, Option<&'static str>) {
        let mut text = String::new();
        let mut model = None;
        match self.chat.stream(messages, deadline).await {
            Ok(mut deltas) => {
                while let Some(delta) = deltas.recv().await {
                    match delta {
                        Ok(Delta::Model(name)) => model = Some(name),
                        Ok(Delta::Text(piece)) => {
                            text.push_str(&piece);
                            let _ = sender.send(ReplyEvent::Delta(piece)).await;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "chat model stream ended early");
                            break;
                        }
                    }
                }
            }
            Err(err) => log_model_error(&err),
        }
        if text.trim().is_empty() {
            let extract = extractive_answer(passages);
            let _ = sender.send(ReplyEvent::Delta(extract.clone())).await;
            return (extract, None, Some("extractive"));
        }
        (text, model, None)
    }
}

fn log_model_error(err: &ChatError) {
    match err {
        ChatError::Timeout => {
            tracing::warn!("chat model missed the deadline; answering extractively")
        }
        ChatError::CircuitOpen => {
            tracing::debug!("chat model circuit open; answering extractively")
        }
        other => tracing::warn!(error = %other, "chat model failed; answering extractively"),
    }
}

/// The best passage, cut at a sentence end within the length limit, cited as [1].
pub fn extractive_answer(passages: &[Hit]) -> String {
    let Some(best) = passages.first() else {
        return String::new();
    };
    let text = best.chunk.text.trim();
    if text.chars().count() <= EXTRACT_CHARS {
        return format!("{text} [1]");
    }
    let cut: String = text.chars().take(EXTRACT_CHARS).collect();
    let end = cut
        .char_indices()
        .rev()
        .find(|(_, c)| matches!(c, '。' | '！' | '？' | '.' | '!' | '?' | '\n'))
        .map_or(cut.len(), |(i, c)| i + c.len_utf8());
    format!("{} [1]", cut[..end].trim_end())
}
