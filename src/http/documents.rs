//! Documents: multipart upload (202, ingested in the background), list, get, chunks, delete.

use std::sync::Arc;

use axum::Router;
use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

use super::error::{ApiError, Json};
use crate::document::{DocumentRecord, Metadata};
use crate::error::ErrorCode;
use crate::kb::{KnowledgeBase, Upload, UploadOutcome};

pub fn router(max_upload_bytes: usize) -> Router<Arc<KnowledgeBase>> {
    Router::new()
        .route(
            "/api/kbs/{kb}/documents",
            get(list)
                .post(upload)
                .layer(DefaultBodyLimit::max(max_upload_bytes)),
        )
        .route("/api/kbs/{kb}/documents/{doc}", get(show).delete(remove))
        .route("/api/kbs/{kb}/documents/{doc}/chunks", get(chunks))
}

/// A document as clients see it; `error_code` says why an upload was refused.
#[derive(Serialize)]
struct DocumentView {
    #[serde(flatten)]
    record: DocumentRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<ErrorCode>,
}

async fn upload(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
    multipart: Multipart,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    service.kb(&kb)?;
    let (files, metadata) = read_multipart(multipart).await?;
    if files.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "no 'file' part in the upload",
        ));
    }
    let outcomes = service.upload(&kb, files, metadata).await?;
    if let Some(refusal) = all_refused(&outcomes) {
        return Err(refusal);
    }
    let documents: Vec<DocumentView> = outcomes
        .into_iter()
        .map(|o| DocumentView {
            record: o.document,
            error_code: o.error_code,
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "documents": documents })),
    ))
}

/// When no file was accepted, the request fails with the first file's error.
fn all_refused(outcomes: &[UploadOutcome]) -> Option<ApiError> {
    if outcomes.iter().any(|o| o.error_code.is_none()) {
        return None;
    }
    let first = outcomes.first()?;
    let code = first.error_code?;
    let message = first
        .document
        .error
        .clone()
        .unwrap_or_else(|| code.as_str().to_owned());
    Some(ApiError::new(code, message))
}

async fn read_multipart(mut multipart: Multipart) -> Result<(Vec<Upload>, Metadata), ApiError> {
    let mut files = Vec::new();
    let mut metadata = Metadata::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field.bytes().await.map_err(multipart_error)?;
                files.push(Upload {
                    name,
                    bytes: bytes.to_vec(),
                });
            }
            Some("metadata") => {
                let text = field.text().await.map_err(multipart_error)?;
                metadata = parse_metadata(&text)?;
            }
            _ => {}
        }
    }
    Ok((files, metadata))
}

/// User metadata is a flat JSON object: values are strings, numbers, booleans or null.
fn parse_metadata(text: &str) -> Result<Metadata, ApiError> {
    let value: Value = serde_json::from_str(text).map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the 'metadata' part is not valid JSON: {err}"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "'metadata' must be a JSON object",
        ));
    };
    if let Some((key, _)) = map.iter().find(|(_, v)| v.is_object() || v.is_array()) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("metadata key '{key}' must hold a string, number, boolean or null"),
        ));
    }
    Ok(map)
}

fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the upload is larger than the configured limit",
        )
    } else {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("malformed multipart upload: {}", err.body_text()),
        )
    }
}

async fn list(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "documents": service.documents(&kb)? })))
}

async fn show(
    State(service): State<Arc<KnowledgeBase>>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<Json<DocumentRecord>, ApiError> {
    Ok(Json(service.document(&kb, &doc)?))
}

async fn chunks(
    State(service): State<Arc<KnowledgeBase>>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "chunks": service.document_chunks(&kb, &doc).await? }),
    ))
}

async fn remove(
    State(service): State<Arc<KnowledgeBase>>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    service.delete_document(&kb, &doc).await?;
    Ok(StatusCode::NO_CONTENT)
}
