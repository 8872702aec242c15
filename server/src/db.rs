//! The embedded database: one SQLite file in the data dir, shared by the
//! control path (audit, schedules, outlet states), admin accounts and sessions.
//!
//! SQLite runs in WAL mode with a busy timeout, so two Tinsel processes on one
//! machine can share the file (issue: two tweet pollers, one action).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use thiserror::Error;

/// The database file's name inside the data dir.
pub const DB_FILE: &str = "tinsel.db";

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot open the database {path}: {source}; check that the data dir is writable")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot update the database {path} to this version: {source}")]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
}

/// A cheap-to-clone handle on the database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) `DATA_DIR/tinsel.db` and brings its tables up
    /// to date.
    ///
    /// # Errors
    /// The file cannot be created or opened, or a migration fails.
    pub async fn open(data_dir: &Path) -> Result<Self, DbError> {
        let path = data_dir.join(DB_FILE);
        let open = |source| DbError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| open(sqlx::Error::Io(e)))?;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open)?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL loses nothing on a process crash, only on power loss.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| DbError::Migrate {
                path: path.clone(),
                source,
            })?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A stored setting, if any.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
    }

    /// Stores a setting, replacing any earlier value.
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// A wall-clock time as the database keeps it: Unix milliseconds. A clock
/// before 1970 is taken as 1970: rows then look old, and go.
pub fn unix_ms(at: std::time::SystemTime) -> i64 {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The `Instant` of a stamp `at_ms`, `now_ms` being `now`: `now` less its age
/// on the wall clock. One from the future (the clock was set back since)
/// counts as now, and so does one older than the platform's `Instant` can
/// be: either way it counts for longer, never for less.
pub fn instant_at(at_ms: i64, now_ms: i64, now: std::time::Instant) -> std::time::Instant {
    let age_ms = u64::try_from(now_ms.saturating_sub(at_ms)).unwrap_or(0);
    now.checked_sub(Duration::from_millis(age_ms))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        assert_eq!(db.setting("since_id").await.unwrap(), None);
        db.set_setting("since_id", "1").await.unwrap();
        db.set_setting("since_id", "2").await.unwrap();
        drop(db);
        let db = Db::open(dir.path()).await.unwrap();
        assert_eq!(db.setting("since_id").await.unwrap().as_deref(), Some("2"));
    }
}
