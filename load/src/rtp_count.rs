//! What a WebRTC viewer counts in the RTP and RTCP it receives: loss from
//! sequence numbers ([`SeqCounter`]), video frames from marker bits and
//! timestamp changes ([`FrameAssembler`]), H.264 keyframes
//! ([`h264_has_idr`]), media time ([`Unwrapper`]) and how far behind the
//! sender's clock a frame arrives ([`SenderClock`]). Pure: packets, arrival
//! times and wall-clock readings are passed in, so it is tested without a
//! peer connection.

use std::time::{Duration, Instant};

/// Sequence numbers remembered behind the highest, to tell a late packet
/// (reordered, or a retransmission answering a NACK) from a duplicate.
pub const SEQ_WINDOW: u64 = 1024;
const WINDOW_WORDS: usize = (SEQ_WINDOW / 64) as usize;

/// How one packet's sequence number relates to those seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Higher than any before; `skipped` sequence numbers were jumped over.
    Next { skipped: u64 },
    /// Fills a hole behind the highest.
    Late,
    /// Seen before.
    Duplicate,
    /// Further behind the highest than [`SEQ_WINDOW`], or before the first.
    TooOld,
}

/// Counts one RTP stream's sequence numbers, extended past the 16-bit wrap
/// (RFC 3550 appendix A.1): packets expected from the first to the highest,
/// unique packets received, and what is still missing at the end.
#[derive(Debug, Clone)]
pub struct SeqCounter {
    /// Extended sequence numbers of the first and highest packets.
    first: u64,
    highest: u64,
    started: bool,
    received: u64,
    late: u64,
    duplicates: u64,
    too_old: u64,
    /// Holes opened by forward jumps, in packets.
    skipped: u64,
    /// Bit `ext % SEQ_WINDOW`: whether that packet arrived.
    seen: [u64; WINDOW_WORDS],
}

impl Default for SeqCounter {
    fn default() -> SeqCounter {
        SeqCounter {
            first: 0,
            highest: 0,
            started: false,
            received: 0,
            late: 0,
            duplicates: 0,
            too_old: 0,
            skipped: 0,
            seen: [0; WINDOW_WORDS],
        }
    }
}

/// Extended counting starts this far up, so that a packet from just
/// before the first one does not go below zero.
const EXTENDED_BASE: u64 = 1 << 16;

impl SeqCounter {
    pub fn record(&mut self, seq: u16) -> Arrival {
        if !self.started {
            self.started = true;
            self.first = EXTENDED_BASE + u64::from(seq);
            self.highest = self.first;
            self.received = 1;
            self.mark(self.first);
            return Arrival::Next { skipped: 0 };
        }
        // The nearest extension of `seq` to the highest seen.
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        let ext = self.highest as i64 + delta;
        if ext < self.first as i64 {
            self.too_old += 1;
            return Arrival::TooOld;
        }
        let ext = ext as u64;
        if ext > self.highest {
            let skipped = ext - self.highest - 1;
            if ext - self.highest >= SEQ_WINDOW {
                self.seen = [0; WINDOW_WORDS];
            } else {
                for hole in self.highest + 1..ext {
                    self.unmark(hole);
                }
            }
            self.highest = ext;
            self.skipped += skipped;
            self.received += 1;
            self.mark(ext);
            return Arrival::Next { skipped };
        }
        if self.highest - ext >= SEQ_WINDOW {
            self.too_old += 1;
            return Arrival::TooOld;
        }
        if self.is_marked(ext) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.mark(ext);
        self.received += 1;
        self.late += 1;
        Arrival::Late
    }

    fn bit(ext: u64) -> (usize, u64) {
        let index = ext % SEQ_WINDOW;
        ((index / 64) as usize, 1 << (index % 64))
    }

    fn mark(&mut self, ext: u64) {
        let (word, bit) = Self::bit(ext);
        self.seen[word] |= bit;
    }

    fn unmark(&mut self, ext: u64) {
        let (word, bit) = Self::bit(ext);
        self.seen[word] &= !bit;
    }

    fn is_marked(&self, ext: u64) -> bool {
        let (word, bit) = Self::bit(ext);
        self.seen[word] & bit != 0
    }

    /// Packets from the first to the highest, both included.
    pub fn expected(&self) -> u64 {
        if self.started {
            self.highest - self.first + 1
        } else {
            0
        }
    }

    /// Unique packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets still missing: expected but never received.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Packets that filled a hole after a later one had arrived: reordering
    /// or retransmission.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Packets received twice (or too far behind to tell).
    pub fn duplicates(&self) -> u64 {
        self.duplicates + self.too_old
    }

