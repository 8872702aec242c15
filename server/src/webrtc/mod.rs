//! WebRTC playback over WHEP: the module will hold the per-viewer sessions.
//!
//! - [`opus`]: AAC to Opus, once per stream, since browsers do not play AAC over WebRTC.
//! - [`packetize`]: H.264 access units to RTP payloads, once per stream.
//! - [`sdp`]: the H.264 payload type and fmtp line to answer an offer with.

pub mod opus;
pub mod packetize;
pub mod sdp;
