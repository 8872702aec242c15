//! One stream's media made ready for WebRTC, once for all its viewers: H.264
//! access units cut into RTP payloads, AAC turned into Opus.
//!
//! The feed keeps the current group of pictures (as payloads) so a new viewer,
//! or one that asks for a keyframe (PLI/FIR), can start at the last keyframe
//! at once instead of waiting up to a keyframe interval.
//!
//! The frames are the publisher's, so each goes through the codec code inside
//! [`contain`]: a panic in a parser or codec library costs that frame, and
//! video waits for the next keyframe. (The task itself is supervised too; see
//! [`crate::supervisor`].)
//!
//! Decoding AAC, resampling and encoding Opus take a few hundred microseconds
//! per frame, about 50 times a second: that runs on a blocking thread of its
//! own per stream, not on the async runtime that every viewer's sends and
//! every request share. Packetizing video is only copies, and stays inline.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::opus::{AacToOpus, OpusError};
use super::packetize::H264Packetizer;
use crate::limits::{refused, warn_every};
use crate::media::codec::{self, VideoParams};
use crate::media::counters::{Output, StreamCounters};
use crate::media::hub::Join;
use crate::media::{Frame, StreamHub, Track};
use crate::supervisor::contain;

/// Largest RTP payload: leaves room for RTP, SRTP and IP/UDP headers in a
/// 1280-byte IPv6 minimum MTU.
pub const RTP_MTU: usize = 1160;
/// Video units a viewer may fall behind before it skips to the next keyframe.
const QUEUE: usize = 512;
/// A GOP longer than this is not kept for newcomers.
const MAX_GOP_UNITS: usize = 1200;
/// Audio frames waiting for the transcoder (about 2 s of AAC) before new
/// ones are dropped.
const AUDIO_QUEUE: usize = 96;

/// Media for the WebRTC viewers of one stream.
#[derive(Debug)]
pub enum Unit {
    Video {
        /// Decode time on the stream's timeline, in milliseconds.
        dts: u64,
        keyframe: bool,
        payloads: Vec<Bytes>,
    },
    Audio {
        /// In 48 kHz units on the stream's timeline.
        timestamp: u64,
        payload: Bytes,
    },
}

impl Unit {
    /// Its RTP payload bytes.
    pub fn bytes(&self) -> usize {
        match self {
            Unit::Video { payloads, .. } => payloads.iter().map(Bytes::len).sum(),
            Unit::Audio { payload, .. } => payload.len(),
        }
    }
}

/// The shared, per-stream side of WebRTC playback.
pub struct Feed {
    tx: broadcast::Sender<Arc<Unit>>,
    state: Mutex<FeedState>,
    /// The stream's totals, which every viewer's session adds to.
    counters: Arc<StreamCounters>,
}

#[derive(Default)]
struct FeedState {
    video: Option<VideoParams>,
    gop: Vec<Arc<Unit>>,
}

/// A viewer's place in a feed: a start (the current GOP) and then live units.
pub struct FeedSubscription {
    pub burst: VecDeque<Arc<Unit>>,
    rx: broadcast::Receiver<Arc<Unit>>,
    skipping: bool,
    counters: Arc<StreamCounters>,
}

impl Feed {
    pub fn new(counters: Arc<StreamCounters>) -> Self {
        Self {
            tx: broadcast::channel(QUEUE).0,
            state: Mutex::new(FeedState::default()),
            counters,
        }
    }

    pub fn counters(&self) -> &StreamCounters {
        &self.counters
    }

    fn lock(&self) -> MutexGuard<'_, FeedState> {
        // The state is consistent between units; a panic elsewhere does not spoil it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The H.264 the stream carries now, for the SDP answer.
    pub fn video(&self) -> Option<VideoParams> {
        self.lock().video.clone()
    }

    pub fn subscribe(&self) -> FeedSubscription {
        let state = self.lock();
        FeedSubscription {
            burst: state.gop.iter().cloned().collect(),
            rx: self.tx.subscribe(),
            skipping: false,
            counters: Arc::clone(&self.counters),
        }
    }

    /// The current GOP again, for a viewer that lost its picture.
    pub fn gop(&self) -> Vec<Arc<Unit>> {
        self.lock().gop.clone()
    }

    fn publish(&self, unit: Unit) {
        let unit = Arc::new(unit);
        let mut state = self.lock();
        if let Unit::Video { keyframe, .. } = &*unit {
            if *keyframe {
                state.gop.clear();
            }
            if !state.gop.is_empty() || *keyframe {
                if state.gop.len() < MAX_GOP_UNITS {
                    state.gop.push(Arc::clone(&unit));
                } else {
                    state.gop.clear();
                }
            }
        }
        // An error only means no viewer is watching.
        let _ = self.tx.send(unit);
    }
}

