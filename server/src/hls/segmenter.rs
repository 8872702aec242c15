//! The LL-HLS segmenter: frames in, parts and segments out (sans-IO; the wall
//! clock is passed in, and only labels segments with their date and time).
//!
//! A segment starts at every keyframe, and ends at the next one or at
//! `max_segment`, whichever comes first: a publisher that stops sending
//! keyframes gets its segment closed, and HLS has nothing new until a keyframe
//! comes (a segment must start with one), rather than one segment that grows
//! without limit. Within a segment, a part is cut before the video
//! frame that would take it past the part target (RFC 8216bis, 4.4.4.9:
//! a part's duration must not exceed PART-TARGET). Each part is one CMAF chunk
//! (`moof`+`mdat`); a whole segment is its parts back to back. Each track holds
//! its newest frame back until the next one arrives, since that is when its
//! duration is known.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tracing::warn;

use super::fmp4::{
    self, AUDIO_TRACK, AudioTrack, Run, Sample, VIDEO_TIMESCALE, VIDEO_TRACK, VideoTrack,
};
use crate::media::{Frame, Track, codec};

/// Samples of AAC per frame (ISO/IEC 14496-3: AAC-LC frames are 1024 samples).
const AAC_FRAME: u32 = 1024;

#[derive(Debug, Clone)]
pub struct SegmenterSettings {
    /// The longest a part may be.
    pub part_target: Duration,
    /// Complete segments kept (and listed); older ones are forgotten.
    pub window_segments: usize,
    /// Complete segments whose parts stay listed and served, besides the one
    /// being written.
    pub parts_segments: usize,
    /// The longest a segment may grow waiting for a keyframe.
    pub max_segment: Duration,
}

impl Default for SegmenterSettings {
    fn default() -> Self {
        Self {
            part_target: Duration::from_millis(334),
            window_segments: 6,
            parts_segments: 2,
            max_segment: Duration::from_secs(12),
        }
    }
}

/// One part: a CMAF chunk.
#[derive(Debug, Clone)]
pub struct Part {
    pub bytes: Bytes,
    /// In 90 kHz units (the video timescale).
    pub duration: u64,
    /// Starts with a keyframe.
    pub independent: bool,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub msn: u64,
    /// Empty once the segment is too old to list its parts.
    pub parts: Vec<Part>,
    pub part_count: usize,
    /// In 90 kHz units.
    pub duration: u64,
    pub complete: bool,
    /// The first segment after a publisher restart or a codec change.
    pub discontinuity: bool,
    /// The init segment this segment needs (its media sequence number names it).
    pub init: u64,
    pub program_date_time: SystemTime,
    /// The whole segment once complete: its parts, shared rather than copied
    /// into one buffer, and kept after the parts are no longer listed.
    pub chunks: Vec<Bytes>,
}

/// The segmenter of one stream and the window of what it made.
pub struct Segmenter {
    settings: SegmenterSettings,
    video_track: Option<VideoTrack>,
    audio_track: Option<AudioTrack>,
    /// Codec configuration changed since the current init segment was made.
    config_changed: bool,
    inits: VecDeque<(u64, Bytes)>,
    segments: VecDeque<Segment>,
    next_msn: u64,
    next_fragment: u32,
    part_video: Vec<Sample>,
    part_audio: Vec<Sample>,
    part_video_base: u64,
    part_audio_base: u64,
    held_video: Option<Frame>,
    held_audio: Option<Frame>,
    /// The last video frame's duration, for frames whose successor never came.
    last_video_duration: u32,
    discontinuity: bool,
    /// Wall-clock time at media time zero, fixed by the first frame.
    clock_anchor: Option<SystemTime>,
    longest_segment: u64,
    /// Media time (ms) at which a segment was closed for want of a keyframe.
    keyframe_awaited_since: Option<u64>,
}

