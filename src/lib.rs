//! lore: a self-hosted knowledge-base server for support bots.
//!
//! Flow: upload -> extract -> split -> embed -> store; question -> embed + keywords -> retrieve
//! (hybrid, calibrated) -> answer. Every front door calls the one [`kb::KnowledgeBase`] service.

/// Deciding (answer / not found / clarify), the grounded prompt, the chat model.
pub mod answer;
/// API keys, roles and the per-key request rate.
pub mod auth;
/// `lore bench`: retrieval and Dify latency at a chosen store size.
pub mod bench;
/// Knowledge bases and document records, persisted beside the store.
pub mod catalog;
/// Command-line client: talks to a running server, or opens the data directory itself.
pub mod cli;
/// Typed configuration: defaults < lore.toml < LORE_* environment.
pub mod config;
/// Shared vocabulary: KbInfo, DocumentRecord, Chunk, Hit.
pub mod document;
/// Text to vectors with the local ONNX model.
pub mod embed;
/// The error type and the closed list of error codes.
pub mod error;
/// `lore eval`: retrieval metrics on a labelled set through the real search path.
pub mod eval;
/// The HTTP server and its front doors.
pub mod http;
/// From uploaded bytes to chunks: extraction, splitting, the queue.
pub mod ingest;
/// The service every front door calls.
pub mod kb;
/// Prometheus metrics: requests by route, model calls, answers.
pub mod metrics;
/// `lore migrate`: copies knowledge bases between the embedded store and a Qdrant server.
pub mod migrate;
/// Scheduling priority of background threads.
pub(crate) mod priority;
/// Keyword vectors and score fusion.
pub mod search;
/// Chunk storage behind `VectorStore`: the embedded Qdrant Edge engine or a Qdrant server.
pub mod store;
/// The embedding model's tokenizer, its Unigram vocabulary held compactly.
pub mod tokenize;
/// The WeChat official-account front door: signatures, safe mode, the 5-second rule.
pub mod wechat;
