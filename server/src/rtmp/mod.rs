//! RTMP in (OBS publishing) and out (VLC, ffplay, ffmpeg playing), on one port.
//!
//! - [`listener`]: accept loop and connection limit.
//! - [`connection`]: the socket task of one connection.
//! - [`session`]: the protocol logic (rml_rtmp plus our mapping to the hub).
//! - [`chunk`]: media chunking for players without copying payloads.
//! - [`chunk_reader`], [`amf0`], [`commands`]: Tinsel's own bounded readers
//!   of a peer's chunk stream, AMF0 values and commands.

pub mod amf0;
pub mod chunk;
pub mod chunk_reader;
pub mod commands;
pub mod connection;
pub mod limits;
pub mod listener;
pub mod session;
