//! What WHEP viewers may cost: how many sessions, from where, how long an
//! unfinished one may live, and how big and how shaped an offer may be.
//!
//! The offer limits leave room around what browsers send: a Chromium offer
//! for one video and one audio transceiver is about 6 KB in some 200 lines,
//! its longest line 144 bytes and its video m-line 34 payload types.

crate::limits! {
    /// WHEP's limits, from the command line and the file.
    pub struct WhepLimits, RawWhepLimits, "WebRTC (WHEP) limits" {
        /// Most WHEP sessions at once, all streams together
        whep_max_sessions: usize = 1000, 1..=100000, "TINSEL_WHEP_MAX_SESSIONS";
        /// Most WHEP sessions at once from one IPv4 address or IPv6 /64
        whep_max_sessions_per_ip: usize = 20, 1..=100000, "TINSEL_WHEP_MAX_SESSIONS_PER_IP";
        /// Seconds a viewer gets to complete ICE and DTLS after the answer before its session is freed
        whep_connect_timeout_s: u64 = 15, 1..=300, "TINSEL_WHEP_CONNECT_TIMEOUT_S";
        /// Largest SDP offer, in bytes
        whep_max_offer_bytes: usize = 32768, 1024..=1048576, "TINSEL_WHEP_MAX_OFFER_BYTES";
        /// Most lines in an SDP offer
        whep_max_offer_lines: usize = 1024, 16..=16384, "TINSEL_WHEP_MAX_OFFER_LINES";
        /// Longest line in an SDP offer, in bytes
        whep_max_offer_line_bytes: usize = 1024, 128..=65536, "TINSEL_WHEP_MAX_OFFER_LINE_BYTES";
        /// Most payload types on one m= line of an offer
        whep_max_payload_types: usize = 64, 1..=128, "TINSEL_WHEP_MAX_PAYLOAD_TYPES";
        /// Most ICE candidates in an offer (the server sends checks to each)
        whep_max_offer_candidates: usize = 32, 1..=1024, "TINSEL_WHEP_MAX_OFFER_CANDIDATES";
        /// Most remote addresses one session's traffic may come from on the shared UDP port
        whep_max_remotes_per_session: usize = 16, 1..=1024, "TINSEL_WHEP_MAX_REMOTES_PER_SESSION";
        /// Most ICE-TCP connections open at once to one session's TCP candidate
        whep_max_tcp_per_session: usize = 4, 1..=1024, "TINSEL_WHEP_MAX_TCP_PER_SESSION";
        /// Replay bytes a viewer earns, as a percentage of the live bytes it is sent, for keyframe requests answered at once with the current GOP; the rest wait for the next keyframe (0: always wait)
        whep_keyframe_replay_percent: u64 = 10, 0..=100, "TINSEL_WHEP_KEYFRAME_REPLAY_PERCENT";
    }
}
