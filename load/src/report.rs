//! What each viewer measured ([`Tally`] into [`ViewerReport`]) and what a
//! crowd of them adds up to ([`summarize`] into [`Summary`]). Pure: arrival
//! times come in with the media, the end time is passed in.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

use crate::flv::Track;
use crate::viewer::Media;

/// Frames in the first seconds after the first keyframe are left out of the
/// frame rate: a server that sends a cached group of pictures on join
/// delivers them in a burst, which says nothing about keeping up.
pub const WARMUP: Duration = Duration::from_secs(2);

/// A viewer keeps up when it receives at least this share of the expected
/// frame rate.
pub const KEEPING_UP_SHARE: f64 = 0.9;

/// What one viewer saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerReport {
    /// Why the viewer stopped before its deadline, or failed to start.
    pub error: Option<String>,
    /// From the play request to the first video keyframe that is not a
    /// sequence header.
    #[serde(rename = "time_to_first_keyframe_ms", serialize_with = "opt_millis")]
    pub time_to_first_keyframe: Option<Duration>,
    /// Video frames received, sequence headers not counted.
    pub video_frames: u64,
    /// Audio frames received, sequence headers not counted.
    pub audio_frames: u64,
    /// Audio and video payload bytes, FLV tag headers included; for WebRTC,
    /// the payload of every RTP packet received.
    pub bytes: u64,
    /// Video frames per wall-clock second, from [`WARMUP`] after the first
    /// keyframe to the end.
    pub received_fps: Option<f64>,
    /// How far behind live a player that starts playing at the first
    /// keyframe would be at the end: media time received minus wall time
    /// taken, if positive. A burst of old frames with their original
    /// timestamps shows up here; a burst re-stamped at the live edge does not.
    #[serde(rename = "behind_live_ms", serialize_with = "opt_millis")]
    pub behind_live: Option<Duration>,
    /// Largest wall-clock gap between consecutive video frames after the
    /// first keyframe: a stall a player would show as a freeze.
    #[serde(rename = "max_gap_ms", serialize_with = "opt_millis")]
    pub max_gap: Option<Duration>,
    /// What a WebRTC viewer measured besides; absent for RTMP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webrtc: Option<WebrtcStats>,
}

/// What a WebRTC (WHEP) viewer measured beyond what every viewer does. For
/// such a viewer, `bytes` in [`ViewerReport`] counts RTP payload bytes and a
/// video frame is one RTP timestamp, counted when it is newer than the last
/// one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebrtcStats {
    /// From the offer's POST to the answer.
    #[serde(rename = "answer_ms", serialize_with = "opt_millis")]
    pub answer: Option<Duration>,
    /// From the offer's POST to the peer connection's connected state (ICE
    /// and DTLS done).
    #[serde(rename = "connected_ms", serialize_with = "opt_millis")]
    pub connected: Option<Duration>,
    /// RTP packets received, audio and video, repeats included.
    pub packets: u64,
    /// RTP packets the sequence numbers say were sent, first to last.
    pub expected: u64,
    /// Packets never received, at the end (after retransmissions).
    pub lost: u64,
    /// Packets that filled a hole behind a later one: retransmissions
    /// answering NACKs, or reordering.
    pub late: u64,
    /// Packets received more than once.
    pub duplicates: u64,
    /// Video packets of a frame older than the newest one received, which
    /// count toward no frame: a group of pictures sent again in answer to a
    /// keyframe request, or a retransmission after its frame ended.
    pub stale_packets: u64,
    /// RTCP NACKs and PLIs the viewer sent.
    pub nacks_sent: u32,
    pub plis_sent: u32,
    /// UDP payload bytes through the viewer's socket: SRTP, SRTCP, DTLS and
    /// STUN.
    pub wire_bytes_received: u64,
    pub wire_bytes_sent: u64,
    /// How far behind the sender's clock (its RTCP sender reports' NTP time,
    /// read against this machine's clock) video frames arrived: the median
    /// over frames after [`WARMUP`]. Meaningful when both run on one machine
    /// or on synchronised clocks.
    pub sender_lag_ms: Option<f64>,
}

impl ViewerReport {
    /// A viewer that never got to play.
    pub fn failed(error: String) -> ViewerReport {
        ViewerReport {
            error: Some(error),
            time_to_first_keyframe: None,
            video_frames: 0,
            audio_frames: 0,
            bytes: 0,
            received_fps: None,
            behind_live: None,
            max_gap: None,
            webrtc: None,
        }
    }
}

