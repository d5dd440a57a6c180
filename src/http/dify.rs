//! Dify's external knowledge base API: `POST /dify/retrieval` (register `http://HOST:PORT/dify`).
//!
//! The contract is Dify's, not lore's REST one: errors are `{"error_code","error_msg"}` and every
//! auth failure is 403, because Dify's registration check only treats 403/404/502 as failure
//! (a 401 would let a wrong key register). Dify retries 429/5xx and turns other non-200s into
//! "no records", so "nothing found" is always a 200 with `{"records":[]}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use crate::error::{Error, ErrorCode};
use crate::kb::{KnowledgeBase, SearchRequest};
use crate::search::MetadataCondition;

pub fn router() -> Router<Arc<KnowledgeBase>> {
    Router::new().route("/dify/retrieval", post(retrieval))
}

/// Dify's error codes.
const INVALID_AUTH_HEADER: u16 = 1001;
const AUTH_FAILED: u16 = 1002;
const KNOWLEDGE_NOT_FOUND: u16 = 2001;
/// Not in Dify's list: a request lore cannot read (HTTP 400), or a fault of lore's (500).
const INVALID_REQUEST: u16 = 400;
const INTERNAL: u16 = 500;

fn dify_error(status: StatusCode, code: u16, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({ "error_code": code, "error_msg": message.into() })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct RetrievalRequest {
    knowledge_id: String,
    query: String,
    #[serde(default)]
    retrieval_setting: Option<RetrievalSetting>,
    #[serde(default)]
    metadata_condition: Option<MetadataCondition>,
}

#[derive(Deserialize, Default)]
struct RetrievalSetting {
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    score_threshold: Option<f32>,
}

/// Why a request was not let in: Dify's error code and message (always HTTP 403).
type Denied = (u16, &'static str);

/// Checks `Authorization: Bearer <key>` against the configured key (none configured: open).
fn authorize(headers: &HeaderMap, service: &KnowledgeBase) -> Result<(), Denied> {
    let Some(expected) = &service.config().api_key else {
        return Ok(());
    };
    let Some(header) = headers.get(AUTHORIZATION) else {
        return Err((AUTH_FAILED, "Authorization header is missing"));
    };
    let key = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return Err((
            INVALID_AUTH_HEADER,
            "Invalid Authorization header format. Expected 'Bearer <api-key>' format.",
        ));
    };
    if bool::from(key.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
        Err((AUTH_FAILED, "Authorization failed"))
    }
}

async fn retrieval(
    State(service): State<Arc<KnowledgeBase>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err((code, message)) = authorize(&headers, &service) {
        return dify_error(StatusCode::FORBIDDEN, code, message);
    }
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
            let records: Vec<Value> = hits
                .into_iter()
                .map(|hit| {
                    let chunk = hit.chunk;
                    let mut metadata: Map<String, Value> = chunk.metadata;
                    metadata.insert("document_id".into(), chunk.document_id.into());
                    metadata.insert("document_name".into(), chunk.document_name.clone().into());
                    metadata.insert("chunk_index".into(), chunk.chunk_index.into());
                    json!({ "content": chunk.text, "score": hit.score, "title": chunk.document_name,
                            "metadata": metadata })
                })
                .collect();
            axum::Json(json!({ "records": records })).into_response()
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
