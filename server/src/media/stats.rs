//! Measured rates of a stream: frames per second and kilobits per second over a
//! sliding window of media time (pure: the frames' own timestamps are the clock).

use std::collections::VecDeque;

/// How much media time the rates are measured over.
const WINDOW_MS: u64 = 3000;
/// The most samples a window holds: 3 s of 240 fps video, with room. A
/// publisher whose clock is stuck would otherwise never age any sample out.
const MAX_SAMPLES: usize = 1024;

/// Frames and bytes of one track over the last [`WINDOW_MS`] of media time.
#[derive(Debug, Default)]
pub struct TrackRate {
    samples: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl TrackRate {
    pub fn record(&mut self, dts: u64, bytes: usize) {
        // A clock that went backwards starts a new window: the old samples
        // belong to another timeline and would never age out of this one.
        if self.samples.back().is_some_and(|&(last, _)| dts < last) {
            self.clear();
        }
        if self.samples.len() == MAX_SAMPLES
            && let Some((_, size)) = self.samples.pop_front()
        {
            self.bytes -= size;
        }
        self.samples.push_back((dts, bytes));
        self.bytes += bytes;
        while let Some(&(oldest, size)) = self.samples.front() {
            if dts.saturating_sub(oldest) <= WINDOW_MS {
                break;
            }
            self.samples.pop_front();
            self.bytes -= size;
        }
    }

    fn span_ms(&self) -> Option<u64> {
        let first = self.samples.front()?.0;
        let last = self.samples.back()?.0;
        (last > first).then_some(last - first)
    }

    /// Frames per second, from the intervals between frames in the window.
    pub fn fps(&self) -> Option<f64> {
        let span = self.span_ms()?;
        Some((self.samples.len() - 1) as f64 * 1000.0 / span as f64)
    }

    /// Kilobits per second of payload. The last frame's bytes belong to the
    /// interval after it, so they are left out of the sum.
    pub fn kbps(&self) -> Option<f64> {
        let span = self.span_ms()?;
        let last = self.samples.back()?.1;
        Some((self.bytes - last) as f64 * 8.0 / span as f64)
    }

    pub fn clear(&mut self) {
        self.samples.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_frames_a_second_of_ten_kilobytes() {
        let mut rate = TrackRate::default();
        for i in 0..300u64 {
            rate.record(i * 1000 / 30, 10_000);
        }
        let fps = rate.fps().unwrap();
        assert!((fps - 30.0).abs() < 0.2, "fps {fps}");
        let kbps = rate.kbps().unwrap();
        assert!((kbps - 2400.0).abs() < 20.0, "kbps {kbps}");
    }

    #[test]
    fn one_frame_has_no_rate() {
        let mut rate = TrackRate::default();
        rate.record(5, 100);
        assert_eq!(rate.fps(), None);
        assert_eq!(rate.kbps(), None);
    }

    #[test]
    fn a_stuck_clock_keeps_the_window_bounded_and_reports_no_rate() {
        let mut rate = TrackRate::default();
        for _ in 0..100_000 {
            rate.record(42, 1000);
        }
        assert_eq!(rate.samples.len(), MAX_SAMPLES);
        assert_eq!(rate.bytes, MAX_SAMPLES * 1000);
        assert_eq!(rate.fps(), None);
    }

    #[test]
    fn a_clock_that_jumps_back_starts_a_new_window() {
        let mut rate = TrackRate::default();
        for i in 0..90u64 {
            rate.record(1_000_000 + i * 1000 / 30, 10_000);
        }
        for i in 0..90u64 {
            rate.record(i * 1000 / 30, 5_000);
        }
        assert_eq!(rate.samples.len(), 90, "only the new timeline's samples");
        let kbps = rate.kbps().unwrap();
        assert!((kbps - 1200.0).abs() < 20.0, "kbps {kbps}");
    }

    #[test]
    fn window_forgets_old_frames() {
        let mut rate = TrackRate::default();
        for i in 0..100u64 {
            rate.record(i * 100, 1000);
        }
        assert!(rate.samples.len() <= 31, "kept {}", rate.samples.len());
        assert!((rate.fps().unwrap() - 10.0).abs() < 0.01);
    }
}
