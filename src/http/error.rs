//! REST rendering of errors: `{"error":{"code","message"}}` with the code's status, and a JSON
//! extractor whose rejections use the same shape instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{PathRejection, QueryRejection, StringRejection};
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::error::{Error, ErrorCode};

/// The body of every REST error response. A type rather than a `json!` literal, so the OpenAPI
/// document describes exactly what is sent.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of the closed list of codes; the HTTP status follows from it.
    pub code: ErrorCode,
    /// For people: what was wrong with the request, or a generic line for internal errors.
    pub message: String,
}

/// An [`Error`] on its way to a REST client.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(Error::new(code, message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = ?self.0, "request failed");
        }
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.0.message().to_owned(),
            },
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Every other extractor's rejection becomes an `invalid_request` (or `payload_too_large`) in
/// lore's shape: axum's own are plain text, which clients parsing `{"error":..}` cannot read.
fn rejected(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
    } else {
        ApiError::new(ErrorCode::InvalidRequest, text)
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        rejected(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        rejected(rejection.status(), rejection.body_text())
    }
}

impl From<StringRejection> for ApiError {
    fn from(rejection: StringRejection) -> Self {
        rejected(rejection.status(), rejection.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        rejected(rejection.status(), rejection.body_text())
    }
}

/// `axum::extract::Path`, with rejections (e.g. a segment that is not UTF-8 once decoded)
/// rendered as lore errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query`, with rejections rendered as lore errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// A JSON body, with lore's errors: `invalid_json` when the body is not JSON (bad syntax, invalid
/// UTF-8, or nested deeper than serde_json's limit of 128 levels), `invalid_request` when it is
/// JSON of the wrong shape. axum's own `Json` judges by the first error serde meets, so 100,000
/// `[` against a struct read as "wrong type", not "not JSON".
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| rejected(rejection.status(), rejection.body_text()))?;
        parse_json(&bytes).map(Json)
    }
}

/// `application/json` or any `application/*+json`, parameters ignored.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a request body: syntax and depth first (into a `Value`, which serde_json refuses past
/// 128 levels, without recursing further), then shape, so each failure gets its own code.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {err}"),
        )
    })?;
    serde_json::from_value(value).map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body does not fit this request: {err}"),
        )
    })
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
