//! The `login_failures` table: failed admin logins kept over a restart, so
//! the login throttle ([`super::throttle`]) still holds a guesser back after
//! the server starts again.
//!
//! Times are wall-clock milliseconds since the Unix epoch, because an
//! `Instant` means nothing to the next process; [`restore`] turns them back
//! into `Instant`s of the same age.
//!
//! The table stays small whatever a stranger sends: every write, and the
//! read at startup, deletes the rows outside the window, and at most
//! `max_entries * per_address` rows are kept, the oldest deleted first (the
//! throttle's memory holds no more failures than that either). A flood of
//! made-up names from many addresses thus replaces rows instead of adding
//! them.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use sqlx::{Row, SqliteConnection};

use super::throttle::{Limits, Throttle};
use crate::db::{Db, instant_at, unix_ms};

#[derive(Clone, Debug)]
pub struct LoginFailures {
    db: Db,
    window_ms: i64,
    /// Rows kept at most.
    keep: i64,
}

/// One failure read back from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFailure {
    /// `None` once a good login cleared the account's count; the failure
    /// still counts for the address.
    pub account: Option<String>,
    pub address: IpAddr,
    pub at_ms: i64,
}

impl LoginFailures {
    pub fn new(db: Db, limits: &Limits) -> Self {
        let keep = limits.max_entries.saturating_mul(limits.per_address);
        Self {
            db,
            window_ms: duration_ms(limits.window),
            keep: i64::try_from(keep).unwrap_or(i64::MAX),
        }
    }

    /// Keeps a failed login of `account` from `address` (its address key),
    /// begun at `at`, and deletes what is out of the window or over the cap.
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn record(
        &self,
        account: &str,
        address: IpAddr,
        at: SystemTime,
    ) -> Result<(), sqlx::Error> {
        let at_ms = unix_ms(at);
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("INSERT INTO login_failures (account, address, at_ms) VALUES (?, ?, ?)")
            .bind(account)
            .bind(address.to_string())
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
        self.prune(&mut tx, at_ms).await?;
        tx.commit().await
    }

