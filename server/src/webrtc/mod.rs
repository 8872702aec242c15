//! WebRTC playback over WHEP.
//!
//! - [`whep`]: offer in, answer out, and the viewer's session started.
//! - [`session`]: one viewer's peer connection, driven: RTP out in batches,
//!   datagrams in, keyframe requests answered.
//! - [`ice_tcp`]: a session's ICE-TCP listener, for networks that block UDP.
//! - [`admission`]: the caps on sessions, in total and per address.
//! - [`feed`]: one stream's media made ready for all its viewers.
//! - [`keyframe`]: keyframe requests from viewers, passed up from RTCP.
//! - [`replay`]: which of a viewer's keyframe requests replay the GOP, at a bounded cost.
//! - [`opus`]: AAC to Opus, once per stream, since browsers do not play AAC over WebRTC.
//! - [`packetize`]: H.264 access units to RTP payloads, once per stream.
//! - [`udp_mux`]: every session's UDP on one port.
//! - [`sdp`]: an offer's size and shape checked, and the H.264 payload type
//!   and fmtp line to answer it with.

pub mod admission;
pub mod feed;
pub mod ice_tcp;
pub mod keyframe;
pub mod limits;
pub mod opus;
pub mod packetize;
pub mod replay;
pub mod sdp;
pub mod session;
pub mod udp_mux;
pub mod whep;
