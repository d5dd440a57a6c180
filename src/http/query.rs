//! Search over a knowledge base.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Json};
use crate::document::{Hit, Metadata};
use crate::kb::{KnowledgeBase, SearchRequest};
use crate::search::MetadataCondition;

pub fn router() -> Router<Arc<KnowledgeBase>> {
    Router::new().route("/api/kbs/{kb}/search", post(search))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    query: String,
    top_k: Option<usize>,
    score_threshold: Option<f32>,
    /// Dify's `metadata_condition` shape.
    filter: Option<MetadataCondition>,
}

#[derive(Serialize)]
struct SearchResponse {
    records: Vec<Record>,
}

/// One search result on the wire.
#[derive(Serialize)]
pub struct Record {
    content: String,
    score: f32,
    title: String,
    document_id: String,
    document_name: String,
    chunk_index: usize,
    heading_path: Vec<String>,
    metadata: Metadata,
}

impl From<Hit> for Record {
    fn from(hit: Hit) -> Self {
        let chunk = hit.chunk;
        Self {
            content: chunk.text,
            score: hit.score,
            title: chunk.title,
            document_id: chunk.document_id,
            document_name: chunk.document_name,
            chunk_index: chunk.chunk_index,
            heading_path: chunk.heading_path,
            metadata: chunk.metadata,
        }
    }
}

async fn search(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
    Json(body): Json<SearchBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    let request = SearchRequest {
        query: body.query,
        top_k: body.top_k,
        score_threshold: body.score_threshold,
        filter: body.filter,
    };
    let hits = service.search(&kb, request).await?;
    Ok(Json(SearchResponse {
        records: hits.into_iter().map(Record::from).collect(),
    }))
}
