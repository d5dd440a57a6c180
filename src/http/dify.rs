//! Dify's external knowledge base API: `POST /dify/retrieval` (register `http://HOST:PORT/dify`).
//!
//! The contract is Dify's, not lore's REST one: errors are `{"error_code","error_msg"}` and every
//! auth failure is 403, because Dify's registration check only treats 403/404/502 as failure
//! (a 401 would let a wrong key register). Dify retries 429/5xx and turns other non-200s into
//! "no records", so "nothing found" is always a 200 with `{"records":[]}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::guard::{Guard, bearer};
use super::openapi::MetadataConditionDoc;
use crate::auth::Principal;
use crate::error::{Error, ErrorCode};
use crate::kb::{KnowledgeBase, SearchRequest};
use crate::search::MetadataCondition;

pub fn router(guard: Arc<Guard>) -> Router<Arc<KnowledgeBase>> {
    Router::new()
        .route("/dify/retrieval", post(retrieval))
        .layer(Extension(guard))
}

/// Dify's error codes.
const INVALID_AUTH_HEADER: u16 = 1001;
const AUTH_FAILED: u16 = 1002;
const KNOWLEDGE_NOT_FOUND: u16 = 2001;
/// Not in Dify's list: a request lore cannot read (HTTP 400), or a fault of lore's (500).
const INVALID_REQUEST: u16 = 400;
const INTERNAL: u16 = 500;

/// Dify's error body.
#[derive(Serialize, ToSchema)]
pub struct DifyError {
    /// 1001 bad Authorization header, 1002 missing or wrong key, 2001 no such knowledge base,
    /// 400 unreadable request, 500 lore's fault.
    error_code: u16,
    error_msg: String,
}

fn dify_error(status: StatusCode, code: u16, message: impl Into<String>) -> Response {
    let body = DifyError {
        error_code: code,
        error_msg: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

#[derive(Deserialize, ToSchema)]
pub struct RetrievalRequest {
    /// The lore knowledge base id (Dify's "External Knowledge ID").
    #[schema(example = "faq")]
    knowledge_id: String,
    #[schema(min_length = 1)]
    query: String,
    #[serde(default)]
    retrieval_setting: Option<RetrievalSetting>,
    #[serde(default)]
    #[schema(value_type = Option<MetadataConditionDoc>)]
    metadata_condition: Option<MetadataCondition>,
}

/// Dify's Top K and score threshold; out-of-range values are clamped, not refused.
#[derive(Deserialize, Default, ToSchema)]
pub struct RetrievalSetting {
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    score_threshold: Option<f32>,
}

/// Dify's records; nothing found is an empty list, never an error.
#[derive(Serialize, ToSchema)]
pub struct Records {
    records: Vec<DifyRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct DifyRecord {
    content: String,
    /// lore's calibrated relevance in [0, 1].
    score: f32,
    /// The file name.
    title: String,
    /// `document_id`, `document_name`, `chunk_index` and the document's own metadata.
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
}

/// Why a request was not let in: Dify's error code and message (always HTTP 403).
type Denied = (u16, String);

/// Dify sends the key as `Authorization: Bearer <key>`; any key may read (within its list of
/// knowledge bases, checked once the body names one). No rate limit here: Dify retries a 429,
/// which only adds load.
fn caller(headers: &HeaderMap, guard: &Guard) -> Result<Principal, Denied> {
    if guard.keys.is_open() {
        return Ok(Principal::anonymous());
    }
    if headers.get(AUTHORIZATION).is_none() {
        return Err((AUTH_FAILED, "Authorization header is missing".to_owned()));
    }
    let Some(key) = bearer(headers) else {
        return Err((
            INVALID_AUTH_HEADER,
            "Invalid Authorization header format. Expected 'Bearer <api-key>' format.".to_owned(),
        ));
    };
    guard
        .keys
        .identify(key)
        .cloned()
        .ok_or((AUTH_FAILED, "Authorization failed".to_owned()))
}

#[utoipa::path(post, path = "/dify/retrieval", tag = "dify", request_body = RetrievalRequest,
    responses(
        (status = 200, description = "Records, best first (possibly none)", body = Records),
        (status = 400, description = "No body or an unreadable one (error_code 400)",
            body = DifyError),
        (status = 403, description = "Bad Authorization header (1001), missing or wrong key \
            (1002), or a key not allowed this knowledge base (1002)", body = DifyError),
        (status = 404, description = "No such knowledge base (2001)", body = DifyError),
        (status = 500, description = "lore's fault, logged (500)", body = DifyError),
    ))]
async fn retrieval(
    State(service): State<Arc<KnowledgeBase>>,
    Extension(guard): Extension<Arc<Guard>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match caller(&headers, &guard) {
        Ok(principal) => principal,
        Err((code, message)) => return dify_error(StatusCode::FORBIDDEN, code, message),
    };
    // Read the body ourselves: Dify's registration probe posts without a body or content type,
    // and must get a 400 that says so, not a 415 or 422.
    if body.iter().all(u8::is_ascii_whitespace) {
        return dify_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "the request body is empty",
        );
    }
    let request: RetrievalRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return dify_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                format!("invalid request body: {err}"),
            );
        }
    };
    if !principal.may_use(&request.knowledge_id) {
        let message = format!(
            "this key may not use knowledge base {}",
            request.knowledge_id
        );
        return dify_error(StatusCode::FORBIDDEN, AUTH_FAILED, message);
    }
    let setting = request.retrieval_setting.unwrap_or_default();
    let max_top_k = service.config().search.max_top_k;
    let search = SearchRequest {
        query: request.query,
        top_k: setting.top_k.map(|k| k.clamp(1, max_top_k)),
        score_threshold: setting.score_threshold.map(|t| t.clamp(0.0, 1.0)),
        filter: request.metadata_condition,
    };
    match service.search(&request.knowledge_id, search).await {
        Ok(hits) => {
            let records = hits
                .into_iter()
                .map(|hit| {
                    let chunk = hit.chunk;
                    let mut metadata: Map<String, Value> = chunk.metadata;
                    metadata.insert("document_id".into(), chunk.document_id.into());
                    metadata.insert("document_name".into(), chunk.document_name.clone().into());
                    metadata.insert("chunk_index".into(), chunk.chunk_index.into());
                    DifyRecord {
                        content: chunk.text,
                        score: hit.score,
                        title: chunk.document_name,
                        metadata,
                    }
                })
                .collect();
            axum::Json(Records { records }).into_response()
        }
        Err(err) => error_response(&err),
    }
}

fn error_response(err: &Error) -> Response {
    match err.code() {
        ErrorCode::KbNotFound => dify_error(
            StatusCode::NOT_FOUND,
            KNOWLEDGE_NOT_FOUND,
            "The knowledge does not exist",
        ),
        ErrorCode::Internal => {
            tracing::error!(error = ?err, "dify retrieval failed");
            dify_error(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL, err.message())
        }
        _ => dify_error(StatusCode::BAD_REQUEST, INVALID_REQUEST, err.message()),
    }
}
