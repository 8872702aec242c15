//! Where admin sessions are kept: the `admin_sessions` table, through the
//! server's own SQLite pool.
//!
//! A store of our own rather than `tower-sessions-sqlx-store`: that crate takes
//! sqlx with its default features, whose query macros compile sqlx and all of
//! SQLite's C a second time, for the compiler, on every first build. A store
//! is four short queries.

use async_trait::async_trait;
use sqlx::SqlitePool;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

/// Sessions in the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteSessions {
    pool: SqlitePool,
}

impl SqliteSessions {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

/// Adds a session unless its id is taken.
const INSERT_NEW: &str =
    "INSERT OR IGNORE INTO admin_sessions (id, record, expires_at) VALUES (?, ?, ?)";
/// Adds a session or replaces the one with its id.
const UPSERT: &str = "INSERT INTO admin_sessions (id, record, expires_at) VALUES (?, ?, ?) \
     ON CONFLICT (id) DO UPDATE SET record = excluded.record, expires_at = excluded.expires_at";

impl SqliteSessions {
    /// Runs `sql` with the record's id, JSON and expiry; true when a row was
    /// written.
    async fn write(&self, sql: &str, record: &Record) -> session_store::Result<bool> {
        let written = sqlx::query(sql)
            .bind(record.id.to_string())
            .bind(encode(record)?)
            .bind(record.expiry_date.unix_timestamp())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(written.rows_affected() == 1)
    }
}

fn backend(err: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

fn encode(record: &Record) -> session_store::Result<String> {
    serde_json::to_string(record).map_err(|err| session_store::Error::Encode(err.to_string()))
}

#[async_trait]
impl SessionStore for SqliteSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A new id that happens to be taken gets another one.
        while !self.write(INSERT_NEW, record).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(UPSERT, record).await.map(drop)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT record FROM admin_sessions WHERE id = ? AND expires_at > ?")
                .bind(id.to_string())
                .bind(OffsetDateTime::now_utc().unix_timestamp())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        row.map(|(json,)| {
            serde_json::from_str(&json).map_err(|err| session_store::Error::Decode(err.to_string()))
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SqliteSessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= ?")
            .bind(OffsetDateTime::now_utc().unix_timestamp())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    #[tokio::test]
    async fn a_session_is_saved_loaded_moved_on_and_ends() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let store = SqliteSessions::new(db.pool().clone());
        let later = OffsetDateTime::now_utc() + time::Duration::minutes(30);
        let mut record = Record {
            id: Id::default(),
            data: [(
                "admin".to_string(),
                serde_json::json!({"username": "alice"}),
            )]
            .into_iter()
            .collect(),
            expiry_date: later,
        };
        store.create(&mut record).await.unwrap();
        let loaded = store.load(&record.id).await.unwrap().unwrap();
        assert_eq!(loaded.data, record.data);
        assert_eq!(loaded.expiry_date.unix_timestamp(), later.unix_timestamp());

        // Expired: not loaded, and swept.
        record.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        store.save(&record).await.unwrap();
        assert!(store.load(&record.id).await.unwrap().is_none());
        store.delete_expired().await.unwrap();
        let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM admin_sessions")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(rows, 0);
    }
}
