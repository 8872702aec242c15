//! One RTMP connection's logic, free of I/O: bytes in, bytes out.
//!
//! Everything a peer sends after the handshake is read by Tinsel's own code,
//! each layer with its limits: [`super::chunk_reader`] turns chunks into
//! messages, [`super::amf0`] decodes commands and data, [`super::commands`]
//! types the commands, and this file runs the NetConnection/NetStream
//! sequence (connect, createStream, publish or play) and maps it onto the hub.
//! rml_rtmp's `ServerSession` did this before; it panics, recurses without
//! limit and reserves announced lengths on hostile input, so only its
//! handshake (fixed-size buffers, and the state it needs ends at 3,073 bytes)
//! is kept.
//!
//! A connection becomes either a publisher (OBS) or a player (VLC, ffplay)
//! once it asks to publish or play. Nothing it sends reaches the hub before
//! a publish with a valid key. A limit exceeded or a malformed message ends
//! only this connection, after one [`crate::limits::refused`] line.
//!
//! The caller owns the socket and the clock: it feeds received bytes to
//! [`RtmpSession::handle_input`], hands frames for a player to
//! [`RtmpSession::push_frame`], and writes out what [`RtmpSession::poll_output`]
//! returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use thiserror::Error;
use tracing::{info, warn};

use super::amf0::{self, Amf0Error, Amf0Value, COMMAND_LIMITS};
use super::chunk::{self, BufList};
use super::chunk_reader::{self as reader, ChunkError, ChunkLimits, ChunkReader, Message};
use super::commands::{self, Command, check_name, excerpt};
use crate::config::{Config, RTMP_APP};
use crate::limits::refused;
use crate::media::flv::FlvError;
use crate::media::hub::{IncomingFrame, Join};
use crate::media::{Frame, HubError, Metadata, Publisher, StreamHub, Subscription, Track};

/// The chunk size announced to peers for what we send (nginx-rtmp's default too).
pub const CHUNK_SIZE: u32 = 4096;
/// Chunk stream for protocol control messages (spec 5.4: always 2).
const CONTROL_CSID: u8 = 2;
/// Chunk stream for our commands and status notices.
const COMMAND_CSID: u8 = 3;
/// What Tinsel announces with Window Acknowledgement Size and Set Peer
/// Bandwidth, as rml_rtmp did: players and publishers have taken these.
const WINDOW_ACK_SIZE: u32 = 1_073_741_824;
const PEER_BANDWIDTH: u32 = 2_500_000;
/// User control events (spec 7.1.7).
const STREAM_BEGIN: u16 = 0;
const PING_REQUEST: u16 = 6;
const PING_RESPONSE: u16 = 7;
/// Characters of a stranger's text (an application or stream name) that go
/// into an answer or a log line.
const ECHO_CHARS: usize = 64;
/// Characters of the encoder name kept from `onMetaData`.
const ENCODER_CHARS: usize = 256;
/// How long a refused publisher is kept after its refusal is sent: FFmpeg
/// looks for the server's messages every ten packets, well within this.
const REFUSED_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Error)]
pub enum RtmpError {
    #[error("RTMP handshake failed: {0:?}")]
    Handshake(rml_rtmp::handshake::HandshakeError),
    #[error("RTMP chunk stream refused: {0}")]
    Chunk(#[from] ChunkError),
    #[error("RTMP command or data refused: {0}")]
    Amf0(#[from] Amf0Error),
    #[error("the peer created more than {max} streams on one connection (rtmp_max_streams)")]
    TooManyStreams { max: u32 },
    #[error("publisher on stream {stream:?} refused: {source}")]
    Media { stream: String, source: FlvError },
}

impl RtmpError {
    /// Whether this was input refused by a limit or a format rule and
    /// already logged: a stranger's with [`crate::limits::refused`]
    /// (rate-limited), a publisher's media as it was refused. The caller need
    /// not log it again.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Handshake(_)
                | Self::Chunk(_)
                | Self::Amf0(_)
                | Self::TooManyStreams { .. }
                | Self::Media { .. }
        )
    }
}

/// What the connection is doing.
enum Role {
    /// Connected or not, not yet publishing or playing.
    Idle,
    Publishing {
        publisher: Publisher,
        /// Media and metadata count only on the stream that published.
        stream_id: u32,
    },
    Playing {
        subscription: Subscription,
        /// The message stream id the player's `createStream` returned; media
        /// must come on it or strict players drop it.
        stream_id: u32,
    },
    /// A publisher whose media Tinsel cannot take: it has been told why and
    /// its stream has ended. Its media is dropped until `closes_at`, so the
    /// status is read before the connection closes: FFmpeg reads what the
    /// server sent between its writes, and a reset socket loses it.
    Refused {
        stream_id: u32,
        closes_at: Instant,
        error: Box<RtmpError>,
    },
}

impl Role {
    fn stream_id(&self) -> Option<u32> {
        match self {
            Role::Idle => None,
            Role::Publishing { stream_id, .. }
            | Role::Playing { stream_id, .. }
            | Role::Refused { stream_id, .. } => Some(*stream_id),
        }
    }
}

/// Asked before a play starts: `Err` holds the reason the player is told
/// (a full server). See [`RtmpSession::set_player_gate`].
pub type PlayerGate = Box<dyn FnMut() -> Result<(), String> + Send>;

pub struct RtmpSession {
    peer: SocketAddr,
    config: Arc<Config>,
    hub: StreamHub,
    handshake: Option<Handshake>,
    reader: ChunkReader,
    /// Set once `connect` named the right application.
    connected: bool,
    /// Message stream ids `createStream` gave out and `deleteStream` has not
    /// taken back; at most `rtmp_max_streams`.
    streams: Vec<u32>,
    next_stream_id: u32,
    role: Role,
    output: BufList,
    /// The last list written out, kept for its memory.
    spare: BufList,
    /// Bytes received after the handshake, and as of the last
    /// Acknowledgement, which goes out every `ack_window` bytes once the
    /// peer has asked for one (spec 5.4.3, 5.4.4).
    received: u64,
    acknowledged: u64,
    ack_window: Option<u32>,
    player_gate: Option<PlayerGate>,
    /// Plays for an edge (with the cluster secret), not a viewer.
    edge: bool,
}

impl RtmpSession {
    pub fn new(peer: SocketAddr, config: Arc<Config>, hub: StreamHub) -> Self {
        let limits = &config.rtmp_limits;
        let reader = ChunkReader::new(ChunkLimits {
            max_chunk_size: limits.rtmp_max_chunk_size,
            max_message_bytes: limits.rtmp_max_message_bytes,
            max_command_bytes: limits.rtmp_max_command_bytes,
            max_chunk_streams: limits.rtmp_max_chunk_streams,
            max_buffered_bytes: limits.rtmp_max_buffered_bytes,
        });
        Self {
            peer,
            config,
            hub,
            handshake: Some(Handshake::new(PeerType::Server)),
            reader,
            connected: false,
            streams: Vec::new(),
            next_stream_id: 1,
            role: Role::Idle,
            output: BufList::default(),
            spare: BufList::default(),
            received: 0,
            acknowledged: 0,
            ack_window: None,
            player_gate: None,
            edge: false,
        }
    }