impl Segmenter {
    /// `first_msn` numbers the first segment; numbers then only rise, so
    /// starting from the wall-clock second keeps URIs unique across restarts
    /// of the server (a cache never serves an old segment for a new one).
    pub fn new(settings: SegmenterSettings, first_msn: u64) -> Self {
        Self {
            settings,
            video_track: None,
            audio_track: None,
            config_changed: false,
            inits: VecDeque::new(),
            segments: VecDeque::new(),
            next_msn: first_msn,
            next_fragment: 1,
            part_video: Vec::new(),
            part_audio: Vec::new(),
            part_video_base: 0,
            part_audio_base: 0,
            held_video: None,
            held_audio: None,
            last_video_duration: VIDEO_TIMESCALE / 30,
            discontinuity: false,
            clock_anchor: None,
            longest_segment: 0,
            keyframe_awaited_since: None,
        }
    }

    pub fn settings(&self) -> &SegmenterSettings {
        &self.settings
    }

    pub fn segments(&self) -> &VecDeque<Segment> {
        &self.segments
    }

    pub fn init(&self, msn: u64) -> Option<&Bytes> {
        self.inits
            .iter()
            .find(|(at, _)| *at == msn)
            .map(|(_, bytes)| bytes)
    }

    /// The longest segment so far, in 90 kHz units.
    pub fn longest_segment(&self) -> u64 {
        self.longest_segment
    }

    /// The segment being written, if any.
    pub fn current(&self) -> Option<&Segment> {
        self.segments.back().filter(|segment| !segment.complete)
    }

    pub fn handle_frame(&mut self, frame: Frame, now: SystemTime) {
        if frame.config {
            self.handle_config(&frame);
            return;
        }
        match frame.track {
            Track::Video => self.handle_video(frame, now),
            Track::Audio => self.handle_audio(frame),
        }
    }

    fn handle_config(&mut self, frame: &Frame) {
        match frame.track {
            Track::Video => {
                let record = frame.payload.slice(5.min(frame.payload.len())..);
                let Some(params) = codec::video_params(&record) else {
                    warn!("HLS: the H.264 configuration cannot be read; waiting for another");
                    return;
                };
                self.video_track = Some(VideoTrack {
                    avcc: record,
                    width: params.width.min(u32::from(u16::MAX)) as u16,
                    height: params.height.min(u32::from(u16::MAX)) as u16,
                });
            }
            Track::Audio => {
                let config = frame.payload.slice(2.min(frame.payload.len())..);
                let Some(params) = codec::audio_params(&config) else {
                    return;
                };
                self.audio_track = Some(AudioTrack {
                    config,
                    sample_rate: params.sample_rate,
                    channels: u16::from(params.channels),
                });
            }
        }
        // New configuration after media means a new publisher (or new encoder
        // settings): close what was being written; the next segment starts
        // over with a new init segment and a discontinuity.
        if self.current().is_some() {
            self.flush();
            self.discontinuity = true;
        }
        self.config_changed = true;
    }

    fn handle_video(&mut self, frame: Frame, now: SystemTime) {
        if let Some(held) = self.held_video.take() {
            let duration = to_sample_units(frame.dts.saturating_sub(held.dts)).max(1);
            self.last_video_duration = duration;
            self.push_video(&held, duration);
        }
        let in_segment = self.current().is_some();
        if frame.keyframe {
            self.close_part();
            self.close_segment();
            if !self.open_segment(&frame, now) {
                return;
            }
            if let Some(since) = self.keyframe_awaited_since.take() {
                warn!(
                    "HLS: a keyframe again after {:.1} s without; HLS viewers get new segments again",
                    frame.dts.saturating_sub(since) as f64 / 1000.0
                );
            }
        } else if !in_segment {
            // A segment must start with a keyframe; until then, nothing to do.
            return;
        } else {
            let part: u64 = self.part_video.iter().map(|s| u64::from(s.duration)).sum();
            let next = u64::from(self.last_video_duration);
            let segment = self.current().map_or(0, |s| s.duration) + part;
            let max_segment = to_video_units(self.settings.max_segment.as_millis() as u64);
            if segment + next > max_segment {
                self.close_part();
                self.close_segment();
                self.keyframe_awaited_since = Some(frame.dts);
                warn!(
                    "HLS: no keyframe for {} s; the segment is closed and HLS viewers wait \
                     for the next keyframe (set the encoder's keyframe interval to 2 s)",
                    self.settings.max_segment.as_secs()
                );
                return;
            }
            let target = to_video_units(self.settings.part_target.as_millis() as u64);
            if part > 0 && part + next > target {
                self.close_part();
            }
        }
        self.held_video = Some(frame);
    }

