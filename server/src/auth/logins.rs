//! Failed logins as every login sees them: the [`Throttle`] in memory, shared
//! by all requests, and the [`LoginFailures`] table that keeps its failures
//! over a restart.
//!
//! The throttle sits behind a `std::sync::Mutex`, held only for its pure
//! calls; the table is written after the lock is let go, so no await ever
//! happens with it held.
//!
//! A failure is written to the table once it is known (the password was
//! checked and was wrong), before the 401 goes out. The throttle counts an
//! attempt when it begins, so that guesses sent at once cannot all pass the
//! check; the table need not: a guess the server died before answering told
//! the guesser nothing. So an attempt the server was too busy to check, or a
//! right password, costs no write and no delete.
//!
//! A database error is logged, at most once a second, and the login goes on
//! with the in-memory count, which holds until the next restart: a login
//! neither fails because of it nor passes a limit it should not.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::login_failures::{self, LoginFailures};
use super::throttle::{Limits, Throttle};
use crate::db::Db;
use crate::limits::warn_every;

#[derive(Clone, Debug)]
pub struct Logins {
    throttle: Arc<Mutex<Throttle>>,
    failures: LoginFailures,
}

/// When a login began, by both clocks: the throttle counts it at the
/// `Instant`, the table keeps the wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    at: Instant,
    wall: SystemTime,
}

impl Logins {
    /// An empty throttle; [`Logins::restore`] fills it from the table.
    pub fn new(db: Db, limits: Limits) -> Self {
        Self {
            throttle: Arc::new(Mutex::new(Throttle::new(limits))),
            failures: LoginFailures::new(db, &limits),
        }
    }

    /// Counts again the failures from before the restart that are still
    /// inside the window. Call it once at startup, before logins are served.
    pub async fn restore(&self) {
        let wall = SystemTime::now();
        let now = Instant::now();
        match self.failures.recent(wall).await {
            Ok(failures) => {
                login_failures::restore(&mut self.lock(), &failures, now, wall);
                if !failures.is_empty() {
                    info!(
                        failures = failures.len(),
                        "failed logins from before the restart still count"
                    );
                }
            }
            Err(err) => warn!(
                cause = %err,
                "cannot read the failed logins kept in the database, so the login throttle \
                 starts empty; check that the database in the data dir is readable and writable"
            ),
        }
    }

    /// Starts a login of `account` from `address` (its address key):
    /// `Err(wait)` when it must wait that long. See [`Throttle::begin`].
    pub fn begin(&self, account: &str, address: IpAddr) -> Result<Attempt, Duration> {
        let attempt = Attempt {
            at: Instant::now(),
            wall: SystemTime::now(),
        };
        self.lock().begin(attempt.at, account, address)?;
        Ok(attempt)
    }

    /// The password was wrong. The throttle counted it when it began; this
    /// keeps it over a restart.
    pub async fn failed(&self, attempt: Attempt, account: &str, address: IpAddr) {
        if let Err(err) = self.failures.record(account, address, attempt.wall).await {
            warn_every(
                "login_failures",
                format_args!(
                    "cannot keep a failed login in the database ({err}); it counts until \
                     the server restarts; check that the database in the data dir is writable"
                ),
            );
        }
    }

    /// The password was right: see [`Throttle::handle_success`].
    pub async fn succeeded(&self, attempt: Attempt, account: &str, address: IpAddr) {
        self.lock().handle_success(attempt.at, account, address);
        if let Err(err) = self.failures.clear_account(account).await {
            // The account's failures would count again after a restart:
            // stricter than it should be, not laxer.
            warn_every(
                "login_failures",
                format_args!(
                    "cannot clear {account:?}'s failed logins in the database ({err}); after \
                     a restart they count again; check that the database in the data dir is writable"
                ),
            );
        }
    }

    /// The password was never checked: see [`Throttle::handle_abandoned`].
    pub fn abandoned(&self, attempt: Attempt, account: &str, address: IpAddr) {
        self.lock().handle_abandoned(attempt.at, account, address);
    }

    fn lock(&self) -> MutexGuard<'_, Throttle> {
        // The lock is held for a few map operations that cannot panic midway.
        self.throttle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_database_error_leaves_the_count_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let logins = Logins::new(db.clone(), Limits::default());
        db.pool().close().await;
        let address = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..5 {
            let attempt = logins.begin("alice", address).unwrap();
            logins.failed(attempt, "alice", address).await;
        }
        assert!(logins.begin("alice", address).is_err(), "still held back");
        let attempt = logins.begin("bob", address).unwrap();
        logins.succeeded(attempt, "bob", address).await;
        // Nothing to read back: it starts empty, and says so.
        Logins::new(db, Limits::default()).restore().await;
    }
}