    /// Has every play that would start ask `gate` first; a refusal is sent
    /// to the player as `NetStream.Play.Failed` with the gate's reason.
    pub fn set_player_gate(&mut self, gate: PlayerGate) {
        self.player_gate = Some(gate);
    }

    /// Takes bytes received from the peer.
    ///
    /// # Errors
    /// A protocol violation, a limit exceeded, or a publisher sending media
    /// Tinsel cannot take; either way the connection should end (the error
    /// says why).
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), RtmpError> {
        if let Some(handshake) = &mut self.handshake {
            let result = handshake.process_bytes(bytes).map_err(|err| {
                refused(self.peer, "rtmp_handshake", format_args!("{err:?}"));
                RtmpError::Handshake(err)
            })?;
            match result {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.output.push(response_bytes.into());
                    return Ok(());
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.output.push(response_bytes.into());
                    self.handshake = None;
                    // First, so that everything after it may use the size.
                    self.send_control(reader::SET_CHUNK_SIZE, CHUNK_SIZE.to_be_bytes().to_vec());
                    return self.handle_input(&remaining_bytes, now);
                }
            }
        }
        self.received += bytes.len() as u64;
        let mut input = bytes;
        loop {
            let message = match self.reader.read(&mut input) {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(err) => {
                    refused(self.peer, err.limit_key(), &err);
                    return Err(err.into());
                }
            };
            self.handle_message(message, now)?;
        }
        if let Some(window) = self.ack_window
            && self.received - self.acknowledged >= u64::from(window)
        {
            self.acknowledged = self.received;
            // The sequence number is the byte count so far, modulo 2^32.
            let sequence = self.received as u32;
            self.send_control(reader::ACKNOWLEDGEMENT, sequence.to_be_bytes().to_vec());
        }
        Ok(())
    }

    /// Bytes to send to the peer, if any. Hand the list back with
    /// [`Self::recycle`] once it is written.
    pub fn poll_output(&mut self) -> Option<BufList> {
        (!self.output.is_empty())
            .then(|| std::mem::replace(&mut self.output, std::mem::take(&mut self.spare)))
    }

    /// A list from [`Self::poll_output`], written out: the next output reuses
    /// its memory.
    pub fn recycle(&mut self, out: BufList) {
        if out.is_empty() {
            self.spare = out;
        }
    }

    /// The stream this connection plays, while it plays one.
    pub fn subscription(&mut self) -> Option<&mut Subscription> {
        match &mut self.role {
            Role::Playing { subscription, .. } => Some(subscription),
            _ => None,
        }
    }

    /// Plays for an edge of this origin: capped as a publisher, not a player.
    pub fn is_edge(&self) -> bool {
        self.edge
    }

    pub fn is_publishing(&self) -> bool {
        matches!(self.role, Role::Publishing { .. })
    }

    /// When the connection of a refused publisher is to close: it has had
    /// time to read why.
    pub fn closes_at(&self) -> Option<Instant> {
        match &self.role {
            Role::Refused { closes_at, .. } => Some(*closes_at),
            _ => None,
        }
    }

    /// The refused publisher's error, to end its connection with at
    /// [`Self::closes_at`].
    pub fn take_refusal(&mut self) -> Option<RtmpError> {
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Refused { error, .. } => Some(*error),
            other => {
                self.role = other;
                None
            }
        }
    }

    /// Queues a frame for the player.
    pub fn push_frame(&mut self, frame: &Frame) {
        let Role::Playing {
            stream_id,
            subscription,
        } = &self.role
        else {
            return;
        };
        let stream_id = *stream_id;
        // Codec configuration comes first for every player and again with each
        // new publisher: the metadata goes just before it.
        if frame.config
            && frame.track == Track::Video
            && let Some(metadata) = subscription.metadata()
        {
            push_metadata(&mut self.output, stream_id, &metadata);
        }
        let (csid, type_id) = match frame.track {
            Track::Video => (chunk::VIDEO_CSID, chunk::MSG_VIDEO),
            Track::Audio => (chunk::AUDIO_CSID, chunk::MSG_AUDIO),
        };
        // RTMP timestamps are 32-bit milliseconds that wrap (spec 5.3.1.3).
        let timestamp = frame.dts as u32;
        chunk::push_message(
            &mut self.output,
            csid,
            type_id,
            stream_id,
            timestamp,
            &frame.payload,
            CHUNK_SIZE as usize,
        );
    }

    fn handle_message(&mut self, message: Message, now: Instant) -> Result<(), RtmpError> {
        match message.type_id {
            reader::USER_CONTROL => self.user_control(&message.payload),
            reader::WINDOW_ACK_SIZE => {
                if let Some(size) = be_u32(&message.payload) {
                    self.ack_window = (size > 0).then_some(size);
                }
            }
            reader::AUDIO => self.media_received(Track::Audio, &message, now)?,
            reader::VIDEO => self.media_received(Track::Video, &message, now)?,
            reader::AMF0_DATA | reader::AMF3_DATA => {
                let values = self.decode(&message)?;
                self.data_received(&values, message.stream_id);
            }
            reader::AMF0_COMMAND | reader::AMF3_COMMAND => {
                let values = self.decode(&message)?;
                if let Some(command) = Command::parse(&values) {
                    self.command_received(command, message.stream_id, now)?;
                }
            }
            // Acknowledgement and Set Peer Bandwidth ask nothing of a server
            // that does not throttle what it sends; aggregates and shared
            // objects are not used by the clients Tinsel serves.
            _ => {}
        }
        Ok(())
    }

    /// The AMF0 values of a command or data message. The AMF3 forms (types
    /// 17 and 15) start with a format byte of 0 and then carry AMF0.
    fn decode(&self, message: &Message) -> Result<Vec<Amf0Value>, RtmpError> {
        let mut body = &message.payload[..];
        if matches!(message.type_id, reader::AMF3_COMMAND | reader::AMF3_DATA)
            && body.first() == Some(&0)
        {
            body = &body[1..];
        }
        amf0::decode_all(body, &COMMAND_LIMITS).map_err(|err| {
            refused(self.peer, "rtmp_amf0", &err);
            err.into()
        })
    }

    fn user_control(&mut self, payload: &[u8]) {
        let Some(event) = payload.get(..2) else {
            return;
        };
        if u16::from_be_bytes([event[0], event[1]]) == PING_REQUEST
            && let Some(time) = be_u32(&payload[2..])
        {
            self.send_user_control(PING_RESPONSE, time);
        }
    }

    fn command_received(
        &mut self,
        command: Command,
        stream_id: u32,
        now: Instant,
    ) -> Result<(), RtmpError> {
        match command {
            Command::Connect {
                transaction,
                app,
                object_encoding,
            } => self.connect(transaction, app, object_encoding),
            Command::CreateStream { transaction } => self.create_stream(transaction)?,
            Command::DeleteStream {
                stream_id: Some(id),
            } => {
                if let Some(at) = self.streams.iter().position(|s| *s == id) {
                    self.streams.swap_remove(at);
                    self.end_role_on(id);
                }
            }
            Command::CloseStream => self.end_role_on(stream_id),
            // Publish and play are answered with `onStatus`, which carries
            // no transaction.
            Command::Publish { name, kind, .. } => self.publish(stream_id, name, kind, now),
            Command::Play { name, .. } => self.play(stream_id, name, now),
            Command::DeleteStream { stream_id: None } | Command::Other { .. } => {}
        }
        Ok(())
    }

    fn connect(&mut self, transaction: f64, app: Option<String>, object_encoding: f64) {
        const REJECTED: &str = "NetConnection.Connect.Rejected";
        if self.connected {
            return self.send_command(
                0,
                &commands::error(
                    transaction,
                    REJECTED,
                    "this connection is already connected",
                ),
            );
        }
        match app {
            Some(app) if app == RTMP_APP => {
                self.connected = true;
                self.send_control(
                    reader::WINDOW_ACK_SIZE,
                    WINDOW_ACK_SIZE.to_be_bytes().to_vec(),
                );
                self.send_user_control(STREAM_BEGIN, 0);
                // Limit type 2: dynamic (spec 5.4.5).
                let mut bandwidth = PEER_BANDWIDTH.to_be_bytes().to_vec();
                bandwidth.push(2);
                self.send_control(reader::SET_PEER_BANDWIDTH, bandwidth);
                self.send_command(0, &commands::connect_result(transaction, object_encoding));
            }
            Some(app) => {
                let app = excerpt(&app, ECHO_CHARS);
                refused(
                    self.peer,
                    "rtmp_app",
                    format_args!("connection to an unknown application {app:?}"),
                );
                let text = format!(
                    "unknown application {app:?}; use rtmp://HOST:{}/{RTMP_APP}",
                    self.config.rtmp_listen.port()
                );
                self.send_command(0, &commands::error(transaction, REJECTED, &text));
            }
            None => {
                refused(self.peer, "rtmp_app", "connect without an application name");
                let text = format!(
                    "connect names no application; use rtmp://HOST:{}/{RTMP_APP}",
                    self.config.rtmp_listen.port()
                );
                self.send_command(0, &commands::error(transaction, REJECTED, &text));
            }
        }
    }

    fn create_stream(&mut self, transaction: f64) -> Result<(), RtmpError> {
        if !self.connected {
            self.send_command(
                0,
                &commands::error(
                    transaction,
                    "NetConnection.Call.Failed",
                    "createStream before connect; connect first",
                ),
            );
            return Ok(());
        }
        let max = self.config.rtmp_limits.rtmp_max_streams;
        if self.streams.len() >= max as usize {
            let err = RtmpError::TooManyStreams { max };
            refused(self.peer, "rtmp_max_streams", &err);
            return Err(err);
        }
        let mut id = self.next_stream_id;
        // Ids are never 0 (the connection's own stream) and never one in use;
        // after 2^32 creations they wrap.
        while id == 0 || self.streams.contains(&id) {
            id = id.wrapping_add(1);
        }
        self.next_stream_id = id.wrapping_add(1);
        self.streams.push(id);
        // The answer goes on stream 0, as Flash clients require.
        self.send_command(0, &commands::create_stream_result(transaction, id));
        Ok(())
    }

    /// Ends publishing or playing if it happens on `stream_id`.
    fn end_role_on(&mut self, stream_id: u32) {
        if self.role.stream_id() != Some(stream_id) {
            return;
        }
        if let Role::Publishing { publisher, .. } = &self.role {
            info!(peer = %self.peer, stream = publisher.stream_name(), "publisher finished");
        }
        self.role = Role::Idle;
        self.reader.allow_media(false);
    }

    /// Whether a publish or play on `stream_id` may go ahead; if not, the
    /// refusal has been sent.
    fn may_start(&mut self, stream_id: u32, code: &str, what: &str) -> bool {
        let problem = if !self.connected {
            format!("{what} before connect; connect first")
        } else if !self.streams.contains(&stream_id) {
            format!("{what} on stream {stream_id}, which createStream did not give out")
        } else if !matches!(self.role, Role::Idle) {
            "this connection already publishes or plays; open another".to_string()
        } else {
            return true;
        };
        self.refuse(stream_id, code, &problem);
        false
    }

    /// Refuses a publish or play, on its stream. Transaction 0: FFmpeg and
    /// rml_rtmp's client take an `_error` there as the stream's refusal.
    fn refuse(&mut self, stream_id: u32, code: &str, description: &str) {
        self.send_command(stream_id, &commands::error(0.0, code, description));
    }

    /// A checked name, or the refusal sent and logged.
    fn checked_name(&mut self, stream_id: u32, name: Option<String>, code: &str) -> Option<String> {
        let Some(name) = name else {
            self.refuse(stream_id, code, "no stream name (or key) was given");
            return None;
        };
        if let Err(bad) = check_name(&name, self.config.rtmp_limits.rtmp_max_name_bytes) {
            let text = bad.describe();
            refused(self.peer, "rtmp_max_name_bytes", &text);
            self.refuse(stream_id, code, &text);
            return None;
        }
        Some(name)
    }

    fn publish(
        &mut self,
        stream_id: u32,
        name: Option<String>,
        kind: Option<String>,
        now: Instant,
    ) {
        const BAD_NAME: &str = "NetStream.Publish.BadName";
        if !self.may_start(stream_id, "NetStream.Publish.Failed", "publish") {
            return;
        }
        if self.config.edge.is_some() {
            refused(self.peer, "origin", "a publisher on an edge");
            return self.refuse(
                stream_id,
                BAD_NAME,
                "this server is an edge: it pulls from the origin; publish to the origin",
            );
        }
        let Some(key) = self.checked_name(stream_id, name, BAD_NAME) else {
            return;
        };
        if kind
            .as_deref()
            .is_some_and(|kind| !matches!(kind, "live" | "record" | "append"))
        {
            return self.refuse(
                stream_id,
                BAD_NAME,
                "unknown publish type; use live (what OBS and FFmpeg send)",
            );
        }
        let config = Arc::clone(&self.config);
        let Some(stream) = config.stream_for_key(&key) else {
            refused(
                self.peer,
                "rtmp_stream_key",
                format_args!("publisher with an unknown stream key {}", key_hint(&key)),
            );
            return self.refuse(
                stream_id,
                BAD_NAME,
                "unknown stream key; copy the key Tinsel printed at first start (or the one in its config)",
            );
        };
        let name = stream.name.clone();
        match self.hub.publish(&name, now) {
            Ok(publisher) => {
                self.role = Role::Publishing {
                    publisher,
                    stream_id,
                };
                self.reader.allow_media(true);
                info!(peer = %self.peer, stream = %name, "publisher started");
                self.send_user_control(STREAM_BEGIN, stream_id);
                let text = format!("publishing {name}");
                self.send_command(
                    stream_id,
                    &commands::on_status("NetStream.Publish.Start", &text),
                );
            }
            Err(err @ HubError::AlreadyPublishing(_)) => {
                warn!(peer = %self.peer, stream = %name, "refused second publisher: {err}");
                self.refuse(stream_id, BAD_NAME, &err.to_string());
            }
            Err(err) => {
                warn!(peer = %self.peer, stream = %name, "refused publisher: {err}");
                self.refuse(stream_id, BAD_NAME, &err.to_string());
            }
        }
    }

    fn play(&mut self, stream_id: u32, name: Option<String>, now: Instant) {
        const NOT_FOUND: &str = "NetStream.Play.StreamNotFound";
        if !self.may_start(stream_id, "NetStream.Play.Failed", "play") {
            return;
        }
        let Some(name) = self.checked_name(stream_id, name, NOT_FOUND) else {
            return;
        };
        // `NAME?cluster_secret=...`: an edge of this origin. Anything else
        // after a `?` (players add tokens of their own) is not looked at.
        let (name, query) = match name.split_once('?') {
            Some((name, query)) => (name.to_string(), Some(query.to_string())),
            None => (name, None),
        };
        let edge = match query.as_deref().and_then(cluster_credential) {
            None => false,
            Some(given) => match &self.config.cluster_secret {
                Some(secret) if secret.matches(given) => true,
                _ => {
                    refused(
                        self.peer,
                        "cluster_secret",
                        "an edge with the wrong cluster secret",
                    );
                    return self.refuse(
                        stream_id,
                        "NetStream.Play.Failed",
                        "wrong cluster secret: give the edge this origin's cluster_secret",
                    );
                }
            },
        };
        // An edge looks for the origin that has the stream live: this one
        // does not, so it asks the next (a player would wait here instead).
        if edge && !self.hub.snapshot(&name, now).is_ok_and(|s| s.live) {
            let text = format!("stream {name:?} is not live on this origin");
            return self.refuse(stream_id, NOT_FOUND, &text);
        }
        // An edge is one connection carrying many viewers: it is not counted
        // as one, and no player cap applies (it is capped as a publisher is).
        let subscribed = if edge {
            self.hub.subscribe_internal(&name, Join::CatchUp)
        } else {
            self.hub.subscribe(&name, Join::CatchUp)
        };
        match subscribed {
            Ok(subscription) => {
                if !edge
                    && let Some(gate) = &mut self.player_gate
                    && let Err(reason) = gate()
                {
                    drop(subscription);
                    self.refuse(stream_id, "NetStream.Play.Failed", &reason);
                    return;
                }
                // rml_rtmp also sent `|RtmpSampleAccess` and an `onStatus` of
                // `NetStream.Data.Start` as AMF0 data messages. FFmpeg (and
                // so VLC) turns each into an extra data or subtitle track
                // that breaks `-c copy` remuxing, so they are not sent.
                self.send_command(
                    stream_id,
                    &commands::on_status("NetStream.Play.Reset", "Reset stream"),
                );
                self.send_user_control(STREAM_BEGIN, stream_id);
                let text = format!("playing {name}");
                self.send_command(
                    stream_id,
                    &commands::on_status("NetStream.Play.Start", &text),
                );
                if edge {
                    info!(peer = %self.peer, stream = %name, "edge started pulling");
                } else {
                    info!(peer = %self.peer, stream = %name, "player started");
                }
                self.edge = edge;
                self.role = Role::Playing {
                    subscription,
                    stream_id,
                };
            }
            Err(err) => {
                let shown = excerpt(&name, ECHO_CHARS);
                refused(
                    self.peer,
                    "rtmp_play_name",
                    format_args!("player of {shown:?}: {}", excerpt(&err.to_string(), 128)),
                );
                self.refuse(stream_id, NOT_FOUND, &format!("no stream {shown:?} here"));
            }
        }
    }

    /// `@setDataFrame onMetaData {...}` (what OBS and FFmpeg send), or a bare
    /// `onMetaData {...}`, from the publisher on its stream; anything else,
    /// including either without its object, is ignored.
    fn data_received(&mut self, values: &[Amf0Value], stream_id: u32) {
        let Role::Publishing {
            publisher,
            stream_id: publishing,
        } = &self.role
        else {
            return;
        };
        if *publishing != stream_id {
            return;
        }
        let values = match values.first().and_then(Amf0Value::as_str) {
            Some("@setDataFrame") => &values[1..],
            _ => values,
        };
        if values.first().and_then(Amf0Value::as_str) != Some("onMetaData") {
            return;
        }
        if let Some(properties) = values.get(1).and_then(Amf0Value::properties) {
            publisher.set_metadata(metadata_from(properties));
        }
    }

    fn media_received(
        &mut self,
        track: Track,
        message: &Message,
        now: Instant,
    ) -> Result<(), RtmpError> {
        if let Some(closes_at) = self.closes_at() {
            if now < closes_at {
                return Ok(());
            }
            return self.take_refusal().map_or(Ok(()), Err);
        }
        let Role::Publishing {
            publisher,
            stream_id,
        } = &mut self.role
        else {
            return Ok(());
        };
        if *stream_id != message.stream_id {
            return Ok(());
        }
        let frame = match IncomingFrame::from_flv(track, message.timestamp, &message.payload) {
            Ok(frame) => frame,
            Err(source) => {
                let stream_id = *stream_id;
                let description = source.to_string();
                let error = RtmpError::Media {
                    stream: publisher.stream_name().to_string(),
                    source,
                };
                warn!(peer = %self.peer, "{error}");
                // The encoder shows the status's description: it carries the fix.
                self.send_command(
                    stream_id,
                    &commands::error_status("NetStream.Publish.Failed", &description),
                );
                self.role = Role::Refused {
                    stream_id,
                    closes_at: now + REFUSED_GRACE,
                    error: Box::new(error),
                };
                return Ok(());
            }
        };
        if let Some(frame) = frame {
            publisher.send(frame);
        }
        Ok(())
    }

    fn send_control(&mut self, type_id: u8, payload: Vec<u8>) {
        chunk::push_message(
            &mut self.output,
            CONTROL_CSID,
            type_id,
            0,
            0,
            &payload.into(),
            CHUNK_SIZE as usize,
        );
    }

    fn send_user_control(&mut self, event: u16, value: u32) {
        let mut payload = event.to_be_bytes().to_vec();
        payload.extend_from_slice(&value.to_be_bytes());
        self.send_control(reader::USER_CONTROL, payload);
    }

    fn send_command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        chunk::push_message(
            &mut self.output,
            COMMAND_CSID,
            reader::AMF0_COMMAND,
            stream_id,
            0,
            &amf0::encode(values).into(),
            CHUNK_SIZE as usize,
        );
    }
}