impl FeedSubscription {
    /// The next live unit; `None` when the feed has stopped. A viewer that fell
    /// behind skips to the next keyframe.
    pub async fn recv(&mut self) -> Option<Arc<Unit>> {
        loop {
            match self.rx.recv().await {
                Ok(unit) => {
                    if self.skipping {
                        match &*unit {
                            Unit::Video { keyframe: true, .. } => self.skipping = false,
                            _ => {
                                self.counters.dropped(Output::Webrtc, 1);
                                continue;
                            }
                        }
                    }
                    return Some(unit);
                }
                Err(RecvError::Lagged(missed)) => {
                    self.skipping = true;
                    self.counters.dropped(Output::Webrtc, missed);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Turns the hub's frames for `name` into units until `token` is cancelled.
pub async fn run(hub: StreamHub, name: String, feed: Arc<Feed>, token: CancellationToken) {
    let Ok(mut subscription) = hub.subscribe_internal(&name, Join::AsIs) else {
        return;
    };
    let mut packetizer: Option<H264Packetizer> = None;
    let (audio, audio_rx) = mpsc::channel(AUDIO_QUEUE);
    {
        let (feed, name) = (Arc::clone(&feed), name.clone());
        // Ends when `audio` is dropped, as this task ends.
        tokio::task::spawn_blocking(move || transcode_audio(&feed, &name, audio_rx));
    }
    let mut broken = false;
    loop {
        let frame = tokio::select! {
            () = token.cancelled() => break,
            frame = subscription.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        let handled = contain(|| {
            handle(&feed, &name, frame, &mut packetizer, &audio, &mut broken);
        });
        if let Err(cause) = handled {
            // The frames that refer to a lost one cannot be decoded.
            broken = true;
            refused(
                format_args!("the publisher of {name}"),
                "webrtc_frame_panicked",
                format_args!("a frame crashed the WebRTC feed ({cause}); it was dropped"),
            );
        }
    }
    debug!(stream = %name, "WebRTC feed stopped");
}

fn handle(
    feed: &Feed,
    name: &str,
    frame: Frame,
    packetizer: &mut Option<H264Packetizer>,
    audio: &mpsc::Sender<Frame>,
    broken: &mut bool,
) {
    let body = |skip: usize| {
        frame
            .payload
            .get(skip.min(frame.payload.len())..)
            .unwrap_or_default()
    };
    match (frame.track, frame.config) {
        (Track::Video, true) => {
            let record = body(5);
            *packetizer = match H264Packetizer::new(record, RTP_MTU) {
                Ok(packetizer) => Some(packetizer),
                Err(err) => {
                    warn!(stream = %name, "WebRTC: cannot use the H.264 configuration: {err}");
                    None
                }
            };
            feed.lock().video = codec::video_params(record);
        }
        (Track::Audio, _) => {
            if let Err(mpsc::error::TrySendError::Full(_)) = audio.try_send(frame) {
                warn_every(
                    "webrtc_audio_behind",
                    format_args!(
                        "WebRTC: the Opus encoder of {name} is {AUDIO_QUEUE} frames behind \
                         (the server is short of CPU); an audio frame was dropped"
                    ),
                );
            }
        }
        (Track::Video, false) => {
            let Some(packetizer) = packetizer else { return };
            // After a frame that could not be sent, the frames that refer to
            // it cannot be decoded either: wait for the next keyframe.
            if *broken && !frame.keyframe {
                return;
            }
            match packetizer.packetize(body(5), frame.keyframe) {
                Ok(payloads) => {
                    *broken = false;
                    if !payloads.is_empty() {
                        feed.publish(Unit::Video {
                            dts: frame.dts,
                            keyframe: frame.keyframe,
                            payloads,
                        });
                    }
                }
                Err(err) => {
                    *broken = true;
                    warn_every(
                        "webrtc_video_skipped",
                        format_args!(
                            "WebRTC: a video frame of {name} cannot be sent ({err}); \
                             WebRTC viewers skip to the next keyframe"
                        ),
                    );
                }
            }
        }
    }
}

/// AAC frames of one stream to Opus units, until the feed task drops its end
/// of `frames`. Runs on a blocking thread.
fn transcode_audio(feed: &Feed, name: &str, mut frames: mpsc::Receiver<Frame>) {
    let mut transcoder: Option<AacToOpus> = None;
    while let Some(frame) = frames.blocking_recv() {
        let body = frame
            .payload
            .get(2.min(frame.payload.len())..)
            .unwrap_or_default();
        let handled = contain(|| {
            if frame.config {
                transcoder = match AacToOpus::new(body) {
                    Ok(transcoder) => Some(transcoder),
                    Err(err) => {
                        warn!(stream = %name, "WebRTC viewers get no sound: {err}");
                        None
                    }
                };
                return;
            }
            let Some(transcoder) = &mut transcoder else {
                return;
            };
            match transcoder.push(body, frame.dts) {
                Ok(packets) => {
                    for packet in packets {
                        feed.publish(Unit::Audio {
                            timestamp: packet.timestamp,
                            payload: packet.data,
                        });
                    }
                }
                Err(err @ OpusError::Panicked { .. }) => {
                    refused(
                        format_args!("the publisher of {name}"),
                        "aac_frame_panicked",
                        err,
                    );
                }
                Err(err) => warn_every(
                    "webrtc_audio_skipped",
                    format_args!(
                        "WebRTC: an audio frame of {name} cannot be turned into Opus ({err}); \
                         WebRTC viewers hear a gap"
                    ),
                ),
            }
        });
        if let Err(cause) = handled {
            refused(
                format_args!("the publisher of {name}"),
                "webrtc_frame_panicked",
                format_args!("an audio frame crashed the Opus encoder ({cause}); it was dropped"),
            );
        }
    }
}
