//! What the light controller keeps in SQLite: the audit log, the schedules,
//! and the simulated PDU's outlet states.

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
            "INSERT INTO light_audit (at, source, outlet, action, result) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&entry.at)
        .bind(&entry.source)
        .bind(&entry.outlet)
        .bind(&entry.action)
        .bind(&entry.result)
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
            "SELECT at, source, outlet, action, result FROM light_audit ORDER BY id DESC LIMIT ?",
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
                result: "ok".into(),
            };
            store.add_audit(&entry).await.unwrap();
        }
        let kept = store.audit(1000).await.unwrap();
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0].action, "on #149");
        assert_eq!(kept[99].action, "on #50");
    }
}
