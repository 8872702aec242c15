//! What one HTTP client may cost: time to send its headers, sizes, and
//! long-lived connections.

crate::limits! {
    /// HTTP's limits, from the command line and the file.
    pub struct HttpLimits, RawHttpLimits, "HTTP limits" {
        /// Seconds a client gets to send a request's headers (slowloris)
        http_header_timeout_s: u64 = 10, 1..=600, "TINSEL_HTTP_HEADER_TIMEOUT_S";
    }
}
