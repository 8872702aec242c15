//! One stream pulled from one origin: `play NAME?cluster_secret=...` over
//! RTMP, and every frame that comes published into this node's hub.
//!
//! An origin lets an edge play only a stream that is live there, and sends
//! nothing once its publisher has gone; so a gap in the media ends the pull
//! (and the stream here) and the edge looks again from its first origin,
//! with its viewers still attached to the hub.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use rml_rtmp::sessions::{ClientSessionEvent, StreamMetadata};
use thiserror::Error;

use super::CONNECT_TIMEOUT;
use super::demand::Demand;
use super::settings::{EdgeSettings, Pull};
use crate::media::hub::{IncomingFrame, Metadata};
use crate::media::{Publisher, StreamHub, Track};
use crate::rtmp::client::{ClientError, Endpoint, RtmpClient};

/// No media for this long: the origin's publisher has gone.
const OFFLINE_AFTER: Duration = Duration::from_secs(2);
/// How often a pull checks that it is still wanted and still getting media.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// How a pull ended without an error.
#[derive(Debug)]
pub enum Ended {
    /// Nobody watched for the idle time.
    Unwanted,
    Shutdown,
    /// The origin's stream ended (its publisher left, or it closed).
    StreamEnded,
}

#[derive(Debug, Error)]
pub enum PullError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl PullError {
    /// The origin is up but does not have the stream live.
    pub fn is_not_live(&self) -> bool {
        matches!(self, PullError::Client(ClientError::Refused(code)) if code.contains("StreamNotFound"))
    }
}

/// The name an edge plays: the stream and the cluster's credential.
pub fn play_name(stream: &str, settings: &EdgeSettings) -> String {
    format!("{stream}?cluster_secret={}", settings.secret.expose())
}

/// Pulls `name` from `origin` into `hub` until the origin fails or ends, or
/// (on demand) nobody wants the stream for the idle time.
///
/// # Errors
/// The origin is unreachable, refuses, or the connection fails.
pub async fn run(
    origin: &Endpoint,
    settings: &EdgeSettings,
    name: &str,
    hub: &StreamHub,
    demand: &Demand,
) -> Result<Ended, PullError> {
    let bytes = Arc::new(AtomicU64::new(0));
    let open = async {
        let mut client = RtmpClient::connect(origin, bytes).await?;
        client.play(&play_name(name, settings)).await?;
        Ok::<_, ClientError>(client)
    };
    let mut client = tokio::time::timeout(CONNECT_TIMEOUT, open)
        .await
        .map_err(|_| PullError::Timeout(CONNECT_TIMEOUT))??;
    tracing::info!(stream = name, origin = %format!("{}:{}", origin.host, origin.port), "edge pulling");
    let mut publisher: Option<Publisher> = None;
    let mut metadata: Option<Metadata> = None;
    let mut last_media = Instant::now();
    let mut unwanted_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            read = client.readable() => {
                match read {
                    Ok(()) => {}
                    Err(ClientError::Closed) => return Ok(Ended::StreamEnded),
                    Err(err) => return Err(err.into()),
                }
                for event in client.handle_input().await? {
                    let (track, timestamp, data) = match event {
                        ClientSessionEvent::VideoDataReceived { timestamp, data } => (Track::Video, timestamp, data),
                        ClientSessionEvent::AudioDataReceived { timestamp, data } => (Track::Audio, timestamp, data),
                        ClientSessionEvent::StreamMetadataReceived { metadata: received } => {
                            let received = from_rtmp(&received);
                            if let Some(publisher) = &publisher {
                                publisher.set_metadata(received.clone());
                            }
                            metadata = Some(received);
                            continue;
                        }
                        _ => continue,
                    };
                    // The origin checked every tag before its hub took it; one
                    // that fails here is dropped, as the origin would have.
                    let Ok(Some(frame)) = IncomingFrame::from_flv(track, timestamp.value, &data) else {
                        continue;
                    };
                    last_media = Instant::now();
                    let publisher = match &mut publisher {
                        Some(publisher) => publisher,
                        None => {
                            let Ok(started) = hub.publish(name, Instant::now()) else {
                                // Only an edge's pull publishes here; a second
                                // one for the same stream has nothing to add.
                                return Ok(Ended::StreamEnded);
                            };
                            if let Some(metadata) = &metadata {
                                started.set_metadata(metadata.clone());
                            }
                            publisher.insert(started)
                        }
                    };
                    publisher.send(frame);
                }
            }
            _ = tick.tick() => {
                // The publisher may come back here or on another origin: look
                // again from the first; viewers stay attached meanwhile.
                if last_media.elapsed() >= OFFLINE_AFTER {
                    client.close().await;
                    return Ok(Ended::StreamEnded);
                }
                if settings.pull == Pull::OnDemand && !demand.wanted(name) {
                    let since = *unwanted_since.get_or_insert_with(Instant::now);
                    // `wanted` already counts the idle time after an ask or a
                    // closed page; this covers the last viewer leaving.
                    if since.elapsed() >= demand.idle() {
                        client.close().await;
                        return Ok(Ended::Unwanted);
                    }
                } else {
                    unwanted_since = None;
                }
            }
        }
    }
}

fn from_rtmp(m: &StreamMetadata) -> Metadata {
    Metadata {
        width: m.video_width,
        height: m.video_height,
        frame_rate: m.video_frame_rate,
        video_codec_id: m.video_codec_id,
        video_kbps: m.video_bitrate_kbps,
        audio_codec_id: m.audio_codec_id,
        audio_kbps: m.audio_bitrate_kbps,
        audio_sample_rate: m.audio_sample_rate,
        audio_channels: m.audio_channels,
        encoder: m.encoder.clone(),
    }
}
