//! Which instance fires a tweet: the first to insert its ID. The insert is
//! one atomic statement (`INSERT ... ON CONFLICT DO NOTHING`, plain SQL that a
//! shared PostgreSQL database runs as well), so any number of pollers on one
//! database fire each tweet at most once. Also keeps `since_id`, the newest
//! tweet seen, so a restart asks only for newer ones. Claims older than the
//! retention are deleted, so the table stays small over any number of
//! seasons.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};

use crate::db::Db;

/// The `settings` key of the newest tweet ID processed.
pub const SINCE_ID_KEY: &str = "tweets.since_id";

#[derive(Clone)]
pub struct Claims {
    db: Db,
    /// Written with each claim, to tell instances apart when reading the table.
    instance: String,
}

impl Claims {
    pub fn new(db: Db, instance: String) -> Self {
        Self { db, instance }
    }

    /// True when this instance is the first to claim the tweet, and so fires it.
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn claim(&self, id: &str, author: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO tweets (id, author, claimed_at, claimed_by) VALUES (?, ?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(author)
        .bind(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true))
        .bind(&self.instance)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the claims made more than `older_than` ago; returns how many.
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn prune(&self, older_than: Duration) -> Result<u64, sqlx::Error> {
        let cutoff =
            Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        // Every claimed_at is written in this one format (UTC, milliseconds,
        // "Z"), so comparing the text compares the times.
        let done = sqlx::query("DELETE FROM tweets WHERE claimed_at < ?")
            .bind(cutoff.to_rfc3339_opts(SecondsFormat::Millis, true))
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// # Errors
    /// The database cannot be read.
    pub async fn since_id(&self) -> Result<Option<String>, sqlx::Error> {
        self.db.setting(SINCE_ID_KEY).await
    }

    /// Moves `since_id` forward to `id`, never back: another instance may
    /// have stored a newer one meanwhile. Tweet IDs are 64-bit numbers that
    /// grow with time, so they compare as integers.
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn advance_since_id(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value \
             WHERE CAST(excluded.value AS INTEGER) > CAST(settings.value AS INTEGER)",
        )
        .bind(SINCE_ID_KEY)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tweet_is_claimed_once_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let a = Claims::new(Db::open(dir.path()).await.unwrap(), "a".into());
        let b = Claims::new(Db::open(dir.path()).await.unwrap(), "b".into());
        assert!(a.claim("100", "alice").await.unwrap());
        assert!(!b.claim("100", "alice").await.unwrap());
        assert!(!a.claim("100", "alice").await.unwrap());
        assert!(b.claim("101", "bob").await.unwrap());
    }

    #[tokio::test]
    async fn claims_older_than_the_retention_are_pruned_and_newer_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let c = Claims::new(db.clone(), "a".into());
        let old =
            (Utc::now() - chrono::Duration::days(40)).to_rfc3339_opts(SecondsFormat::Millis, true);
        sqlx::query(
            "INSERT INTO tweets (id, author, claimed_at, claimed_by) VALUES ('1', 'x', ?, 'a')",
        )
        .bind(&old)
        .execute(db.pool())
        .await
        .unwrap();
        assert!(c.claim("2", "y").await.unwrap());
        let pruned = c.prune(Duration::from_secs(30 * 86_400)).await.unwrap();
        assert_eq!(pruned, 1);
        let left: Vec<String> = sqlx::query_scalar("SELECT id FROM tweets")
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(left, ["2"]);
        // The kept claim still stops a second firing.
        assert!(!c.claim("2", "y").await.unwrap());
    }

    #[tokio::test]
    async fn since_id_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let c = Claims::new(Db::open(dir.path()).await.unwrap(), "a".into());
        assert_eq!(c.since_id().await.unwrap(), None);
        c.advance_since_id("900").await.unwrap();
        c.advance_since_id("1000").await.unwrap();
        c.advance_since_id("950").await.unwrap();
        assert_eq!(c.since_id().await.unwrap().as_deref(), Some("1000"));
    }
}
