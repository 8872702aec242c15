//! The media core: what a stream is made of and how it reaches its viewers.
//!
//! Nothing in here touches a socket or a clock of its own: the protocol adapters
//! (`crate::rtmp`, later HLS and WebRTC) feed frames in and take them out, and pass
//! the time in where it matters.

pub mod changes;
pub mod codec;
pub mod counters;
pub mod flv;
pub mod frame;
pub mod hub;
pub mod stats;
pub mod timeline;

pub use frame::{Frame, Track};
pub use hub::{HubError, Metadata, Publisher, StreamHub, Subscription};
