//! One RTMP player connection: the socket, the handshake and an rml_rtmp
//! `ClientSession`, turned into a stream of classified [`Media`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use rml_amf0::Amf0Value;
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent, ClientSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::flv::{self, Track};

/// Kernel receive buffer asked for on each viewer socket. Large, so that a
/// viewer busy parsing does not look like a slow network to the server; the
/// server, not the load generator, is what is being measured.
const SOCKET_RECV_BUFFER: u32 = 1024 * 1024;
/// Bytes taken from the socket per read.
const READ_CHUNK: usize = 256 * 1024;
const DEFAULT_PORT: u16 = 1935;

/// Where in its life a connection was when something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Opening the TCP connection.
    Dial,
    /// The RTMP handshake (C0..C2 / S0..S2).
    Handshake,
    /// `connect` to the application.
    Connect,
    /// `createStream` and `play`.
    Play,
    /// Receiving media after playback was accepted.
    Media,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Dial => "opening the TCP connection",
            Stage::Handshake => "in the RTMP handshake",
            Stage::Connect => "connecting to the application",
            Stage::Play => "requesting playback",
            Stage::Media => "receiving media",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad RTMP URL {url:?}: {reason}; expected rtmp://HOST[:PORT]/APP/STREAM")]
    BadUrl { url: String, reason: &'static str },
    #[error("could not reach {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server refused the connection while {stage}: {reason}")]
    Refused { stage: Stage, reason: String },
    #[error("timed out after {:.1} s while {stage}", .after.as_secs_f64())]
    Timeout { stage: Stage, after: Duration },
    #[error("the server closed the connection while {stage}")]
    Closed { stage: Stage },
    #[error("socket error while {stage}: {source}")]
    Io {
        stage: Stage,
        #[source]
        source: std::io::Error,
    },
    #[error("RTMP handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("RTMP session error while {stage}: {source}")]
    Session {
        stage: Stage,
        #[source]
        source: ClientSessionError,
    },
}

/// One audio or video message as a player received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub track: Track,
    /// RTMP timestamp, in milliseconds.
    pub timestamp: u32,
    /// Video frame type 1; also set on the AVC sequence header.
    pub keyframe: bool,
    /// AVC or AAC sequence header rather than a frame.
    pub config: bool,
    /// Payload length, FLV tag header included.
    pub len: usize,
    /// When the read that completed this message returned.
    pub received_at: Instant,
}

