//! The stream hub: one publisher and any number of viewers per stream.
//!
//! Each stream has one bounded `broadcast` channel of [`Frame`]s. A frame's
//! payload is a shared `Bytes`, so a viewer costs a reference count per frame,
//! never a copy. The hub keeps what a newcomer needs to start at once: the codec
//! configuration, the metadata and the current group of pictures (GOP) from its
//! keyframe on.
//!
//! A viewer that falls more than the channel's capacity behind is not waited for:
//! the channel overwrites its oldest frames, the viewer learns that it lagged, and
//! it skips to the next keyframe. The publisher never blocks on a viewer.
//!
//! Locking: one `std::sync::Mutex` per stream, held only while a frame is
//! recorded and handed to the channel, or while a viewer takes its snapshot, so
//! the snapshot and the channel position always agree. Nothing awaits under it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tracing::{info, warn};

use super::changes;
use super::codec::{self, AudioParams, VideoParams};
use super::counters::{Output, StreamCounters};
use super::flv::{self, FlvError};
use super::frame::{Frame, Track};
use super::stats::TrackRate;
use super::timeline::{ClockEvent, SessionClock, Timeline};

/// How long B-frames are reported after the last one was seen.
const BFRAMES_MEMORY_MS: u64 = 10_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HubError {
    #[error("no stream named {0:?} is configured")]
    UnknownStream(String),
    #[error("stream {0:?} already has a publisher; the first one keeps the stream")]
    AlreadyPublishing(String),
}

/// How a new viewer's first group of pictures is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// The cached GOP with its frames packed 1 ms apart and ending at the live
    /// edge, so a player decodes through it at once and then plays live, instead
    /// of starting a whole GOP behind. Cached audio is left out (it would play as
    /// a chirp). Streams with B-frames are sent as they are: packing would break
    /// their presentation order.
    CatchUp,
    /// The cached GOP with its original timestamps.
    AsIs,
}

/// Limits of the hub, from the config.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Frames a viewer may fall behind before it skips to the next keyframe.
    pub viewer_queue_frames: usize,
    /// A GOP longer than this is not cached (memory stays bounded whatever the
    /// keyframe interval); newcomers then wait for the next keyframe.
    pub max_gop_frames: usize,
    pub max_gop_bytes: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            viewer_queue_frames: 512,
            max_gop_frames: 1200,
            max_gop_bytes: 32 << 20,
        }
    }
}

/// Stream-level metadata as the publisher announced it (RTMP `onMetaData`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub frame_rate: Option<f32>,
    pub video_codec_id: Option<u32>,
    pub video_kbps: Option<u32>,
    pub audio_codec_id: Option<u32>,
    pub audio_kbps: Option<u32>,
    pub audio_sample_rate: Option<u32>,
    pub audio_channels: Option<u32>,
    pub encoder: Option<String>,
}

/// A frame as a publisher hands it in: the publisher's own timestamp, not yet on
/// the stream's timeline.
#[derive(Debug, Clone)]
pub struct IncomingFrame {
    pub track: Track,
    pub timestamp: u32,
    pub cts: i32,
    pub keyframe: bool,
    pub config: bool,
    pub payload: Bytes,
}

impl IncomingFrame {
    /// The frame an RTMP audio or video message body carries, its FLV tag
    /// header checked; `None` for an AVC end of sequence, which carries no
    /// picture.
    ///
    /// # Errors
    /// A broken tag (see [`flv`]).
    pub fn from_flv(
        track: Track,
        timestamp: u32,
        payload: &Bytes,
    ) -> Result<Option<Self>, FlvError> {
        let (keyframe, config, cts, end_of_sequence) = match track {
            Track::Video => flv::parse_video(payload)
                .map(|tag| (tag.keyframe, tag.config, tag.cts, tag.end_of_sequence))?,
            Track::Audio => flv::parse_audio(payload).map(|tag| (false, tag.config, 0, false))?,
        };
        Ok((!end_of_sequence).then(|| Self {
            track,
            timestamp,
            cts,
            keyframe,
            config,
            payload: payload.clone(),
        }))
    }
}

