//! The embedded database: one SQLite file in the data dir, shared by the
//! control path (audit, schedules, outlet states), admin accounts and sessions.
//!
//! SQLite runs in WAL mode with a busy timeout, so two Tinsel processes on one
//! machine can share the file (issue: two tweet pollers, one action).

use std::borrow::Cow;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
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

/// The schema's migrations, in order: (version, description, SQL), compiled
/// in, so the binary needs no files beside it. The descriptions and SQL are
/// what sqlx records for each file (`0001_settings.sql` is version 1,
/// "settings"), so a database made by an earlier build carries on. (Not
/// `sqlx::migrate!`: that macro makes the compiler build sqlx and SQLite's C a
/// second time.)
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "settings",
        include_str!("../migrations/0001_settings.sql"),
    ),
    (2, "lights", include_str!("../migrations/0002_lights.sql")),
    (
        3,
        "accounts",
        include_str!("../migrations/0003_accounts.sql"),
    ),
    (4, "tweets", include_str!("../migrations/0004_tweets.sql")),
    (
        5,
        "lights memory",
        include_str!("../migrations/0005_lights_memory.sql"),
    ),
    (
        6,
        "login failures",
        include_str!("../migrations/0006_login_failures.sql"),
    ),
    (
        7,
        "admin sessions",
        include_str!("../migrations/0007_admin_sessions.sql"),
    ),
];

#[derive(Debug)]
struct Migrations;

impl<'s> MigrationSource<'s> for Migrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let migrations = MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
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
        let migrator = Migrator::new(Migrations)
            .await
            .map_err(|source| DbError::Migrate {
                path: path.clone(),
                source,
            })?;
        migrator
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

    /// sqlx's own reading of the migration files (what `sqlx::migrate!` and
    /// earlier builds used) and the compiled-in list record the same
    /// migrations, so a database made by either opens with the other.
    #[tokio::test]
    async fn a_database_migrated_from_the_files_opens() {
        let dir = tempfile::tempdir().unwrap();
        let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let from_files = Migrator::new(files.as_path()).await.unwrap();
        assert_eq!(
            from_files.iter().count(),
            MIGRATIONS.len(),
            "every file is listed"
        );
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join(DB_FILE))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        from_files.run(&pool).await.unwrap();
        pool.close().await;
        let db = Db::open(dir.path()).await.unwrap();
        db.set_setting("since_id", "1").await.unwrap();
    }

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