    fn handle_audio(&mut self, frame: Frame) {
        let Some(track) = &self.audio_track else {
            return;
        };
        let rate = track.sample_rate;
        if let Some(held) = self.held_audio.take() {
            let by_clock =
                (frame.dts.saturating_sub(held.dts) * u64::from(rate)).div_ceil(1000) as u32;
            // Millisecond timestamps jitter by one; AAC frames are 1024 samples.
            let duration = if by_clock.abs_diff(AAC_FRAME) <= rate / 500 {
                AAC_FRAME
            } else {
                by_clock.max(1)
            };
            if self.current().is_some() {
                if self.part_audio.is_empty() {
                    self.part_audio_base = held.dts * u64::from(rate) / 1000;
                }
                let data = held.payload.slice(2.min(held.payload.len())..);
                self.part_audio.push(Sample {
                    data,
                    duration,
                    cts: 0,
                    sync: true,
                });
            }
        }
        self.held_audio = Some(frame);
    }

    fn push_video(&mut self, frame: &Frame, duration: u32) {
        if self.current().is_none() {
            return;
        }
        if self.part_video.is_empty() {
            self.part_video_base = to_video_units(frame.dts);
        }
        self.part_video.push(Sample {
            data: frame.payload.slice(5.min(frame.payload.len())..),
            duration,
            // |cts| < 2^23 ms (24-bit RTMP field), so this fits an i32.
            cts: to_sample_units(u64::from(frame.cts.unsigned_abs())) as i32 * frame.cts.signum(),
            sync: frame.keyframe,
        });
    }

    /// Starts a segment at this keyframe; false if there is no init segment to
    /// go with it yet.
    fn open_segment(&mut self, keyframe: &Frame, now: SystemTime) -> bool {
        let anchor = *self.clock_anchor.get_or_insert_with(|| {
            now.checked_sub(Duration::from_millis(keyframe.dts))
                .unwrap_or(now)
        });
        let msn = self.next_msn;
        if self.config_changed || self.inits.is_empty() {
            let Some(video) = &self.video_track else {
                return false;
            };
            match fmp4::init_segment(video, self.audio_track.as_ref()) {
                Ok(init) => self.inits.push_back((msn, init)),
                Err(err) => {
                    warn!("HLS: cannot make the init segment: {err}");
                    return false;
                }
            }
            self.config_changed = false;
        }
        let init = self.inits.back().map_or(msn, |(at, _)| *at);
        self.next_msn += 1;
        self.segments.push_back(Segment {
            msn,
            parts: Vec::new(),
            part_count: 0,
            duration: 0,
            complete: false,
            discontinuity: std::mem::take(&mut self.discontinuity),
            init,
            program_date_time: anchor + Duration::from_millis(keyframe.dts),
            chunks: Vec::new(),
        });
        true
    }

