//! Storage of chunks: dense and keyword vectors with their payload, one collection per
//! knowledge base.
//!
//! A trait because two real backends exist: the embedded Qdrant Edge engine (default) and a
//! Qdrant server (scale-out). Both keep the same layout, so a knowledge base moves between them
//! without re-embedding (`lore migrate`):
//! - named vectors `dense` (cosine) and `keyword` (sparse BM25 weights, IDF applied by the engine);
//! - payload `document_id`, `document_name`, `title`, `chunk_index`, `heading_path`, `text`,
//!   `version`, and the user's `metadata` object (flat keys).
//!
//! Replacing a document writes its new version's chunks first, then deletes its older versions
//! (never newer ones: with several instances on one server, a late replacement must not delete
//! the chunks of a newer version that another instance stored meanwhile). Readers only accept
//! chunks of the version the catalog names as current, so they see the old document or the new
//! one, never a mix, even between the two steps or after a crash there.
//!
//! The contract is tested once, against every backend, in `tests/api/store.rs`.

pub mod embedded;
mod optimizer;
pub mod qdrant;

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::document::Chunk;

pub use embedded::EmbeddedStore;
pub use qdrant::QdrantStore;

/// Name of the dense vector in every collection.
pub const DENSE: &str = "dense";
/// Name of the sparse keyword vector in every collection.
pub const KEYWORD: &str = "keyword";

/// A sparse vector: token ids and weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// A chunk ready to store.
#[derive(Debug, Clone)]
pub struct StoredChunk {
    pub chunk: Chunk,
    pub dense: Vec<f32>,
    pub keyword: SparseVector,
}

/// What to look for: both halves of a hybrid query.
#[derive(Debug, Clone)]
pub struct StoreQuery {
    pub dense: Vec<f32>,
    pub keyword: SparseVector,
    /// Candidates taken from each half before fusion.
    pub candidates: usize,
    /// A Qdrant filter in its JSON form (see `search::filter`), applied inside the store.
    pub filter: Option<serde_json::Value>,
}

/// A stored chunk found by either half of a query, with the raw score of each half that
/// found it. Fusion and calibration happen above the store, the same for every backend.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub chunk: Chunk,
    pub version: u64,
    /// Cosine similarity to the query; always present (computed for keyword-only finds).
    pub dense: f32,
    /// BM25 score with IDF, when the keyword half found the chunk.
    pub keyword: Option<f32>,
}

/// A stored point as it is, for copying a knowledge base between backends without
/// re-embedding.
#[derive(Debug, Clone)]
pub struct ExportedPoint {
    pub version: u64,
    pub stored: StoredChunk,
}

/// One page of an export; `next` is where the next page starts, `None` after the last.
#[derive(Debug, Clone, Default)]
pub struct ExportPage {
    pub points: Vec<ExportedPoint>,
    pub next: Option<Uuid>,
}

/// The contract every backend keeps. All methods are safe to call concurrently.
#[async_trait]
pub trait VectorStore: Send + Sync + 'static {
    /// Creates the collection of a knowledge base; no-op if it exists.
    async fn create_kb(&self, kb: &str, dimension: usize) -> anyhow::Result<()>;
    /// Removes a knowledge base's collection and everything in it.
    async fn drop_kb(&self, kb: &str) -> anyhow::Result<()>;
    /// Stores `chunks` as `version` of a document, then removes its older versions.
    async fn replace_document(
        &self,
        kb: &str,
        document_id: &str,
        version: u64,
        chunks: Vec<StoredChunk>,
    ) -> anyhow::Result<()>;
    /// Removes every chunk of a document.
    async fn delete_document(&self, kb: &str, document_id: &str) -> anyhow::Result<()>;
    /// Runs both halves of a hybrid query.
    async fn search(&self, kb: &str, query: StoreQuery) -> anyhow::Result<Vec<Candidate>>;
    /// The IDF the keyword half gives each of `tokens` over the whole knowledge base; tokens
    /// no chunk holds are left out. Sentence evidence weighs a question's words with it
    /// (`search::evidence`), so it must be the engine's own figure, not an estimate.
    async fn keyword_idf(&self, kb: &str, tokens: &[u32]) -> anyhow::Result<HashMap<u32, f32>>;
    /// Every chunk of a document's given version, in order.
    async fn document_chunks(
        &self,
        kb: &str,
        document_id: &str,
        version: u64,
    ) -> anyhow::Result<Vec<Chunk>>;
    /// The dense vector size of a knowledge base's collection; `None` when it has none.
    async fn dimension(&self, kb: &str) -> anyhow::Result<Option<usize>>;
    /// Up to `limit` stored chunks of every version, with their vectors, in point-id order,
    /// starting at `from` (the `next` of the previous page).
    async fn export(
        &self,
        kb: &str,
        from: Option<Uuid>,
        limit: usize,
    ) -> anyhow::Result<ExportPage>;
    /// Stores exported chunks unchanged (same versions, vectors and point ids), beside what
    /// is there: the other half of a copy between backends.
    async fn import(&self, kb: &str, points: Vec<ExportedPoint>) -> anyhow::Result<()>;
}