/// What `/api/streams` shows of a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamSnapshot {
    pub name: String,
    pub live: bool,
    pub video: Option<VideoParams>,
    pub audio: Option<AudioParams>,
    pub fps: Option<f64>,
    pub video_kbps: Option<f64>,
    pub audio_kbps: Option<f64>,
    pub bframes: bool,
    /// Players attached with a connection of their own (RTMP). HLS and WebRTC
    /// viewers share one consumer per stream and are counted by their outputs.
    pub players: usize,
    pub uptime: Option<Duration>,
    /// Stream time since the last video keyframe.
    pub keyframe_age: Option<Duration>,
}

/// Cheap to clone: every clone is a handle on the same streams.
#[derive(Clone)]
pub struct StreamHub {
    streams: Arc<HashMap<String, Arc<Stream>>>,
}

struct Stream {
    name: String,
    tx: broadcast::Sender<Frame>,
    state: Mutex<StreamState>,
    players: AtomicUsize,
    settings: HubSettings,
    next_publisher: AtomicU64,
    counters: Arc<StreamCounters>,
}

#[derive(Default)]
struct StreamState {
    /// The id of the live publisher, if any.
    publisher: Option<u64>,
    since: Option<Instant>,
    video_config: Option<Frame>,
    audio_config: Option<Frame>,
    metadata: Option<Metadata>,
    /// Frames since the last keyframe (inclusive); empty while none was seen or
    /// while the GOP is over the cache's limits.
    gop: Vec<Frame>,
    gop_bytes: usize,
    gop_overflow: bool,
    timeline: Timeline,
    video_rate: TrackRate,
    audio_rate: TrackRate,
    video_params: Option<VideoParams>,
    audio_params: Option<AudioParams>,
    last_bframe_dts: Option<u64>,
    last_dts: u64,
    last_keyframe_dts: Option<u64>,
    /// The last configuration any publisher sent, kept across publishers to
    /// tell what a new one changed.
    previous_video: Option<VideoParams>,
    previous_audio: Option<AudioParams>,
}

