//! RTMP out to another server, over rml_rtmp's client session: dial,
//! handshake and `connect`, then `publish` (a push to YouTube) or `play` (an
//! edge pulling from its origin), with the other side's own messages
//! (window acknowledgements, pings) read and answered alongside.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rml_amf0::Amf0Value;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent,
    ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::media::frame::{Frame, Track};
use crate::media::hub::Metadata;

/// A write that makes no progress for this long means the target is gone.
const WRITE_STALL: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach {addr}: {source}")]
    Dial {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("the target closed the connection")]
    Closed,
    #[error("no progress sending for {0:?}; the target stopped reading")]
    Stalled(Duration),
    #[error("RTMP handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("RTMP session error: {0}")]
    Session(#[from] ClientSessionError),
    #[error("the target refused: {0}")]
    Refused(String),
}

/// RTMP's port when a URL names none.
pub const DEFAULT_PORT: u16 = 1935;

/// The host and port of a URL's authority: `host`, `host:port`, `[v6]` or
/// `[v6]:port`.
///
/// # Errors
/// Why not, for a message about the URL.
pub fn split_authority(authority: &str, default_port: u16) -> Result<(&str, u16), &'static str> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or("unclosed [ in the host")?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().map_err(|_| "the port is not a number")?,
        None => default_port,
    };
    if host.is_empty() {
        return Err("no host");
    }
    Ok((host, port))
}

/// Where to connect: host, port, application and the `tcUrl` to announce.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub app: String,
}

impl Endpoint {
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
    }
}

/// A status code a server answers a refused `publish` or `play` with
/// (rml_rtmp passes those on as codes it does not know).
fn is_refusal(code: &str) -> bool {
    code.contains("BadName")
        || code.contains("Failed")
        || code.contains("Rejected")
        || code.contains("NotFound")
}

/// The refusal in an event, if it is one: an `onStatus` with a refusal's
/// code, or an `_error` outside any transaction (Tinsel's own servers and
/// nginx-rtmp answer a refused `play` so), as `code: description`.
fn refusal(event: &ClientSessionEvent) -> Option<String> {
    match event {
        ClientSessionEvent::UnhandleableOnStatusCode { code } if is_refusal(code) => {
            Some(code.clone())
        }
        ClientSessionEvent::UnknownTransactionResultReceived {
            additional_values, ..
        } => additional_values.iter().find_map(|value| {
            let Amf0Value::Object(status) = value else {
                return None;
            };
            let text = |key: &str| match status.get(key) {
                Some(Amf0Value::Utf8String(text)) => Some(text.as_str()),
                _ => None,
            };
            let code = text("code").filter(|code| is_refusal(code))?;
            Some(match text("description") {
                Some(description) => format!("{code}: {description}"),
                None => code.to_string(),
            })
        }),
        _ => None,
    }
}

/// A connection to another RTMP server.
pub struct RtmpClient {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    session: ClientSession,
    input: BytesMut,
    bytes_sent: Arc<AtomicU64>,
}

