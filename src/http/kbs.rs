//! Knowledge bases: create, list, get, delete.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Json, Path};
use crate::auth::Principal;
use crate::document::KbInfo;
use crate::kb::{KnowledgeBase, NewKb};

pub fn router() -> Router<Arc<KnowledgeBase>> {
    Router::new()
        .route("/api/kbs", get(list).post(create))
        .route("/api/kbs/{kb}", get(show).delete(remove))
}

/// The knowledge bases a key may use.
#[derive(Serialize, ToSchema)]
pub struct KbList {
    kbs: Vec<KbInfo>,
}

#[utoipa::path(post, path = "/api/kbs", tag = "knowledge bases", request_body = NewKb,
    responses(
        (status = 201, description = "Created", body = KbInfo),
        (status = 409, description = "The id is taken: kb_exists", body = ErrorBody),
    ))]
async fn create(
    State(service): State<Arc<KnowledgeBase>>,
    Json(request): Json<NewKb>,
) -> Result<(StatusCode, Json<KbInfo>), ApiError> {
    Ok((StatusCode::CREATED, Json(service.create_kb(request).await?)))
}

/// The knowledge bases the caller's key may use.
#[utoipa::path(get, path = "/api/kbs", tag = "knowledge bases",
    responses((status = 200, description = "The knowledge bases this key may use", body = KbList)))]
async fn list(
    State(service): State<Arc<KnowledgeBase>>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<KbList>, ApiError> {
    let kbs: Vec<KbInfo> = service
        .list_kbs()?
        .into_iter()
        .filter(|kb| caller.may_use(&kb.id))
        .collect();
    Ok(Json(KbList { kbs }))
}

#[utoipa::path(get, path = "/api/kbs/{kb}", tag = "knowledge bases", params(("kb" = String, Path)),
    responses(
        (status = 200, description = "The knowledge base", body = KbInfo),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
    ))]
async fn show(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
) -> Result<Json<KbInfo>, ApiError> {
    Ok(Json(service.kb(&kb)?))
}

/// Deletes the knowledge base with its documents, chunks and settings.
#[utoipa::path(delete, path = "/api/kbs/{kb}", tag = "knowledge bases", params(("kb" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
    ))]
async fn remove(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
) -> Result<StatusCode, ApiError> {
    service.delete_kb(&kb).await?;
    Ok(StatusCode::NO_CONTENT)
}