/// The IDF of `token` from a probe: the score of a chunk found by a query of that token alone
/// (query weight 1) is IDF times the chunk's stored weight for the token. Both backends ask the
/// engine this way, because neither exposes its document frequencies.
fn idf_from_probe(token: u32, score: f32, indices: &[u32], values: &[f32]) -> Option<f32> {
    let at = indices.iter().position(|i| *i == token)?;
    let weight = *values.get(at)?;
    (weight > 0.0)
        .then(|| score / weight)
        .filter(|idf| idf.is_finite())
}

/// Point ids are derived, so re-ingesting the same version overwrites instead of duplicating.
pub fn point_id(document_id: &str, version: u64, chunk_index: usize) -> Uuid {
    let name = format!("{document_id}/{version}/{chunk_index}");
    Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
}

/// The payload of a stored chunk, as JSON, shared by the backends.
pub fn chunk_payload(chunk: &Chunk, version: u64) -> serde_json::Map<String, serde_json::Value> {
    let mut payload = serde_json::Map::new();
    payload.insert("document_id".into(), chunk.document_id.clone().into());
    payload.insert("document_name".into(), chunk.document_name.clone().into());
    payload.insert("title".into(), chunk.title.clone().into());
    payload.insert("chunk_index".into(), chunk.chunk_index.into());
    payload.insert("heading_path".into(), chunk.heading_path.clone().into());
    payload.insert("text".into(), chunk.text.clone().into());
    payload.insert("version".into(), version.into());
    payload.insert(
        "metadata".into(),
        serde_json::Value::Object(chunk.metadata.clone()),
    );
    // Reversed strings let filters match suffixes with a prefix match (see `search::filter`).
    payload.insert(
        "metadata_rev".into(),
        serde_json::Value::Object(crate::search::filter::reversed_strings(&chunk.metadata)),
    );
    let mut names = serde_json::Map::new();
    names.insert("document_id".into(), chunk.document_id.clone().into());
    names.insert("document_name".into(), chunk.document_name.clone().into());
    payload.insert(
        "document_rev".into(),
        serde_json::Value::Object(crate::search::filter::reversed_strings(&names)),
    );
    payload
}

/// Reads a payload written by [`chunk_payload`].
pub fn chunk_from_payload(
    payload: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<(Chunk, u64)> {
    let text = |key: &str| -> anyhow::Result<String> {
        payload
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("stored chunk lacks '{key}'"))
    };
    let number = |key: &str| -> anyhow::Result<u64> {
        payload
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| anyhow::anyhow!("stored chunk lacks '{key}'"))
    };
    let heading_path = payload
        .get("heading_path")
        .and_then(|v| v.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let metadata = payload
        .get("metadata")
        .and_then(|v| v.as_object())
        .cloned()
        .unwrap_or_default();
    let chunk = Chunk {
        document_id: text("document_id")?,
        document_name: text("document_name")?,
        title: text("title")?,
        chunk_index: usize::try_from(number("chunk_index")?)?,
        heading_path,
        text: text("text")?,
        metadata,
    };
    Ok((chunk, number("version")?))
}

/// Cosine similarity; the stored and query vectors are already unit length, but a stored
/// vector from another model must not produce scores above 1.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        (dot / denominator).clamp(-1.0, 1.0)
    }
}