/// The parts of an `rtmp://` URL a player needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub app: String,
    pub stream: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, LoadError> {
        let bad = |reason| LoadError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| bad("not an rtmp:// URL"))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no application"))?;
        let (app, stream) = path.split_once('/').ok_or_else(|| bad("no stream name"))?;
        if app.is_empty() {
            return Err(bad("empty application"));
        }
        if stream.is_empty() {
            return Err(bad("empty stream name"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        Ok(Target {
            host: host.to_string(),
            port,
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }

    /// `tcUrl` for `connect`: some servers (nginx-rtmp among them) log or
    /// check it.
    fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => DEFAULT_PORT,
    };
    Some((host, port))
}

/// onStatus codes that mean the server will not play the stream.
fn is_refusal(code: &str) -> bool {
    [
        ".Failed",
        ".StreamNotFound",
        ".BadName",
        ".Rejected",
        ".Forbidden",
        ".NotFound",
    ]
    .iter()
    .any(|suffix| code.ends_with(suffix))
}

/// The refusal in an answer to a command ClientSession does not track.
/// rml_rtmp's own server (and so Tinsel) refuses `play` with an `_error`
/// command on transaction 0, which `ClientSession` hands on as an unknown
/// transaction result carrying the status object.
fn refusal_in(values: &[Amf0Value]) -> Option<String> {
    values.iter().find_map(|value| {
        let Amf0Value::Object(properties) = value else {
            return None;
        };
        let text = |key: &str| match properties.get(key) {
            Some(Amf0Value::Utf8String(text)) => text.as_str(),
            _ => "",
        };
        let (code, level, description) = (text("code"), text("level"), text("description"));
        let refused = is_refusal(code) || level == "error" || level == "_error";
        refused.then(|| {
            if description.is_empty() {
                code.to_string()
            } else {
                format!("{code}: {description}")
            }
        })
    })
}

/// Watches the bytes the session sends for the `play` command, which is
/// how the player learns its stream id and the instant play was requested:
/// `ClientSession` builds `play` by itself when `createStream` succeeds and
/// exposes neither.
struct PlayWatch {
    deserializer: ChunkDeserializer,
}

impl PlayWatch {
    fn new() -> PlayWatch {
        PlayWatch {
            deserializer: ChunkDeserializer::new(),
        }
    }

    /// The message stream id of a `play` command in `bytes`, if any.
    fn handle_output(&mut self, bytes: &[u8]) -> Option<u32> {
        let mut input = bytes;
        let mut found = None;
        // Every call consumes at most one message; the session's own output
        // is well formed, so a parse error only means we stop watching.
        while let Ok(Some(payload)) = self.deserializer.get_next_message(input) {
            input = &[];
            match payload.to_rtmp_message() {
                Ok(RtmpMessage::SetChunkSize { size }) => {
                    let _ = self.deserializer.set_max_chunk_size(size as usize);
                }
                Ok(RtmpMessage::Amf0Command { command_name, .. }) if command_name == "play" => {
                    found = Some(payload.message_stream_id);
                }
                _ => {}
            }
        }
        found
    }
}

/// The socket and session shared by the connecting and playing phases.
struct Link {
    socket: TcpStream,
    session: ClientSession,
    input: BytesMut,
    /// Session output not yet written. Kept here rather than written at once
    /// so that a cancelled `next_media` loses nothing.
    outbound: BytesMut,
    pending: VecDeque<Media>,
    /// Set while connecting; dropped once `play` has gone out.
    play_watch: Option<PlayWatch>,
    play: Option<(u32, Instant)>,
}

impl Link {
    fn new(socket: TcpStream, session: ClientSession) -> Link {
        Link {
            socket,
            session,
            input: BytesMut::with_capacity(READ_CHUNK),
            outbound: BytesMut::new(),
            pending: VecDeque::new(),
            play_watch: Some(PlayWatch::new()),
            play: None,
        }
    }

    /// Queues outbound packets and media, and returns the other events.
    fn absorb(
        &mut self,
        results: Vec<ClientSessionResult>,
        received_at: Instant,
    ) -> Vec<ClientSessionEvent> {
        let mut events = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    if let Some(watch) = &mut self.play_watch
                        && let Some(stream_id) = watch.handle_output(&packet.bytes)
                    {
                        self.play = Some((stream_id, Instant::now()));
                        self.play_watch = None;
                    }
                    self.outbound.extend_from_slice(&packet.bytes);
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::VideoDataReceived {
                    timestamp,
                    data,
                }) => {
                    self.pending.push_back(media(
                        Track::Video,
                        timestamp.value,
                        &data,
                        received_at,
                    ));
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::AudioDataReceived {
                    timestamp,
                    data,
                }) => {
                    self.pending.push_back(media(
                        Track::Audio,
                        timestamp.value,
                        &data,
                        received_at,
                    ));
                }
                ClientSessionResult::RaisedEvent(event) => events.push(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        events
    }

    /// Writes out all queued session output. Cancel-safe: `write_buf`
    /// advances `outbound` by what was written.
    async fn flush(&mut self, stage: Stage) -> Result<(), LoadError> {
        while self.outbound.has_remaining() {
            let written = self
                .socket
                .write_buf(&mut self.outbound)
                .await
                .map_err(|source| LoadError::Io { stage, source })?;
            if written == 0 {
                return Err(LoadError::Closed { stage });
            }
        }
        Ok(())
    }

    /// Reads once and feeds the bytes to the session; `Ok(None)` at end of
    /// stream. Cancel-safe: nothing is awaited after the read completes.
    async fn receive(
        &mut self,
        stage: Stage,
    ) -> Result<Option<Vec<ClientSessionEvent>>, LoadError> {
        self.input.clear();
        let read = self
            .socket
            .read_buf(&mut self.input)
            .await
            .map_err(|source| LoadError::Io { stage, source })?;
        if read == 0 {
            return Ok(None);
        }
        let received_at = Instant::now();
        let results = self
            .session
            .handle_input(&self.input)
            .map_err(|source| LoadError::Session { stage, source })?;
        Ok(Some(self.absorb(results, received_at)))
    }

    /// Flushes, then reads until `done` picks a value out of the events.
    async fn wait_for<T>(
        &mut self,
        stage: Stage,
        mut done: impl FnMut(ClientSessionEvent) -> Result<Option<T>, LoadError>,
    ) -> Result<T, LoadError> {
        loop {
            self.flush(stage).await?;
            let Some(events) = self.receive(stage).await? else {
                return Err(LoadError::Closed { stage });
            };
            for event in events {
                if let Some(value) = done(event)? {
                    return Ok(value);
                }
            }
        }
    }
}

fn media(track: Track, timestamp: u32, data: &[u8], received_at: Instant) -> Media {
    let kind = flv::classify(track, data);
    Media {
        track,
        timestamp,
        keyframe: kind.keyframe,
        config: kind.config,
        len: data.len(),
        received_at,
    }
}

/// One RTMP player connection that has been accepted for playback.
pub struct Viewer {
    link: Link,
    connected_at: Instant,
    stream_id: u32,
}

impl Viewer {
    /// Handshake, `connect(app)`, `createStream`, `play(stream)`; returns once
    /// the server has accepted playback (`NetStream.Play.Start`). Media that
    /// arrives before that is kept for [`Viewer::next_media`].
    ///
    /// # Errors
    ///
    /// [`LoadError::BadUrl`] for a malformed URL; [`LoadError::Unreachable`]
    /// when no TCP connection could be made (refused, no route);
    /// [`LoadError::Refused`] when the server rejected `connect` or `play`;
    /// [`LoadError::Timeout`] when the whole sequence took longer than
    /// `timeout`; `Closed`, `Io`, `Handshake` or `Session` otherwise.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Viewer, LoadError> {
        let target = Target::parse(url)?;
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let mut stage = Stage::Dial;
        let attempt = Self::connect_stages(&target, &mut stage);
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(result) => result,
            Err(_) => Err(LoadError::Timeout {
                stage,
                after: started.elapsed(),
            }),
        }
    }

    /// The connection sequence; keeps `stage` current so that a timeout can
    /// say where it struck.
    async fn connect_stages(target: &Target, stage: &mut Stage) -> Result<Viewer, LoadError> {
        *stage = Stage::Dial;
        let socket = dial(target).await?;

        *stage = Stage::Handshake;
        let (socket, leftover) = handshake(socket).await?;

        *stage = Stage::Connect;
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(target.tc_url());
        let (session, initial) =
            ClientSession::new(config).map_err(|source| LoadError::Session {
                stage: *stage,
                source,
            })?;
        let mut link = Link::new(socket, session);
        let now = Instant::now();
        link.absorb(initial, now);
        let results =
            link.session
                .handle_input(&leftover)
                .map_err(|source| LoadError::Session {
                    stage: *stage,
                    source,
                })?;
        // The server speaks only after `connect`, so nothing here can matter.
        link.absorb(results, now);
        let request = link
            .session
            .request_connection(target.app.clone())
            .map_err(|source| LoadError::Session {
                stage: *stage,
                source,
            })?;
        link.absorb(vec![request], now);
        link.wait_for(Stage::Connect, |event| match event {
            ClientSessionEvent::ConnectionRequestAccepted => Ok(Some(())),
            ClientSessionEvent::ConnectionRequestRejected { description } => {
                Err(LoadError::Refused {
                    stage: Stage::Connect,
                    reason: description,
                })
            }
            _ => Ok(None),
        })
        .await?;

        *stage = Stage::Play;
        let request = link
            .session
            .request_playback(target.stream.clone())
            .map_err(|source| LoadError::Session {
                stage: *stage,
                source,
            })?;
        link.absorb(vec![request], Instant::now());
        let outcome = link
            .wait_for(Stage::Play, |event| match event {
                ClientSessionEvent::PlaybackRequestAccepted => Ok(Some(())),
                ClientSessionEvent::UnhandleableOnStatusCode { code } if is_refusal(&code) => {
                    Err(LoadError::Refused {
                        stage: Stage::Play,
                        reason: code,
                    })
                }
                ClientSessionEvent::UnknownTransactionResultReceived {
                    additional_values, ..
                } => match refusal_in(&additional_values) {
                    Some(reason) => Err(LoadError::Refused {
                        stage: Stage::Play,
                        reason,
                    }),
                    None => Ok(None),
                },
                _ => Ok(None),
            })
            .await;
        match outcome {
            Ok(()) => {}
            // rml_rtmp turns an `_error` answer to createStream into this.
            Err(LoadError::Session {
                source: ClientSessionError::CreateStreamFailed,
                ..
            }) => {
                return Err(LoadError::Refused {
                    stage: Stage::Play,
                    reason: "createStream failed".to_string(),
                });
            }
            Err(err) => return Err(err),
        }
        // `play` went out before the server could answer it.
        let Some((stream_id, connected_at)) = link.play else {
            unreachable!("playback was accepted, so `play` was sent and seen");
        };
        Ok(Viewer {
            link,
            connected_at,
            stream_id,
        })
    }

    /// The next audio or video message, skipping metadata and control
    /// messages; `Ok(None)` once the server has closed the connection.
    /// Cancel-safe, so it can sit in a `select!` or under a timeout.
    ///
    /// # Errors
    ///
    /// Socket errors and RTMP protocol errors, as [`LoadError::Io`] and
    /// [`LoadError::Session`].
    pub async fn next_media(&mut self) -> Result<Option<Media>, LoadError> {
        loop {
            // Answers (acknowledgements, pings) go out before anything else,
            // as the server may be waiting for them.
            self.link.flush(Stage::Media).await?;
            if let Some(media) = self.link.pending.pop_front() {
                return Ok(Some(media));
            }
            if self.link.receive(Stage::Media).await?.is_none() {
                return Ok(None);
            }
        }
    }

    /// When `play` was sent.
    pub fn connected_at(&self) -> Instant {
        self.connected_at
    }

    /// The message stream id the server gave in answer to `createStream`.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }
}

