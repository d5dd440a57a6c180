//! Documents: multipart upload (202, ingested in the background), list, get, chunks, delete.

use std::sync::Arc;

use axum::Router;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Json, Path};
use crate::document::{Chunk, DocumentRecord, Metadata};
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
#[derive(Serialize, ToSchema)]
pub struct DocumentView {
    #[serde(flatten)]
    record: DocumentRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<ErrorCode>,
}

/// What became of each file of an upload, in the order sent.
#[derive(Serialize, ToSchema)]
pub struct Uploaded {
    documents: Vec<DocumentView>,
}

/// The documents of a knowledge base, with their ingestion status.
#[derive(Serialize, ToSchema)]
pub struct DocumentList {
    documents: Vec<DocumentRecord>,
}

/// The chunks of the version of a document that search serves, in order.
#[derive(Serialize, ToSchema)]
pub struct ChunkList {
    chunks: Vec<Chunk>,
}

/// The multipart form of an upload (describes the wire format; read by `read_multipart`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// One or more files; the file name identifies the document within the knowledge base.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    /// A flat JSON object (string, number, boolean or null values) applied to every file.
    #[schema(example = r#"{"region":"华东","year":2026}"#)]
    metadata: Option<String>,
}

/// Accepts files for ingestion in the background; each file is judged alone.
#[utoipa::path(post, path = "/api/kbs/{kb}/documents", tag = "documents",
    params(("kb" = String, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "At least one file was accepted; refused ones are listed as \
            failed with error_code", body = Uploaded),
        (status = 400, description = "No file part, malformed form or metadata, or every file \
            was empty: invalid_request, invalid_json, empty_file", body = ErrorBody),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
        (status = 413, description = "Larger than limits.max_upload_bytes: payload_too_large",
            body = ErrorBody),
        (status = 415, description = "Every file was of an unsupported type: unsupported_format",
            body = ErrorBody),
    ))]
async fn upload(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    service.kb(&kb)?;
    let multipart = multipart?;
    let limit = service.config().limits.max_upload_bytes;
    let (files, metadata) = read_multipart(multipart, limit).await?;
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
    Ok((StatusCode::ACCEPTED, Json(Uploaded { documents })))
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

/// `limit` is the body limit the router enforces, named in the error when a body exceeds it.
async fn read_multipart(
    mut multipart: Multipart,
    limit: usize,
) -> Result<(Vec<Upload>, Metadata), ApiError> {
    let failed = |err| multipart_error(err, limit);
    let mut files = Vec::new();
    let mut metadata = Metadata::new();
    while let Some(field) = multipart.next_field().await.map_err(failed)? {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field.bytes().await.map_err(failed)?;
                files.push(Upload {
                    name,
                    bytes: bytes.to_vec(),
                });
            }
            Some("metadata") => {
                let text = field.text().await.map_err(failed)?;
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

/// A refused multipart body. Too large names the limit, so whoever uploads knows how far over
/// they are and which setting an administrator would raise.
fn multipart_error(err: MultipartError, limit: usize) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the upload is larger than the limit of {} (limits.max_upload_bytes)",
                binary_size(limit)
            ),
        )
    } else {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("malformed multipart upload: {}", err.body_text()),
        )
    }
}

/// A byte count in the largest binary unit that keeps it at 1 or more: "100 MiB", "1.5 GiB".
fn binary_size(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[utoipa::path(get, path = "/api/kbs/{kb}/documents", tag = "documents",
    params(("kb" = String, Path)),
    responses(
        (status = 200, description = "Every document, with its status", body = DocumentList),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
    ))]
async fn list(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
) -> Result<Json<DocumentList>, ApiError> {
    Ok(Json(DocumentList {
        documents: service.documents(&kb)?,
    }))
}

#[utoipa::path(get, path = "/api/kbs/{kb}/documents/{doc}", tag = "documents",
    params(("kb" = String, Path), ("doc" = String, Path, description = "The document id")),
    responses(
        (status = 200, description = "The document", body = DocumentRecord),
        (status = 404, description = "kb_not_found or document_not_found", body = ErrorBody),
    ))]
async fn show(
    State(service): State<Arc<KnowledgeBase>>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<Json<DocumentRecord>, ApiError> {
    Ok(Json(service.document(&kb, &doc)?))
}

#[utoipa::path(get, path = "/api/kbs/{kb}/documents/{doc}/chunks", tag = "documents",
    params(("kb" = String, Path), ("doc" = String, Path, description = "The document id")),
    responses(
        (status = 200, description = "The served chunks (none before the first ingestion)",
            body = ChunkList),
        (status = 404, description = "kb_not_found or document_not_found", body = ErrorBody),
    ))]
async fn chunks(
    State(service): State<Arc<KnowledgeBase>>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<Json<ChunkList>, ApiError> {
    Ok(Json(ChunkList {
        chunks: service.document_chunks(&kb, &doc).await?,
    }))
}

/// Removes the document from the catalog, the store and the disk.
#[utoipa::path(delete, path = "/api/kbs/{kb}/documents/{doc}", tag = "documents",
    params(("kb" = String, Path), ("doc" = String, Path, description = "The document id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "kb_not_found or document_not_found", body = ErrorBody),
    ))]
async fn remove(
    State(service): State<Arc<KnowledgeBase>>,
    Path((kb, doc)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    service.delete_document(&kb, &doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::binary_size;

    #[test]
    fn sizes_read_in_the_largest_whole_unit() {
        assert_eq!(binary_size(512), "512 bytes");
        assert_eq!(binary_size(4096), "4 KiB");
        assert_eq!(binary_size(100 * 1024 * 1024), "100 MiB");
        assert_eq!(binary_size(3 * 512 * 1024 * 1024), "1.5 GiB");
    }
}
