//! One push connection: dial, handshake, `connect`, `publish`, then the
//! stream's frames as they come, with the target's own messages (window
//! acknowledgements, pings) read and answered alongside.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
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

use super::target::PushTarget;
use crate::media::frame::{Frame, Track};
use crate::media::hub::Metadata;

/// A write that makes no progress for this long means the target is gone.
const WRITE_STALL: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum RelayError {
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

/// A connection that is publishing.
pub struct Relay {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    session: ClientSession,
    input: BytesMut,
    bytes_sent: Arc<AtomicU64>,
}

impl Relay {
    /// Connects and asks to publish; returns once the target accepted.
    ///
    /// # Errors
    /// The target is unreachable, breaks the protocol or refuses the key.
    pub async fn open(target: &PushTarget, bytes_sent: Arc<AtomicU64>) -> Result<Self, RelayError> {
        let addr = format!("{}:{}", target.host, target.port);
        let socket = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|source| RelayError::Dial { addr, source })?;
        socket.set_nodelay(true)?;
        let (mut reader, mut writer) = socket.into_split();
        let leftover = handshake(&mut reader, &mut writer).await?;

        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(target.tc_url());
        let (session, initial) = ClientSession::new(config)?;
        let mut relay = Self {
            reader,
            writer,
            session,
            input: BytesMut::with_capacity(16 * 1024),
            bytes_sent,
        };
        relay.absorb(initial).await?;
        let results = relay.session.handle_input(&leftover)?;
        relay.absorb(results).await?;
        let request = relay.session.request_connection(target.app.clone())?;
        relay.absorb(vec![request]).await?;
        relay
            .wait_for(|event| match event {
                ClientSessionEvent::ConnectionRequestAccepted => Ok(true),
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    Err(RelayError::Refused(description))
                }
                _ => Ok(false),
            })
            .await?;
        let request = relay
            .session
            .request_publishing(target.key.expose().to_string(), PublishRequestType::Live)?;
        relay.absorb(vec![request]).await?;
        relay
            .wait_for(|event| match event {
                ClientSessionEvent::PublishRequestAccepted => Ok(true),
                // rml_rtmp passes a refusal on as a status code it does not know.
                ClientSessionEvent::UnhandleableOnStatusCode { code }
                    if code.contains("BadName")
                        || code.contains("Failed")
                        || code.contains("Rejected") =>
                {
                    Err(RelayError::Refused(code))
                }
                _ => Ok(false),
            })
            .await?;
        Ok(relay)
    }

    /// Sends the stream's metadata (`@setDataFrame onMetaData`).
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_metadata(&mut self, metadata: &Metadata) -> Result<(), RelayError> {
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
    pub async fn send(&mut self, frame: &Frame, timestamp: u32) -> Result<(), RelayError> {
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
    pub async fn readable(&mut self) -> Result<(), RelayError> {
        self.input.clear();
        if self.reader.read_buf(&mut self.input).await? == 0 {
            return Err(RelayError::Closed);
        }
        Ok(())
    }

    /// Handles what [`Relay::readable`] read: answers pings and the like.
    ///
    /// # Errors
    /// The target broke the protocol or ended publishing.
    pub async fn handle_input(&mut self) -> Result<(), RelayError> {
        let input = std::mem::take(&mut self.input);
        let results = self.session.handle_input(&input)?;
        self.input = input;
        for result in &results {
            if let ClientSessionResult::RaisedEvent(ClientSessionEvent::UnhandleableOnStatusCode {
                code,
            }) = result
                && (code.contains("UnpublishNotify") || code.contains("Publish.BadName"))
            {
                return Err(RelayError::Refused(code.clone()));
            }
        }
        self.absorb(results).await
    }

    /// Ends publishing politely; the connection closes when this is dropped.
    pub async fn close(mut self) {
        if let Ok(results) = self.session.stop_publishing() {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.absorb(results)).await;
        }
        let _ = self.writer.shutdown().await;
    }

    /// Writes the session's outbound packets.
    async fn absorb(&mut self, results: Vec<ClientSessionResult>) -> Result<(), RelayError> {
        for result in results {
            if let ClientSessionResult::OutboundResponse(packet) = result {
                tokio::time::timeout(WRITE_STALL, self.writer.write_all(&packet.bytes))
                    .await
                    .map_err(|_| RelayError::Stalled(WRITE_STALL))??;
                self.bytes_sent
                    .fetch_add(packet.bytes.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Reads until `done` says the awaited event came.
    async fn wait_for(
        &mut self,
        mut done: impl FnMut(ClientSessionEvent) -> Result<bool, RelayError>,
    ) -> Result<(), RelayError> {
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
) -> Result<Vec<u8>, RelayError> {
    let mut handshake = Handshake::new(PeerType::Client);
    writer
        .write_all(&handshake.generate_outbound_p0_and_p1()?)
        .await?;
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let read = reader.read(&mut buf).await?;
        if read == 0 {
            return Err(RelayError::Closed);
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
