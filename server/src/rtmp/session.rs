//! One RTMP connection's logic, free of I/O: bytes in, bytes out.
//!
//! rml_rtmp's `ServerSession` speaks the protocol (handshake aside) and raises
//! events; this maps them onto the hub. A connection becomes either a publisher
//! (OBS) or a player (VLC, ffplay) once it asks to publish or play. The caller
//! owns the socket and the clock: it feeds received bytes to
//! [`RtmpSession::handle_input`], hands frames for a player to
//! [`RtmpSession::push_frame`], and writes out what [`RtmpSession::poll_output`]
//! returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rml_amf0::Amf0Value;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent,
    ServerSessionResult, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use thiserror::Error;
use tracing::{info, warn};

use super::chunk::{self, BufList};
use crate::config::{Config, RTMP_APP};
use crate::media::flv::{self, FlvError};
use crate::media::hub::{IncomingFrame, Join};
use crate::media::{Frame, HubError, Metadata, Publisher, StreamHub, Subscription, Track};

/// The chunk size announced to peers for what we send (nginx-rtmp's default too).
pub const CHUNK_SIZE: u32 = 4096;

#[derive(Debug, Error)]
pub enum RtmpError {
    #[error("RTMP handshake failed: {0:?}")]
    Handshake(rml_rtmp::handshake::HandshakeError),
    #[error("RTMP protocol error: {0}")]
    Protocol(#[from] ServerSessionError),
    #[error("publisher on stream {stream:?} refused: {source}")]
    Media { stream: String, source: FlvError },
}

/// What the connection is doing.
enum Role {
    /// Connected, not yet publishing or playing.
    Idle,
    Publishing {
        publisher: Publisher,
    },
    Playing {
        subscription: Subscription,
        /// The message stream id the player's `createStream` returned; media
        /// must come on it or strict players drop it.
        stream_id: u32,
    },
}

pub struct RtmpSession {
    peer: SocketAddr,
    config: Arc<Config>,
    hub: StreamHub,
    handshake: Option<Handshake>,
    session: Option<ServerSession>,
    role: Role,
    output: BufList,
}

impl RtmpSession {
    pub fn new(peer: SocketAddr, config: Arc<Config>, hub: StreamHub) -> Self {
        Self {
            peer,
            config,
            hub,
            handshake: Some(Handshake::new(PeerType::Server)),
            session: None,
            role: Role::Idle,
            output: BufList::default(),
        }
    }

