//! Knowledge bases: create, list, get, delete.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use super::error::{ApiError, Json};
use crate::auth::Principal;
use crate::document::KbInfo;
use crate::kb::{KnowledgeBase, NewKb};

pub fn router() -> Router<Arc<KnowledgeBase>> {
    Router::new()
        .route("/api/kbs", get(list).post(create))
        .route("/api/kbs/{kb}", get(show).delete(remove))
}

async fn create(
    State(service): State<Arc<KnowledgeBase>>,
    Json(request): Json<NewKb>,
) -> Result<(StatusCode, Json<KbInfo>), ApiError> {
    Ok((StatusCode::CREATED, Json(service.create_kb(request).await?)))
}

/// The knowledge bases the caller's key may use.
async fn list(
    State(service): State<Arc<KnowledgeBase>>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let kbs: Vec<KbInfo> = service
        .list_kbs()?
        .into_iter()
        .filter(|kb| caller.may_use(&kb.id))
        .collect();
    Ok(Json(json!({ "kbs": kbs })))
}

async fn show(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
) -> Result<Json<KbInfo>, ApiError> {
    Ok(Json(service.kb(&kb)?))
}

async fn remove(
    State(service): State<Arc<KnowledgeBase>>,
    Path(kb): Path<String>,
) -> Result<StatusCode, ApiError> {
    service.delete_kb(&kb).await?;
    Ok(StatusCode::NO_CONTENT)
}
