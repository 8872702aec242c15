//! The admin API: logging in and out, and (with a session) everything that
//! changes the lights.
//!
//! Every route here takes an [`AdminUser`], so it answers 401 without a
//! session and 403 on a change without the session's CSRF token. Logging in is
//! throttled per account and per client address, and the failures are kept
//! over a restart ([`crate::auth::logins`]).

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tinsel_frontend::admin::api::{AccountsInfo, Schedules, SessionInfo};
use tower_sessions::Session;
use tracing::info;

use crate::auth::accounts::{self, AccountError};
use crate::auth::hashing::Hashing;
use crate::auth::{AdminUser, SessionSettings, session};
use crate::control::{Action, AuditEntry, OutletState, Schedule, Source};
use crate::http::ApiError;
use crate::limits::refused;
use crate::limits::slots::client_key;
use crate::state::AppState;

/// The admin routes, under `/api`, with the session layer on them only.
pub fn admin_routes(state: &AppState) -> Router<AppState> {
    let settings = SessionSettings {
        idle_timeout: state.config.admin_idle_timeout,
        secure: state.config.secure_cookies,
    };
    let hashing = Hashing::new(&state.config.auth_limits);
    Router::new()
        .route(
            "/session",
            post(session_create)
                .get(session_show)
                .delete(session_delete),
        )
        .route("/accounts", get(accounts_show))
        .route("/lights/{name}", post(lights_command))
        .route("/audit", get(audit_list))
        .route("/push", get(super::push::push_status))
        .route("/tweets", get(super::tweets::tweets_status))
        .route("/schedules", get(schedules_list))
        .route(
            "/schedules/{outlet}",
            put(schedules_put).delete(schedules_delete),
        )
        .layer(Extension(hashing))
        .layer(session::layer(&state.db, settings))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// Logging in. What a stranger may cost here, in order: a name outside the
/// account name rule or an over-long password is a 400 before anything is
/// looked up or counted; a throttled account or address is a 429; a full
/// queue of password checks is a 503 at once. Only then is the password
/// checked, as many at a time as `login_max_concurrent_hashes` allows.
async fn session_create(
    State(state): State<AppState>,
    Extension(hashing): Extension<Hashing>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Json<SessionInfo>, ApiError> {
    let Login { username, password } = json(body)?;
    if !accounts::is_valid_account_name(&username) {
        refused(
            peer,
            "login_account_name",
            "a login with a name no account can have",
        );
        return Err(ApiError::BadRequest(
            "no account can have that name: use 1 to 64 letters, digits, '.', '-', '_' or '@'"
                .to_string(),
        ));
    }
    if password.len() > accounts::MAX_PASSWORD_BYTES {
        refused(
            peer,
            "login_password_bytes",
            "a login with an over-long password",
        );
        return Err(ApiError::BadRequest(format!(
            "the password is longer than {} bytes, which no account has",
            accounts::MAX_PASSWORD_BYTES
        )));
    }
    let address = client_key(peer.ip());
    let logins = &state.logins;
    let attempt = match logins.begin(&username, address) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let minutes = wait.as_secs().div_ceil(60);
            refused(
                peer,
                "login_throttle",
                format_args!("login for {username:?}: too many failures"),
            );
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "too many failed logins for this account or from this address; \
                     try again in {minutes} minute{}",
                    if minutes == 1 { "" } else { "s" }
                ),
                retry_after_s: wait.as_secs().max(1),
            });
        }
    };
    let good = match accounts::verify(&state.db, &hashing, &username, &password).await {
        Ok(good) => good,
        Err(AccountError::Busy) => {
            // No password was checked: the attempt does not count.
            logins.abandoned(attempt, &username, address);
            refused(
                peer,
                "login_max_waiting_hashes",
                "login: every password check is running or queued",
            );
            return Err(ApiError::Unavailable(AccountError::Busy.to_string()));
        }
        Err(err) => return Err(ApiError::Internal(err.to_string())),
    };
    if !good {
        // Kept before the 401 goes out: an answered guess survives a restart.
        logins.failed(attempt, &username, address).await;
        // Through the rate-limited line: failures come as fast as hashes do.
        refused(
            peer,
            "login_password",
            format_args!("login for {username:?}: wrong username or password"),
        );
        return Err(ApiError::Unauthorized(
            "wrong username or password".to_string(),
        ));
    }
    logins.succeeded(attempt, &username, address).await;
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

