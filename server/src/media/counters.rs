//! What a stream has taken in and given out since the server started, for
//! `/metrics`: running totals only (rates are the scraper's job).
//!
//! Each adapter adds what it sent to its own output's counters, so a
//! protocol's traffic is counted where it is written, once per write.

use std::sync::atomic::{AtomicU64, Ordering};

/// The ways a stream leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Rtmp,
    Hls,
    Webrtc,
}

impl Output {
    pub const ALL: [Output; 3] = [Output::Rtmp, Output::Hls, Output::Webrtc];

    /// The `protocol` label.
    pub fn label(self) -> &'static str {
        match self {
            Output::Rtmp => "rtmp",
            Output::Hls => "hls",
            Output::Webrtc => "webrtc",
        }
    }
}

/// Totals of one stream; shared by the hub and every adapter serving it.
#[derive(Debug, Default)]
pub struct StreamCounters {
    bytes_received: AtomicU64,
    frames_received: AtomicU64,
    bytes_sent: [AtomicU64; 3],
    frames_dropped: [AtomicU64; 3],
}

impl StreamCounters {
    pub fn received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.frames_received.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent(&self, output: Output, bytes: usize) {
        self.bytes_sent[output as usize].fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Frames a slow viewer of `output` skipped to catch up.
    pub fn dropped(&self, output: Output, frames: u64) {
        self.frames_dropped[output as usize].fetch_add(frames, Ordering::Relaxed);
    }

    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    pub fn frames_received(&self) -> u64 {
        self.frames_received.load(Ordering::Relaxed)
    }

    pub fn bytes_sent(&self, output: Output) -> u64 {
        self.bytes_sent[output as usize].load(Ordering::Relaxed)
    }

    pub fn frames_dropped(&self, output: Output) -> u64 {
        self.frames_dropped[output as usize].load(Ordering::Relaxed)
    }
}
