//! Low-Latency HLS out of the hub, from memory: fMP4 (CMAF) parts and segments.
//!
//! - [`fmp4`]: the boxes (pure).
//! - [`segmenter`]: frames in, parts and segments out (pure).
//! - [`playlist`]: the media playlist text (pure).
//! - [`store`]: shared state per stream, and waiting for parts.
//! - [`task`]: feeds each stream's segmenter from the hub.

pub mod fmp4;
pub mod playlist;
pub mod segmenter;
pub mod store;
pub mod task;

pub use store::{HlsStore, HlsStream, Readiness};
