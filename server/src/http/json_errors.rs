//! Every error under `/api`, `/hls` and `/whep` is JSON with a reason.
//!
//! Tinsel's own handlers answer with [`super::ApiError`] already; what is
//! left is what axum answers on their behalf: a query string or a path that
//! does not parse (text), a method a route does not take (405, no body), a
//! path no route has (the site's HTML 404). A script, a player or a person
//! reading the network tab gets `{"error": "..."}` for those too.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

/// The path prefixes whose errors are JSON.
const PREFIXES: [&str; 3] = ["/api", "/hls", "/whep"];
/// Rejection texts are a line or two; anything longer is not one.
const MAX_TEXT_BYTES: usize = 4096;

fn is_json_path(path: &str) -> bool {
    PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

pub async fn json_errors(request: Request, next: Next) -> Response {
    if !is_json_path(request.uri().path()) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        return response;
    }
    let plain = content_type.starts_with("text/plain");
    let (mut parts, body) = response.into_parts();
    let text = if plain {
        to_bytes(body, MAX_TEXT_BYTES)
            .await
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let allow = parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let reason = reason(status, &method, &path, &allow, text);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Response::from_parts(parts, Body::from(json!({ "error": reason }).to_string()))
}

/// What the client is told: the rejection's own text where there is one.
fn reason(status: StatusCode, method: &Method, path: &str, allow: &str, text: String) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED if !allow.is_empty() => {
            format!("{path} does not take {method}; it takes {allow}")
        }
        StatusCode::NOT_FOUND if text.is_empty() => {
            format!("nothing at {path}; the README lists the routes")
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_hls_and_whep_trees_are_json() {
        for path in ["/api", "/api/x", "/hls/tree/index.m3u8", "/whep/tree"] {
            assert!(is_json_path(path), "{path}");
        }
        for path in ["/", "/apiary", "/watch/tree", "/pkg/tinsel.js", "/whepx"] {
            assert!(!is_json_path(path), "{path}");
        }
    }

    #[test]
    fn a_405_names_the_methods_the_route_takes() {
        let reason = reason(
            StatusCode::METHOD_NOT_ALLOWED,
            &Method::PATCH,
            "/whep/tree",
            "POST,OPTIONS",
            String::new(),
        );
        assert_eq!(
            reason,
            "/whep/tree does not take PATCH; it takes POST,OPTIONS"
        );
    }
}
