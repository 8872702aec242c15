//! The admin API as the panel calls it, and the JSON only admins see.
//!
//! Every call that changes something sends the session's CSRF token in
//! `X-CSRF-Token`; the browser sends the session cookie by itself.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::{AuditEntry, OutletState, Schedule};

/// `POST /api/session` and `GET /api/session` answer this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub username: String,
    pub csrf_token: String,
}

/// `GET /api/accounts`: whether an admin account exists, and while none
/// does, the command that makes the first, to run on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountsInfo {
    pub exist: bool,
    pub create_with: Option<String>,
}

/// `GET /api/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedules {
    /// The IANA time zone the times are in, e.g. `Europe/Amsterdam`.
    pub timezone: String,
    pub schedules: Vec<Schedule>,
}

/// One entry of `GET /api/push`: a target the stream is pushed on to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PushView {
    /// The URL with the key hidden.
    pub target: String,
    pub stream: String,
    pub state: String,
    pub connected: bool,
    pub bytes_sent: u64,
    pub last_error: Option<String>,
}

/// What the panel shows of `GET /api/tweets`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TweetsView {
    pub enabled: bool,
    pub state: String,
    pub detail: String,
    pub last_poll_at: Option<String>,
    pub fired: u64,
    pub coalesced: u64,
    pub query: Option<String>,
    pub how_to_enable: Option<String>,
}

/// A call that did not succeed: the HTTP status (0 when the server was not
/// reached) and the server's message, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub message: String,
}

impl Failure {
    /// No session, or it expired: the panel shows the login form.
    pub fn is_logged_out(&self) -> bool {
        self.status == 401
    }
}

/// How many audit entries the panel shows.
pub const AUDIT_LIMIT: u32 = 50;

pub async fn session() -> Result<SessionInfo, Failure> {
    call("GET", "/api/session", None, None).await
}

pub async fn accounts() -> Result<AccountsInfo, Failure> {
    call("GET", "/api/accounts", None, None).await
}

pub async fn log_in(username: String, password: String) -> Result<SessionInfo, Failure> {
    let body = serde_json::json!({ "username": username, "password": password });
    call("POST", "/api/session", Some(body), None).await
}

pub async fn log_out(csrf: String) -> Result<(), Failure> {
    call("DELETE", "/api/session", None, Some(csrf)).await
}

pub async fn outlets() -> Result<Vec<OutletState>, Failure> {
    call("GET", "/api/lights", None, None).await
}

/// `action` is `on`, `off`, `toggle`, `reboot` or `flash` (then for `seconds`).
pub async fn command(
    outlet: String,
    action: &'static str,
    seconds: Option<u32>,
    csrf: String,
) -> Result<OutletState, Failure> {
    let body = match seconds {
        Some(seconds) => serde_json::json!({ "action": action, "seconds": seconds }),
        None => serde_json::json!({ "action": action }),
    };
    let path = format!("/api/lights/{}", encode(&outlet));
    call("POST", &path, Some(body), Some(csrf)).await
}

pub async fn audit() -> Result<Vec<AuditEntry>, Failure> {
    call(
        "GET",
        &format!("/api/audit?limit={AUDIT_LIMIT}"),
        None,
        None,
    )
    .await
}

pub async fn pushes() -> Result<Vec<PushView>, Failure> {
    call("GET", "/api/push", None, None).await
}

pub async fn tweets() -> Result<TweetsView, Failure> {
    call("GET", "/api/tweets", None, None).await
}

pub async fn schedules() -> Result<Schedules, Failure> {
    call("GET", "/api/schedules", None, None).await
}

pub async fn schedule_put(
    outlet: String,
    on: String,
    off: String,
    csrf: String,
) -> Result<Schedule, Failure> {
    let body = serde_json::json!({ "on": on, "off": off });
    let path = format!("/api/schedules/{}", encode(&outlet));
    call("PUT", &path, Some(body), Some(csrf)).await
}

pub async fn schedule_delete(outlet: String, csrf: String) -> Result<(), Failure> {
    let path = format!("/api/schedules/{}", encode(&outlet));
    call("DELETE", &path, None, Some(csrf)).await
}

/// Outlet names are plain, but a name is never trusted to be a path segment.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(feature = "hydrate")]
async fn call<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    csrf: Option<String>,
) -> Result<T, Failure> {
    use gloo_net::http::{Method, RequestBuilder};
    let method = match method {
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        _ => Method::GET,
    };
    let mut request = RequestBuilder::new(path)
        .method(method)
        .header("Accept", "application/json");
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", &csrf);
    }
    let request = match body {
        Some(body) => request.json(&body),
        None => request.build(),
    }
    .map_err(|err| Failure {
        status: 0,
        message: format!("cannot make the request: {err}"),
    })?;
    let response = request.send().await.map_err(|err| Failure {
        status: 0,
        message: format!("cannot reach the server: {err}"),
    })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !response.ok() {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("the server answered {status}"));
        return Err(Failure { status, message });
    }
    let text = if text.is_empty() { "null" } else { &text };
    serde_json::from_str(text).map_err(|err| Failure {
        status,
        message: format!("unexpected answer from the server: {err}"),
    })
}

/// On the server the panel renders without data; the browser fetches it.
#[cfg(not(feature = "hydrate"))]
async fn call<T: DeserializeOwned>(
    _method: &str,
    _path: &str,
    _body: Option<serde_json::Value>,
    _csrf: Option<String>,
) -> Result<T, Failure> {
    Err(Failure {
        status: 0,
        message: "the panel is fetched in the browser".to_string(),
    })
}
