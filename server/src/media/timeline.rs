//! Maps each publisher's own clock onto the stream's timeline (pure).
//!
//! A publisher's RTMP timestamps are milliseconds that start near zero
//! whenever OBS (re)connects, and wrap: the protocol's field is 32 bits (49.7
//! days), but OBS and ffmpeg write their FLV timestamps in 31 (24.9 days).
//! Viewers that stay attached across a publisher restart must see timestamps
//! that keep rising, so the hub shifts every publisher session to start just
//! after the last frame it sent, follows either wrap, and treats any other big
//! step of the publisher's clock as a jump: the stream goes on from where it
//! was instead of following the publisher's clock into the past or the future.
//! The timeline itself is 64 bits of milliseconds: it never wraps.

/// Spacing put between the last frame of one publisher session and the first of
/// the next, or around a jump: one frame at 25 fps, so players see a short gap.
const RESTART_GAP_MS: i64 = 40;

/// The longest step forward from one frame to the next taken as time passing:
/// a stall of the camera's network, frames the encoder dropped.
const MAX_STEP_FORWARD_MS: i64 = 10_000;

/// The longest step back taken as audio and video interleaving out of order.
const MAX_STEP_BACK_MS: i64 = 1_000;

const WRAP_31: i64 = 1 << 31;

/// The stream's timeline: the newest decode time handed out so far.
#[derive(Debug, Default)]
pub struct Timeline {
    end: Option<u64>,
}

/// One publisher session's mapping onto the [`Timeline`].
#[derive(Debug, Default)]
pub struct SessionClock {
    /// The last frame's raw timestamp and the same on the session's own
    /// unwrapped clock.
    last: Option<(u32, i64)>,
    /// Session clock + offset = timeline.
    offset: i64,
}

/// What the publisher's clock did, when it did more than run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockEvent {
    /// It wrapped at 2^`bits` ms; the timeline runs on.
    Wrapped { bits: u8 },
    /// It jumped by this much (negative: back); the timeline goes on just
    /// after the last frame.
    Jumped { by_ms: i64 },
}

impl Timeline {
    /// The stream timeline's decode time for a frame the publisher stamped
    /// `raw`, and what the publisher's clock did to get there.
    pub fn map(&mut self, clock: &mut SessionClock, raw: u32) -> (u64, Option<ClockEvent>) {
        let (session, event) = match clock.last {
            None => {
                let session = i64::from(raw);
                clock.offset = match self.end {
                    // The first publisher's timestamps are the stream's.
                    None => 0,
                    Some(end) => end as i64 + RESTART_GAP_MS - session,
                };
                (session, None)
            }
            Some((last_raw, last)) => match step(last_raw, raw) {
                Some((step, wrapped)) => (
                    last + step,
                    wrapped.map(|bits| ClockEvent::Wrapped { bits }),
                ),
                None => {
                    let by_ms = i64::from(raw) - i64::from(last_raw);
                    let session = last + by_ms;
                    let end = self.end.map_or(0, |end| end as i64);
                    clock.offset = end + RESTART_GAP_MS - session;
                    (session, Some(ClockEvent::Jumped { by_ms }))
                }
            },
        };
        clock.last = Some((raw, session));
        let dts = (session + clock.offset).max(0) as u64;
        self.end = Some(self.end.map_or(dts, |end| end.max(dts)));
        (dts, event)
    }
}

impl Timeline {
    /// The decode time for codec configuration, which encoders stamp 0
    /// whatever their clock reads: it belongs with the media around it, so
    /// it takes the session's last time (or where the session will start)
    /// and leaves the clock alone.
    pub fn config_time(&self, clock: &SessionClock) -> u64 {
        match (clock.last, self.end) {
            (Some((_, session)), _) => (session + clock.offset).max(0) as u64,
            (None, Some(end)) => end + RESTART_GAP_MS as u64,
            (None, None) => 0,
        }
    }
}