    /// Takes bytes received from the peer.
    ///
    /// # Errors
    /// A protocol violation, or a publisher sending media Tinsel cannot take;
    /// either way the connection should end (the error says why).
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), RtmpError> {
        if let Some(handshake) = &mut self.handshake {
            match handshake
                .process_bytes(bytes)
                .map_err(RtmpError::Handshake)?
            {
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
                    let config = ServerSessionConfig {
                        chunk_size: CHUNK_SIZE,
                        ..ServerSessionConfig::new()
                    };
                    let (session, results) = ServerSession::new(config)?;
                    self.session = Some(session);
                    self.handle_results(results, now)?;
                    return self.handle_input(&remaining_bytes, now);
                }
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let results = self.session_mut().handle_input(bytes)?;
        self.handle_results(results, now)
    }

    /// Bytes to send to the peer, if any.
    pub fn poll_output(&mut self) -> Option<BufList> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// The stream this connection plays, while it plays one.
    pub fn subscription(&mut self) -> Option<&mut Subscription> {
        match &mut self.role {
            Role::Playing { subscription, .. } => Some(subscription),
            _ => None,
        }
    }

    pub fn is_publishing(&self) -> bool {
        matches!(self.role, Role::Publishing { .. })
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

    fn session_mut(&mut self) -> &mut ServerSession {
        // Only called once the handshake has completed and created the session.
        self.session
            .as_mut()
            .expect("session exists after the handshake")
    }

    fn handle_results(
        &mut self,
        results: Vec<ServerSessionResult>,
        now: Instant,
    ) -> Result<(), RtmpError> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    self.output.push(packet.bytes.into());
                }
                ServerSessionResult::RaisedEvent(event) => self.handle_event(event, now)?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, event: ServerSessionEvent, now: Instant) -> Result<(), RtmpError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name == RTMP_APP {
                    let results = self.session_mut().accept_request(request_id)?;
                    self.handle_results(results, now)?;
                } else {
                    info!(peer = %self.peer, app = %app_name, "refused connection to an unknown application");
                    let text = format!(
                        "unknown application {app_name:?}; use rtmp://HOST:1935/{RTMP_APP}"
                    );
                    self.reject(request_id, "NetConnection.Connect.Rejected", &text)?;
                }
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                self.publish_requested(request_id, &stream_key, now)?;
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Role::Publishing { publisher } = &self.role {
                    info!(peer = %self.peer, stream = publisher.stream_name(), "publisher finished");
                }
                self.role = Role::Idle;
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Role::Publishing { publisher } = &self.role {
                    publisher.set_metadata(from_rml(&metadata));
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.media_received(Track::Video, data, timestamp)?;
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.media_received(Track::Audio, data, timestamp)?;
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                stream_key,
                stream_id,
                ..
            } => {
                self.play_requested(request_id, &stream_key, stream_id, now)?;
            }
            ServerSessionEvent::PlayStreamFinished { .. } => {
                self.role = Role::Idle;
            }
            _ => {}
        }
        Ok(())
    }

    fn reject(&mut self, request_id: u32, code: &str, text: &str) -> Result<(), RtmpError> {
        let results = self.session_mut().reject_request(request_id, code, text)?;
        // A refusal raises no events: its results are only the answer to send.
        for result in results {
            if let ServerSessionResult::OutboundResponse(packet) = result {
                self.output.push(packet.bytes.into());
            }
        }
        Ok(())
    }

    fn publish_requested(
        &mut self,
        request_id: u32,
        key: &str,
        now: Instant,
    ) -> Result<(), RtmpError> {
        let Some(stream) = self.config.stream_for_key(key) else {
            warn!(peer = %self.peer, key = %key_hint(key), "refused publisher: unknown stream key");
            return self.reject(
                request_id,
                "NetStream.Publish.BadName",
                "unknown stream key; copy the key Tinsel printed at first start (or the one in its config)",
            );
        };
        let name = stream.name.clone();
        match self.hub.publish(&name, now) {
            Ok(publisher) => {
                let results = self.session_mut().accept_request(request_id)?;
                self.role = Role::Publishing { publisher };
                info!(peer = %self.peer, stream = %name, "publisher started");
                self.handle_results(results, now)
            }
            Err(err @ HubError::AlreadyPublishing(_)) => {
                warn!(peer = %self.peer, stream = %name, "refused second publisher: {err}");
                self.reject(request_id, "NetStream.Publish.BadName", &err.to_string())
            }
            Err(err) => {
                warn!(peer = %self.peer, stream = %name, "refused publisher: {err}");
                self.reject(request_id, "NetStream.Publish.BadName", &err.to_string())
            }
        }
    }

    fn play_requested(
        &mut self,
        request_id: u32,
        name: &str,
        stream_id: u32,
        now: Instant,
    ) -> Result<(), RtmpError> {
        match self.hub.subscribe(name, Join::CatchUp) {
            Ok(subscription) => {
                let results = self.session_mut().accept_request(request_id)?;
                self.handle_results(without_data_notices(results), now)?;
                info!(peer = %self.peer, stream = %name, "player started");
                self.role = Role::Playing {
                    subscription,
                    stream_id,
                };
                Ok(())
            }
            Err(err) => {
                info!(peer = %self.peer, stream = %name, "refused player: {err}");
                self.reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    &err.to_string(),
                )
            }
        }
    }

    fn media_received(
        &mut self,
        track: Track,
        payload: Bytes,
        timestamp: RtmpTimestamp,
    ) -> Result<(), RtmpError> {
        let Role::Publishing { publisher } = &mut self.role else {
            return Ok(());
        };
        let parsed = match track {
            Track::Video => flv::parse_video(&payload)
                .map(|tag| (tag.keyframe, tag.config, tag.cts, tag.end_of_sequence)),
            Track::Audio => flv::parse_audio(&payload).map(|tag| (false, tag.config, 0, false)),
        };
        let (keyframe, config, cts, end_of_sequence) =
            parsed.map_err(|source| RtmpError::Media {
                stream: publisher.stream_name().to_string(),
                source,
            })?;
        if end_of_sequence {
            return Ok(());
        }
        publisher.send(IncomingFrame {
            track,
            timestamp: timestamp.value,
            cts,
            keyframe,
            config,
            payload,
        });
        Ok(())
    }
}