impl StreamHub {
    /// A hub serving exactly the named streams.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, settings: HubSettings) -> Self {
        let streams = names
            .into_iter()
            .map(|name| {
                let (tx, _) = broadcast::channel(settings.viewer_queue_frames.max(16));
                let stream = Stream {
                    name: name.to_string(),
                    tx,
                    state: Mutex::new(StreamState::default()),
                    players: AtomicUsize::new(0),
                    settings: settings.clone(),
                    next_publisher: AtomicU64::new(1),
                    counters: Arc::default(),
                };
                (name.to_string(), Arc::new(stream))
            })
            .collect();
        Self {
            streams: Arc::new(streams),
        }
    }

    fn stream(&self, name: &str) -> Result<&Arc<Stream>, HubError> {
        self.streams
            .get(name)
            .ok_or_else(|| HubError::UnknownStream(name.to_string()))
    }

    /// Takes the stream for a publisher. The stream is live until the returned
    /// [`Publisher`] is dropped.
    ///
    /// # Errors
    /// An unknown stream, or one that already has a publisher.
    pub fn publish(&self, name: &str, now: Instant) -> Result<Publisher, HubError> {
        let stream = self.stream(name)?;
        let mut state = stream.lock();
        if state.publisher.is_some() {
            return Err(HubError::AlreadyPublishing(name.to_string()));
        }
        let id = stream.next_publisher.fetch_add(1, Ordering::Relaxed);
        state.publisher = Some(id);
        state.since = Some(now);
        Ok(Publisher {
            stream: Arc::clone(stream),
            id,
            clock: SessionClock::default(),
            tracks: TracksSeen::default(),
        })
    }

    /// Attaches a viewer. It first gets the codec configuration and the cached
    /// GOP (timed as `join` says), then live frames. A viewer of a stream that is
    /// not live waits for its publisher.
    ///
    /// # Errors
    /// An unknown stream.
    pub fn subscribe(&self, name: &str, join: Join) -> Result<Subscription, HubError> {
        self.attach(name, true, join)
    }

    /// Attaches one of the server's own consumers (the HLS segmenter), which
    /// is not counted as a viewer.
    ///
    /// # Errors
    /// An unknown stream.
    pub fn subscribe_internal(&self, name: &str, join: Join) -> Result<Subscription, HubError> {
        self.attach(name, false, join)
    }

    fn attach(&self, name: &str, player: bool, join: Join) -> Result<Subscription, HubError> {
        let stream = self.stream(name)?;
        let state = stream.lock();
        let rx = stream.tx.subscribe();
        let pending = state.join_burst(join);
        drop(state);
        if player {
            stream.players.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Subscription {
            stream: Arc::clone(stream),
            rx,
            pending,
            player,
            skipping: false,
            skipped: 0,
            seen_video: false,
        })
    }

    /// The stream's running totals, for `/metrics` and the adapters that add
    /// what they send.
    ///
    /// # Errors
    /// An unknown stream.
    pub fn counters(&self, name: &str) -> Result<Arc<StreamCounters>, HubError> {
        Ok(Arc::clone(&self.stream(name)?.counters))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }

    /// What the stream looks like now.
    ///
    /// # Errors
    /// An unknown stream.
    pub fn snapshot(&self, name: &str, now: Instant) -> Result<StreamSnapshot, HubError> {
        let stream = self.stream(name)?;
        let players = stream.players.load(Ordering::Relaxed);
        let state = stream.lock();
        let live = state.publisher.is_some();
        Ok(StreamSnapshot {
            name: stream.name.clone(),
            live,
            video: state.video_params.clone().filter(|_| live),
            audio: state.audio_params.filter(|_| live),
            fps: state.video_rate.fps().filter(|_| live),
            video_kbps: state.video_rate.kbps().filter(|_| live),
            audio_kbps: state.audio_rate.kbps().filter(|_| live),
            bframes: live
                && state
                    .last_bframe_dts
                    .is_some_and(|at| state.last_dts.saturating_sub(at) < BFRAMES_MEMORY_MS),
            players,
            uptime: state
                .since
                .filter(|_| live)
                .map(|since| now.saturating_duration_since(since)),
            keyframe_age: state
                .last_keyframe_dts
                .filter(|_| live)
                .map(|at| Duration::from_millis(state.last_dts.saturating_sub(at))),
        })
    }

    /// The publisher's latest metadata, if it sent any.
    ///
    /// # Errors
    /// An unknown stream.
    pub fn metadata(&self, name: &str) -> Result<Option<Metadata>, HubError> {
        Ok(self.stream(name)?.lock().metadata.clone())
    }
}

impl Stream {
    fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A panic while the lock was held left the state as it was before the
        // frame that panicked; the stream is still usable, so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StreamState {
    /// The frames a new viewer starts with.
    fn join_burst(&self, join: Join) -> VecDeque<Frame> {
        let mut burst: VecDeque<Frame> = self
            .video_config
            .iter()
            .chain(&self.audio_config)
            .cloned()
            .collect();
        let has_bframes = self.gop.iter().any(|frame| frame.cts != 0);
        if join == Join::AsIs || has_bframes {
            burst.extend(self.gop.iter().cloned());
            return burst;
        }
        let video: Vec<&Frame> = self
            .gop
            .iter()
            .filter(|f| f.track == Track::Video)
            .collect();
        let Some(live_edge) = video.last().map(|f| f.dts) else {
            return burst;
        };
        let start = live_edge.saturating_sub(video.len() as u64 - 1);
        for config in &mut burst {
            config.dts = start;
        }
        burst.extend(video.into_iter().enumerate().map(|(i, frame)| Frame {
            dts: start + i as u64,
            ..frame.clone()
        }));
        burst
    }

