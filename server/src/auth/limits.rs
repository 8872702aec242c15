//! What the login may cost: password hashes at once, and the throttle's memory.

crate::limits! {
    /// The login's limits, from the command line and the file.
    pub struct AuthLimits, RawAuthLimits, "Login limits" {
        /// Password checks (argon2, 19 MiB each) running at once; more wait their turn
        login_max_concurrent_hashes: usize = 2, 1..=64, "TINSEL_LOGIN_MAX_CONCURRENT_HASHES";
    }
}
