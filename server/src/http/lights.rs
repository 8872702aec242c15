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
            ControlError::Unreachable { .. } | ControlError::NotSwitched { .. } => {
                ApiError::BadGateway(message)
            }
            ControlError::Protected { .. } | ControlError::Rebooting { .. } => {
                ApiError::Conflict(message)
            }
            ControlError::Database(_) => ApiError::Internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn control_errors_become_the_statuses_the_admin_panel_expects() {
        let cases = [
            (
                ControlError::UnknownOutlet("x".into()),
                StatusCode::NOT_FOUND,
            ),
            (ControlError::NoSchedule("x".into()), StatusCode::NOT_FOUND),
            (ControlError::Invalid("bad".into()), StatusCode::BAD_REQUEST),
            (
                ControlError::Unreachable {
                    outlet: "x".into(),
                    message: "no answer".into(),
                },
                StatusCode::BAD_GATEWAY,
            ),
            (
                ControlError::Protected {
                    outlet: "camera".into(),
                    refuses: "does not flash",
                },
                StatusCode::CONFLICT,
            ),
            (
                ControlError::NotSwitched {
                    outlet: "x".into(),
                    wanted: "on",
                    read: "off",
                },
                StatusCode::BAD_GATEWAY,
            ),
            (
                ControlError::Database(sqlx::Error::PoolClosed),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(ApiError::from(err).into_response().status(), status);
        }
        let guard = ApiError::from(ControlError::Guard {
            outlet: "x".into(),
            switches: 10,
            window_s: 60,
            retry_after_s: 23,
        })
        .into_response();
        assert_eq!(guard.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(guard.headers()["retry-after"], "23");
    }
}