    fn record(&mut self, frame: &Frame, settings: &HubSettings) {
        self.last_dts = self.last_dts.max(frame.dts);
        if frame.config {
            match frame.track {
                Track::Video => {
                    self.video_params = frame.payload.get(5..).and_then(codec::video_params);
                    self.video_config = Some(frame.clone());
                }
                Track::Audio => {
                    self.audio_params = frame.payload.get(2..).and_then(codec::audio_params);
                    self.audio_config = Some(frame.clone());
                }
            }
            return;
        }
        match frame.track {
            Track::Video => {
                self.video_rate.record(frame.dts, frame.len());
                if frame.cts != 0 {
                    self.last_bframe_dts = Some(frame.dts);
                }
            }
            Track::Audio => self.audio_rate.record(frame.dts, frame.len()),
        }
        if frame.is_video_keyframe() {
            self.last_keyframe_dts = Some(frame.dts);
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_overflow = false;
        } else if self.gop.is_empty() || self.gop_overflow {
            // Nothing to start from before the first keyframe.
            return;
        }
        if self.gop.len() >= settings.max_gop_frames
            || self.gop_bytes + frame.len() > settings.max_gop_bytes
        {
            self.gop.clear();
            self.gop_bytes = 0;
            self.gop_overflow = true;
            return;
        }
        self.gop_bytes += frame.len();
        self.gop.push(frame.clone());
    }

    /// What the configuration just recorded changed from the last one.
    fn config_change(&mut self, track: Track) -> Option<String> {
        match track {
            Track::Video => {
                let new = self.video_params.clone()?;
                let old = self.previous_video.replace(new.clone())?;
                changes::video_changed(&old, &new)
            }
            Track::Audio => {
                let new = self.audio_params?;
                let old = self.previous_audio.replace(new)?;
                changes::audio_changed(&old, &new)
            }
        }
    }

    fn end_publishing(&mut self) {
        self.publisher = None;
        self.since = None;
        self.video_config = None;
        self.audio_config = None;
        self.metadata = None;
        self.gop.clear();
        self.gop_bytes = 0;
        self.video_rate.clear();
        self.audio_rate.clear();
        self.video_params = None;
        self.audio_params = None;
        self.last_bframe_dts = None;
        self.last_keyframe_dts = None;
    }
}

/// The right to publish on a stream. Dropping it takes the stream offline;
/// attached viewers stay and carry on when the next publisher comes.
pub struct Publisher {
    stream: Arc<Stream>,
    id: u64,
    clock: SessionClock,
    tracks: TracksSeen,
}

/// Which tracks a publisher has sent media on, to tell a stream that has
/// only one once it has settled.
#[derive(Default)]
struct TracksSeen {
    first_dts: Option<u64>,
    video: bool,
    audio: bool,
    told: bool,
}

impl TracksSeen {
    /// The log line once the first [`changes::TRACKS_SETTLE_MS`] of media
    /// lack a track; then nothing.
    fn saw(&mut self, track: Track, dts: u64) -> Option<&'static str> {
        match track {
            Track::Video => self.video = true,
            Track::Audio => self.audio = true,
        }
        let first = *self.first_dts.get_or_insert(dts);
        if self.told || dts.saturating_sub(first) < changes::TRACKS_SETTLE_MS {
            return None;
        }
        self.told = true;
        changes::missing_track(self.video, self.audio)
    }
}

impl Publisher {
    pub fn stream_name(&self) -> &str {
        &self.stream.name
    }

