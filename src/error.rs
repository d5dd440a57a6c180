//! The one error type of lore, and the closed list of codes clients see.
//!
//! Domain code returns [`Error`]; each front door renders it its own way (REST `{"error":{..}}`,
//! Dify `error_code`, OpenAI `error`). The code decides the HTTP status, so the table in
//! [`ErrorCode::http_status`] is the single place where a status is chosen.

use std::fmt;

/// Every error code a client can receive. Adding one is a deliberate API change (the OpenAPI
/// document lists them as an enum, so clients generated from it learn of it too).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidJson,
    KbNotFound,
    KbExists,
    DocumentNotFound,
    UnsupportedFormat,
    EmptyFile,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    RateLimited,
    ModelUnavailable,
    ModelTimeout,
    Internal,
}

impl ErrorCode {
    /// The wire name, e.g. `kb_not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidJson => "invalid_json",
            Self::KbNotFound => "kb_not_found",
            Self::KbExists => "kb_exists",
            Self::DocumentNotFound => "document_not_found",
            Self::UnsupportedFormat => "unsupported_format",
            Self::EmptyFile => "empty_file",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::ModelUnavailable => "model_unavailable",
            Self::ModelTimeout => "model_timeout",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code on REST front doors.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest | Self::InvalidJson | Self::EmptyFile => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::KbNotFound | Self::DocumentNotFound => 404,
            Self::KbExists => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedFormat => 415,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::ModelUnavailable => 503,
            Self::ModelTimeout => 504,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a code, a message safe to show to the client, and (for internal errors) the
/// cause, which is logged but never sent.
pub struct Error {
    code: ErrorCode,
    message: String,
    source: Option<anyhow::Error>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// An error that is our fault: the client sees a generic message, the log sees the chain.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            code: ErrorCode::Internal,
            message: "internal error; the server log has the details".to_owned(),
            source: Some(source.into()),
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn kb_exists(kb: &str) -> Self {
        Self::new(
            ErrorCode::KbExists,
            format!("knowledge base '{kb}' already exists"),
        )
    }

    pub fn kb_not_found(kb: &str) -> Self {
        Self::new(
            ErrorCode::KbNotFound,
            format!("knowledge base '{kb}' does not exist"),
        )
    }

    pub fn document_not_found(kb: &str, document: &str) -> Self {
        Self::new(
            ErrorCode::DocumentNotFound,
            format!("document '{document}' does not exist in knowledge base '{kb}'"),
        )
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The cause of an internal error, for logging.
    pub fn source_chain(&self) -> Option<&anyhow::Error> {
        self.source.as_ref()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {} ({source:#})", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{source:#}"),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::internal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause_from_clients() {
        let err = Error::internal(anyhow::anyhow!("disk /secret/path is full"));
        assert_eq!(err.code(), ErrorCode::Internal);
        assert!(!err.message().contains("secret"));
        assert!(format!("{err:?}").contains("/secret/path"));
    }

    #[test]
    fn serde_names_match_wire_names() {
        for code in [
            ErrorCode::KbNotFound,
            ErrorCode::InvalidJson,
            ErrorCode::PayloadTooLarge,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
        }
    }
}
