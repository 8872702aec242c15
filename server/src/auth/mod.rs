//! Admin accounts, login throttling and sessions.
//!
//! - [`accounts`]: the `accounts` table and argon2 password hashes.
//! - [`hashing`]: how many password checks run and wait at once.
//! - [`throttle`]: how many failed logins an account or an address may have.
//! - [`login_failures`]: the table that keeps those failures over a restart.
//! - [`logins`]: the two together, as a login uses them.
//! - [`session`]: the session cookie, the [`AdminUser`] extractor and CSRF.
//! - [`store`]: the `admin_sessions` table the sessions are kept in.

pub mod accounts;
pub mod hashing;
pub mod limits;
pub mod login_failures;
pub mod logins;
pub mod session;
pub mod store;
pub mod throttle;

pub use session::{AdminUser, SessionSettings};