    /// Writes what the current part holds as one CMAF chunk.
    fn close_part(&mut self) {
        if self.part_video.is_empty() && self.part_audio.is_empty() {
            return;
        }
        let runs = [
            Run {
                track_id: VIDEO_TRACK,
                base_decode_time: self.part_video_base,
                samples: std::mem::take(&mut self.part_video),
            },
            Run {
                track_id: AUDIO_TRACK,
                base_decode_time: self.part_audio_base,
                samples: std::mem::take(&mut self.part_audio),
            },
        ];
        let duration: u64 = runs[0].samples.iter().map(|s| u64::from(s.duration)).sum();
        let independent = runs[0].samples.first().is_some_and(|s| s.sync);
        let sequence = self.next_fragment;
        self.next_fragment = self.next_fragment.wrapping_add(1);
        let bytes = match fmp4::fragment(sequence, &runs) {
            Ok(bytes) => bytes,
            Err(err) => {
                warn!("HLS: cannot write a part: {err}");
                return;
            }
        };
        let Some(segment) = self.segments.back_mut().filter(|s| !s.complete) else {
            return;
        };
        segment.duration += duration;
        segment.part_count += 1;
        segment.parts.push(Part {
            bytes,
            duration,
            independent,
        });
    }

    fn close_segment(&mut self) {
        let Some(segment) = self.segments.back_mut().filter(|s| !s.complete) else {
            return;
        };
        if segment.parts.is_empty() {
            self.segments.pop_back();
            return;
        }
        segment.complete = true;
        segment.chunks = segment.parts.iter().map(|p| p.bytes.clone()).collect();
        self.longest_segment = self.longest_segment.max(segment.duration);
        self.trim();
    }

    /// Ends the current segment with what is held back (the publisher left or
    /// is being replaced).
    fn flush(&mut self) {
        if let Some(held) = self.held_video.take() {
            self.push_video(&held, self.last_video_duration);
        }
        self.held_audio = None;
        self.close_part();
        self.close_segment();
    }

    /// Forgets segments beyond the window, and the parts of segments too old
    /// to be listed with theirs.
    fn trim(&mut self) {
        let complete = self.segments.iter().filter(|s| s.complete).count();
        for _ in self.settings.window_segments..complete {
            self.segments.pop_front();
        }
        let keep_parts_from = complete
            .min(self.settings.window_segments)
            .saturating_sub(self.settings.parts_segments);
        for segment in self.segments.iter_mut().take(keep_parts_from) {
            segment.parts.clear();
        }
        let oldest_init = self.segments.front().map_or(0, |s| s.init);
        while self.inits.len() > 1 && self.inits.front().is_some_and(|(at, _)| *at < oldest_init) {
            self.inits.pop_front();
        }
    }
}

/// Media time in 90 kHz units. 64 bits: 32 would wrap after 13.25 hours of
/// stream time, and the timeline runs all season (`tfdt` is 64-bit too).
fn to_video_units(ms: u64) -> u64 {
    ms.saturating_mul(u64::from(VIDEO_TIMESCALE)) / 1000
}

