//! The vocabulary every layer shares: knowledge bases, documents, chunks and hits.
//!
//! A **Document** is an uploaded file, a **Chunk** a span of it, a **Hit** a chunk with a
//! relevance score. These are plain data; the service in `kb.rs` gives them behaviour.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorCode;

/// User metadata: flat keys to JSON values, returned with every chunk and usable in filters.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// A knowledge base as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct KbInfo {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// Where a document is in its ingestion.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Queued,
    Processing,
    Ready,
    Failed,
}

/// A document's record in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DocumentRecord {
    /// Stable id, derived from the knowledge base and file name unless given explicitly.
    pub id: String,
    /// The file name as uploaded.
    pub name: String,
    pub size_bytes: u64,
    /// SHA-256 of the bytes of the latest upload; the same bytes again are a no-op.
    pub sha256: String,
    pub status: DocumentStatus,
    /// Why ingestion failed, in words for the person who uploaded the file.
    pub error: Option<String>,
    /// Why ingestion failed, as one of the API's error codes (`unsupported_format`,
    /// `empty_file`, `invalid_request`, `payload_too_large`, `internal`), so a client can act
    /// on it without reading the words. Absent in catalogs written before it existed.
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
    /// Chunks of the version being served (or being built, while processing).
    pub chunk_count: usize,
    /// Progress while processing: chunks embedded and stored so far.
    pub chunks_done: usize,
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// The version whose chunks search serves; 0 before the first successful ingestion.
    /// Chunks of any other version are invisible, which makes replacement atomic.
    pub version: u64,
    /// The version the latest upload will become once ingested.
    pub pending_version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A span of a document, with what it needs to be shown and cited on its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Chunk {
    pub document_id: String,
    pub document_name: String,
    /// Title of the document (first heading, else the file name).
    pub title: String,
    pub chunk_index: usize,
    /// Headings above the chunk, outermost first.
    pub heading_path: Vec<String>,
    pub text: String,
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

/// A chunk found by a search, with its calibrated relevance in [0, 1].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hit {
    pub chunk: Chunk,
    pub score: f32,
}

/// A passage an answer rests on, numbered as in the answer's `[n]` marks.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Citation {
    pub document_id: String,
    pub document_name: String,
    pub title: String,
    pub chunk_index: usize,
    pub score: f32,
    pub content: String,
}

impl From<&Hit> for Citation {
    fn from(hit: &Hit) -> Self {
        Self {
            document_id: hit.chunk.document_id.clone(),
            document_name: hit.chunk.document_name.clone(),
            title: hit.chunk.title.clone(),
            chunk_index: hit.chunk.chunk_index,
            score: hit.score,
            content: hit.chunk.text.clone(),
        }
    }
}
