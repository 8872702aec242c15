//! The body size limit of every route (`http_max_body_bytes`).
//!
//! Two parts, because a body can announce its size or not:
//! - a declared `Content-Length` over the limit is answered 413 before the
//!   handler runs and before a byte of the body is read;
//! - a chunked body is cut off by axum's `DefaultBodyLimit` (set on the whole
//!   router) when an extractor reads past the limit. Its plain-text 413 is
//!   replaced here by the JSON error every other refusal has.
//!
//! A route may set a lower `DefaultBodyLimit` of its own (an SDP offer needs
//! far less); it cannot go higher than this one.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::limits::refused;

/// The limit, as the middleware's state.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Refuses bodies over the limit with a 413 that says so.
pub async fn limit(
    State(BodyLimit(max)): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.to_string());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let path = request.uri().path().to_owned();
    if let Some(length) = declared.filter(|&n| n > max as u64) {
        refused(
            &peer,
            "http_max_body_bytes",
            format_args!("a {length}-byte body for {}", shorten(&path)),
        );
        return too_large(max).into_response();
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    // With a declared length within this limit, the route's own lower limit
    // refused it, and the route says so itself.
    if declared.is_none() {
        refused(
            &peer,
            "http_max_body_bytes",
            format_args!("a chunked body over the limit for {}", shorten(&path)),
        );
    }
    if is_json(&response) {
        response
    } else {
        too_large(max).into_response()
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request body is too large: this server takes at most {max} bytes \
         (http_max_body_bytes), some routes less"
    ))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// A path for a log line: long ones are cut, so a log line stays a line.
fn shorten(path: &str) -> &str {
    const MAX: usize = 120;
    match path.char_indices().nth(MAX) {
        Some((end, _)) => &path[..end],
        None => path,
    }
}
