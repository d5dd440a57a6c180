//! The HTTP server: one router over every front door, each in its own module, all calling the
//! one `KnowledgeBase` service. Handlers unpack the request, call the service and map the
//! result; nothing here talks to the store or the model.

mod answer;
mod dify;
mod documents;
mod error;
mod kbs;
mod openai;
mod query;
mod web;
mod wechat;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::error::ErrorCode;
use crate::kb::KnowledgeBase;

/// The whole application.
pub fn router(service: Arc<KnowledgeBase>) -> anyhow::Result<Router> {
    let max_upload = service.config().limits.max_upload_bytes;
    let wechat = crate::wechat::WeChat::new(Arc::clone(&service))?;
    let api = Router::new()
        .merge(kbs::router())
        .merge(documents::router(max_upload))
        .merge(query::router())
        .merge(answer::router())
        .merge(openai::router())
        .merge(wechat::settings(Arc::clone(&wechat)))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&service),
            require_key,
        ));
    Ok(Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .route(
            "/readyz",
            get(|| async { axum::Json(json!({ "status": "ready" })) }),
        )
        .merge(api)
        // Dify checks keys its own way (403 with its codes), so it is outside `require_key`.
        .merge(dify::router())
        // The page is public; it asks for the key and sends it with each call.
        .merge(web::router())
        // WeChat signs its calls with the account's token instead.
        .merge(wechat::door(wechat))
        .fallback(|| async { ApiError::new(ErrorCode::InvalidRequest, "no such endpoint") })
        .layer(TraceLayer::new_for_http())
        .with_state(service))
}

/// With an API key configured, every API call must carry it as a bearer token.
async fn require_key(
    State(service): State<Arc<KnowledgeBase>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &service.config().api_key else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Constant-time, so response timing does not reveal how much of a guess was right.
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        next.run(request).await
    } else {
        ApiError::new(
            ErrorCode::Unauthorized,
            "a valid API key is required (Authorization: Bearer <key>)",
        )
        .into_response()
    }
}

/// Serves until `shutdown` resolves. Refuses a non-loopback address without an API key.
pub async fn serve(
    listener: TcpListener,
    service: Arc<KnowledgeBase>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && service.config().api_key.is_none() {
        anyhow::bail!(
            "refusing to listen on {addr} without an API key: set LORE_API_KEY (or api_key in \
             lore.toml), or listen on 127.0.0.1"
        );
    }
    axum::serve(listener, router(service)?)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
