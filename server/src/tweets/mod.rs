//! The tweet poller: tweets that match the configured query flash the tree.
//!
//! ```text
//!   X API v2 ──HTTPS──▶ api::Client ──▶ poller ──claim (SQLite)──▶ flood ──▶ Lights::command
//!   recent search        pages, rate      │       first instance       at most one
//!                        limit headers    │       fires a tweet        command per spacing
//!                                         └──▶ status (GET /api/tweets)
//! ```
//!
//! - [`settings`]: the `[twitter]` config.
//! - [`api`]: the search request and its answers (parsing is pure).
//! - [`claim`]: which instance fires a tweet; `since_id` across restarts.
//! - [`flood`]: coalescing, so the relays never see the tweet rate (pure).
//! - [`backoff`]: waits after failures (pure).
//! - [`poller`]: the task, run under a supervisor that restarts it should
//!   it ever panic: whatever the X API sends, the poller keeps polling.

pub mod api;
pub mod backoff;
pub mod claim;
pub mod flood;
pub mod poller;
pub mod settings;

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use settings::{RawTwitter, TwitterConfig, TwitterConfigError};

use crate::control::Lights;
use crate::control::guard::GuardSettings;
use crate::db::Db;

/// What the admin panel shows when no token is configured.
pub const HOW_TO_ENABLE: &str = "set bearer_token (an X API v2 app bearer token) and query in the [twitter] table of the config file, or the token in TINSEL_TWITTER_BEARER_TOKEN, then restart";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PollerState {
    /// No bearer token configured.
    Off,
    Ok,
    /// Waiting for the X API's rate-limit window to reset.
    RateLimited,
    /// The last poll failed; `detail` says why and what to do.
    Failing,
}

/// `GET /api/tweets`: how the poller is doing.
#[derive(Debug, Clone, Serialize)]
pub struct TweetsStatus {
    pub enabled: bool,
    pub state: PollerState,
    pub detail: String,
    /// RFC 3339 UTC of the last answer from the X API (good or bad).
    pub last_poll_at: Option<String>,
    /// Tweets this instance turned into commands.
    pub fired: u64,
    /// Tweets this instance claimed but folded into an earlier command.
    pub coalesced: u64,
    /// Tweets already claimed: by another instance, or by this one when the
    /// newest tweet ID could not be stored.
    pub already_claimed: u64,
    /// Answers from the X API since start, good or bad.
    pub polls: u64,
    /// Of those, the ones that failed.
    pub failed_polls: u64,
    pub query: Option<String>,
    pub how_to_enable: Option<String>,
}

/// The handle on the poller; cheap to clone.
#[derive(Clone)]
pub struct Tweets {
    status: Arc<Mutex<TweetsStatus>>,
}

impl Tweets {
    /// Starts the poller on `tracker` when `config` is given; it stops when
    /// `token` is cancelled. `guard` is the relay guard tweet commands stay within.
    pub fn start(
        config: Option<&TwitterConfig>,
        guard: GuardSettings,
        db: Db,
        lights: Lights,
        tracker: &TaskTracker,
        token: CancellationToken,
    ) -> Self {
        let status = Arc::new(Mutex::new(TweetsStatus {
            enabled: config.is_some(),
            state: if config.is_some() {
                PollerState::Ok
            } else {
                PollerState::Off
            },
            detail: if config.is_some() {
                "starting".into()
            } else {
                "no bearer token configured".into()
            },
            last_poll_at: None,
            fired: 0,
            coalesced: 0,
            already_claimed: 0,
            polls: 0,
            failed_polls: 0,
            query: config.map(|c| c.query.clone()),
            how_to_enable: config.is_none().then(|| HOW_TO_ENABLE.to_string()),
        }));
        let handle = Self { status };
        let Some(config) = config else {
            info!("tweet poller off: {HOW_TO_ENABLE}");
            return handle;
        };
        match poller::Poller::new(
            config,
            guard,
            db.clone(),
            lights.clone(),
            Arc::clone(&handle.status),
        ) {
            Ok(poller) => {
                info!(query = %config.query, api_base = %config.api_base, "tweet poller on");
                tracker.spawn(handle.clone().supervise(
                    poller,
                    config.clone(),
                    guard,
                    db,
                    lights,
                    token,
                ));
            }
            Err(err) => {
                error!(cause = %err, "tweet poller cannot start");
                handle.set(|s| {
                    s.state = PollerState::Failing;
                    s.detail = format!("cannot start the HTTP client: {err}");
                });
            }
        }
        handle
    }

    pub fn status(&self) -> TweetsStatus {
        // Poisoned only if a status update panicked; the value is still whole.
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `poller` until `token` is cancelled. Should it panic (a bug, or
    /// a library's on input nobody foresaw), the panic is logged, shown in
    /// the status, and a fresh poller starts after a backoff; `since_id` and
    /// the claims are in the database, so no tweet fires twice.
    async fn supervise(
        self,
        mut poller: poller::Poller,
        config: TwitterConfig,
        guard: GuardSettings,
        db: Db,
        lights: Lights,
        token: CancellationToken,
    ) {
        let mut restarts = backoff::Backoff::new(config.poll_interval, config.max_wait);
        loop {
            let run = tokio::spawn(poller.run(token.clone()));
            let cause = match run.await {
                Ok(()) => return,
                Err(err) if err.is_panic() => panic_text(err.into_panic()),
                // Cancelled with the runtime: shutting down.
                Err(_) => return,
            };
            let wait = restarts.failed();
            error!(%cause, wait_s = wait.as_secs_f64(), "the tweet poller panicked; restarting");
            self.set(|s| {
                s.state = PollerState::Failing;
                s.detail = format!(
                    "the poller failed unexpectedly ({cause}); restarting in {} s",
                    wait.as_secs()
                );
            });
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            poller = match poller::Poller::new(
                &config,
                guard,
                db.clone(),
                lights.clone(),
                Arc::clone(&self.status),
            ) {
                Ok(poller) => poller,
                Err(err) => {
                    warn!(cause = %err, "tweet poller cannot restart");
                    self.set(|s| s.detail = format!("cannot restart the HTTP client: {err}"));
                    return;
                }
            };
        }
    }

    fn set(&self, change: impl FnOnce(&mut TweetsStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A panic's message, when it has one.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
