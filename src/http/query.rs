//! Search over a knowledge base.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Json, Path};
use super::openapi::MetadataConditionDoc;
use crate::document::{Hit, Metadata};
use crate::kb::{KnowledgeBase, SearchRequest};
use crate::search::MetadataCondition;

pub fn router() -> Router<Arc<KnowledgeBase>> {
    Router::new().route("/api/kbs/{kb}/search", post(search))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// At most `limits.max_query_chars` characters; not blank.
    #[schema(example = "七天能退款吗", min_length = 1)]
    query: String,
    /// 1 to `search.max_top_k`; default `search.default_top_k`.
    #[schema(minimum = 1)]
    top_k: Option<usize>,
    /// Minimum calibrated score, 0 to 1; default 0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    score_threshold: Option<f32>,
    /// Dify's `metadata_condition` shape.
    #[schema(value_type = Option<MetadataConditionDoc>)]
    filter: Option<MetadataCondition>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    /// Best first.
    records: Vec<Record>,
}

/// One search result on the wire.
#[derive(Serialize, ToSchema)]
pub struct Record {
    content: String,
    /// Calibrated relevance in [0, 1].
    score: f32,
    title: String,
    document_id: String,
    document_name: String,
    chunk_index: usize,
    /// Headings above the chunk, outermost first.
    heading_path: Vec<String>,
    #[schema(value_type = Object)]
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

/// Hybrid search (meaning and exact keywords), scores calibrated to [0, 1].
#[utoipa::path(post, path = "/api/kbs/{kb}/search", tag = "search",
    params(("kb" = String, Path)), request_body = SearchBody,
    responses(
        (status = 200, description = "Matching chunks, best first (possibly none)",
            body = SearchResponse),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
    ))]
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
