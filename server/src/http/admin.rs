//! The admin API: logging in and out, and (with a session) everything that
//! changes the lights.
//!
//! Every route here takes an [`AdminUser`], so it answers 401 without a
//! session and 403 on a change without the session's CSRF token. Logging in is
//! throttled per account and per client address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use tinsel_frontend::admin::api::SessionInfo;
use tower_sessions::Session;
use tracing::{info, warn};

use crate::auth::throttle::{Limits, Throttle};
use crate::auth::{AdminUser, SessionSettings, accounts, session};
use crate::http::ApiError;
use crate::state::AppState;

/// Failed logins, shared by every request.
type Logins = Arc<Mutex<Throttle>>;

/// The admin routes, under `/api`, with the session layer on them only.
pub fn admin_routes(state: &AppState) -> Router<AppState> {
    let settings = SessionSettings {
        idle_timeout: state.config.admin_idle_timeout,
        secure: state.config.secure_cookies,
    };
    let logins: Logins = Arc::new(Mutex::new(Throttle::new(Limits::default())));
    Router::new()
        .route(
            "/session",
            post(session_create)
                .get(session_show)
                .delete(session_delete),
        )
        .layer(Extension(logins))
        .layer(session::layer(&state.db, settings))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

async fn session_create(
    State(state): State<AppState>,
    Extension(logins): Extension<Logins>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Json<SessionInfo>, ApiError> {
    let Login { username, password } = json(body)?;
    let address = peer.ip();
    let checked = lock(&logins).check(Instant::now(), &username, address);
    if let Err(wait) = checked {
        let minutes = wait.as_secs().div_ceil(60);
        warn!(%username, %address, "login refused: too many failures");
        return Err(ApiError::TooManyRequests {
            message: format!(
                "too many failed logins for this account or from this address; \
                 try again in {minutes} minute{}",
                if minutes == 1 { "" } else { "s" }
            ),
            retry_after_s: wait.as_secs().max(1),
        });
    }
    let good = accounts::verify(&state.db, &username, &password)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    if !good {
        lock(&logins).handle_failure(Instant::now(), &username, address);
        warn!(%username, %address, "login failed");
        return Err(ApiError::Unauthorized(
            "wrong username or password".to_string(),
        ));
    }
    lock(&logins).handle_success(&username);
    let csrf_token = session::log_in(&session, &username).await?;
    info!(%username, %address, "logged in");
    Ok(Json(SessionInfo {
        username,
        csrf_token,
    }))
}

async fn session_show(admin: AdminUser) -> Json<SessionInfo> {
    Json(SessionInfo {
        username: admin.username,
        csrf_token: admin.csrf_token,
    })
}

async fn session_delete(admin: AdminUser) -> Result<StatusCode, ApiError> {
    let username = admin.username.clone();
    admin.log_out().await?;
    info!(%username, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// A JSON body, or a 400 that says what is wrong with it.
fn json<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

fn lock(logins: &Logins) -> std::sync::MutexGuard<'_, Throttle> {
    // The lock is held for a few map operations that cannot panic midway.
    logins
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