    /// Puts a frame on the stream's timeline and hands it to every viewer.
    pub fn send(&mut self, incoming: IncomingFrame) {
        self.stream.counters.received(incoming.payload.len());
        let mut state = self.stream.lock();
        let dts = if incoming.config {
            state.timeline.config_time(&self.clock)
        } else {
            let (dts, event) = state.timeline.map(&mut self.clock, incoming.timestamp);
            if let Some(event) = event {
                clock_event(&self.stream.name, event, incoming.timestamp, dts);
            }
            dts
        };
        let frame = Frame {
            track: incoming.track,
            dts,
            cts: incoming.cts,
            keyframe: incoming.keyframe,
            config: incoming.config,
            payload: incoming.payload,
        };
        let had_bframes = state.last_bframe_dts.is_some();
        state.record(&frame, &self.stream.settings);
        let note = if frame.config {
            state.config_change(frame.track)
        } else {
            self.tracks.saw(frame.track, frame.dts).map(str::to_string)
        };
        if let Some(note) = note {
            warn!(stream = %self.stream.name, "{note}");
        }
        if !had_bframes && state.last_bframe_dts.is_some() {
            warn!(
                stream = %self.stream.name,
                "the stream has B-frames, which browsers cannot play over WebRTC: set Max B-frames to 0 in OBS (Settings > Output)"
            );
        }
        // An error only means that no viewer is attached right now.
        let _ = self.stream.tx.send(frame);
    }

    pub fn set_metadata(&self, metadata: Metadata) {
        self.stream.lock().metadata = Some(metadata);
    }
}

fn clock_event(stream: &str, event: ClockEvent, raw: u32, dts: u64) {
    match event {
        ClockEvent::Wrapped { bits } => info!(
            stream,
            "the publisher's clock wrapped at 2^{bits} ms (now {raw} ms); the stream's \
             timeline runs on at {dts} ms and viewers notice nothing"
        ),
        ClockEvent::Jumped { by_ms } => warn!(
            stream,
            "the publisher's clock jumped {} by {:.1} s (now {raw} ms); the stream goes on \
             from where it was, at {dts} ms: viewers see a gap of one frame",
            if by_ms < 0 { "back" } else { "forward" },
            by_ms.unsigned_abs() as f64 / 1000.0
        ),
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut state = self.stream.lock();
        if state.publisher == Some(self.id) {
            state.end_publishing();
        }
    }
}

/// One viewer's place in a stream.
pub struct Subscription {
    stream: Arc<Stream>,
    rx: broadcast::Receiver<Frame>,
    pending: VecDeque<Frame>,
    /// Counted as a player; false for the server's own consumers.
    player: bool,
    skipping: bool,
    skipped: u64,
    /// Whether any video has come this way: without it (an audio-only
    /// stream) no keyframe will ever end a skip.
    seen_video: bool,
}

