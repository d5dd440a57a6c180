//! What the server tells its operators: a request id on every request and response
//! (`x-request-id`, kept when the caller sends one) carried by the log span, metrics by route,
//! and `GET /metrics` in Prometheus' text format.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::kb::KnowledgeBase;

/// The answer of the health checks.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// "ok" from `/healthz`, "ready" from `/readyz`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the server only listens once the model is loaded and the store open.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Model loaded, store open", body = Health)))]
pub async fn readyz() -> axum::Json<Health> {
    axum::Json(Health { status: "ready" })
}

/// The log span of a request: id, method and route template. Not the URI: query strings
/// carry WeChat signatures and other values that do not belong in logs.
pub fn span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", id, method = %request.method(), route = route(request))
}

fn route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

/// Counts the request and its latency (to the response head; a stream's body may go on).
pub async fn record(request: Request, next: Next) -> Response {
    let route = route(&request).to_owned();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    crate::metrics::record_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Prometheus' text format: requests by route, method and status, latency, queue depth.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String,
        content_type = "text/plain")))]
pub async fn metrics(State(service): State<Arc<KnowledgeBase>>) -> impl IntoResponse {
    let depth = service.queue_depth();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::render(depth),
    )
}
