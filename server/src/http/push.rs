//! `GET /api/push`: how pushing the streams on (YouTube) goes.

use axum::Json;
use axum::extract::State;

use crate::push::PushStatus;
use crate::state::AppState;

pub async fn push_status(State(state): State<AppState>) -> Json<Vec<PushStatus>> {
    Json(state.pushes.statuses())
}
