//! What one HTTP client may cost: time to send its headers and to take its
//! answers, sizes, and long-lived connections.
//!
//! The per-address caps count an IPv6 client by its /64 (see
//! [`crate::limits::slots::client_key`]): one home or server gets a whole /64, so
//! counting single IPv6 addresses would cap nobody.

crate::limits! {
    /// HTTP's limits, from the command line and the file.
    pub struct HttpLimits, RawHttpLimits, "HTTP limits" {
        /// Seconds a client gets to send a request's headers, and an idle keep-alive connection lives (slowloris)
        http_header_timeout_s: u64 = 10, 1..=600, "TINSEL_HTTP_HEADER_TIMEOUT_S";
        /// Seconds a write to a client may wait for it to take data; a client that stops reading is then closed (slow read)
        http_write_timeout_s: u64 = 30, 1..=3600, "TINSEL_HTTP_WRITE_TIMEOUT_S";
        /// Largest request line plus headers, in bytes; more is answered 431
        http_max_header_bytes: usize = 65536, 8192..=1048576, "TINSEL_HTTP_MAX_HEADER_BYTES";
        /// Most header lines in one request; more is answered 431
        http_max_headers: usize = 128, 16..=1024, "TINSEL_HTTP_MAX_HEADERS";
        /// Largest request body, in bytes, on every route; more is answered 413
        http_max_body_bytes: usize = 65536, 1024..=16777216, "TINSEL_HTTP_MAX_BODY_BYTES";
        /// Open HTTP connections in all; more are answered 503 and closed
        http_max_connections: usize = 4096, 1..=1000000, "TINSEL_HTTP_MAX_CONNECTIONS";
        /// Open HTTP connections from one address (an IPv6 /64); more are answered 429 and closed. Browsers open 6 per site, and an office or school shares one address
        http_max_connections_per_ip: usize = 256, 1..=1000000, "TINSEL_HTTP_MAX_CONNECTIONS_PER_IP";
        /// Live-event feeds (/api/events) open in all; more are answered 503
        http_max_sse: usize = 2048, 1..=1000000, "TINSEL_HTTP_MAX_SSE";
        /// Live-event feeds (/api/events) open from one address (an IPv6 /64); more are answered 429
        http_max_sse_per_ip: usize = 64, 1..=1000000, "TINSEL_HTTP_MAX_SSE_PER_IP";
    }
}