impl Subscription {
    /// The next frame for this viewer; `None` once the hub is gone.
    pub async fn recv(&mut self) -> Option<Frame> {
        if let Some(frame) = self.pending.pop_front() {
            return Some(frame);
        }
        loop {
            match self.rx.recv().await {
                Ok(frame) => {
                    if let Some(frame) = self.admit(frame) {
                        return Some(frame);
                    }
                }
                Err(RecvError::Lagged(missed)) => self.lagged(missed),
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next frame if one is ready now, without waiting.
    pub fn try_recv(&mut self) -> Option<Frame> {
        if let Some(frame) = self.pending.pop_front() {
            return Some(frame);
        }
        loop {
            match self.rx.try_recv() {
                Ok(frame) => {
                    if let Some(frame) = self.admit(frame) {
                        return Some(frame);
                    }
                }
                Err(TryRecvError::Lagged(missed)) => self.lagged(missed),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    fn lagged(&mut self, missed: u64) {
        self.skipping = true;
        self.skip(missed);
    }

    /// The server's own consumers count what their viewers miss themselves.
    fn skip(&mut self, frames: u64) {
        self.skipped += frames;
        if self.player {
            self.stream.counters.dropped(Output::Rtmp, frames);
        }
    }

    /// While skipping after a lag, only codec configuration and the next
    /// keyframe get through, so that picture and sound resume together; in a
    /// stream without video, the next audio frame.
    fn admit(&mut self, frame: Frame) -> Option<Frame> {
        self.seen_video |= frame.track == Track::Video;
        if self.skipping {
            if frame.is_video_keyframe() || (!self.seen_video && !frame.config) {
                self.skipping = false;
            } else if !frame.config {
                self.skip(1);
                return None;
            }
        }
        Some(frame)
    }

    /// Frames this viewer missed because it fell behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    pub fn metadata(&self) -> Option<Metadata> {
        self.stream.lock().metadata.clone()
    }

    pub fn stream_name(&self) -> &str {
        &self.stream.name
    }

    pub fn counters(&self) -> &StreamCounters {
        &self.stream.counters
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.player {
            self.stream.players.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl IncomingFrame {
        fn video(timestamp: u32, keyframe: bool) -> Self {
            Self {
                track: Track::Video,
                timestamp,
                cts: 0,
                keyframe,
                config: false,
                payload: Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]),
            }
        }
        fn audio(timestamp: u32) -> Self {
            Self {
                track: Track::Audio,
                timestamp,
                cts: 0,
                keyframe: false,
                config: false,
                payload: Bytes::from_static(&[0xaf, 1, 0x21]),
            }
        }
        fn video_config() -> Self {
            Self {
                config: true,
                keyframe: true,
                ..Self::video(0, true)
            }
        }
    }

    fn hub(queue: usize) -> StreamHub {
        StreamHub::new(
            ["tree"],
            HubSettings {
                viewer_queue_frames: queue,
                ..Default::default()
            },
        )
    }

    fn drain(sub: &mut Subscription) -> Vec<Frame> {
        std::iter::from_fn(|| sub.try_recv()).collect()
    }

    #[test]
    fn second_publisher_is_refused_and_first_keeps_going() {
        let hub = hub(64);
        let mut first = hub.publish("tree", Instant::now()).unwrap();
        let err = hub.publish("tree", Instant::now()).err();
        assert_eq!(err, Some(HubError::AlreadyPublishing("tree".into())));
        let mut viewer = hub.subscribe("tree", Join::AsIs).unwrap();
        first.send(IncomingFrame::video(0, true));
        assert_eq!(drain(&mut viewer).len(), 1);
    }

    #[test]
    fn unknown_stream_is_an_error() {
        let hub = hub(64);
        assert!(matches!(
            hub.publish("nope", Instant::now()),
            Err(HubError::UnknownStream(_))
        ));
        assert!(hub.subscribe("nope", Join::AsIs).is_err());
    }

    #[test]
    fn newcomer_starts_at_the_keyframe_packed_at_the_live_edge() {
        let hub = hub(64);
        let mut publisher = hub.publish("tree", Instant::now()).unwrap();
        publisher.send(IncomingFrame::video_config());
        publisher.send(IncomingFrame::video(0, true));
        publisher.send(IncomingFrame::video(33, false));
        publisher.send(IncomingFrame::video(66, true));
        publisher.send(IncomingFrame::audio(70));
        publisher.send(IncomingFrame::video(100, false));
        publisher.send(IncomingFrame::video(133, false));

        let mut viewer = hub.subscribe("tree", Join::CatchUp).unwrap();
        let got = drain(&mut viewer);
        let shape: Vec<(bool, bool, u64)> =
            got.iter().map(|f| (f.config, f.keyframe, f.dts)).collect();
        assert_eq!(
            shape,
            vec![
                (true, true, 131),
                (false, true, 131),
                (false, false, 132),
                (false, false, 133)
            ],
            "config, then the GOP from the last keyframe ending at the live edge, no cached audio"
        );
    }

    #[test]
    fn as_is_join_keeps_timestamps_and_audio() {
        let hub = hub(64);
        let mut publisher = hub.publish("tree", Instant::now()).unwrap();
        publisher.send(IncomingFrame::video(0, true));
        publisher.send(IncomingFrame::audio(10));
        publisher.send(IncomingFrame::video(33, false));
        let mut viewer = hub.subscribe_internal("tree", Join::AsIs).unwrap();
        let dts: Vec<u64> = drain(&mut viewer).iter().map(|f| f.dts).collect();
        assert_eq!(dts, vec![0, 10, 33]);
    }

    #[test]
    fn slow_viewer_skips_to_the_next_keyframe_and_others_miss_nothing() {
        let hub = hub(16);
        let mut publisher = hub.publish("tree", Instant::now()).unwrap();
        let mut slow = hub.subscribe("tree", Join::AsIs).unwrap();
        let mut fast = hub.subscribe("tree", Join::AsIs).unwrap();
        let mut fast_got = 0;
        for i in 0..100u32 {
            publisher.send(IncomingFrame::video(i * 33, i % 30 == 0));
            fast_got += drain(&mut fast).len();
        }
        assert_eq!(fast_got, 100, "the fast viewer got every frame");
        let slow_got = drain(&mut slow);
        assert!(
            slow_got.iter().all(|f| f.dts >= 90 * 33),
            "slow viewer resumes at keyframe 90"
        );
        assert!(slow_got[0].is_video_keyframe());
        assert_eq!(slow_got.len(), 10);
        assert_eq!(slow.skipped(), 90);
    }

    #[test]
    fn a_slow_viewer_of_an_audio_only_stream_resumes_at_the_next_audio_frame() {
        let hub = hub(16);
        let mut publisher = hub.publish("tree", Instant::now()).unwrap();
        let mut slow = hub.subscribe("tree", Join::AsIs).unwrap();
        for i in 0..100u32 {
            publisher.send(IncomingFrame::audio(i * 21));
        }
        let got = drain(&mut slow);
        assert!(!got.is_empty(), "no keyframe will come: audio resumes");
        assert!(got.iter().all(|f| f.track == Track::Audio));
        assert_eq!(got.len() as u64 + slow.skipped(), 100);
        publisher.send(IncomingFrame::audio(100 * 21));
        assert_eq!(drain(&mut slow).len(), 1, "and goes on");
    }

    #[test]
    fn viewer_stays_attached_across_a_publisher_restart() {
        let hub = hub(64);
        let mut viewer = hub.subscribe("tree", Join::AsIs).unwrap();
        let mut publisher = hub.publish("tree", Instant::now()).unwrap();
        publisher.send(IncomingFrame::video(0, true));
        publisher.send(IncomingFrame::video(1000, false));
        drop(publisher);
        assert!(!hub.snapshot("tree", Instant::now()).unwrap().live);
        let mut publisher = hub.publish("tree", Instant::now()).unwrap();
        publisher.send(IncomingFrame::video(0, true));
        let dts: Vec<u64> = drain(&mut viewer).iter().map(|f| f.dts).collect();
        assert_eq!(dts, vec![0, 1000, 1040], "timestamps keep rising");
    }

    #[test]
    fn offline_stream_offers_nothing_stale_to_newcomers() {
        let hub = hub(64);
        let mut publisher = hub.publish("tree", Instant::now()).unwrap();
        publisher.send(IncomingFrame::video_config());
        publisher.send(IncomingFrame::video(0, true));
        drop(publisher);
        let mut viewer = hub.subscribe("tree", Join::CatchUp).unwrap();
        assert!(drain(&mut viewer).is_empty());
    }

    #[test]
    fn players_are_counted_and_internal_consumers_are_not() {
        let hub = hub(64);
        let a = hub.subscribe("tree", Join::AsIs).unwrap();
        let _b = hub.subscribe("tree", Join::AsIs).unwrap();
        let _internal = hub.subscribe_internal("tree", Join::AsIs).unwrap();
        assert_eq!(hub.snapshot("tree", Instant::now()).unwrap().players, 2);
        drop(a);
        assert_eq!(hub.snapshot("tree", Instant::now()).unwrap().players, 1);
    }

    #[test]
    fn gop_cache_is_bounded() {
        let hub = StreamHub::new(
            ["tree"],
            HubSettings {
                viewer_queue_frames: 64,
                max_gop_frames: 10,
                ..Default::default()
            },
        );
        let mut publisher = hub.publish("tree", Instant::now()).unwrap();
        for i in 0..50u32 {
            publisher.send(IncomingFrame::video(i * 33, i == 0));
        }
        let mut viewer = hub.subscribe("tree", Join::AsIs).unwrap();
        assert!(
            drain(&mut viewer).is_empty(),
            "an over-long GOP is not cached"
        );
    }
}
