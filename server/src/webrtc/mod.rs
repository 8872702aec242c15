//! WebRTC playback over WHEP: the module will hold the per-viewer sessions.
//!
//! - [`opus`]: AAC to Opus, once per stream, since browsers do not play AAC over WebRTC.
//! - [`packetize`]: H.264 access units to RTP payloads, once per stream.

pub mod opus;
pub mod packetize;
