//! The web page at `/`: plain HTML, CSS and JS from `web/`, compiled into the binary so the
//! server needs no files beside it and no CDN. Served without a key: the page asks for one and
//! sends it with each API call. The one server setting the page needs before any call, the
//! upload limit, is written into the HTML, so a file over it is refused before it is sent.

use axum::Router;
use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

/// Every file of the page: path, media type, contents.
const FILES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
];

/// Where index.html takes `limits.max_upload_bytes`.
const UPLOAD_LIMIT_SLOT: &str = "{{max_upload_bytes}}";

pub fn router<S: Clone + Send + Sync + 'static>(max_upload_bytes: usize) -> Router<S> {
    FILES
        .iter()
        .fold(Router::new(), |router, &(path, media_type, text)| {
            let body = Bytes::from(text.replace(UPLOAD_LIMIT_SLOT, &max_upload_bytes.to_string()));
            router.route(
                path,
                get(move || async move {
                    // `no-cache`: revalidate, so an upgraded binary never runs a stale script.
                    (
                        [(CONTENT_TYPE, media_type), (CACHE_CONTROL, "no-cache")],
                        body,
                    )
                        .into_response()
                }),
            )
        })
}