/// Enough of a key to tell which one was tried, never the key.
fn key_hint(key: &str) -> String {
    let prefix: String = key.chars().take(3).collect();
    format!("{prefix}… ({} chars)", key.chars().count())
}

fn from_rml(metadata: &StreamMetadata) -> Metadata {
    Metadata {
        width: metadata.video_width,
        height: metadata.video_height,
        frame_rate: metadata.video_frame_rate,
        video_codec_id: metadata.video_codec_id,
        video_kbps: metadata.video_bitrate_kbps,
        audio_codec_id: metadata.audio_codec_id,
        audio_kbps: metadata.audio_bitrate_kbps,
        audio_sample_rate: metadata.audio_sample_rate,
        audio_channels: metadata.audio_channels,
        encoder: metadata.encoder.clone(),
    }
}

/// rml_rtmp answers `play` with two AMF0 data messages, `|RtmpSampleAccess` and
/// an `onStatus` of `NetStream.Data.Start`. FFmpeg (and so VLC) turns each into
/// an extra data or subtitle track that breaks `-c copy` remuxing, so they are
/// left out. rml_rtmp puts AMF0 data, and only that, on chunk stream 3; for a
/// player nothing else goes there later (metadata goes out through
/// [`push_metadata`]), so no later header is compressed against a dropped one.
fn without_data_notices(results: Vec<ServerSessionResult>) -> Vec<ServerSessionResult> {
    const AMF0_DATA_CSID: u8 = 3;
    results
        .into_iter()
        .filter(|result| match result {
            ServerSessionResult::OutboundResponse(packet) => packet
                .bytes
                .first()
                .is_none_or(|basic| basic & 0x3f != AMF0_DATA_CSID),
            _ => true,
        })
        .collect()
}

/// Queues `onMetaData` (FLV spec E.5) for a player.
///
/// Always at timestamp 0: FFmpeg's FLV reader takes script data at any other
/// time for a subtitle packet and adds a phantom text track.
fn push_metadata(output: &mut BufList, stream_id: u32, metadata: &Metadata) {
    let mut properties = std::collections::HashMap::new();
    let mut number = |key: &str, value: Option<f64>| {
        if let Some(value) = value {
            properties.insert(key.to_string(), Amf0Value::Number(value));
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
        properties.insert("stereo".to_string(), Amf0Value::Boolean(channels > 1));
    }
    if let Some(encoder) = &metadata.encoder {
        properties.insert(
            "encoder".to_string(),
            Amf0Value::Utf8String(encoder.clone()),
        );
    }
    let values = [
        Amf0Value::Utf8String("onMetaData".to_string()),
        Amf0Value::Object(properties),
    ];
    // Serializing numbers, booleans and strings cannot fail.
    let payload = rml_amf0::serialize(&values.to_vec()).expect("plain AMF0 values serialize");
    chunk::push_message(
        output,
        chunk::DATA_CSID,
        chunk::MSG_DATA,
        stream_id,
        0,
        &payload.into(),
        CHUNK_SIZE as usize,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hint_hides_the_key() {
        let hint = key_hint("abcdefghijklmnop");
        assert_eq!(hint, "abc… (16 chars)");
    }
}
