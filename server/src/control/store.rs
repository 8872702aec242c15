//! What the light controller keeps in SQLite: the audit log, the schedules,
//! the simulated PDU's outlet states, and what must outlive the process: each
//! relay guard's recent switches and the flashes not yet put back.

use std::collections::HashMap;

use sqlx::Row;

use crate::control::{AuditEntry, Schedule};
use crate::db::Db;

#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    audit_keep: u32,
}

impl Store {
    /// `audit_keep`: how many audit entries are kept (`audit_keep`).
    pub fn new(db: Db, audit_keep: u32) -> Self {
        Self { db, audit_keep }
    }

    /// # Errors
    /// The database cannot be written.
    pub async fn add_audit(&self, entry: &AuditEntry) -> Result<(), sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "INSERT INTO light_audit (at, source, outlet, action, result, ok) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&entry.at)
        .bind(&entry.source)
        .bind(&entry.outlet)
        .bind(&entry.action)
        .bind(&entry.result)
        .bind(entry.ok)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM light_audit WHERE id <= (SELECT MAX(id) FROM light_audit) - ?")
            .bind(i64::from(self.audit_keep))
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Newest first.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT at, source, outlet, action, result, ok FROM light_audit ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(AuditEntry {
                    at: row.try_get(0)?,
                    source: row.try_get(1)?,
                    outlet: row.try_get(2)?,
                    action: row.try_get(3)?,
                    result: row.try_get(4)?,
                    ok: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// # Errors
    /// The database cannot be read.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT outlet, on_time, off_time FROM light_schedules ORDER BY outlet")
                .fetch_all(self.db.pool())
                .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Schedule {
                    outlet: row.try_get(0)?,
                    on: row.try_get(1)?,
                    off: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// # Errors
    /// The database cannot be written.
    pub async fn put_schedule(&self, schedule: &Schedule) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO light_schedules (outlet, on_time, off_time) VALUES (?, ?, ?) \
             ON CONFLICT(outlet) DO UPDATE SET on_time = excluded.on_time, off_time = excluded.off_time",
        )
        .bind(&schedule.outlet)
        .bind(&schedule.on)
        .bind(&schedule.off)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Whether there was a schedule to delete.
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn delete_schedule(&self, outlet: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM light_schedules WHERE outlet = ?")
            .bind(outlet)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The stored states of a simulated PDU's outlets, by index.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn simulated(&self, pdu: &str) -> Result<HashMap<u32, bool>, sqlx::Error> {
        let rows = sqlx::query("SELECT outlet_index, is_on FROM simulated_outlets WHERE pdu = ?")
            .bind(pdu)
            .fetch_all(self.db.pool())
            .await?;
        rows.into_iter()
            .map(|row| Ok((row.try_get::<u32, _>(0)?, row.try_get::<bool, _>(1)?)))
            .collect()
    }

    /// # Errors
    /// The database cannot be written.
    pub async fn set_simulated(&self, pdu: &str, index: u32, on: bool) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO simulated_outlets (pdu, outlet_index, is_on) VALUES (?, ?, ?) \
             ON CONFLICT(pdu, outlet_index) DO UPDATE SET is_on = excluded.is_on",
        )
        .bind(pdu)
        .bind(index)
        .bind(on)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Notes a real switch of `outlet` at `at_ms` (Unix milliseconds), and
    /// forgets its switches from before `forget_before_ms`, so the table
    /// holds one relay guard window per outlet.
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn add_switch(
        &self,
        outlet: &str,
        at_ms: i64,
        forget_before_ms: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("INSERT INTO relay_switches (outlet, at_ms) VALUES (?, ?)")
            .bind(outlet)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM relay_switches WHERE outlet = ? AND at_ms < ?")
            .bind(outlet)
            .bind(forget_before_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// The switches of `outlet` since `since_ms`, oldest first, in Unix
    /// milliseconds.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn switches(&self, outlet: &str, since_ms: i64) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT at_ms FROM relay_switches WHERE outlet = ? AND at_ms >= ? ORDER BY at_ms",
        )
        .bind(outlet)
        .bind(since_ms)
        .fetch_all(self.db.pool())
        .await
    }

    /// Notes that `outlet` is flashing and must go back to `back_to`.
    ///
    /// # Errors
    /// The database cannot be written.
    pub async fn put_flash(
        &self,
        outlet: &str,
        back_to: bool,
        source: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO light_flashes (outlet, back_to, source) VALUES (?, ?, ?) \
             ON CONFLICT(outlet) DO UPDATE SET back_to = excluded.back_to, source = excluded.source",
        )
        .bind(outlet)
        .bind(back_to)
        .bind(source)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// # Errors
    /// The database cannot be written.
    pub async fn delete_flash(&self, outlet: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM light_flashes WHERE outlet = ?")
            .bind(outlet)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The flash of `outlet` that never ended: the state it goes back to,
    /// and who flashed it.
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn flash(&self, outlet: &str) -> Result<Option<(bool, String)>, sqlx::Error> {
        let row = sqlx::query("SELECT back_to, source FROM light_flashes WHERE outlet = ?")
            .bind(outlet)
            .fetch_optional(self.db.pool())
            .await?;
        row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_audit_keeps_the_newest_entries_it_is_told_to() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Db::open(dir.path()).await.unwrap(), 100);
        for i in 0..150 {
            let entry = AuditEntry {
                at: format!("2026-12-01T18:{:02}:{:02}Z", i / 60, i % 60),
                source: "schedule".into(),
                outlet: "tree".into(),
                action: format!("on #{i}"),
                result: "switched on (was off)".into(),
                ok: i % 2 == 0,
            };
            store.add_audit(&entry).await.unwrap();
        }
        let kept = store.audit(1000).await.unwrap();
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0].action, "on #149");
        assert_eq!(kept[99].action, "on #50");
        assert!(!kept[0].ok && kept[99].ok);
    }

    #[tokio::test]
    async fn switches_and_flashes_outlive_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Db::open(dir.path()).await.unwrap(), 100);
        for at in [1_000, 20_000, 70_000] {
            store.add_switch("tree", at, at - 60_000).await.unwrap();
        }
        store.add_switch("star", 70_000, 10_000).await.unwrap();
        store.put_flash("tree", true, "tweet:1").await.unwrap();
        drop(store);
        let store = Store::new(Db::open(dir.path()).await.unwrap(), 100);
        // 1,000 was forgotten when 70,000 came: it is a window older.
        assert_eq!(store.switches("tree", 0).await.unwrap(), [20_000, 70_000]);
        assert_eq!(store.switches("tree", 25_000).await.unwrap(), [70_000]);
        assert_eq!(
            store.flash("tree").await.unwrap(),
            Some((true, "tweet:1".to_string()))
        );
        store.delete_flash("tree").await.unwrap();
        assert_eq!(store.flash("tree").await.unwrap(), None);
    }
}
