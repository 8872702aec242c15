//! What one RTMP peer may cost before it has proved it is a publisher or a
//! player, and after.

crate::limits! {
    /// RTMP's limits, from the command line and the file.
    pub struct RtmpLimits, RawRtmpLimits, "RTMP limits" {
        /// Seconds a connection gets to finish the handshake and publish or play; then it is closed
        rtmp_start_timeout_s: u64 = 10, 1..=3600, "TINSEL_RTMP_START_TIMEOUT_S";
        /// Most RTMP connections open at once from one address (an IPv6 /64 counts as one), publishing, playing or neither
        rtmp_max_connections_per_ip: usize = 256, 1..=1_000_000, "TINSEL_RTMP_MAX_CONNECTIONS_PER_IP";
        /// Most RTMP connections not yet publishing or playing; a new one past this closes the oldest of the address that has the most
        rtmp_max_pending: usize = 512, 1..=1_000_000, "TINSEL_RTMP_MAX_PENDING";
    }
}