async fn dial(target: &Target) -> Result<TcpStream, LoadError> {
    let addr_text = format!("{}:{}", target.host, target.port);
    let unreachable = |source| LoadError::Unreachable {
        addr: addr_text.clone(),
        source,
    };
    let addrs: Vec<_> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(unreachable)?
        .collect();
    let mut last_error = None;
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(unreachable)?;
        // Only a hint: the kernel caps it at net.core.rmem_max.
        let _ = socket.set_recv_buffer_size(SOCKET_RECV_BUFFER);
        match socket.connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last_error = Some(err),
        }
    }
    Err(unreachable(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address found")
    })))
}

/// Runs the client side of the handshake; returns the bytes the server sent
/// after S2, which belong to the session.
async fn handshake(mut socket: TcpStream) -> Result<(TcpStream, Vec<u8>), LoadError> {
    let stage = Stage::Handshake;
    let io = |source| LoadError::Io { stage, source };
    let mut handshake = Handshake::new(PeerType::Client);
    let c0_c1 = handshake.generate_outbound_p0_and_p1()?;
    socket.write_all(&c0_c1).await.map_err(io)?;
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let read = socket.read(&mut buf).await.map_err(io)?;
        if read == 0 {
            return Err(LoadError::Closed { stage });
        }
        match handshake.process_bytes(&buf[..read])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await.map_err(io)?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await.map_err(io)?;
                return Ok((socket, remaining_bytes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_app_stream() {
        let target = Target::parse("rtmp://127.0.0.1:1936/live/tree").unwrap();
        assert_eq!(
            target,
            Target {
                host: "127.0.0.1".into(),
                port: 1936,
                app: "live".into(),
                stream: "tree".into()
            }
        );
        assert_eq!(target.tc_url(), "rtmp://127.0.0.1:1936/live");
    }

    #[test]
    fn port_defaults_to_1935_and_stream_keeps_slashes_and_query() {
        let target = Target::parse("rtmp://example.org/live/a/b?token=1").unwrap();
        assert_eq!(target.port, 1935);
        assert_eq!(target.stream, "a/b?token=1");
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let target = Target::parse("rtmp://[::1]:2000/live/tree").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 2000));
        assert_eq!(Target::parse("rtmp://[::1]/live/tree").unwrap().port, 1935);
    }

    #[test]
    fn rejects_malformed_urls() {
        for url in [
            "http://127.0.0.1/live/tree",
            "rtmp://127.0.0.1",
            "rtmp://127.0.0.1/live",
            "rtmp://127.0.0.1/live/",
            "rtmp://127.0.0.1//tree",
            "rtmp://127.0.0.1:notaport/live/tree",
            "rtmp://:1935/live/tree",
        ] {
            assert!(
                matches!(Target::parse(url), Err(LoadError::BadUrl { .. })),
                "{url} parsed"
            );
        }
    }

    #[test]
    fn refusal_codes() {
        assert!(is_refusal("NetStream.Play.StreamNotFound"));
        assert!(is_refusal("NetStream.Play.Failed"));
        assert!(is_refusal("NetStream.Publish.BadName"));
        assert!(!is_refusal("NetStream.Play.Reset"));
        assert!(!is_refusal("NetStream.Play.PublishNotify"));
        assert!(!is_refusal("NetStream.Data.Start"));
    }

    #[test]
    fn refusal_in_an_error_status_object() {
        let status = |level: &str, code: &str| {
            let mut properties = std::collections::HashMap::new();
            properties.insert("level".to_string(), Amf0Value::Utf8String(level.into()));
            properties.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
            properties.insert(
                "description".to_string(),
                Amf0Value::Utf8String("no such stream".into()),
            );
            vec![Amf0Value::Null, Amf0Value::Object(properties)]
        };
        assert_eq!(
            refusal_in(&status("_error", "NetStream.Play.StreamNotFound")).as_deref(),
            Some("NetStream.Play.StreamNotFound: no such stream")
        );
        assert_eq!(
            refusal_in(&status("error", "Whatever")).as_deref(),
            Some("Whatever: no such stream")
        );
        assert_eq!(refusal_in(&status("status", "NetStream.Play.Reset")), None);
        assert_eq!(refusal_in(&[Amf0Value::Number(1.0)]), None);
    }

    #[test]
    fn play_watch_finds_the_stream_id_of_play() {
        let (mut session, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut watch = PlayWatch::new();
        let ClientSessionResult::OutboundResponse(connect) =
            session.request_connection("live".into()).unwrap()
        else {
            panic!("connect is a packet");
        };
        assert_eq!(watch.handle_output(&connect.bytes), None);

        // The messages rml_rtmp's own ServerSession would send back, built
        // by hand: _result for connect (transaction 1) and createStream (2).
        use rml_rtmp::chunk_io::ChunkSerializer;
        use rml_rtmp::time::RtmpTimestamp;
        let mut server = ChunkSerializer::new();
        let mut reply = |message: RtmpMessage| {
            let payload = message
                .into_message_payload(RtmpTimestamp::new(0), 0)
                .unwrap();
            server.serialize(&payload, false, false).unwrap().bytes
        };
        let connected = reply(RtmpMessage::Amf0Command {
            command_name: "_result".into(),
            transaction_id: 1.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![Amf0Value::Null],
        });
        for result in session.handle_input(&connected).unwrap() {
            if let ClientSessionResult::OutboundResponse(packet) = result {
                assert_eq!(watch.handle_output(&packet.bytes), None);
            }
        }
        let ClientSessionResult::OutboundResponse(create) =
            session.request_playback("tree".into()).unwrap()
        else {
            panic!("createStream is a packet");
        };
        assert_eq!(watch.handle_output(&create.bytes), None);
        let created = reply(RtmpMessage::Amf0Command {
            command_name: "_result".into(),
            transaction_id: 2.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![Amf0Value::Number(7.0)],
        });
        let found: Vec<_> = session
            .handle_input(&created)
            .unwrap()
            .into_iter()
            .filter_map(|result| match result {
                ClientSessionResult::OutboundResponse(packet) => watch.handle_output(&packet.bytes),
                _ => None,
            })
            .collect();
        assert_eq!(found, vec![7]);
    }
}