/// A sample's duration or offset in 90 kHz units, which `trun` keeps in 32
/// bits: longer than 13 hours is clamped (no real frame lasts that long).
fn to_sample_units(ms: u64) -> u32 {
    u32::try_from(to_video_units(ms)).unwrap_or(u32::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::Track;

    pub(crate) fn video_config() -> Frame {
        let mut payload = vec![0x17, 0, 0, 0, 0];
        payload.extend_from_slice(crate::hls::fmp4::tests::AVCC);
        Frame {
            track: Track::Video,
            dts: 0,
            cts: 0,
            keyframe: true,
            config: true,
            payload: payload.into(),
        }
    }

    pub(crate) fn audio_config() -> Frame {
        Frame {
            track: Track::Audio,
            dts: 0,
            cts: 0,
            keyframe: false,
            config: true,
            payload: Bytes::from_static(&[0xaf, 0, 0x11, 0x90]),
        }
    }

    pub(crate) fn video(dts: u64, keyframe: bool) -> Frame {
        Frame {
            track: Track::Video,
            dts,
            cts: 0,
            keyframe,
            config: false,
            payload: Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]),
        }
    }

    pub(crate) fn audio(dts: u64) -> Frame {
        Frame {
            track: Track::Audio,
            dts,
            cts: 0,
            keyframe: false,
            config: false,
            payload: Bytes::from_static(&[0xaf, 1, 0x21, 0x10]),
        }
    }

    /// Feeds `seconds` of 30 fps video (keyframe every 2 s) with 48 kHz AAC.
    pub(crate) fn feed(segmenter: &mut Segmenter, from_ms: u64, seconds: u64) {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut audio_at = from_ms * 3 / 64 * 64 / 3;
        for i in 0..seconds * 30 {
            let dts = from_ms + i * 1000 / 30;
            while audio_at <= dts {
                segmenter.handle_frame(audio(audio_at), start + Duration::from_millis(audio_at));
                audio_at += 64 / 3;
            }
            segmenter.handle_frame(
                video(dts, (dts - from_ms) % 2000 < 20),
                start + Duration::from_millis(dts),
            );
        }
    }

    pub(crate) fn started() -> Segmenter {
        let mut segmenter = Segmenter::new(SegmenterSettings::default(), 100);
        let now = SystemTime::UNIX_EPOCH;
        segmenter.handle_frame(video_config(), now);
        segmenter.handle_frame(audio_config(), now);
        segmenter
    }

    #[test]
    fn segments_start_at_keyframes_and_parts_stay_within_the_target() {
        let mut segmenter = started();
        feed(&mut segmenter, 0, 7);
        let segments = segmenter.segments();
        let complete: Vec<&Segment> = segments.iter().filter(|s| s.complete).collect();
        assert_eq!(
            complete.len(),
            3,
            "keyframes at 0, 2, 4 and 6 s close three segments"
        );
        assert!(
            complete[0].parts.is_empty(),
            "parts beyond the last two complete segments are dropped"
        );
        assert_eq!(complete[0].part_count, 6);
        for segment in &complete[1..] {
            assert!(
                (179_000..=181_000).contains(&segment.duration),
                "segment of {} units",
                segment.duration
            );
            assert!(segment.parts[0].independent);
            assert!(segment.parts[1..].iter().all(|p| !p.independent));
            assert!(
                segment.parts.iter().all(|p| p.duration <= 30_060),
                "{:?}",
                segment.parts.iter().map(|p| p.duration).collect::<Vec<_>>()
            );
            let parts: Vec<&Bytes> = segment.parts.iter().map(|p| &p.bytes).collect();
            assert_eq!(segment.chunks.iter().collect::<Vec<_>>(), parts);
        }
        assert_eq!(complete[0].msn, 100);
        assert_eq!(segmenter.current().unwrap().msn, 103);
        assert!(segmenter.init(100).is_some());
    }

    /// (video, audio) `tfdt` of each fragment in `bytes`, in seconds.
    fn decode_times(bytes: &[u8], audio_rate: f64) -> Vec<(f64, f64)> {
        use mp4_atom::{Any, Decode};
        let mut buf = bytes;
        let mut times = Vec::new();
        while !buf.is_empty() {
            if let Any::Moof(moof) = Any::decode(&mut buf).unwrap() {
                let at = |track: u32| {
                    let traf = moof.traf.iter().find(|t| t.tfhd.track_id == track)?;
                    Some(traf.tfdt.as_ref()?.base_media_decode_time as f64)
                };
                if let (Some(v), Some(a)) = (at(fmp4::VIDEO_TRACK), at(fmp4::AUDIO_TRACK)) {
                    times.push((v / f64::from(VIDEO_TIMESCALE), a / audio_rate));
                }
            }
        }
        times
    }

    #[test]
    fn video_time_crosses_two_to_the_32_units_of_90_khz_in_step_with_audio() {
        // 2^32 units of 90 kHz is 47,721.86 s, about 13.26 hours.
        let wrap_ms = (1u64 << 32) * 1000 / u64::from(VIDEO_TIMESCALE);
        let mut segmenter = started();
        feed(&mut segmenter, wrap_ms - 5_000, 10);
        let mut times = Vec::new();
        for segment in segmenter.segments().iter().filter(|s| s.complete) {
            times.extend(decode_times(&segment.chunks.concat(), 48_000.0));
        }
        assert!(times.len() > 10, "{} fragments", times.len());
        assert!(
            times.iter().any(|(v, _)| *v * 1000.0 > wrap_ms as f64),
            "the run crosses the 32-bit boundary"
        );
        for pair in times.windows(2) {
            assert!(pair[1].0 > pair[0].0, "video time went backwards: {pair:?}");
        }
        for (video, audio) in &times {
            assert!(
                (video - audio).abs() < 1.0 / 30.0,
                "video at {video} s, audio at {audio} s"
            );
        }
    }

    #[test]
    fn a_publisher_without_keyframes_gets_bounded_segments_and_recovers_at_the_next() {
        let mut segmenter = started();
        let start = SystemTime::UNIX_EPOCH;
        feed(&mut segmenter, 0, 4);
        // 60 s of frames and no keyframe.
        for i in 0..60 * 30 {
            let dts = 4_000 + i * 1000 / 30;
            segmenter.handle_frame(audio(dts), start + Duration::from_millis(dts));
            segmenter.handle_frame(video(dts, false), start + Duration::from_millis(dts));
        }
        let max_units = 12 * u64::from(VIDEO_TIMESCALE);
        assert!(segmenter.current().is_none(), "nothing is being written");
        assert!(
            segmenter.longest_segment() <= max_units,
            "{}",
            segmenter.longest_segment()
        );
        let bytes: usize = segmenter
            .segments()
            .iter()
            .map(|s| s.parts.iter().map(|p| p.bytes.len()).sum::<usize>())
            .sum();
        assert!(segmenter.segments().len() <= 6 + 1 && bytes < 1 << 20);
        let before = segmenter.segments().back().unwrap().msn;
        // Keyframes again: segments again, each starting with one.
        feed(&mut segmenter, 64_000, 5);
        let after: Vec<&Segment> = segmenter
            .segments()
            .iter()
            .filter(|s| s.msn > before)
            .collect();
        assert!(after.len() >= 2, "{} new segments", after.len());
        assert!(
            after
                .iter()
                .all(|s| s.parts.is_empty() || s.parts[0].independent)
        );
    }

    #[test]
    fn window_is_bounded_and_old_parts_are_dropped() {
        let mut segmenter = started();
        feed(&mut segmenter, 0, 40);
        let segments = segmenter.segments();
        assert_eq!(segments.iter().filter(|s| s.complete).count(), 6);
        let with_parts = segments.iter().filter(|s| !s.parts.is_empty()).count();
        assert_eq!(
            with_parts, 3,
            "parts of the last two complete segments and the current one"
        );
        assert!(segmenter.init(100).is_some(), "the only init stays");
    }

    #[test]
    fn new_configuration_starts_a_discontinuity_with_a_new_init() {
        let mut segmenter = started();
        feed(&mut segmenter, 0, 3);
        segmenter.handle_frame(video_config(), SystemTime::UNIX_EPOCH);
        segmenter.handle_frame(audio_config(), SystemTime::UNIX_EPOCH);
        feed(&mut segmenter, 3040, 3);
        let segments = segmenter.segments();
        let restarted = segments
            .iter()
            .find(|s| s.discontinuity)
            .expect("a discontinuity");
        assert_eq!(restarted.init, restarted.msn, "its own init segment");
        assert!(segmenter.init(restarted.msn).is_some());
        assert!(
            segments
                .iter()
                .filter(|s| s.msn < restarted.msn)
                .all(|s| s.complete)
        );
    }

    #[test]
    fn media_before_the_first_keyframe_is_skipped() {
        let mut segmenter = started();
        for i in 1..10 {
            segmenter.handle_frame(video(i * 33, false), SystemTime::UNIX_EPOCH);
        }
        assert!(segmenter.segments().is_empty());
    }
}
