//! RTMP in (OBS publishing) and out (VLC, ffplay, ffmpeg playing), on one port.
//!
//! - [`listener`]: accept loop and connection limit.
//! - [`connection`]: the socket task of one connection.
//! - [`session`]: the protocol logic of one connection (sans-IO), built of
//!   [`chunk_reader`] (chunks in, messages out), [`amf0`] (command and data
//!   values) and [`commands`] (the NetConnection/NetStream commands and our
//!   answers), each with explicit limits ([`limits`]). Only rml_rtmp's
//!   handshake is used on input.
//! - [`chunk`]: media chunking for players without copying payloads.
//! - [`client`]: RTMP to another server (pushes to YouTube, edges pulling
//!   from their origin), over rml_rtmp's client session.

pub mod amf0;
pub mod chunk;
pub mod chunk_reader;
pub mod client;
pub mod commands;
pub mod connection;
pub mod limits;
pub mod listener;
pub mod session;
