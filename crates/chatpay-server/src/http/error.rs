//! One error type for the HTTP API and one body everywhere: `{"code": "…", "message": "…"}`.
//! Internals are logged here, once, and never sent.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::chat::ChatError;
pub use crate::wire::ErrorBody;
use chatpay_core::error::ErrorCode;
use chatpay_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Well-formed, but breaks a rule (422).
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    #[error("{0}")]
    BadSignature(String),
    /// Form values that break a rule, each field with what is wrong (422).
    #[error("some values are not valid")]
    InvalidValues(BTreeMap<String, String>),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{0}")]
    RateLimited(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, ErrorCode) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, ErrorCode::Rule(code)),
            ApiError::Rejected { code, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::Rule(code))
            }
            ApiError::BadSignature(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadSignature),
            ApiError::InvalidValues(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidValues)
            }
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            ApiError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, ErrorCode::Rule(code)),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                "Something went wrong on our side. Nothing was lost; please retry.".to_owned()
            }
            other => other.to_string(),
        };
        let fields = match self {
            ApiError::InvalidValues(fields) => Some(fields),
            _ => None,
        };
        let body = ErrorBody {
            code: code.as_str().to_owned(),
            message,
            fields,
        };
        (status, Json(body)).into_response()
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Unauthorized(m) => ApiError::Unauthorized(m),
            ChatError::NotFound(m) => ApiError::NotFound(m),
            ChatError::StaleCard(m) => ApiError::Conflict {
                code: ErrorCode::StaleCard.as_str(),
                message: m,
            },
            ChatError::InvalidValues(fields) => ApiError::InvalidValues(fields),
            ChatError::BackendRequired(m) => ApiError::Conflict {
                code: ErrorCode::BackendRequired.as_str(),
                message: m,
            },
            ChatError::Unavailable => ApiError::Unavailable("retry shortly".to_owned()),
            ChatError::Rejected { code, message } => ApiError::Rejected { code, message },
            ChatError::Conflict { code, message } => ApiError::Conflict { code, message },
            ChatError::Forbidden { code, message } => ApiError::Forbidden { code, message },
            ChatError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".to_owned()),
            StoreError::Conflict(m) => ApiError::Conflict {
                code: "conflict",
                message: m,
            },
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}
