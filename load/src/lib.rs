//! Tinsel's RTMP load tool: many concurrent players, each measuring what it
//! receives, for load tests and for the server's integration tests.
//!
//! ```text
//!  run_many ──spawns, spread over the ramp──> watch_until (one per viewer)
//!                                                │
//!   Viewer::connect: TCP, handshake, connect, createStream, play
//!   Viewer::next_media ──> Media (flv::classify) ──> Tally::record
//!                                                │ deadline
//!                                   Tally::finish ──> ViewerReport
//!  summarize(&[ViewerReport]) ──> Summary (Display, Serialize)
//! ```
//!
//! `viewer` owns the sockets; `flv` and `report` are pure and get arrival
//! times passed in, so their arithmetic is tested without a server.
//!
//! The benchmark binaries (`fanout-bench`, `hls-bench`) share the rest:
//! `process` starts and always stops servers, the publisher and `wrk`;
//! `procfs` reads their CPU time and memory; `http` fetches a file over
//! loopback; `wrk` reads wrk's report (pure).

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
    KEEPING_UP_SHARE, Summary, Tally, ViewerReport, WARMUP, WebrtcStats, WebrtcSummary,
    behind_live, opt_ms, percentile, summarize,
};
pub use viewer::{LoadError, Media, Stage, Viewer};
pub use whep::{WhepClient, WhepError, WhepOptions};
