//! The `accounts` table: admin names and argon2 password hashes.
//!
//! Hashing is slow on purpose (argon2id, the crate's defaults: 19 MiB, two
//! passes), so it runs on the blocking pool.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use thiserror::Error;

use crate::db::Db;

/// Shorter passwords are refused when an account is made or reset.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("account name {0:?} is not allowed: use 1 to 64 letters, digits, '.', '-', '_' or '@'")]
    Name(String),
    #[error("the password is shorter than {MIN_PASSWORD_CHARS} characters; choose a longer one")]
    ShortPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("cannot read or write the accounts table: {0}")]
    Database(#[from] sqlx::Error),
}

/// Whether [`set_password`] made a new account or reset an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Created,
    Reset,
}

/// Creates the account, or gives an existing one a new password.
///
/// # Errors
/// A bad name, a short password, or the database failing.
pub async fn set_password(db: &Db, username: &str, password: &str) -> Result<Saved, AccountError> {
    check_name(username)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::ShortPassword);
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|err| AccountError::Hash(err.to_string()))??;
    let existed: Option<i64> = sqlx::query_scalar("SELECT 1 FROM accounts WHERE username = ?")
        .bind(username)
        .fetch_optional(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO accounts (username, password_hash, created_at, updated_at) \
         VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) \
         ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash, \
         updated_at = excluded.updated_at",
    )
    .bind(username)
    .bind(&hash)
    .execute(db.pool())
    .await?;
    Ok(if existed.is_some() {
        Saved::Reset
    } else {
        Saved::Created
    })
}

/// Whether `password` is the account's. An unknown name costs as much time as a
/// known one, so response times do not tell which names exist.
///
/// # Errors
/// The database failing.
pub async fn verify(db: &Db, username: &str, password: &str) -> Result<bool, AccountError> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE username = ?")
            .bind(username)
            .fetch_optional(db.pool())
            .await?;
    let known = stored.is_some();
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || {
        let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .map_err(|err| AccountError::Hash(err.to_string()))?;
    Ok(known && matches)
}

fn hash(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|err| AccountError::Hash(err.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| AccountError::Hash(err.to_string()))
}

/// A hash of a random password nobody knows, made once, for unknown names.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        // Hashing a fixed-size input with a fresh salt cannot fail.
        hash(&format!("{random:?}")).expect("argon2 hashes a short password")
    })
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Name(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accounts_are_created_reset_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        assert_eq!(
            set_password(&db, "alice", "correct horse").await.unwrap(),
            Saved::Created
        );
        assert!(verify(&db, "alice", "correct horse").await.unwrap());
        assert!(!verify(&db, "alice", "wrong horse!").await.unwrap());
        assert!(!verify(&db, "bob", "correct horse").await.unwrap());
        assert_eq!(
            set_password(&db, "alice", "battery staple").await.unwrap(),
            Saved::Reset
        );
        assert!(!verify(&db, "alice", "correct horse").await.unwrap());
        assert!(verify(&db, "alice", "battery staple").await.unwrap());
    }

    #[tokio::test]
    async fn short_passwords_and_odd_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        assert!(matches!(
            set_password(&db, "alice", "1234567").await,
            Err(AccountError::ShortPassword)
        ));
        assert!(matches!(
            set_password(&db, "al ice", "12345678").await,
            Err(AccountError::Name(_))
        ));
    }
}
