//! Tinsel's load tool: many concurrent players, over RTMP or WebRTC (WHEP),
//! each measuring what it receives, for load tests and for the server's
//! integration tests.
//!
//! ```text
//!  run_many / run_crowd(Source) ──spawns, spread over the ramp──> one task per viewer
//!                                                │
//!   RTMP (viewer):  TCP, handshake, connect, createStream, play
//!                   Viewer::next_media ──> Media (flv::classify)
//!   WHEP (whep):    POST offer ──> answer + Location; ICE, DTLS, SRTP on a
//!                   UDP socket (sans-IO rtc peer connection); RTP packets
//!                   ──> rtp_count (loss, frames, IDR, sender clock) ──> Media
//!                                                │
//!                                      Tally::record
//!                                                │ deadline (WHEP: then DELETE)
//!                                   Tally::finish ──> ViewerReport (+ WebrtcStats)
//!  summarize(&[ViewerReport]) ──> Summary (Display, Serialize)
//! ```
//!
//! `viewer` and `whep` own the sockets; `flv`, `rtp_count` and `report` are
//! pure and get arrival times passed in, so their arithmetic is tested
//! without a server.
//!
//! The benchmark binaries (`fanout-bench`, `hls-bench`, `webrtc-bench`)
//! share the rest: `process` starts and always stops servers, the publisher
//! and `wrk`; `procfs` reads their CPU time and memory; `http` fetches a
//! file over loopback; `wrk` reads wrk's report (pure).

mod crowd;
pub mod flv;
pub mod http;
pub mod process;
pub mod procfs;
mod report;
pub mod rtp_count;
mod viewer;
mod whep;
pub mod wrk;

pub use crowd::{Source, run_crowd, run_many, watch, watch_until};
pub use flv::Track;
pub use report::{
    ErrorCount, KEEPING_UP_SHARE, Summary, Tally, ViewerReport, WARMUP, WebrtcStats, WebrtcSummary,
    behind_live, error_counts, opt_ms, percentile, summarize,
};
pub use viewer::{LoadError, Media, Stage, Viewer};
pub use whep::{WhepClient, WhepError, WhepOptions};