impl RtmpClient {
    /// Dials and `connect`s; returns once the server accepted.
    ///
    /// # Errors
    /// The server is unreachable, breaks the protocol or refuses the app.
    pub async fn connect(to: &Endpoint, bytes_sent: Arc<AtomicU64>) -> Result<Self, ClientError> {
        let addr = format!("{}:{}", to.host, to.port);
        let socket = TcpStream::connect((to.host.as_str(), to.port))
            .await
            .map_err(|source| ClientError::Dial { addr, source })?;
        socket.set_nodelay(true)?;
        let (mut reader, mut writer) = socket.into_split();
        let leftover = handshake(&mut reader, &mut writer).await?;

        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(to.tc_url());
        let (session, initial) = ClientSession::new(config)?;
        let mut client = Self {
            reader,
            writer,
            session,
            input: BytesMut::with_capacity(16 * 1024),
            bytes_sent,
        };
        client.absorb(initial).await?;
        let results = client.session.handle_input(&leftover)?;
        client.absorb(results).await?;
        let request = client.session.request_connection(to.app.clone())?;
        client.absorb(vec![request]).await?;
        client
            .wait_for(|event| match event {
                ClientSessionEvent::ConnectionRequestAccepted => Ok(true),
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    Err(ClientError::Refused(description))
                }
                _ => Ok(false),
            })
            .await?;
        Ok(client)
    }

    /// Asks to publish under `key`; returns once the server accepted.
    ///
    /// # Errors
    /// The server refused the key, or the connection failed.
    pub async fn publish(&mut self, key: &str) -> Result<(), ClientError> {
        let request = self
            .session
            .request_publishing(key.to_string(), PublishRequestType::Live)?;
        self.absorb(vec![request]).await?;
        self.wait_for(|event| match event {
            ClientSessionEvent::PublishRequestAccepted => Ok(true),
            other => refusal(&other).map_or(Ok(false), |why| Err(ClientError::Refused(why))),
        })
        .await
    }

    /// Asks to play `name`; returns once the server started it. Media then
    /// comes as [`ClientSessionEvent::VideoDataReceived`] and its kin from
    /// [`RtmpClient::handle_input`].
    ///
    /// # Errors
    /// The server refused, or the connection failed.
    pub async fn play(&mut self, name: &str) -> Result<(), ClientError> {
        let request = self.session.request_playback(name.to_string())?;
        self.absorb(vec![request]).await?;
        self.wait_for(|event| match event {
            ClientSessionEvent::PlaybackRequestAccepted => Ok(true),
            other => refusal(&other).map_or(Ok(false), |why| Err(ClientError::Refused(why))),
        })
        .await
    }

    /// Sends the stream's metadata (`@setDataFrame onMetaData`).
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_metadata(&mut self, metadata: &Metadata) -> Result<(), ClientError> {
        let mut out = StreamMetadata::new();
        out.video_width = metadata.width;
        out.video_height = metadata.height;
        out.video_codec_id = metadata.video_codec_id;
        out.video_frame_rate = metadata.frame_rate;
        out.video_bitrate_kbps = metadata.video_kbps;
        out.audio_codec_id = metadata.audio_codec_id;
        out.audio_bitrate_kbps = metadata.audio_kbps;
        out.audio_sample_rate = metadata.audio_sample_rate;
        out.audio_channels = metadata.audio_channels;
        out.audio_is_stereo = metadata.audio_channels.map(|c| c >= 2);
        out.encoder = Some("Tinsel".to_string());
        let packet = self.session.publish_metadata(&out)?;
        self.absorb(vec![packet]).await
    }

    /// Sends one frame as it came from the publisher, at `timestamp` ms.
    ///
    /// # Errors
    /// The connection failed or stalled.
    pub async fn send(&mut self, frame: &Frame, timestamp: u32) -> Result<(), ClientError> {
        let payload: Bytes = frame.payload.clone();
        let timestamp = RtmpTimestamp::new(timestamp);
        let packet = match frame.track {
            Track::Video => self.session.publish_video_data(payload, timestamp, false)?,
            Track::Audio => self.session.publish_audio_data(payload, timestamp, false)?,
        };
        self.absorb(vec![packet]).await
    }

    /// Waits for bytes from the target. Cancel-safe.
    ///
    /// # Errors
    /// The connection closed or failed.
    pub async fn readable(&mut self) -> Result<(), ClientError> {
        self.input.clear();
        if self.reader.read_buf(&mut self.input).await? == 0 {
            return Err(ClientError::Closed);
        }
        Ok(())
    }

    /// Handles what [`RtmpClient::readable`] read: answers pings and the
    /// like, and returns what the server said (media, status codes).
    ///
    /// # Errors
    /// The server broke the protocol, or the connection failed.
    pub async fn handle_input(&mut self) -> Result<Vec<ClientSessionEvent>, ClientError> {
        let input = std::mem::take(&mut self.input);
        let results = self.session.handle_input(&input)?;
        self.input = input;
        let mut events = Vec::new();
        let mut outbound = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::RaisedEvent(event) => events.push(event),
                other => outbound.push(other),
            }
        }
        self.absorb(outbound).await?;
        Ok(events)
    }

    /// Ends publishing or playing politely; the connection closes when this
    /// is dropped.
    pub async fn close(mut self) {
        let ending = self
            .session
            .stop_publishing()
            .or_else(|_| self.session.stop_playback());
        if let Ok(results) = ending {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.absorb(results)).await;
        }
        let _ = self.writer.shutdown().await;
    }

    /// Writes the session's outbound packets.
    async fn absorb(&mut self, results: Vec<ClientSessionResult>) -> Result<(), ClientError> {
        for result in results {
            if let ClientSessionResult::OutboundResponse(packet) = result {
                tokio::time::timeout(WRITE_STALL, self.writer.write_all(&packet.bytes))
                    .await
                    .map_err(|_| ClientError::Stalled(WRITE_STALL))??;
                self.bytes_sent
                    .fetch_add(packet.bytes.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Reads until `done` says the awaited event came.
    async fn wait_for(
        &mut self,
        mut done: impl FnMut(ClientSessionEvent) -> Result<bool, ClientError>,
    ) -> Result<(), ClientError> {
        loop {
            self.readable().await?;
            let input = std::mem::take(&mut self.input);
            let results = self.session.handle_input(&input)?;
            self.input = input;
            let mut finished = false;
            let mut outbound = Vec::new();
            for result in results {
                match result {
                    ClientSessionResult::RaisedEvent(event) => finished |= done(event)?,
                    other => outbound.push(other),
                }
            }
            self.absorb(outbound).await?;
            if finished {
                return Ok(());
            }
        }
    }
}

async fn handshake(
    reader: &mut OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
) -> Result<Vec<u8>, ClientError> {
    let mut handshake = Handshake::new(PeerType::Client);
    writer
        .write_all(&handshake.generate_outbound_p0_and_p1()?)
        .await?;
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let read = reader.read(&mut buf).await?;
        if read == 0 {
            return Err(ClientError::Closed);
        }
        match handshake.process_bytes(&buf[..read])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                writer.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                writer.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}
