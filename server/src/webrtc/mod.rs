//! WebRTC playback over WHEP: the module will hold the per-viewer sessions.
//!
//! - [`opus`]: AAC to Opus, once per stream, since browsers do not play AAC over WebRTC.

pub mod opus;
