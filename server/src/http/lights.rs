//! `GET /api/lights`: every outlet's state, for anyone; and how the light
//! controller's errors read over HTTP.

use axum::Json;
use axum::extract::State;

use crate::control::{ControlError, OutletState};
use crate::http::ApiError;
use crate::state::AppState;

pub async fn lights_list(State(state): State<AppState>) -> Json<Vec<OutletState>> {
    Json(state.lights.outlets())
}

impl From<ControlError> for ApiError {
    fn from(err: ControlError) -> Self {
        let message = err.to_string();
        match err {
            ControlError::UnknownOutlet(_) | ControlError::NoSchedule(_) => {
                ApiError::NotFound(message)
            }
            ControlError::Invalid(_) => ApiError::BadRequest(message),
            ControlError::Guard { retry_after_s, .. } => ApiError::TooManyRequests {
                message,
                retry_after_s,
            },
            ControlError::Unreachable { .. } => ApiError::BadGateway(message),
            ControlError::Database(_) => ApiError::Internal(message),
        }
    }
}