/// A video frame's arrival time and RTMP timestamp.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    at: Instant,
    timestamp: u32,
}

/// Running measurements for one viewer.
#[derive(Debug)]
pub struct Tally {
    connected_at: Instant,
    first_keyframe: Option<Stamp>,
    last_video: Option<Stamp>,
    video_frames: u64,
    audio_frames: u64,
    bytes: u64,
    /// Video frames that arrived after the warm-up, for the frame rate.
    steady_frames: u64,
    max_gap: Option<Duration>,
}

impl Tally {
    /// `connected_at` is when play was requested.
    pub fn new(connected_at: Instant) -> Tally {
        Tally {
            connected_at,
            first_keyframe: None,
            last_video: None,
            video_frames: 0,
            audio_frames: 0,
            bytes: 0,
            steady_frames: 0,
            max_gap: None,
        }
    }

    pub fn record(&mut self, media: &Media) {
        self.bytes += media.len as u64;
        if media.config {
            return;
        }
        if media.track == Track::Audio {
            self.audio_frames += 1;
            return;
        }
        self.video_frames += 1;
        let stamp = Stamp {
            at: media.received_at,
            timestamp: media.timestamp,
        };
        let Some(first) = self.first_keyframe else {
            if media.keyframe {
                self.first_keyframe = Some(stamp);
                self.last_video = Some(stamp);
            }
            return;
        };
        if let Some(last) = self.last_video {
            let gap = stamp.at.saturating_duration_since(last.at);
            self.max_gap = Some(self.max_gap.map_or(gap, |max| max.max(gap)));
        }
        self.last_video = Some(stamp);
        if stamp.at >= first.at + WARMUP {
            self.steady_frames += 1;
        }
    }

    /// The report at `end`, the moment the viewer stopped watching.
    pub fn finish(&self, end: Instant, error: Option<String>) -> ViewerReport {
        let first = self.first_keyframe;
        let steady_from = first.map(|first| first.at + WARMUP);
        let received_fps = steady_from
            .map(|from| end.saturating_duration_since(from))
            .filter(|window| !window.is_zero())
            .map(|window| self.steady_frames as f64 / window.as_secs_f64());
        let behind_live = first
            .zip(self.last_video)
            .map(|(first, last)| behind_live(first.timestamp, first.at, last.timestamp, last.at));
        ViewerReport {
            error,
            time_to_first_keyframe: first
                .map(|first| first.at.saturating_duration_since(self.connected_at)),
            video_frames: self.video_frames,
            audio_frames: self.audio_frames,
            bytes: self.bytes,
            received_fps,
            behind_live,
            max_gap: self.max_gap,
            webrtc: None,
        }
    }
}

/// `max(0, media time advanced - wall time taken)` between two video frames.
/// RTMP timestamps wrap at 2^32 ms; a difference read as negative (the
/// stream's clock went back) counts as no media time.
pub fn behind_live(first_ts: u32, first_at: Instant, last_ts: u32, last_at: Instant) -> Duration {
    let media_ms = last_ts.wrapping_sub(first_ts) as i32;
    let media = Duration::from_millis(media_ms.max(0) as u64);
    media.saturating_sub(last_at.saturating_duration_since(first_at))
}

/// What a crowd of viewers saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub viewers: usize,
    /// Viewers whose report has an error.
    pub failed: usize,
    /// Viewers without error at [`KEEPING_UP_SHARE`] of the expected rate.
    pub keeping_up: usize,
    #[serde(rename = "ttfk_median_ms", serialize_with = "opt_millis")]
    pub ttfk_median: Option<Duration>,
    #[serde(rename = "ttfk_p95_ms", serialize_with = "opt_millis")]
    pub ttfk_p95: Option<Duration>,
    #[serde(rename = "behind_live_median_ms", serialize_with = "opt_millis")]
    pub behind_live_median: Option<Duration>,
    pub fps_median: Option<f64>,
    /// Bytes a viewer received (see [`ViewerReport::bytes`]), median.
    pub bytes_median: Option<u64>,
    #[serde(rename = "max_gap_p95_ms", serialize_with = "opt_millis")]
    pub max_gap_p95: Option<Duration>,
    /// Totals and medians of the WebRTC viewers; absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webrtc: Option<WebrtcSummary>,
}

