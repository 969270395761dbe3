//! The one error type of the HTTP API. Every failure becomes
//! `{"status":"error","error":"<code>","message":"<sentence>"}` with the right status; server
//! faults get a generic message and their detail goes to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use neurallog_core::{api::ErrorBody, ingest::IngestError};
use neurallog_storage::{ErrorKind, StorageError};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Set when a storage failure caused the error, so the metrics layer can count it by kind.
    pub storage: Option<ErrorKind>,
}

/// Response extension naming the storage failure behind an error response (for metrics).
#[derive(Clone, Copy, Debug)]
pub struct StorageFailure(pub ErrorKind);

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            storage: None,
        }
    }

    /// 400 with a specific code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: missing or invalid credentials. The same body whatever was wrong, so that the
    /// answer never tells whether a key exists.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credentials",
        )
    }

    /// 403: a known principal without the permission.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 500 with a generic message.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request",
        )
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let mut err = match e.kind {
            ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "storage is unavailable, retry later",
                )
            }
            // NB: what failed (a block's integrity check, an unknown key) goes to the log;
            // the client learns only that stored data is damaged.
            ErrorKind::Corrupt => {
                tracing::error!(error = %e, "stored data failed to decode or verify");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage_corrupt",
                    "stored data failed an integrity check",
                )
            }
            ErrorKind::Internal => {
                tracing::error!(error = %e, "storage failure");
                Self::internal()
            }
        };
        err.storage = Some(e.kind);
        err
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::InvalidJson(m) => {
                Self::bad_request("invalid_json", format!("malformed JSON: {m}"))
            }
            IngestError::Empty => Self::bad_request("empty_batch", e.to_string()),
            IngestError::TooManyEvents { .. } | IngestError::EventTooLarge { .. } => {
                Self::payload_too_large(e.to_string())
            }
            IngestError::TooComplex { .. } => Self::bad_request("event_too_complex", e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: "error".into(),
            error: self.code.into(),
            message: self.message,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(kind) = self.storage {
            resp.extensions_mut().insert(StorageFailure(kind));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="neurallog", ApiKey header="X-API-Key""#),
            );
        }
        resp
    }
}