/// `GET /api/accounts`, public: the login form tells how to make the first
/// admin while there is none.
async fn accounts_show(State(state): State<AppState>) -> Result<Json<AccountsInfo>, ApiError> {
    let exist = accounts::any_exists(&state.db)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok(Json(AccountsInfo {
        exist,
        create_with: (!exist)
            .then(|| crate::onboarding::message::first_admin_command(&state.config.data_dir)),
    }))
}

async fn session_delete(admin: AdminUser) -> Result<StatusCode, ApiError> {
    let username = admin.username.clone();
    admin.log_out().await?;
    info!(%username, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// A command's answer: the outlet as read back, and what the PDU did in the
/// audit log's words ("switched on (was off)", "already on").
#[derive(Serialize)]
struct CommandAnswer {
    #[serde(flatten)]
    outlet: OutletState,
    result: String,
}

async fn lights_command(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(name): Path<String>,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<Json<CommandAnswer>, ApiError> {
    let action = json(body)?;
    let outcome = state
        .lights
        .command(&name, action, Source::Admin(admin.username))
        .await?;
    Ok(Json(CommandAnswer {
        result: outcome.describe(),
        outlet: outcome.state,
    }))
}

/// Audit entries answered when the request does not say how many.
const AUDIT_DEFAULT: u32 = 50;
/// The most audit entries one request gets.
const AUDIT_MAX: u32 = 1000;

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

async fn audit_list(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let limit = query.limit.unwrap_or(AUDIT_DEFAULT).clamp(1, AUDIT_MAX);
    Ok(Json(state.lights.audit(limit).await?))
}

async fn schedules_list(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<Schedules>, ApiError> {
    Ok(Json(Schedules {
        timezone: state.lights.timezone(),
        schedules: state.lights.schedules().await?,
    }))
}

#[derive(Deserialize)]
struct Window {
    on: String,
    off: String,
}

/// A saved schedule, as stored (the controller writes times in one form),
/// with the outlet as read back after it was given the state due now.
#[derive(Serialize)]
struct ScheduleAnswer {
    #[serde(flatten)]
    schedule: Schedule,
    state: OutletState,
    result: String,
}

/// Saves the schedule, then switches the outlet to what is due now. A switch
/// that fails answers with its own error status, saying the schedule stands.
async fn schedules_put(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(outlet): Path<String>,
    body: Result<Json<Window>, JsonRejection>,
) -> Result<Json<ScheduleAnswer>, ApiError> {
    let Window { on, off } = json(body)?;
    let schedule = Schedule { outlet, on, off };
    let (schedule, switched) = state
        .lights
        .set_schedule(schedule, Source::Admin(admin.username))
        .await?;
    match switched {
        Ok(outcome) => Ok(Json(ScheduleAnswer {
            schedule,
            result: outcome.describe(),
            state: outcome.state,
        })),
        Err(err) => {
            let saved = format!(
                "the schedule of {:?} is saved, but the outlet did not take the state due now: ",
                schedule.outlet
            );
            Err(match ApiError::from(err) {
                ApiError::TooManyRequests {
                    message,
                    retry_after_s,
                } => ApiError::TooManyRequests {
                    message: saved + &message,
                    retry_after_s,
                },
                ApiError::BadGateway(message) => ApiError::BadGateway(saved + &message),
                ApiError::Conflict(message) => ApiError::Conflict(saved + &message),
                other => other,
            })
        }
    }
}

async fn schedules_delete(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(outlet): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .lights
        .delete_schedule(&outlet, Source::Admin(admin.username))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A JSON body, or a 400 that says what is wrong with it (413 when it is too
/// large; the body limit's middleware words that answer).
fn json<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "the request body is too large (http_max_body_bytes): {}",
                rejection.body_text()
            ))
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })
}