    /// Holes opened by forward jumps, in packets, before any were filled.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// True if an H.264 RTP payload (RFC 6184) carries an IDR slice, or the
/// start of one: a single NAL unit of type 5, a STAP-A holding one, or the
/// first fragment of an FU-A of one.
pub fn h264_has_idr(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        IDR => true,
        STAP_A => {
            let mut rest = &payload[1..];
            // Bounded: every round consumes at least the two size bytes.
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(nal) = rest.get(2..2 + size) else {
                    return false;
                };
                if nal.first().is_some_and(|&h| h & 0x1f == IDR) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && fu & 0x1f == IDR),
        _ => false,
    }
}

/// A video frame put together from its RTP packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// RTP timestamp shared by its packets.
    pub timestamp: u32,
    pub keyframe: bool,
    /// Payload bytes of its packets.
    pub bytes: usize,
    pub packets: u32,
    /// Arrival of its last packet.
    pub completed_at: Instant,
}

/// Up to two frames completed by one packet: the previous one when its
/// marker packet never came, and this one when it carries the marker.
pub type Completed = [Option<Frame>; 2];

/// Groups video packets into frames, one per RTP timestamp: a frame ends at
/// its marker bit, or, if that packet is lost, when a packet of a later
/// timestamp arrives. A packet of a frame already ended (a retransmission
/// arriving after the marker) counts toward no frame.
#[derive(Debug, Default)]
pub struct FrameAssembler {
    current: Option<Frame>,
    /// Timestamp of the last frame handed out.
    last_done: Option<u32>,
    stale_packets: u64,
}

/// `a` is later than `b` in RTP timestamp order (half the range ahead).
fn is_later(a: u32, b: u32) -> bool {
    let diff = a.wrapping_sub(b);
    diff != 0 && diff < 1 << 31
}

impl FrameAssembler {
    pub fn push(
        &mut self,
        timestamp: u32,
        marker: bool,
        keyframe: bool,
        bytes: usize,
        at: Instant,
    ) -> Completed {
        let mut completed: Completed = [None, None];
        let belongs_to_current = self.current.is_some_and(|f| f.timestamp == timestamp);
        if !belongs_to_current {
            let newest = self.current.map(|f| f.timestamp).or(self.last_done);
            if newest.is_some_and(|newest| !is_later(timestamp, newest)) {
                self.stale_packets += 1;
                return completed;
            }
            completed[0] = self.current.take();
            if let Some(frame) = completed[0] {
                self.last_done = Some(frame.timestamp);
            }
            self.current = Some(Frame {
                timestamp,
                keyframe: false,
                bytes: 0,
                packets: 0,
                completed_at: at,
            });
        }
        let Some(frame) = self.current.as_mut() else {
            return completed;
        };
        frame.keyframe |= keyframe;
        frame.bytes += bytes;
        frame.packets += 1;
        frame.completed_at = at;
        if marker {
            self.last_done = Some(timestamp);
            completed[1] = self.current.take();
        }
        completed
    }

    /// Packets that came after their frame had been handed out, or were
    /// older than it.
    pub fn stale_packets(&self) -> u64 {
        self.stale_packets
    }
}

/// RTP timestamps to milliseconds of media time since the stream's first
/// packet, carried past the 32-bit wrap.
#[derive(Debug, Clone, Copy)]
pub struct Unwrapper {
    clock_rate: u32,
    first: Option<u32>,
    /// Extended timestamp of the last packet, relative to the first.
    last: i64,
}

impl Unwrapper {
    pub fn new(clock_rate: u32) -> Unwrapper {
        Unwrapper {
            clock_rate: clock_rate.max(1),
            first: None,
            last: 0,
        }
    }

    /// Media time of `timestamp`, wrapped to `u32` milliseconds like an RTMP
    /// timestamp (so that [`crate::behind_live`] reads it the same way).
    pub fn millis(&mut self, timestamp: u32) -> u32 {
        let Some(first) = self.first else {
            self.first = Some(timestamp);
            self.last = 0;
            return 0;
        };
        let last_raw = first.wrapping_add(self.last as u32);
        let delta = i64::from(timestamp.wrapping_sub(last_raw) as i32);
        self.last += delta;
        (self.last * 1000).div_euclid(i64::from(self.clock_rate)) as u32
    }
}

