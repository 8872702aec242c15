//! `ApiError`: how the web layer says no.
//!
//! Client mistakes are 4xx with a message that says what to do; the body is
//! JSON, `{"error": "..."}`, for scripts and people alike.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// No admin session; log in first.
    #[error("{0}")]
    Unauthorized(String),
    /// A session, but the request may not do this (for example no CSRF token).
    #[error("{0}")]
    Forbidden(String),
    /// The resource's state refuses the request (a protected outlet, one
    /// rebooting).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; the client should wait this many seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_s: u64 },
    /// Something the server depends on (a PDU, an upstream API) failed.
    #[error("{0}")]
    BadGateway(String),
    /// Not available now, but worth asking again shortly.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A body over the size limit of its route.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A failure of the server's own; the client learns only that much.
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(cause = %detail, "request failed");
                "internal error; the server log has the details".to_string()
            }
            other => other.to_string(),
        };
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after_s, .. } => {
                Some(retry_after_s.max(&1).to_string())
            }
            ApiError::Unavailable(_) => Some("1".to_string()),
            _ => None,
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        // An error is about this moment; no cache should keep it.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
