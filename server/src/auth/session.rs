//! Admin sessions: a cookie naming a row of `admin_sessions` in the database,
//! the [`AdminUser`] extractor every admin route takes, and the CSRF check.
//!
//! CSRF: each session gets a random token at login, answered by
//! `POST`/`GET /api/session`. Every request that changes something must send it
//! back in the `X-CSRF-Token` header; a page on another site cannot read it, so
//! it cannot forge the header. The cookie is also `SameSite=Strict`.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::store::SqliteSessions;
use crate::db::Db;
use crate::http::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "tinsel_session";
/// The header state-changing requests carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Where in the session record the admin's data is kept.
const ADMIN_KEY: &str = "admin";
/// How often expired sessions are deleted from the database.
const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// How sessions behave (from the config).
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// A session unused for this long ends.
    pub idle_timeout: Duration,
    /// Mark the cookie `Secure` (browsers then send it over HTTPS only).
    pub secure: bool,
}

/// What a logged-in session holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AdminSession {
    username: String,
    csrf_token: String,
}

/// The layer that loads and saves sessions; put it on the admin routes only.
pub fn layer(db: &Db, settings: SessionSettings) -> SessionManagerLayer<SqliteSessions> {
    let idle = time::Duration::try_from(settings.idle_timeout).unwrap_or(time::Duration::MINUTE);
    SessionManagerLayer::new(SqliteSessions::new(db.pool().clone()))
        .with_name(COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(settings.secure)
        .with_expiry(Expiry::OnInactivity(idle))
        // Every request moves the expiry on, so "idle" means idle.
        .with_always_save(true)
}

/// Starts deleting expired sessions until `token` is cancelled (the table
/// is made by the database's migrations).
pub fn sweep_expired(db: &Db, tracker: &TaskTracker, token: CancellationToken) {
    let store = SqliteSessions::new(db.pool().clone());
    tracker.spawn(async move {
        let mut interval = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = interval.tick() => {
                    if let Err(err) = store.delete_expired().await {
                        tracing::warn!(cause = %err, "cannot delete expired sessions");
                    }
                }
            }
        }
    });
}

/// Starts an admin session for `username` (under a new id, so an id planted
/// before login is worthless) and returns its CSRF token.
///
/// # Errors
/// The session cannot be stored.
pub async fn log_in(session: &Session, username: &str) -> Result<String, ApiError> {
    let data = AdminSession {
        username: username.to_owned(),
        csrf_token: new_token(),
    };
    session.cycle_id().await.map_err(internal)?;
    session.insert(ADMIN_KEY, &data).await.map_err(internal)?;
    Ok(data.csrf_token)
}

/// An admin with a live session. Taking it as an argument makes a handler
/// answer 401 without a session and, for anything but GET and HEAD, 403
/// without the session's CSRF token in `X-CSRF-Token`.
#[derive(Debug)]
pub struct AdminUser {
    pub username: String,
    pub csrf_token: String,
    session: Session,
}

impl AdminUser {
    /// Ends the session: the row is deleted and the cookie removed.
    ///
    /// # Errors
    /// The session store fails.
    pub async fn log_out(self) -> Result<(), ApiError> {
        self.session.flush().await.map_err(internal)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| ApiError::Internal(why.to_string()))?;
        let data: Option<AdminSession> = session.get(ADMIN_KEY).await.map_err(internal)?;
        let Some(data) = data else {
            return Err(ApiError::Unauthorized(
                "not logged in (or the session has expired): log in at /admin".to_string(),
            ));
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .map(|value| value.as_bytes())
                .unwrap_or_default();
            // Constant time, so timing does not reveal how much of a guess was right.
            if !bool::from(sent.ct_eq(data.csrf_token.as_bytes())) {
                return Err(ApiError::Forbidden(
                    "missing or wrong X-CSRF-Token header: send the csrf_token that \
                     POST /api/session or GET /api/session answered"
                        .to_string(),
                ));
            }
        }
        Ok(Self {
            username: data.username,
            csrf_token: data.csrf_token,
            session,
        })
    }
}

/// 32 random bytes, hex: unguessable and safe in a header.
fn new_token() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("session store: {err}"))
}
