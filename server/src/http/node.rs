//! What operators and their machines ask a node: `/readyz` (should it get
//! new viewers?) and `/metrics` (what is it doing?). `/healthz` (is the
//! process up?) needs no state and lives with the routes.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::state::AppState;

/// 200 while this node takes new viewers; 503 with the reason when it does
/// not (draining, no origin reachable), so a load balancer sends them
/// elsewhere while current viewers carry on.
pub async fn ready_get(State(state): State<AppState>) -> Response {
    match state.readiness.reason() {
        None => "ready\n".into_response(),
        Some(reason) => ApiError::Unavailable(format!("not ready: {reason}")).into_response(),
    }
}

pub async fn metrics_get(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(&state);
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}
