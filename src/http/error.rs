//! REST rendering of errors: `{"error":{"code","message"}}` with the code's status, and a JSON
//! extractor whose rejections use the same shape instead of axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{Error, ErrorCode};

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
        let body = json!({ "error": { "code": code.as_str(), "message": self.0.message() } });
        (status, axum::Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(err) => Self::new(
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON: {}", err.body_text()),
            ),
            JsonRejection::JsonDataError(err) => {
                Self::new(ErrorCode::InvalidRequest, err.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => Self::new(
                ErrorCode::InvalidRequest,
                "expected a JSON body with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            }
            other => Self::new(ErrorCode::InvalidRequest, other.body_text()),
        }
    }
}

/// `axum::Json`, with rejections rendered as lore errors.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