/// What the WebRTC viewers of a crowd add up to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebrtcSummary {
    /// Sums over the viewers.
    pub packets: u64,
    pub expected: u64,
    pub lost: u64,
    pub late: u64,
    pub stale_packets: u64,
    pub nacks_sent: u64,
    pub plis_sent: u64,
    /// `lost` over `expected`, in percent.
    pub loss_percent: Option<f64>,
    pub wire_bytes_received_median: Option<u64>,
    #[serde(rename = "answer_median_ms", serialize_with = "opt_millis")]
    pub answer_median: Option<Duration>,
    #[serde(rename = "connected_median_ms", serialize_with = "opt_millis")]
    pub connected_median: Option<Duration>,
    #[serde(rename = "connected_p95_ms", serialize_with = "opt_millis")]
    pub connected_p95: Option<Duration>,
    /// Median of the viewers' [`WebrtcStats::sender_lag_ms`].
    pub sender_lag_median_ms: Option<f64>,
}

fn summarize_webrtc(reports: &[ViewerReport]) -> Option<WebrtcSummary> {
    let stats: Vec<&WebrtcStats> = reports.iter().filter_map(|r| r.webrtc.as_ref()).collect();
    if stats.is_empty() {
        return None;
    }
    let sum = |field: fn(&WebrtcStats) -> u64| stats.iter().map(|s| field(s)).sum::<u64>();
    let sorted_durations = |field: fn(&WebrtcStats) -> Option<Duration>| {
        let mut values: Vec<Duration> = stats.iter().filter_map(|s| field(s)).collect();
        values.sort_unstable();
        values
    };
    let answer = sorted_durations(|s| s.answer);
    let connected = sorted_durations(|s| s.connected);
    let mut wire: Vec<u64> = stats.iter().map(|s| s.wire_bytes_received).collect();
    wire.sort_unstable();
    let mut lag: Vec<f64> = stats.iter().filter_map(|s| s.sender_lag_ms).collect();
    lag.sort_unstable_by(f64::total_cmp);
    let expected = sum(|s| s.expected);
    let lost = sum(|s| s.lost);
    Some(WebrtcSummary {
        packets: sum(|s| s.packets),
        expected,
        lost,
        late: sum(|s| s.late),
        stale_packets: sum(|s| s.stale_packets),
        nacks_sent: sum(|s| u64::from(s.nacks_sent)),
        plis_sent: sum(|s| u64::from(s.plis_sent)),
        loss_percent: (expected > 0).then(|| 100.0 * lost as f64 / expected as f64),
        wire_bytes_received_median: percentile(&wire, 50.0),
        answer_median: percentile(&answer, 50.0),
        connected_median: percentile(&connected, 50.0),
        connected_p95: percentile(&connected, 95.0),
        sender_lag_median_ms: percentile(&lag, 50.0),
    })
}

/// Adds up the reports; percentiles are taken over the viewers that have
/// the value. `keeping_up` counts viewers without error whose received
/// frame rate is at least [`KEEPING_UP_SHARE`] of `expected_fps`.
pub fn summarize(reports: &[ViewerReport], expected_fps: f64) -> Summary {
    let mut ttfk: Vec<Duration> = reports
        .iter()
        .filter_map(|r| r.time_to_first_keyframe)
        .collect();
    let mut behind: Vec<Duration> = reports.iter().filter_map(|r| r.behind_live).collect();
    let mut fps: Vec<f64> = reports.iter().filter_map(|r| r.received_fps).collect();
    let mut bytes: Vec<u64> = reports
        .iter()
        .filter(|r| r.error.is_none())
        .map(|r| r.bytes)
        .collect();
    let mut gaps: Vec<Duration> = reports.iter().filter_map(|r| r.max_gap).collect();
    bytes.sort_unstable();
    gaps.sort_unstable();
    ttfk.sort_unstable();
    behind.sort_unstable();
    fps.sort_unstable_by(f64::total_cmp);
    let threshold = KEEPING_UP_SHARE * expected_fps;
    Summary {
        viewers: reports.len(),
        failed: reports.iter().filter(|r| r.error.is_some()).count(),
        keeping_up: reports
            .iter()
            .filter(|r| r.error.is_none() && r.received_fps.is_some_and(|fps| fps >= threshold))
            .count(),
        ttfk_median: percentile(&ttfk, 50.0),
        ttfk_p95: percentile(&ttfk, 95.0),
        behind_live_median: percentile(&behind, 50.0),
        fps_median: percentile(&fps, 50.0),
        bytes_median: percentile(&bytes, 50.0),
        max_gap_p95: percentile(&gaps, 95.0),
        webrtc: summarize_webrtc(reports),
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at
/// least `p` percent of the values at or below it.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "viewers:       {} ({} failed)",
            self.viewers, self.failed
        )?;
        writeln!(f, "keeping up:    {} of {}", self.keeping_up, self.viewers)?;
        writeln!(f, "received fps:  median {}", opt_fps(self.fps_median))?;
        writeln!(
            f,
            "first keyframe: median {}, p95 {}",
            opt_ms(self.ttfk_median),
            opt_ms(self.ttfk_p95)
        )?;
        writeln!(
            f,
            "longest gap:   p95 {}; bytes per viewer: median {}",
            opt_ms(self.max_gap_p95),
            self.bytes_median
                .map_or_else(|| "-".to_string(), |b| b.to_string())
        )?;
        if let Some(webrtc) = &self.webrtc {
            writeln!(f, "{webrtc}")?;
        }
        write!(
            f,
            "behind live:   median {}",
            opt_ms(self.behind_live_median)
        )
    }
}

