//! What one RTMP peer may cost before it has proved it is a publisher or a
//! player, and after.

crate::limits! {
    /// RTMP's limits, from the command line and the file.
    pub struct RtmpLimits, RawRtmpLimits, "RTMP limits" {
        /// Seconds a connection gets to finish the handshake and publish or play; then it is closed
        rtmp_start_timeout_s: u64 = 10, 1..=3600, "TINSEL_RTMP_START_TIMEOUT_S";
    }
}
