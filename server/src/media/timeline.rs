//! Maps each publisher's own clock onto the stream's timeline (pure).
//!
//! A publisher's RTMP timestamps are 32-bit milliseconds that start near zero
//! whenever OBS (re)connects and wrap after 49.7 days. Viewers that stay attached
//! across a publisher restart must see timestamps that keep rising, so the hub
//! shifts every publisher session to start just after the last frame it sent.

/// Spacing put between the last frame of one publisher session and the first of
/// the next: one frame at 25 fps, so players see a short gap, not a jump.
const RESTART_GAP_MS: u64 = 40;

/// The stream's timeline: the newest decode time handed out so far.
#[derive(Debug, Default)]
pub struct Timeline {
    end: Option<u64>,
}

/// One publisher session's mapping onto the [`Timeline`].
#[derive(Debug, Default)]
pub struct SessionClock {
    offset: Option<i64>,
    last_raw: Option<u32>,
    wraps: u64,
}

impl Timeline {
    /// The stream timeline's decode time for a frame the publisher stamped `raw`.
    pub fn map(&mut self, clock: &mut SessionClock, raw: u32) -> u64 {
        if let Some(last) = clock.last_raw {
            // A drop of more than half the range is a wrap, not a step back.
            if raw < last && last - raw > u32::MAX / 2 {
                clock.wraps += 1;
            }
        }
        clock.last_raw = Some(raw);
        let extended = (clock.wraps << 32 | u64::from(raw)) as i64;
        let offset = *clock.offset.get_or_insert_with(|| match self.end {
            None => 0,
            Some(end) => (end + RESTART_GAP_MS) as i64 - extended,
        });
        let dts = (extended + offset).max(0) as u64;
        self.end = Some(self.end.map_or(dts, |end| end.max(dts)));
        dts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_session_keeps_publisher_timestamps() {
        let mut timeline = Timeline::default();
        let mut clock = SessionClock::default();
        assert_eq!(timeline.map(&mut clock, 0), 0);
        assert_eq!(timeline.map(&mut clock, 33), 33);
        assert_eq!(
            timeline.map(&mut clock, 21),
            21,
            "audio slightly behind video stays put"
        );
    }

    #[test]
    fn restart_continues_after_the_last_frame() {
        let mut timeline = Timeline::default();
        let mut first = SessionClock::default();
        for ts in [0, 33, 66, 5000] {
            timeline.map(&mut first, ts);
        }
        let mut second = SessionClock::default();
        assert_eq!(timeline.map(&mut second, 0), 5040);
        assert_eq!(timeline.map(&mut second, 33), 5073);
    }

    #[test]
    fn restart_with_a_nonzero_start_also_continues() {
        let mut timeline = Timeline::default();
        let mut first = SessionClock::default();
        timeline.map(&mut first, 1000);
        let mut second = SessionClock::default();
        assert_eq!(timeline.map(&mut second, 77_000), 1040);
    }

    #[test]
    fn wraparound_keeps_rising() {
        let mut timeline = Timeline::default();
        let mut clock = SessionClock::default();
        let before = timeline.map(&mut clock, u32::MAX - 10);
        let after = timeline.map(&mut clock, 20);
        assert_eq!(after - before, 31);
    }
}
