//! The `accounts` table: admin names and argon2 password hashes.
//!
//! Hashing is slow on purpose (argon2id, the crate's defaults: 19 MiB, two
//! passes), so it runs on the blocking pool, and a login's check goes through
//! [`Hashing`], which caps how many run and wait at once.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use thiserror::Error;

use super::hashing::Hashing;
use crate::db::Db;

/// Shorter passwords are refused when an account is made or reset.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer passwords are refused, when set and at login: far beyond any
/// passphrase, and it keeps a login's input small.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("account name {0:?} is not allowed: use 1 to 64 letters, digits, '.', '-', '_' or '@'")]
    Name(String),
    #[error("the password is shorter than {MIN_PASSWORD_CHARS} characters; choose a longer one")]
    ShortPassword,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes; choose a shorter one")]
    LongPassword,
    #[error("the login is busy checking other passwords; try again in a second")]
    Busy,
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
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::LongPassword);
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

/// Whether any admin account exists: until one does, the server says at start
/// how to make the first.
///
/// # Errors
/// The database failing.
pub async fn any_exists(db: &Db) -> Result<bool, AccountError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM accounts LIMIT 1")
        .fetch_optional(db.pool())
        .await?;
    Ok(found.is_some())
}

/// Whether `password` is the account's. An unknown name costs as much time as a
/// known one (a hash nobody knows the password of is checked), so response
/// times do not tell which names exist. A name outside the account name rule
/// or an over-long password is answered `false` at once: no account can have
/// them, so that says nothing either.
///
/// # Errors
/// The database failing, or [`AccountError::Busy`] when too many checks are
/// running and waiting already.
pub async fn verify(
    db: &Db,
    hashing: &Hashing,
    username: &str,
    password: &str,
) -> Result<bool, AccountError> {
    if !is_valid_account_name(username) || password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    let turn = hashing.acquire().await?;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE username = ?")
            .bind(username)
            .fetch_optional(db.pool())
            .await?;
    let known = stored.is_some();
    let password = password.to_owned();
    let matches = turn
        .run(move || {
            let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await?;
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

/// The account name rule: 1 to 64 ASCII letters, digits, '.', '-', '_' or
/// '@'. Checked before a name is looked up or counted by the throttle, so a
/// stranger's name costs at most 64 bytes anywhere.
pub fn is_valid_account_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
}

fn check_name(name: &str) -> Result<(), AccountError> {
    if is_valid_account_name(name) {
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
        let gate = Hashing::new(&crate::auth::limits::AuthLimits::default());
        assert_eq!(
            set_password(&db, "alice", "correct horse").await.unwrap(),
            Saved::Created
        );
        assert!(verify(&db, &gate, "alice", "correct horse").await.unwrap());
        assert!(!verify(&db, &gate, "alice", "wrong horse!").await.unwrap());
        assert!(!verify(&db, &gate, "bob", "correct horse").await.unwrap());
        assert_eq!(
            set_password(&db, "alice", "battery staple").await.unwrap(),
            Saved::Reset
        );
        assert!(!verify(&db, &gate, "alice", "correct horse").await.unwrap());
        assert!(verify(&db, &gate, "alice", "battery staple").await.unwrap());
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
        assert!(matches!(
            set_password(&db, "alice", &"x".repeat(MAX_PASSWORD_BYTES + 1)).await,
            Err(AccountError::LongPassword)
        ));
    }

    #[test]
    fn the_account_name_rule() {
        for good in ["alice", "a", "ops@tree.example", "x_y-z.1", &"a".repeat(64)] {
            assert!(is_valid_account_name(good), "{good:?}");
        }
        for bad in [
            "",
            &"a".repeat(65),
            "al ice",
            "alice\0",
            "ålice",
            "alice\n",
            "../alice",
            "alice;drop",
        ] {
            assert!(!is_valid_account_name(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn odd_names_and_long_passwords_are_not_looked_up_or_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        // No turn at all: anything that needed a hash would be refused.
        let gate = Hashing::new(&crate::auth::limits::AuthLimits {
            login_max_concurrent_hashes: 1,
            login_max_waiting_hashes: 0,
            ..Default::default()
        });
        let _held = gate.acquire().await.unwrap();
        let long_name = "a".repeat(100_000);
        assert!(!verify(&db, &gate, &long_name, "whatever!").await.unwrap());
        let long_password = "p".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(!verify(&db, &gate, "alice", &long_password).await.unwrap());
        assert!(matches!(
            verify(&db, &gate, "alice", "a real try").await,
            Err(AccountError::Busy)
        ));
    }
}