impl fmt::Display for WebrtcSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "connected:     median {}, p95 {} (answer median {})",
            opt_ms(self.connected_median),
            opt_ms(self.connected_p95),
            opt_ms(self.answer_median)
        )?;
        writeln!(
            f,
            "RTP:           {} packets, {} lost ({}), {} late, {} of older frames; {} NACKs, {} PLIs sent",
            self.packets,
            self.lost,
            self.loss_percent
                .map_or_else(|| "-".to_string(), |p| format!("{p:.3} %")),
            self.late,
            self.stale_packets,
            self.nacks_sent,
            self.plis_sent
        )?;
        write!(
            f,
            "behind sender: median {}",
            self.sender_lag_median_ms
                .map_or_else(|| "-".to_string(), |ms| format!("{ms:.1} ms"))
        )
    }
}

/// `1234 ms`, or `-` when there is no value.
pub fn opt_ms(value: Option<Duration>) -> String {
    value.map_or_else(|| "-".to_string(), |d| format!("{} ms", d.as_millis()))
}

fn opt_fps(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |fps| format!("{fps:.1}"))
}

fn opt_millis<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => serializer.serialize_some(&(d.as_secs_f64() * 1000.0)),
        None => serializer.serialize_none(),
    }
}

/// Viewers that failed with one same error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    pub error: String,
    pub viewers: usize,
}

