//! What WHEP viewers may cost: how many sessions, from where, and how big an
//! offer.

crate::limits! {
    /// WHEP's limits, from the command line and the file.
    pub struct WhepLimits, RawWhepLimits, "WebRTC (WHEP) limits" {
        /// Most WHEP sessions at once, all streams together
        whep_max_sessions: usize = 1000, 1..=100000, "TINSEL_WHEP_MAX_SESSIONS";
    }
}