/// The step from `last` to `raw` if it is the clock running on, read modulo
/// 2^32 or else modulo 2^31, with the width of the wrap it crossed, if any.
fn step(last: u32, raw: u32) -> Option<(i64, Option<u8>)> {
    let plausible = |step: i64| (-MAX_STEP_BACK_MS..=MAX_STEP_FORWARD_MS).contains(&step);
    let wrapped = |step: i64, bits| (step > 0 && raw < last).then_some(bits);
    let step32 = i64::from(raw.wrapping_sub(last) as i32);
    if plausible(step32) {
        return Some((step32, wrapped(step32, 32)));
    }
    if i64::from(last) < WRAP_31 && i64::from(raw) < WRAP_31 {
        let mut step31 = (i64::from(raw) - i64::from(last)).rem_euclid(WRAP_31);
        if step31 >= WRAP_31 / 2 {
            step31 -= WRAP_31;
        }
        if plausible(step31) {
            return Some((step31, wrapped(step31, 31)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(timeline: &mut Timeline, clock: &mut SessionClock, raw: u32) -> u64 {
        timeline.map(clock, raw).0
    }

    #[test]
    fn first_session_keeps_publisher_timestamps() {
        let mut timeline = Timeline::default();
        let mut clock = SessionClock::default();
        assert_eq!(map(&mut timeline, &mut clock, 0), 0);
        assert_eq!(map(&mut timeline, &mut clock, 33), 33);
        assert_eq!(
            map(&mut timeline, &mut clock, 21),
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
        assert_eq!(map(&mut timeline, &mut second, 0), 5040);
        assert_eq!(map(&mut timeline, &mut second, 33), 5073);
    }

    #[test]
    fn restart_with_a_nonzero_start_also_continues() {
        let mut timeline = Timeline::default();
        let mut first = SessionClock::default();
        timeline.map(&mut first, 1000);
        let mut second = SessionClock::default();
        assert_eq!(map(&mut timeline, &mut second, 77_000), 1040);
    }

    #[test]
    fn the_32_bit_wrap_keeps_rising() {
        let mut timeline = Timeline::default();
        let mut clock = SessionClock::default();
        let before = map(&mut timeline, &mut clock, u32::MAX - 10);
        let (after, event) = timeline.map(&mut clock, 20);
        assert_eq!(after - before, 31);
        assert_eq!(event, Some(ClockEvent::Wrapped { bits: 32 }));
        assert_eq!(after, (1 << 32) + 20, "the timeline itself does not wrap");
    }

    #[test]
    fn the_31_bit_wrap_of_obs_and_ffmpeg_keeps_rising() {
        let mut timeline = Timeline::default();
        let mut clock = SessionClock::default();
        let top = (1u32 << 31) - 10;
        let before = map(&mut timeline, &mut clock, top);
        let (after, event) = timeline.map(&mut clock, 20);
        assert_eq!(after - before, 30);
        assert_eq!(event, Some(ClockEvent::Wrapped { bits: 31 }));
        // Audio from before the wrap, arriving after the video from after it.
        let (late, event) = timeline.map(&mut clock, top + 5);
        assert_eq!((late, event), (before + 5, None));
        assert_eq!(map(&mut timeline, &mut clock, 53), before + 63);
    }

    #[test]
    fn configuration_stamped_zero_is_no_jump() {
        let mut timeline = Timeline::default();
        let mut clock = SessionClock::default();
        assert_eq!(timeline.config_time(&clock), 0);
        let (dts, event) = timeline.map(&mut clock, 2_147_475_581);
        assert_eq!((dts, event), (2_147_475_581, None));
        assert_eq!(timeline.config_time(&clock), 2_147_475_581);
        let mut next = SessionClock::default();
        assert_eq!(timeline.config_time(&next), 2_147_475_621);
        assert_eq!(map(&mut timeline, &mut next, 900_000), 2_147_475_621);
    }

    #[test]
    fn a_jump_either_way_goes_on_after_the_last_frame() {
        let mut timeline = Timeline::default();
        let mut clock = SessionClock::default();
        for ts in [5_000_000, 5_000_033, 5_000_066] {
            timeline.map(&mut clock, ts);
        }
        let (dts, event) = timeline.map(&mut clock, 1_000);
        assert_eq!(dts, 5_000_106);
        assert_eq!(event, Some(ClockEvent::Jumped { by_ms: -4_999_066 }));
        assert_eq!(map(&mut timeline, &mut clock, 1_033), 5_000_139);
        let (dts, event) = timeline.map(&mut clock, 3_601_033);
        assert_eq!(dts, 5_000_179);
        assert_eq!(event, Some(ClockEvent::Jumped { by_ms: 3_600_000 }));
        // A stall shorter than the limit is time that passed.
        let (dts, event) = timeline.map(&mut clock, 3_609_033);
        assert_eq!((dts, event), (5_008_179, None));
    }
}
