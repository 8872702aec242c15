//! What the login may cost: password hashes at once, and the throttle's memory.

crate::limits! {
    /// The login's limits, from the command line and the file.
    pub struct AuthLimits, RawAuthLimits, "Login limits" {
        /// Password checks (argon2, 19 MiB each) running at once; more wait their turn
        login_max_concurrent_hashes: usize = 2, 1..=64, "TINSEL_LOGIN_MAX_CONCURRENT_HASHES";
        /// Logins that may wait for a password check; beyond them a login is answered 503 at once
        login_max_waiting_hashes: usize = 16, 0..=4096, "TINSEL_LOGIN_MAX_WAITING_HASHES";
        /// Accounts and addresses the login throttle remembers; when full, the least recently failed is forgotten
        login_throttle_max_entries: usize = 10000, 100..=1000000, "TINSEL_LOGIN_THROTTLE_MAX_ENTRIES";
    }
}