/// Distinct viewer errors, most frequent first.
pub fn error_counts<'a>(errors: impl Iterator<Item = &'a str>) -> Vec<ErrorCount> {
    let mut counts: Vec<ErrorCount> = Vec::new();
    for error in errors {
        match counts.iter_mut().find(|seen| seen.error == error) {
            Some(seen) => seen.viewers += 1,
            None => counts.push(ErrorCount {
                error: error.to_string(),
                viewers: 1,
            }),
        }
    }
    counts.sort_by_key(|count| std::cmp::Reverse(count.viewers));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_counts_most_frequent_first() {
        let counts = error_counts(["a", "b", "b"].into_iter());
        let pairs: Vec<_> = counts
            .iter()
            .map(|c| (c.error.as_str(), c.viewers))
            .collect();
        assert_eq!(pairs, vec![("b", 2), ("a", 1)]);
    }

    /// Media arriving `at_ms` after `t0`.
    fn video(t0: Instant, at_ms: u64, timestamp: u32, keyframe: bool) -> Media {
        Media {
            track: Track::Video,
            timestamp,
            keyframe,
            config: false,
            len: 100,
            received_at: t0 + Duration::from_millis(at_ms),
        }
    }

    fn report(fps: Option<f64>, ttfk_ms: Option<u64>, error: Option<&str>) -> ViewerReport {
        ViewerReport {
            error: error.map(str::to_string),
            time_to_first_keyframe: ttfk_ms.map(Duration::from_millis),
            video_frames: 0,
            audio_frames: 0,
            bytes: 0,
            received_fps: fps,
            behind_live: ttfk_ms.map(|ms| Duration::from_millis(ms * 10)),
            max_gap: None,
            webrtc: None,
        }
    }

    #[test]
    fn behind_live_counts_old_frames_burst_in() {
        let t0 = Instant::now();
        // Keyframe 2 s old at join, everything since then in 100 ms, then live.
        let late = behind_live(10_000, t0, 12_000, t0 + Duration::from_millis(100));
        assert_eq!(late, Duration::from_millis(1_900));
        // Ten seconds later the player is still that far behind.
        let later = behind_live(10_000, t0, 22_000, t0 + Duration::from_millis(10_100));
        assert_eq!(later, Duration::from_millis(1_900));
    }

    #[test]
    fn behind_live_is_zero_when_frames_arrive_in_real_time_or_slower() {
        let t0 = Instant::now();
        assert_eq!(
            behind_live(0, t0, 5_000, t0 + Duration::from_millis(5_000)),
            Duration::ZERO
        );
        assert_eq!(
            behind_live(0, t0, 5_000, t0 + Duration::from_millis(7_000)),
            Duration::ZERO
        );
    }

    #[test]
    fn behind_live_across_timestamp_wrap_and_clock_going_back() {
        let t0 = Instant::now();
        let near_wrap = u32::MAX - 499;
        assert_eq!(
            behind_live(near_wrap, t0, 1_500, t0 + Duration::from_millis(1_000)),
            Duration::from_millis(1_000)
        );
        assert_eq!(
            behind_live(5_000, t0, 1_000, t0 + Duration::from_millis(10)),
            Duration::ZERO
        );
    }

    #[test]
    fn tally_measures_a_live_stream_at_30_fps() {
        let t0 = Instant::now();
        let mut tally = Tally::new(t0);
        let config = Media {
            config: true,
            keyframe: true,
            ..video(t0, 40, 0, true)
        };
        tally.record(&config);
        // 10 s of 30 fps, first frame a keyframe at 50 ms after play.
        for i in 0..300u64 {
            let at = 50 + i * 1000 / 30;
            tally.record(&video(t0, at, (i * 1000 / 30) as u32, i % 60 == 0));
        }
        let end = t0 + Duration::from_millis(50 + 10_000);
        let report = tally.finish(end, None);
        assert_eq!(
            report.time_to_first_keyframe,
            Some(Duration::from_millis(50))
        );
        assert_eq!(report.video_frames, 300);
        assert_eq!(report.bytes, 300 * 100 + 100);
        let fps = report.received_fps.unwrap();
        assert!((fps - 30.0).abs() < 0.2, "fps {fps}");
        assert_eq!(report.behind_live, Some(Duration::ZERO));
        assert_eq!(report.max_gap, Some(Duration::from_millis(34)));
    }

    #[test]
    fn tally_ignores_frames_before_the_first_keyframe_for_timing() {
        let t0 = Instant::now();
        let mut tally = Tally::new(t0);
        tally.record(&video(t0, 10, 100, false));
        tally.record(&video(t0, 900, 1_000, true));
        tally.record(&video(t0, 950, 1_033, false));
        let report = tally.finish(t0 + Duration::from_secs(1), None);
        assert_eq!(report.video_frames, 3);
        assert_eq!(
            report.time_to_first_keyframe,
            Some(Duration::from_millis(900))
        );
        assert_eq!(report.max_gap, Some(Duration::from_millis(50)));
        // The run ended inside the warm-up: no frame rate to speak of.
        assert_eq!(report.received_fps, None);
    }

    #[test]
    fn tally_counts_audio_but_not_its_config() {
        let t0 = Instant::now();
        let mut tally = Tally::new(t0);
        let audio = |config| Media {
            track: Track::Audio,
            config,
            keyframe: false,
            ..video(t0, 5, 0, false)
        };
        tally.record(&audio(true));
        tally.record(&audio(false));
        tally.record(&audio(false));
        let report = tally.finish(t0 + Duration::from_secs(1), Some("closed".into()));
        assert_eq!(
            (report.audio_frames, report.video_frames, report.bytes),
            (2, 0, 300)
        );
        assert_eq!(report.time_to_first_keyframe, None);
        assert_eq!(report.behind_live, None);
        assert_eq!(report.error.as_deref(), Some("closed"));
    }

    #[test]
    fn tally_frame_rate_starts_after_the_warm_up_burst() {
        let t0 = Instant::now();
        let mut tally = Tally::new(t0);
        // 60 cached frames at once, then 15 fps live for 4 s.
        for i in 0..60u32 {
            tally.record(&video(t0, 5, i * 33, i == 0));
        }
        for i in 0..60u64 {
            tally.record(&video(
                t0,
                5 + (i + 1) * 1000 / 15,
                2_000 + (i as u32 + 1) * 66,
                false,
            ));
        }
        let report = tally.finish(t0 + Duration::from_millis(4_005), None);
        let fps = report.received_fps.unwrap();
        assert!((fps - 15.0).abs() < 0.6, "fps {fps}");
        assert!(
            report.behind_live.unwrap() > Duration::from_millis(1_900),
            "{:?}",
            report.behind_live
        );
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let values: Vec<u32> = (1..=20).collect();
        assert_eq!(percentile(&values, 50.0), Some(10));
        assert_eq!(percentile(&values, 95.0), Some(19));
        assert_eq!(percentile(&values, 100.0), Some(20));
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
    }

    #[test]
    fn summarize_counts_failures_and_keeping_up() {
        let reports = vec![
            report(Some(30.0), Some(100), None),
            report(Some(27.0), Some(300), None),
            report(Some(26.9), Some(200), None),
            report(Some(30.0), Some(400), Some("closed by server")),
            report(None, None, Some("refused")),
        ];
        let summary = summarize(&reports, 30.0);
        assert_eq!(summary.viewers, 5);
        assert_eq!(summary.failed, 2);
        assert_eq!(summary.keeping_up, 2);
        assert_eq!(summary.ttfk_median, Some(Duration::from_millis(200)));
        assert_eq!(summary.ttfk_p95, Some(Duration::from_millis(400)));
        assert_eq!(
            summary.behind_live_median,
            Some(Duration::from_millis(2_000))
        );
        // 26.9, 27, 30, 30: the lower middle.
        assert_eq!(summary.fps_median, Some(27.0));
    }

    #[test]
    fn summarize_nothing() {
        let summary = summarize(&[], 30.0);
        assert_eq!(
            (summary.viewers, summary.failed, summary.keeping_up),
            (0, 0, 0)
        );
        assert_eq!(summary.ttfk_median, None);
        assert_eq!(summary.fps_median, None);
        assert!(summary.to_string().contains("keeping up:    0 of 0"));
    }

    fn webrtc(lost: u64, expected: u64, connected_ms: u64, lag: Option<f64>) -> WebrtcStats {
        WebrtcStats {
            connected: Some(Duration::from_millis(connected_ms)),
            packets: expected - lost,
            expected,
            lost,
            nacks_sent: 2,
            plis_sent: 1,
            wire_bytes_received: 1000 * connected_ms,
            sender_lag_ms: lag,
            ..WebrtcStats::default()
        }
    }

    #[test]
    fn summarize_adds_up_webrtc_viewers() {
        let mut a = report(Some(30.0), Some(100), None);
        a.webrtc = Some(webrtc(1, 1000, 200, Some(3.0)));
        let mut b = report(Some(30.0), Some(120), None);
        b.webrtc = Some(webrtc(3, 1000, 300, None));
        let mut c = report(Some(30.0), Some(140), None);
        c.webrtc = Some(webrtc(0, 2000, 100, Some(5.0)));
        let summary = summarize(&[a, b, c], 30.0);
        let webrtc = summary
            .webrtc
            .clone()
            .expect("WebRTC viewers are summarised");
        assert_eq!((webrtc.lost, webrtc.expected), (4, 4000));
        assert_eq!(webrtc.packets, 3996);
        assert_eq!(webrtc.loss_percent, Some(0.1));
        assert_eq!((webrtc.nacks_sent, webrtc.plis_sent), (6, 3));
        assert_eq!(webrtc.connected_median, Some(Duration::from_millis(200)));
        assert_eq!(webrtc.connected_p95, Some(Duration::from_millis(300)));
        assert_eq!(webrtc.wire_bytes_received_median, Some(200_000));
        assert_eq!(webrtc.sender_lag_median_ms, Some(3.0));
        let text = summary.to_string();
        assert!(text.contains("4 lost (0.100 %)"), "{text}");
        assert!(text.contains("behind sender: median 3.0 ms"), "{text}");
    }

    #[test]
    fn rtmp_json_has_no_webrtc_fields() {
        let reports = [report(Some(30.0), Some(150), None)];
        let summary = serde_json::to_value(summarize(&reports, 30.0)).unwrap();
        assert!(summary.get("webrtc").is_none(), "{summary}");
        let viewer = serde_json::to_value(&reports[0]).unwrap();
        assert!(viewer.get("webrtc").is_none(), "{viewer}");
        let mut whep = reports[0].clone();
        whep.webrtc = Some(webrtc(0, 10, 50, None));
        let viewer = serde_json::to_value(&whep).unwrap();
        assert_eq!(viewer["webrtc"]["connected_ms"], 50.0);
    }

    #[test]
    fn summary_json_uses_milliseconds() {
        let summary = summarize(&[report(Some(30.0), Some(150), None)], 30.0);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["ttfk_median_ms"], 150.0);
        assert_eq!(json["behind_live_median_ms"], 1500.0);
        assert_eq!(json["keeping_up"], 1);
    }
}
