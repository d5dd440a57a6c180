//! The HTTP server: one router over every front door, each in its own module, all calling the
//! one `KnowledgeBase` service. Handlers unpack the request, call the service and map the
//! result; nothing here talks to the store or the model.

mod answer;
mod dify;
mod documents;
mod error;
mod guard;
mod kbs;
mod observe;
mod openai;
pub mod openapi;
mod query;
mod web;
mod wechat;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::error::ErrorCode;
use crate::kb::KnowledgeBase;

/// The whole application.
pub fn router(service: Arc<KnowledgeBase>) -> anyhow::Result<Router> {
    let max_upload = service.config().limits.max_upload_bytes;
    let wechat = crate::wechat::WeChat::new(Arc::clone(&service))?;
    let guard = Arc::new(guard::Guard::new(service.config()));
    let api = Router::new()
        .merge(kbs::router())
        .merge(documents::router(max_upload))
        .merge(query::router())
        .merge(answer::router())
        .merge(openai::router())
        .merge(wechat::settings(Arc::clone(&wechat)))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&guard),
            guard::check,
        ));
    Ok(Router::new()
        .route("/healthz", get(observe::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics))
        // The API's description is public, like the health checks: it holds no data.
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(api)
        // Dify checks keys its own way (403 with its codes), so it is outside the guard.
        .merge(dify::router(guard))
        // The page is public; it asks for the key and sends it with each call.
        .merge(web::router(max_upload))
        // WeChat signs its calls with the account's token instead.
        .merge(wechat::door(wechat))
        .fallback(|| async { ApiError::new(ErrorCode::InvalidRequest, "no such endpoint") })
        .layer(middleware::from_fn(observe::record))
        .layer(TraceLayer::new_for_http().make_span_with(observe::span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(service))
}

/// Serves until `shutdown` resolves. Refuses a non-loopback address without an API key.
pub async fn serve(
    listener: TcpListener,
    service: Arc<KnowledgeBase>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let keyless = service.config().api_key.is_none() && service.config().keys.is_empty();
    if !addr.ip().is_loopback() && keyless {
        anyhow::bail!(
            "refusing to listen on {addr} without an API key: set LORE_API_KEY (or api_key or [[keys]] \
             in lore.toml), or listen on 127.0.0.1"
        );
    }
    axum::serve(listener, router(service)?)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