/// Seconds between 1900 (NTP's epoch) and 1970 (Unix's).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp as time since the Unix epoch; `None` before 1970.
pub fn ntp_to_unix(ntp: u64) -> Option<Duration> {
    let seconds = (ntp >> 32).checked_sub(NTP_UNIX_OFFSET_S)?;
    let fraction = ntp & 0xffff_ffff;
    let nanos = (fraction * 1_000_000_000) >> 32;
    Some(Duration::new(seconds, nanos as u32))
}

/// The sender's clock from its last RTCP sender report: the wall-clock time
/// (NTP) that goes with an RTP timestamp of the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SenderClock {
    /// The report's NTP time, since the Unix epoch.
    pub wall: Duration,
    pub rtp: u32,
    pub clock_rate: u32,
}

impl SenderClock {
    pub fn from_report(ntp: u64, rtp: u32, clock_rate: u32) -> Option<SenderClock> {
        Some(SenderClock {
            wall: ntp_to_unix(ntp)?,
            rtp,
            clock_rate: clock_rate.max(1),
        })
    }

    /// Seconds by which a packet stamped `timestamp` that arrived at
    /// `arrived` (since the Unix epoch, on the same clock as the sender's)
    /// is behind the sender's clock. Negative when it arrived "before" it
    /// was due, which on one machine means the sender stamped ahead.
    pub fn lag_s(&self, timestamp: u32, arrived: Duration) -> f64 {
        let media = f64::from(timestamp.wrapping_sub(self.rtp) as i32) / f64::from(self.clock_rate);
        let due = self.wall.as_secs_f64() + media;
        arrived.as_secs_f64() - due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_packets_lose_nothing_across_the_wrap() {
        let mut seq = SeqCounter::default();
        for i in 0..100u16 {
            assert_eq!(
                seq.record(65_500u16.wrapping_add(i)),
                Arrival::Next { skipped: 0 }
            );
        }
        assert_eq!((seq.expected(), seq.received(), seq.lost()), (100, 100, 0));
        assert_eq!(seq.late(), 0);
    }

    #[test]
    fn a_gap_is_lost_until_a_retransmission_fills_it() {
        let mut seq = SeqCounter::default();
        seq.record(10);
        seq.record(11);
        assert_eq!(seq.record(15), Arrival::Next { skipped: 3 });
        assert_eq!(seq.lost(), 3);
        assert_eq!(seq.skipped(), 3);
        assert_eq!(seq.record(13), Arrival::Late);
        assert_eq!(seq.record(13), Arrival::Duplicate);
        assert_eq!(seq.lost(), 2);
        assert_eq!(seq.late(), 1);
        assert_eq!(seq.duplicates(), 1);
        assert_eq!((seq.expected(), seq.received()), (6, 4));
    }

    #[test]
    fn a_gap_across_the_wrap() {
        let mut seq = SeqCounter::default();
        seq.record(65_534);
        assert_eq!(seq.record(1), Arrival::Next { skipped: 2 });
        assert_eq!(seq.record(65_535), Arrival::Late);
        assert_eq!(seq.record(0), Arrival::Late);
        assert_eq!((seq.expected(), seq.lost()), (4, 0));
    }

    #[test]
    fn packets_before_the_first_or_far_behind_are_too_old() {
        let mut seq = SeqCounter::default();
        seq.record(1000);
        assert_eq!(seq.record(999), Arrival::TooOld);
        for i in 1..=SEQ_WINDOW as u16 + 10 {
            seq.record(1000 + i);
        }
        assert_eq!(seq.record(1005), Arrival::TooOld);
        assert_eq!(seq.lost(), 0);
        assert_eq!(seq.duplicates(), 2);
    }

    #[test]
    fn a_jump_beyond_the_window_forgets_what_was_seen() {
        let mut seq = SeqCounter::default();
        seq.record(0);
        // 0's bit is reused by 2048; it must not read as already seen.
        assert_eq!(seq.record(2048), Arrival::Next { skipped: 2047 });
        assert_eq!(seq.record(2048 - 1000), Arrival::Late);
        assert_eq!(seq.lost(), 2046);
    }

    #[test]
    fn idr_in_single_nal_stap_a_and_fu_a() {
        assert!(h264_has_idr(&[0x65, 0x88]));
        assert!(!h264_has_idr(&[0x41, 0x9a]));
        assert!(!h264_has_idr(&[]));
        // STAP-A: SPS (2 bytes), PPS (2 bytes), IDR (2 bytes).
        let stap = [0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce, 0, 2, 0x65, 0x88];
        assert!(h264_has_idr(&stap));
        assert!(!h264_has_idr(&stap[..9]));
        // A size running past the end.
        assert!(!h264_has_idr(&[0x78, 0, 9, 0x65]));
        // FU-A of an IDR: start fragment yes, middle no.
        assert!(h264_has_idr(&[0x7c, 0x85, 0x88]));
        assert!(!h264_has_idr(&[0x7c, 0x05, 0x88]));
        assert!(!h264_has_idr(&[0x7c, 0x81, 0x88]));
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn frames_end_at_the_marker() {
        let t0 = Instant::now();
        let mut frames = FrameAssembler::default();
        assert_eq!(
            frames.push(3000, false, true, 1000, ms(t0, 1)),
            [None, None]
        );
        assert_eq!(
            frames.push(3000, false, false, 1000, ms(t0, 2)),
            [None, None]
        );
        let [none, done] = frames.push(3000, true, false, 500, ms(t0, 3));
        assert_eq!(none, None);
        assert_eq!(
            done,
            Some(Frame {
                timestamp: 3000,
                keyframe: true,
                bytes: 2500,
                packets: 3,
                completed_at: ms(t0, 3)
            })
        );
        // A retransmission of that frame after its marker: no new frame.
        assert_eq!(
            frames.push(3000, false, false, 1000, ms(t0, 4)),
            [None, None]
        );
        assert_eq!(frames.stale_packets(), 1);
    }

    #[test]
    fn a_lost_marker_ends_the_frame_at_the_next_timestamp() {
        let t0 = Instant::now();
        let mut frames = FrameAssembler::default();
        frames.push(0, false, false, 100, ms(t0, 1));
        let [previous, this] = frames.push(3000, true, false, 100, ms(t0, 34));
        assert_eq!(previous.map(|f| (f.timestamp, f.packets)), Some((0, 1)));
        assert_eq!(this.map(|f| f.timestamp), Some(3000));
        // An old timestamp after both: stale.
        assert_eq!(frames.push(0, true, false, 100, ms(t0, 40)), [None, None]);
        // Timestamps wrap.
        let [_, wrapped] = frames.push(3000u32.wrapping_sub(6000), true, false, 1, ms(t0, 50));
        assert_eq!(wrapped, None);
        let mut near_wrap = FrameAssembler::default();
        near_wrap.push(u32::MAX - 1000, true, false, 1, ms(t0, 1));
        let [_, after] = near_wrap.push(2000, true, false, 1, ms(t0, 34));
        assert_eq!(after.map(|f| f.timestamp), Some(2000));
    }

    #[test]
    fn unwrapper_gives_media_milliseconds_across_the_wrap() {
        let mut clock = Unwrapper::new(90_000);
        let start = u32::MAX - 45_000;
        assert_eq!(clock.millis(start), 0);
        assert_eq!(clock.millis(start.wrapping_add(90_000)), 1000);
        assert_eq!(clock.millis(start.wrapping_add(180_000)), 2000);
        // Back a little (a reordered frame): earlier media time.
        assert_eq!(clock.millis(start.wrapping_add(171_000)), 1900);
        let mut audio = Unwrapper::new(48_000);
        audio.millis(7);
        assert_eq!(audio.millis(7 + 960), 20);
    }

    #[test]
    fn ntp_time_to_unix() {
        assert_eq!(ntp_to_unix(0), None);
        let one_and_a_half = ((NTP_UNIX_OFFSET_S + 1) << 32) | (1 << 31);
        assert_eq!(
            ntp_to_unix(one_and_a_half),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn lag_behind_the_sender_clock() {
        let ntp = (NTP_UNIX_OFFSET_S + 1_000) << 32;
        let clock = SenderClock::from_report(ntp, 90_000, 90_000).unwrap();
        // A frame 1 s after the report's timestamp, arriving 1.05 s after it.
        let lag = clock.lag_s(180_000, Duration::from_millis(1_001_050));
        assert!((lag - 0.05).abs() < 1e-6, "{lag}");
        // A frame from before the report (an old frame sent late).
        let lag = clock.lag_s(0, Duration::from_millis(1_000_010));
        assert!((lag - 1.01).abs() < 1e-6, "{lag}");
        // Across the RTP wrap.
        let wrapped = SenderClock::from_report(ntp, u32::MAX - 8_999, 90_000).unwrap();
        let lag = wrapped.lag_s(81_000, Duration::from_millis(1_001_000));
        assert!(lag.abs() < 1e-6, "{lag}");
    }
}