    /// A good login: the account's failures no longer count for it, but
    /// still for the addresses they came from (one right password must not
    /// buy more guesses at other names).
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn clear_account(&self, account: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE login_failures SET account = NULL WHERE account = ?")
            .bind(account)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The failures still inside the window at `now`, oldest first, after
    /// deleting the rest. A row whose address does not parse (the file was
    /// edited by hand) is left out.
    ///
    /// # Errors
    /// The database cannot be read or written.
    pub async fn recent(&self, now: SystemTime) -> Result<Vec<StoredFailure>, sqlx::Error> {
        let now_ms = unix_ms(now);
        let mut conn = self.db.pool().acquire().await?;
        self.prune(&mut conn, now_ms).await?;
        let rows =
            sqlx::query("SELECT account, address, at_ms FROM login_failures ORDER BY at_ms, id")
                .fetch_all(&mut *conn)
                .await?;
        let mut failures = Vec::with_capacity(rows.len());
        for row in rows {
            let address: String = row.try_get(1)?;
            if let Ok(address) = address.parse() {
                failures.push(StoredFailure {
                    account: row.try_get(0)?,
                    address,
                    at_ms: row.try_get(2)?,
                });
            }
        }
        Ok(failures)
    }

    /// Deletes the rows outside the window around `now_ms`, then the oldest
    /// beyond [`LoginFailures::keep`]. A row from more than a window ahead
    /// was written while the clock was set wrong; kept, it would count anew
    /// after every restart until the clock caught up with it.
    async fn prune(&self, conn: &mut SqliteConnection, now_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_failures WHERE at_ms <= ? OR at_ms > ?")
            .bind(now_ms.saturating_sub(self.window_ms))
            .bind(now_ms.saturating_add(self.window_ms))
            .execute(&mut *conn)
            .await?;
        // IDs grow with every insert, so the lowest are the oldest rows; after
        // deletions this keeps fewer than `keep`, never more.
        sqlx::query(
            "DELETE FROM login_failures WHERE id <= (SELECT MAX(id) FROM login_failures) - ?",
        )
        .bind(self.keep)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Puts `failures` (oldest first, as [`LoginFailures::recent`] gives them)
/// into `throttle`, each as old, before `now`, as it is on the wall clock at
/// `now_wall`.
pub fn restore(
    throttle: &mut Throttle,
    failures: &[StoredFailure],
    now: Instant,
    now_wall: SystemTime,
) {
    let now_ms = unix_ms(now_wall);
    let mut previous: Option<Instant> = None;
    for failure in failures {
        let at = instant_at(failure.at_ms, now_ms, now);
        // The throttle keeps each key's failures oldest first; the clamping
        // in `instant_at` must not put one before an older one.
        let at = previous.map_or(at, |previous| at.max(previous));
        previous = Some(at);
        throttle.restore(at, failure.account.as_deref(), failure.address);
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        window: Duration::from_secs(900),
        per_account: 5,
        per_address: 20,
        max_entries: 100,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    async fn table() -> (tempfile::TempDir, LoginFailures) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        (dir, LoginFailures::new(db, &LIMITS))
    }

    async fn rows(failures: &LoginFailures) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM login_failures")
            .fetch_one(failures.db.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn failures_inside_the_window_are_read_back_oldest_first() {
        let (_dir, failures) = table().await;
        let now = SystemTime::now();
        failures
            .record("bob", ip(2), now - Duration::from_secs(60))
            .await
            .unwrap();
        failures
            .record("alice", ip(1), now - Duration::from_secs(600))
            .await
            .unwrap();
        let recent = failures.recent(now).await.unwrap();
        let names: Vec<_> = recent.iter().map(|f| f.account.as_deref()).collect();
        assert_eq!(names, [Some("alice"), Some("bob")]);
        assert_eq!(recent[0].address, ip(1));
        assert_eq!(
            recent[1].at_ms,
            unix_ms(now - Duration::from_secs(60)),
            "to the millisecond"
        );
    }

    #[tokio::test]
    async fn rows_out_of_the_window_are_deleted() {
        let (_dir, failures) = table().await;
        let now = SystemTime::now();
        for (name, ago) in [("old", 901), ("edge", 900), ("fresh", 899)] {
            failures
                .record(name, ip(1), now - Duration::from_secs(ago))
                .await
                .unwrap();
        }
        // Written while the clock was an hour ahead (by hand: writing it
        // through `record` would prune as of then).
        sqlx::query("INSERT INTO login_failures (account, address, at_ms) VALUES ('ahead', ?, ?)")
            .bind(ip(1).to_string())
            .bind(unix_ms(now + Duration::from_secs(3600)))
            .execute(failures.db.pool())
            .await
            .unwrap();
        let recent = failures.recent(now).await.unwrap();
        let names: Vec<_> = recent.iter().map(|f| f.account.as_deref()).collect();
        assert_eq!(names, [Some("fresh")]);
        assert_eq!(rows(&failures).await, 1, "deleted, not only skipped");
    }

    #[tokio::test]
    async fn a_flood_keeps_only_the_newest_rows_up_to_the_cap() {
        let (_dir, failures) = table().await;
        let keep = LIMITS.max_entries * LIMITS.per_address;
        let start = SystemTime::now() - Duration::from_secs(60);
        for i in 0..keep + 500 {
            let at = start + Duration::from_millis(i as u64);
            let address = IpAddr::from((i as u32).to_be_bytes());
            failures
                .record(&format!("made-up-{i}"), address, at)
                .await
                .unwrap();
        }
        assert_eq!(rows(&failures).await, keep as i64);
        let recent = failures.recent(SystemTime::now()).await.unwrap();
        assert_eq!(
            recent.first().unwrap().account.as_deref(),
            Some("made-up-500")
        );
        assert_eq!(
            recent.last().unwrap().account.as_deref(),
            Some(format!("made-up-{}", keep + 499).as_str())
        );
    }

    #[tokio::test]
    async fn a_good_login_clears_the_account_but_not_the_address() {
        let (_dir, failures) = table().await;
        let now = SystemTime::now();
        for _ in 0..3 {
            failures.record("alice", ip(1), now).await.unwrap();
        }
        failures.record("bob", ip(1), now).await.unwrap();
        failures.clear_account("alice").await.unwrap();
        let recent = failures.recent(now).await.unwrap();
        let names: Vec<_> = recent.iter().map(|f| f.account.as_deref()).collect();
        assert_eq!(names, [None, None, None, Some("bob")]);
        assert!(recent.iter().all(|f| f.address == ip(1)));
    }

    #[tokio::test]
    async fn failures_survive_reopening_and_throttle_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let wall = SystemTime::now();
        {
            let failures = LoginFailures::new(Db::open(dir.path()).await.unwrap(), &LIMITS);
            for i in 0..5 {
                let at = wall - Duration::from_secs(300 - i * 10);
                failures.record("alice", ip(1), at).await.unwrap();
            }
        }
        let failures = LoginFailures::new(Db::open(dir.path()).await.unwrap(), &LIMITS);
        let now = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        restore(
            &mut throttle,
            &failures.recent(wall).await.unwrap(),
            now,
            wall,
        );
        // The first failure was 300 s ago: 600 s of the window are left.
        assert_eq!(
            throttle.check(now, "alice", ip(2)),
            Err(Duration::from_secs(600))
        );
        assert_eq!(throttle.check(now, "bob", ip(2)), Ok(()));
    }

    #[test]
    fn wall_clock_ages_become_instants_of_the_same_age() {
        let now = Instant::now();
        let now_ms = 1_800_000_000_000;
        assert_eq!(
            instant_at(now_ms - 90_000, now_ms, now),
            now - Duration::from_secs(90)
        );
        assert_eq!(
            instant_at(now_ms + 5_000, now_ms, now),
            now,
            "from the future"
        );
    }
}
