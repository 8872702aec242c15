//! `GET /api/push`: how pushing the streams on (YouTube) goes.

use axum::Json;
use axum::extract::State;

use crate::auth::AdminUser;
use crate::push::PushStatus;
use crate::state::AppState;

/// Admins only: the admin check is the first argument.
pub async fn push_status(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Json<Vec<PushStatus>> {
    Json(state.pushes.statuses())
}
