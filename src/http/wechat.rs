//! The WeChat front door: `GET/POST /wechat/{kb}` for WeChat's servers (signed, no API key)
//! and `GET/PUT/DELETE /api/kbs/{kb}/wechat` for connecting an account (behind the API key).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::rejection::StringRejection;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;

use super::error::{ApiError, ErrorBody, Json, Path, Query};
use super::openapi::{AccountSettingsDoc, SignedDoc, WeChatSettingsDoc};
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

/// WeChat's server-URL check: echoes `echostr` when the signature is the account's token's.
#[utoipa::path(get, path = "/wechat/{kb}", tag = "wechat",
    params(("kb" = String, Path), SignedDoc),
    responses(
        (status = 200, description = "The echostr", body = String, content_type = "text/plain"),
        (status = 400, description = "Bad signature or missing echostr: invalid_request",
            body = ErrorBody),
        (status = 403, description = "The signature does not match: forbidden", body = ErrorBody),
        (status = 404, description = "No such knowledge base, or no account connected to it",
            body = ErrorBody),
    ))]
async fn handshake(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
    Query(signed): Query<Signed>,
) -> Result<impl IntoResponse, ApiError> {
    let echo = wechat.handshake(&kb, &signed)?;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], echo))
}

/// A message pushed by WeChat (signed; sealed in safe mode); the reply XML, "success" or "".
#[utoipa::path(post, path = "/wechat/{kb}", tag = "wechat",
    params(("kb" = String, Path), SignedDoc),
    request_body(content = String, content_type = "text/xml",
        description = "WeChat's message XML (at most 64 KiB)"),
    responses(
        (status = 200, description = "Reply XML, or `success` / empty when the answer follows later",
            content((String = "application/xml"), (String = "text/plain"))),
        (status = 400, description = "Unreadable message or signature: invalid_request",
            body = ErrorBody),
        (status = 403, description = "The signature does not match: forbidden", body = ErrorBody),
        (status = 404, description = "No such knowledge base, or no account connected to it",
            body = ErrorBody),
        (status = 413, description = "Larger than 64 KiB: payload_too_large", body = ErrorBody),
    ))]
async fn push(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
    Query(signed): Query<Signed>,
    body: Result<String, StringRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body?;
    let reply = wechat.receive(&kb, &signed, &body).await?;
    let media_type = if reply.starts_with('<') {
        "application/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(([(CONTENT_TYPE, media_type)], reply))
}

#[utoipa::path(get, path = "/api/kbs/{kb}/wechat", tag = "wechat", params(("kb" = String, Path)),
    responses(
        (status = 200, description = "The connection (secrets never shown)",
            body = WeChatSettingsDoc),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
    ))]
async fn show(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(wechat.settings(&kb)?))
}

/// Connects an official account (checked the way WeChat's own form checks it).
#[utoipa::path(put, path = "/api/kbs/{kb}/wechat", tag = "wechat", params(("kb" = String, Path)),
    request_body = AccountSettingsDoc,
    responses(
        (status = 200, description = "Connected", body = WeChatSettingsDoc),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
    ))]
async fn configure(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
    Json(settings): Json<AccountSettings>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(wechat.configure(&kb, settings)?))
}

#[utoipa::path(delete, path = "/api/kbs/{kb}/wechat", tag = "wechat",
    params(("kb" = String, Path)),
    responses(
        (status = 204, description = "Disconnected (also when nothing was connected)"),
        (status = 404, description = "No such knowledge base: kb_not_found", body = ErrorBody),
    ))]
async fn disconnect(
    State(wechat): State<Arc<WeChat>>,
    Path(kb): Path<String>,
) -> Result<StatusCode, ApiError> {
    wechat.disconnect(&kb)?;
    Ok(StatusCode::NO_CONTENT)
}