/// The `cluster_secret` of a play name's query, if it has one.
fn cluster_credential(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("cluster_secret="))
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    let bytes = bytes.get(..4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Enough of a key to tell which one was tried, never the key.
fn key_hint(key: &str) -> String {
    let prefix: String = key.chars().take(3).collect();
    format!("{prefix}… ({} chars)", key.chars().count())
}

/// The fields of `onMetaData` Tinsel shows (FLV spec E.5); numbers of the
/// wrong type are left out, and `as` saturates what is out of range.
fn metadata_from(properties: &[(String, Amf0Value)]) -> Metadata {
    let mut metadata = Metadata::default();
    for (key, value) in properties {
        let number = value.as_number();
        let whole = number.map(|n| n as u32);
        match key.as_str() {
            "width" => metadata.width = whole.or(metadata.width),
            "height" => metadata.height = whole.or(metadata.height),
            "framerate" => metadata.frame_rate = number.map(|n| n as f32).or(metadata.frame_rate),
            "videocodecid" => metadata.video_codec_id = whole.or(metadata.video_codec_id),
            "videodatarate" => metadata.video_kbps = whole.or(metadata.video_kbps),
            "audiocodecid" => metadata.audio_codec_id = whole.or(metadata.audio_codec_id),
            "audiodatarate" => metadata.audio_kbps = whole.or(metadata.audio_kbps),
            "audiosamplerate" => {
                metadata.audio_sample_rate = whole.or(metadata.audio_sample_rate);
            }
            "audiochannels" => metadata.audio_channels = whole.or(metadata.audio_channels),
            "encoder" => {
                if let Some(encoder) = value.as_str() {
                    metadata.encoder = Some(excerpt(encoder, ENCODER_CHARS));
                }
            }
            _ => {}
        }
    }
    metadata
}

/// Queues `onMetaData` (FLV spec E.5) for a player.
///
/// Always at timestamp 0: FFmpeg's FLV reader takes script data at any other
/// time for a subtitle packet and adds a phantom text track.
fn push_metadata(output: &mut BufList, stream_id: u32, metadata: &Metadata) {
    let mut properties = Vec::new();
    let mut number = |key: &str, value: Option<f64>| {
        if let Some(value) = value {
            properties.push((key.to_string(), Amf0Value::Number(value)));
        }
    };
    number("width", metadata.width.map(f64::from));
    number("height", metadata.height.map(f64::from));
    number("framerate", metadata.frame_rate.map(f64::from));
    number("videocodecid", metadata.video_codec_id.map(f64::from));
    number("videodatarate", metadata.video_kbps.map(f64::from));
    number("audiocodecid", metadata.audio_codec_id.map(f64::from));
    number("audiodatarate", metadata.audio_kbps.map(f64::from));
    number("audiosamplerate", metadata.audio_sample_rate.map(f64::from));
    number("audiochannels", metadata.audio_channels.map(f64::from));
    if let Some(channels) = metadata.audio_channels {
        properties.push(("stereo".to_string(), Amf0Value::Boolean(channels > 1)));
    }
    if let Some(encoder) = &metadata.encoder {
        properties.push(("encoder".to_string(), Amf0Value::String(encoder.clone())));
    }
    let values = [
        Amf0Value::String("onMetaData".to_string()),
        Amf0Value::Object(properties),
    ];
    chunk::push_message(
        output,
        chunk::DATA_CSID,
        chunk::MSG_DATA,
        stream_id,
        0,
        &amf0::encode(&values).into(),
        CHUNK_SIZE as usize,
    );
}

/// The stream key [`fuzz_session`] publishes with.
#[doc(hidden)]
pub const FUZZ_KEY: &str = "fuzz-key-0123456789";

/// Feeds `data` to a fresh session, as the bytes after a handshake, for a
/// cargo-fuzz target: a `Config` built in memory (one stream, `tree`, with
/// [`FUZZ_KEY`]) and a hub, no data dir, no files, no sockets. The first byte
/// picks the size of the pieces the rest is fed in, so that splits inside
/// headers are covered too. Returns nothing and must never panic.
#[doc(hidden)]
pub fn fuzz_session(data: &[u8]) {
    use std::sync::OnceLock;
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let args = crate::config::ServeArgs {
            streams: vec![format!("tree={FUZZ_KEY}")],
            data_dir: Some("/nonexistent/tinsel-fuzz".into()),
            ..Default::default()
        };
        let (config, _) = Config::merge(&args, crate::config::RawConfig::default())
            .expect("the fuzz config checks out");
        Arc::new(config)
    });
    let hub = StreamHub::new(["tree"], crate::media::hub::HubSettings::default());
    let peer: SocketAddr = "127.0.0.1:1".parse().expect("a socket address");
    let mut session = RtmpSession::new(peer, Arc::clone(config), hub);
    let now = Instant::now();
    // The original (non-digest) handshake: C0, then C1 and C2 of zeros.
    let mut handshake = vec![3u8];
    handshake.resize(1 + 2 * 1536, 0);
    if session.handle_input(&handshake, now).is_err() {
        return;
    }
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    for part in rest.chunks(usize::from(piece).max(1)) {
        if session.handle_input(part, now).is_err() {
            return;
        }
        let _ = session.poll_output();
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, Bytes};

    use super::*;

    /// Generous limits for reading what the session sends.
    const OUR_OUTPUT: ChunkLimits = ChunkLimits {
        max_chunk_size: 1 << 20,
        max_message_bytes: 1 << 24,
        max_command_bytes: 1 << 24,
        max_chunk_streams: 64,
        max_buffered_bytes: 1 << 26,
    };

    /// A client in memory, past the handshake, and what the session answers.
    struct Peer {
        session: RtmpSession,
        hub: StreamHub,
        answers: ChunkReader,
    }

    impl Peer {
        fn new() -> Peer {
            Peer::on(StreamHub::new(
                ["tree"],
                crate::media::hub::HubSettings::default(),
            ))
        }

        /// A client of `hub`, which other clients may share.
        fn on(hub: StreamHub) -> Peer {
            let config = Arc::new(test_config());
            let mut session =
                RtmpSession::new("127.0.0.1:5000".parse().unwrap(), config, hub.clone());
            let mut handshake = vec![3u8];
            handshake.resize(1 + 2 * 1536, 0);
            session.handle_input(&handshake, Instant::now()).unwrap();
            let mut peer = Peer {
                session,
                hub,
                answers: ChunkReader::new(OUR_OUTPUT),
            };
            let out = peer.output();
            // S0, S1 and S2, then Set Chunk Size.
            let mut rest = &out[1 + 2 * 1536..];
            assert_eq!(peer.answers.read(&mut rest).unwrap(), None);
            assert_eq!(peer.answers.chunk_size(), CHUNK_SIZE);
            peer
        }

        fn output(&mut self) -> Vec<u8> {
            let Some(mut out) = self.session.poll_output() else {
                return Vec::new();
            };
            let mut bytes = vec![0; out.remaining()];
            out.copy_to_slice(&mut bytes);
            self.session.recycle(out);
            bytes
        }

        /// Sends one message in chunks of 128 bytes, the size a peer starts with.
        fn send(&mut self, type_id: u8, stream_id: u32, payload: &[u8]) -> Result<(), RtmpError> {
            self.send_at(type_id, stream_id, payload, Instant::now())
        }

        fn send_at(
            &mut self,
            type_id: u8,
            stream_id: u32,
            payload: &[u8],
            now: Instant,
        ) -> Result<(), RtmpError> {
            let mut out = BufList::default();
            let csid = if type_id == reader::AUDIO { 4 } else { 3 };
            let payload = Bytes::copy_from_slice(payload);
            chunk::push_message(&mut out, csid, type_id, stream_id, 0, &payload, 128);
            let mut bytes = vec![0; out.remaining()];
            out.copy_to_slice(&mut bytes);
            self.session.handle_input(&bytes, now)
        }

        fn command(&mut self, stream_id: u32, values: &[Amf0Value]) -> Result<(), RtmpError> {
            self.send(reader::AMF0_COMMAND, stream_id, &amf0::encode(values))
        }

        /// The messages the session sent since the last call.
        fn answers(&mut self) -> Vec<Message> {
            let out = self.output();
            let mut input = &out[..];
            let mut messages = Vec::new();
            while let Some(message) = self.answers.read(&mut input).unwrap() {
                messages.push(message);
            }
            messages
        }

        /// The commands among the answers: (stream id, values).
        fn commands(&mut self) -> Vec<(u32, Vec<Amf0Value>)> {
            self.answers()
                .into_iter()
                .filter(|m| m.type_id == reader::AMF0_COMMAND)
                .map(|m| {
                    (
                        m.stream_id,
                        amf0::decode_all(&m.payload, &COMMAND_LIMITS).unwrap(),
                    )
                })
                .collect()
        }

        fn connect(&mut self) {
            self.command(0, &connect("live")).unwrap();
            let commands = self.commands();
            assert_eq!(commands.last().unwrap().1[0], string("_result"));
        }

        fn create_stream(&mut self) -> u32 {
            self.command(0, &call("createStream", 2.0, &[])).unwrap();
            let commands = self.commands();
            let values = &commands.last().unwrap().1;
            assert_eq!(values[0], string("_result"), "{values:?}");
            values[3].as_number().unwrap() as u32
        }

        fn publish(&mut self, key: &str) -> Vec<(u32, Vec<Amf0Value>)> {
            self.connect();
            let id = self.create_stream();
            self.command(id, &call("publish", 5.0, &[string(key), string("live")]))
                .unwrap();
            self.commands()
        }
    }

    fn test_config() -> Config {
        let args = crate::config::ServeArgs {
            streams: vec![format!("tree={FUZZ_KEY}")],
            data_dir: Some("/nonexistent/tinsel-test".into()),
            ..Default::default()
        };
        Config::merge(&args, crate::config::RawConfig::default())
            .unwrap()
            .0
    }

    fn string(text: &str) -> Amf0Value {
        Amf0Value::String(text.into())
    }

    fn call(name: &str, transaction: f64, args: &[Amf0Value]) -> Vec<Amf0Value> {
        let mut values = vec![
            string(name),
            Amf0Value::Number(transaction),
            Amf0Value::Null,
        ];
        values.extend_from_slice(args);
        values
    }

    fn connect(app: &str) -> Vec<Amf0Value> {
        vec![
            string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::Object(vec![
                ("app".into(), string(app)),
                ("tcUrl".into(), string("rtmp://127.0.0.1/live")),
            ]),
        ]
    }

    /// The description in the status object of an answer.
    fn description(values: &[Amf0Value]) -> String {
        values
            .iter()
            .find_map(|v| v.get("description").and_then(Amf0Value::as_str))
            .unwrap_or_default()
            .to_string()
    }

    fn code(values: &[Amf0Value]) -> String {
        values
            .iter()
            .find_map(|v| v.get("code").and_then(Amf0Value::as_str))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn key_hint_hides_the_key() {
        let hint = key_hint("abcdefghijklmnop");
        assert_eq!(hint, "abc… (16 chars)");
    }

    #[test]
    fn ffmpeg_publish_sequence_reaches_the_hub() {
        let mut peer = Peer::new();
        let mut viewer = peer.hub.subscribe("tree", Join::CatchUp).unwrap();
        peer.command(0, &connect("live")).unwrap();
        let answers = peer.answers();
        let types: Vec<u8> = answers.iter().map(|m| m.type_id).collect();
        assert_eq!(
            types,
            [
                reader::WINDOW_ACK_SIZE,
                reader::USER_CONTROL,
                reader::SET_PEER_BANDWIDTH,
                reader::AMF0_COMMAND
            ]
        );
        let result = amf0::decode_all(&answers[3].payload, &COMMAND_LIMITS).unwrap();
        assert_eq!(result[0], string("_result"));
        assert_eq!(result[1], Amf0Value::Number(1.0));
        assert_eq!(code(&result), "NetConnection.Connect.Success");
        peer.command(0, &call("releaseStream", 2.0, &[string(FUZZ_KEY)]))
            .unwrap();
        peer.command(0, &call("FCPublish", 3.0, &[string(FUZZ_KEY)]))
            .unwrap();
        assert_eq!(peer.commands(), [], "nothing depends on an answer to these");
        let id = peer.create_stream();
        assert_eq!(id, 1);
        peer.command(
            id,
            &call("publish", 5.0, &[string(FUZZ_KEY), string("live")]),
        )
        .unwrap();
        let answers = peer.answers();
        assert_eq!(answers[0].type_id, reader::USER_CONTROL);
        assert_eq!(
            &answers[0].payload[..],
            &[0, 0, 0, 0, 0, 1],
            "stream begin 1"
        );
        let status = amf0::decode_all(&answers[1].payload, &COMMAND_LIMITS).unwrap();
        assert_eq!(answers[1].stream_id, id);
        assert_eq!(code(&status), "NetStream.Publish.Start");
        assert!(peer.session.is_publishing());

        let metadata = [
            string("@setDataFrame"),
            string("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(1280.0)),
                ("height".into(), Amf0Value::Number(720.0)),
                ("framerate".into(), Amf0Value::Number(30.0)),
                ("audiochannels".into(), string("two: the wrong type")),
                ("encoder".into(), string("Lavf61")),
            ]),
        ];
        peer.send(reader::AMF0_DATA, id, &amf0::encode(&metadata))
            .unwrap();
        let metadata = peer.hub.metadata("tree").unwrap().unwrap();
        assert_eq!((metadata.width, metadata.height), (Some(1280), Some(720)));
        assert_eq!(metadata.frame_rate, Some(30.0));
        assert_eq!(metadata.audio_channels, None);
        assert_eq!(metadata.encoder.as_deref(), Some("Lavf61"));

        peer.send(reader::AUDIO, id, &[0xaf, 0, 0x12, 0x10])
            .unwrap();
        let frame = viewer.try_recv().expect("the AAC config reaches viewers");
        assert!(frame.config && frame.track == Track::Audio);

        peer.command(0, &call("FCUnpublish", 6.0, &[string(FUZZ_KEY)]))
            .unwrap();
        peer.command(0, &call("deleteStream", 7.0, &[Amf0Value::Number(1.0)]))
            .unwrap();
        assert!(!peer.session.is_publishing());
        assert!(!peer.hub.snapshot("tree", Instant::now()).unwrap().live);
    }

    #[test]
    fn media_on_another_stream_or_before_publishing_never_reaches_the_hub() {
        let mut peer = Peer::new();
        let mut viewer = peer.hub.subscribe("tree", Join::CatchUp).unwrap();
        peer.send(reader::AUDIO, 1, &[0xaf, 0, 0x12, 0x10]).unwrap();
        peer.connect();
        let id = peer.create_stream();
        peer.send(reader::AUDIO, id, &[0xaf, 0, 0x12, 0x10])
            .unwrap();
        peer.command(id, &call("publish", 5.0, &[string(FUZZ_KEY)]))
            .unwrap();
        peer.send(reader::AUDIO, id + 1, &[0xaf, 0, 0x12, 0x10])
            .unwrap();
        assert!(viewer.try_recv().is_none());
        // A publisher's video may be large; before publishing, nothing may.
        let mut other = Peer::new();
        let err = other
            .send(reader::VIDEO, 1, &vec![0x17; 100_000])
            .unwrap_err();
        assert!(err.is_refusal(), "{err}");
    }

    #[test]
    fn wrong_application_is_refused_with_the_right_url() {
        let mut peer = Peer::new();
        peer.command(0, &connect("vod")).unwrap();
        let commands = peer.commands();
        let (_, values) = commands.last().unwrap();
        assert_eq!(values[0], string("_error"));
        assert_eq!(code(values), "NetConnection.Connect.Rejected");
        assert_eq!(
            description(values),
            "unknown application \"vod\"; use rtmp://HOST:1935/live"
        );
        // A huge application name is cut in the answer.
        peer.command(0, &connect(&"x".repeat(50_000))).unwrap();
        let commands = peer.commands();
        assert!(description(&commands[0].1).len() < 200);
    }

    #[test]
    fn connect_with_no_values_or_wrong_types_is_refused_not_a_panic() {
        let mut peer = Peer::new();
        peer.command(0, &[string("connect")]).unwrap();
        let commands = peer.commands();
        assert_eq!(code(&commands[0].1), "NetConnection.Connect.Rejected");
        peer.command(0, &[string("connect"), string("x"), Amf0Value::Number(1.0)])
            .unwrap();
        assert_eq!(
            code(&peer.commands()[0].1),
            "NetConnection.Connect.Rejected"
        );
        // Commands that are no commands at all are ignored.
        peer.command(0, &[]).unwrap();
        peer.command(0, &[Amf0Value::Null, Amf0Value::Null])
            .unwrap();
        peer.command(0, &[string("publish")]).unwrap();
        peer.command(0, &[string("play")]).unwrap();
        peer.command(0, &[string("deleteStream")]).unwrap();
        peer.command(0, &[string("closeStream")]).unwrap();
        assert!(!peer.session.is_publishing());
    }

    #[test]
    fn create_stream_needs_connect_first() {
        let mut peer = Peer::new();
        peer.command(0, &call("createStream", 2.0, &[])).unwrap();
        let commands = peer.commands();
        assert_eq!(commands[0].1[0], string("_error"));
        assert_eq!(
            description(&commands[0].1),
            "createStream before connect; connect first"
        );
    }

    #[test]
    fn ten_thousand_create_streams_end_the_connection_at_the_limit() {
        let mut peer = Peer::new();
        peer.connect();
        let mut created = 0;
        let mut ended = None;
        for i in 0..10_000 {
            match peer.command(0, &call("createStream", f64::from(i), &[])) {
                Ok(()) => created += 1,
                Err(err) => {
                    ended = Some(err);
                    break;
                }
            }
        }
        assert_eq!(created, 16);
        let err = ended.expect("the connection ends");
        assert!(
            matches!(err, RtmpError::TooManyStreams { max: 16 }),
            "{err}"
        );
        assert!(err.is_refusal());
        assert!(peer.session.streams.len() <= 16);
    }

    #[test]
    fn deleted_streams_free_their_place() {
        let mut peer = Peer::new();
        peer.connect();
        for _ in 0..100 {
            let id = peer.create_stream();
            peer.command(
                0,
                &call("deleteStream", 0.0, &[Amf0Value::Number(f64::from(id))]),
            )
            .unwrap();
        }
        assert!(peer.session.streams.is_empty());
    }

    #[test]
    fn set_data_frame_without_its_parts_is_ignored() {
        let mut peer = Peer::new();
        peer.publish(FUZZ_KEY);
        for values in [
            vec![string("@setDataFrame")],
            vec![string("@setDataFrame"), string("onMetaData")],
            vec![
                string("@setDataFrame"),
                string("onMetaData"),
                Amf0Value::Number(1.0),
            ],
            vec![
                string("@setDataFrame"),
                Amf0Value::Null,
                Amf0Value::Object(vec![]),
            ],
            vec![],
            vec![Amf0Value::Number(3.0)],
        ] {
            peer.send(reader::AMF0_DATA, 1, &amf0::encode(&values))
                .unwrap();
        }
        assert!(peer.session.is_publishing());
        assert_eq!(peer.hub.metadata("tree").unwrap(), None);
    }

    #[test]
    fn unknown_key_and_second_publisher_are_refused() {
        let mut peer = Peer::new();
        let commands = peer.publish("not-the-key");
        let (stream_id, values) = commands.last().unwrap();
        assert_eq!(*stream_id, 1);
        assert_eq!(values[0], string("_error"));
        assert_eq!(values[1], Amf0Value::Number(0.0));
        assert_eq!(code(values), "NetStream.Publish.BadName");
        assert!(description(values).starts_with("unknown stream key"));
        assert!(!peer.session.is_publishing());

        let mut publisher = Peer::on(peer.hub.clone());
        publisher.publish(FUZZ_KEY);
        assert!(publisher.session.is_publishing());
        let mut second = Peer::on(peer.hub.clone());
        let commands = second.publish(FUZZ_KEY);
        let (_, values) = commands.last().unwrap();
        assert_eq!(values[0], string("_error"));
        assert!(!second.session.is_publishing());
        assert!(publisher.session.is_publishing());
    }

    #[test]
    fn a_publisher_with_mp3_audio_is_told_why_then_closed() {
        let mut peer = Peer::new();
        peer.publish(FUZZ_KEY);
        assert!(peer.session.is_publishing());
        let start = Instant::now();
        // Sound format 2 (MP3), as FFmpeg's -c:a libmp3lame sends it.
        let mp3 = [0x2f, 0xff, 0xfb, 0x90, 0x64];
        peer.send_at(reader::AUDIO, 1, &mp3, start).unwrap();
        let commands = peer.commands();
        let (stream_id, values) = commands.last().unwrap();
        assert_eq!(*stream_id, 1);
        assert_eq!(values[0], string("onStatus"));
        assert_eq!(code(values), "NetStream.Publish.Failed");
        assert_eq!(
            description(values),
            "audio format 2 is not AAC (10); set the audio encoder to AAC"
        );
        assert!(!peer.session.is_publishing());
        assert!(!peer.hub.snapshot("tree", start).unwrap().live);
        // The encoder keeps sending until it reads the status: dropped.
        peer.send_at(reader::AUDIO, 1, &mp3, start + Duration::from_secs(1))
            .unwrap();
        assert_eq!(peer.commands(), []);
        let err = peer
            .send_at(reader::AUDIO, 1, &mp3, start + REFUSED_GRACE)
            .unwrap_err();
        assert!(err.is_refusal(), "logged once, as it was refused: {err}");
        assert!(err.to_string().contains("audio format 2"), "{err}");
    }

    #[test]
    fn names_over_the_limit_or_with_control_characters_are_refused() {
        let mut peer = Peer::new();
        let commands = peer.publish(&"k".repeat(2000));
        let (_, values) = commands.last().unwrap();
        assert_eq!(code(values), "NetStream.Publish.BadName");
        assert_eq!(
            description(values),
            "the stream name (or key) is longer than 1024 bytes (rtmp_max_name_bytes)"
        );
        peer.command(1, &call("play", 0.0, &[string("tree\r\nFAKE LOG LINE")]))
            .unwrap();
        let commands = peer.commands();
        assert_eq!(code(&commands[0].1), "NetStream.Play.StreamNotFound");
        assert!(description(&commands[0].1).contains("control characters"));
        assert!(peer.session.subscription().is_none());
    }

    #[test]
    fn a_name_of_a_megabyte_ends_the_connection_before_it_is_buffered() {
        let mut peer = Peer::new();
        peer.connect();
        let id = peer.create_stream();
        let err = peer
            .command(id, &call("publish", 5.0, &[string(&"k".repeat(1 << 20))]))
            .unwrap_err();
        assert!(
            matches!(&err, RtmpError::Chunk(ChunkError::MessageTooLarge { .. })),
            "{err}"
        );
        assert_eq!(peer.session.reader.buffered(), 0);
    }

    #[test]
    fn play_answers_on_the_created_stream_without_data_notices() {
        let mut peer = Peer::new();
        peer.connect();
        peer.create_stream();
        let id = peer.create_stream();
        assert_eq!(id, 2);
        peer.command(id, &call("getStreamLength", 3.0, &[string("tree")]))
            .unwrap();
        peer.command(
            id,
            &call("play", 4.0, &[string("tree"), Amf0Value::Number(-2.0)]),
        )
        .unwrap();
        let answers = peer.answers();
        assert!(
            answers.iter().all(|m| m.type_id != reader::AMF0_DATA),
            "no |RtmpSampleAccess or NetStream.Data.Start"
        );
        let codes: Vec<String> = answers
            .iter()
            .filter(|m| m.type_id == reader::AMF0_COMMAND)
            .inspect(|m| assert_eq!(m.stream_id, id, "status on the created stream"))
            .map(|m| code(&amf0::decode_all(&m.payload, &COMMAND_LIMITS).unwrap()))
            .collect();
        assert_eq!(codes, ["NetStream.Play.Reset", "NetStream.Play.Start"]);
        assert!(peer.session.subscription().is_some());
        // A second play on the same connection is refused.
        peer.command(id, &call("play", 5.0, &[string("tree")]))
            .unwrap();
        assert_eq!(peer.commands()[0].1[0], string("_error"));
    }

    #[test]
    fn a_play_the_gate_refuses_gets_play_failed_with_the_reason_and_no_subscription() {
        let mut peer = Peer::new();
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&asked);
        peer.session.set_player_gate(Box::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err("no room for more RTMP viewers".to_string())
        }));
        peer.connect();
        let id = peer.create_stream();
        peer.command(id, &call("play", 4.0, &[string("tree")]))
            .unwrap();
        let commands = peer.commands();
        assert_eq!(commands.len(), 1, "only the refusal: {commands:?}");
        assert_eq!(commands[0].1[0], string("_error"));
        assert_eq!(code(&commands[0].1), "NetStream.Play.Failed");
        assert_eq!(description(&commands[0].1), "no room for more RTMP viewers");
        assert!(peer.session.subscription().is_none());
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A play of a stream that does not exist never asks the gate.
        let id = peer.create_stream();
        peer.command(id, &call("play", 5.0, &[string("nothing-here")]))
            .unwrap();
        assert_eq!(code(&peer.commands()[0].1), "NetStream.Play.StreamNotFound");
        assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn play_needs_a_created_stream_and_a_known_name() {
        let mut peer = Peer::new();
        peer.command(1, &call("play", 0.0, &[string("tree")]))
            .unwrap();
        assert_eq!(
            description(&peer.commands()[0].1),
            "play before connect; connect first"
        );
        peer.connect();
        peer.command(7, &call("play", 0.0, &[string("tree")]))
            .unwrap();
        assert_eq!(
            description(&peer.commands()[0].1),
            "play on stream 7, which createStream did not give out"
        );
        let id = peer.create_stream();
        peer.command(id, &call("play", 0.0, &[string("elsewhere")]))
            .unwrap();
        assert_eq!(code(&peer.commands()[0].1), "NetStream.Play.StreamNotFound");
    }

    #[test]
    fn deep_nesting_in_a_command_ends_the_connection() {
        let mut peer = Peer::new();
        let mut bytes = amf0::encode(&[string("connect"), Amf0Value::Number(1.0)]);
        for _ in 0..10_000 {
            bytes.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        let err = peer.send(reader::AMF0_COMMAND, 0, &bytes).unwrap_err();
        assert!(
            matches!(err, RtmpError::Amf0(Amf0Error::TooDeep { .. })),
            "{err}"
        );
    }

    #[test]
    fn pings_are_answered() {
        let mut peer = Peer::new();
        peer.send(reader::USER_CONTROL, 0, &[0, 6, 0, 0, 0x30, 0x39])
            .unwrap();
        let answers = peer.answers();
        assert_eq!(answers[0].type_id, reader::USER_CONTROL);
        assert_eq!(&answers[0].payload[..], &[0, 7, 0, 0, 0x30, 0x39]);
        // Short user control messages are ignored.
        peer.send(reader::USER_CONTROL, 0, &[0]).unwrap();
        peer.send(reader::USER_CONTROL, 0, &[0, 6, 1]).unwrap();
        assert_eq!(peer.answers(), []);
    }

    #[test]
    fn acknowledgements_go_out_per_the_peers_window() {
        let mut peer = Peer::new();
        peer.send(reader::WINDOW_ACK_SIZE, 0, &1000u32.to_be_bytes())
            .unwrap();
        peer.send(reader::AUDIO, 1, &[0xaf; 1200]).unwrap();
        let answers = peer.answers();
        assert_eq!(answers[0].type_id, reader::ACKNOWLEDGEMENT);
        let sequence = be_u32(&answers[0].payload).unwrap();
        assert!(sequence > 1200, "{sequence}");
    }

    #[test]
    fn the_fuzz_entry_survives_random_input() {
        // A fixed-seed xorshift: the same bytes on every run.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 600) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            fuzz_session(&data);
        }
        // And what a real client sends, cut at every piece size.
        let mut client = Vec::new();
        let mut out = BufList::default();
        for (stream_id, values) in [
            (0, connect("live")),
            (0, call("createStream", 2.0, &[])),
            (1, call("publish", 3.0, &[string(FUZZ_KEY), string("live")])),
        ] {
            chunk::push_message(
                &mut out,
                3,
                20,
                stream_id,
                0,
                &amf0::encode(&values).into(),
                128,
            );
        }
        chunk::push_message(
            &mut out,
            4,
            8,
            1,
            0,
            &Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
            128,
        );
        client.resize(out.remaining(), 0);
        out.copy_to_slice(&mut client);
        for piece in 1..=255u8 {
            let mut data = vec![piece];
            data.extend_from_slice(&client);
            fuzz_session(&data);
        }
    }
}
