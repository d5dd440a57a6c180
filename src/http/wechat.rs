//! The WeChat front door: `GET/POST /wechat/{kb}` for WeChat's servers (signed, no API key)
//! and `GET/PUT/DELETE /api/kbs/{kb}/wechat` for connecting an account (behind the API key).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;

use super::error::{ApiError, Json};
use crate::kb::KnowledgeBase;
use crate::wechat::account::AccountSettings;
use crate::wechat::{Signed, WeChat};

/// Largest message body accepted from WeChat (its messages are a few KB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The routes WeChat's servers call.
pub fn door(wechat: Arc<WeChat>) -> Router<Arc<KnowledgeBase>> {
    Router::new()
        .route("/wechat/{kb}", get(handshake).post(push))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(wechat)
}

/// The account settings, for the API (behind the key).
pub fn settings(wechat: Arc<WeChat>) -> Router<Arc<KnowledgeBase>> {
    Router::new()
        .route(
            "/api/kbs/{kb}/wechat",
            get(show).put(configure).delete(disconnect),
        )
        .with_state(wechat)
}

async fn handshake(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
    Query(signed): Query<Signed>,
) -> Result<impl IntoResponse, ApiError> {
    let echo = wechat.handshake(&kb, &signed)?;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], echo))
}

async fn push(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
    Query(signed): Query<Signed>,
    body: String,
) -> Result<impl IntoResponse, ApiError> {
    let reply = wechat.receive(&kb, &signed, &body).await?;
    let media_type = if reply.starts_with('<') {
        "application/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(([(CONTENT_TYPE, media_type)], reply))
}

async fn show(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(wechat.settings(&kb)?))
}

async fn configure(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
    Json(settings): Json<AccountSettings>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(wechat.configure(&kb, settings)?))
}

async fn disconnect(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
) -> Result<StatusCode, ApiError> {
    wechat.disconnect(&kb)?;
    Ok(StatusCode::NO_CONTENT)
}
