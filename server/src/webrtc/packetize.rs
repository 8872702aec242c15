//! H.264 access units to RTP payloads, RFC 6184 non-interleaved mode
//! (packetization-mode=1), made once per stream and shared by every viewer (pure).
//!
//! Input is what the hub carries: the AVCDecoderConfigurationRecord of the FLV
//! sequence header (ISO/IEC 14496-15, 5.3.3.1) and access units in AVCC form,
//! NAL units each preceded by a big-endian length. Output is payloads only: the
//! RTP header (sequence number, timestamp, SSRC, marker) belongs to each
//! viewer's sender.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// NAL unit types (ITU-T H.264, Table 7-1).
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;
/// Payload structures (RFC 6184, Table 1).
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// FU indicator and FU header: the least an FU-A needs besides one byte of
/// NAL unit (RFC 6184, 5.8).
const MIN_MTU: usize = 3;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketizeError {
    #[error(
        "the H.264 sequence header cannot be used for WebRTC: {0}; restart the stream in the \
         encoder, and if this persists switch the encoder to x264"
    )]
    Record(&'static str),
    #[error(
        "an RTP payload size of {0} bytes cannot hold an FU-A fragment; use at least {MIN_MTU} \
         (about 1200 is usual for WebRTC)"
    )]
    MtuTooSmall(usize),
    #[error(
        "the access unit of {len} bytes is cut short at byte {offset} (a NAL unit length runs \
         past its end); drop the frame and resume at the next keyframe"
    )]
    Truncated { offset: usize, len: usize },
}

/// Cuts one stream's access units into RTP payloads.
#[derive(Debug, Clone)]
pub struct H264Packetizer {
    /// The record's SPS and PPS, compared against in-band copies so they are
    /// not sent twice.
    parameter_sets: Vec<Bytes>,
    /// The same as payloads, ready to go ahead of every IDR: one STAP-A when
    /// they fit, so a viewer can start at any keyframe.
    prelude: Vec<Bytes>,
    /// Bytes in each NAL unit length prefix (`lengthSizeMinusOne + 1`).
    length_size: usize,
    /// Largest payload, in bytes.
    mtu: usize,
}

impl H264Packetizer {
    /// From an AVCDecoderConfigurationRecord (the FLV sequence header body
    /// after its 5-byte tag header); keeps its SPS and PPS. `mtu` is the
    /// largest RTP payload in bytes.
    ///
    /// # Errors
    /// A record that is damaged, or holds no SPS or no PPS; an `mtu` too small
    /// for an FU-A fragment.
    pub fn new(record: &[u8], mtu: usize) -> Result<Self, PacketizeError> {
        if mtu < MIN_MTU {
            return Err(PacketizeError::MtuTooSmall(mtu));
        }
        let (length_size, parameter_sets) = read_record(record)?;
        let mut prelude = Vec::new();
        let stap_a_len = 1 + parameter_sets.iter().map(|p| 2 + p.len()).sum::<usize>();
        if stap_a_len <= mtu {
            prelude.push(stap_a(&parameter_sets, stap_a_len));
        } else {
            let mut buf = BytesMut::new();
            for nal in &parameter_sets {
                push_nal(nal, mtu, &mut buf, &mut prelude);
            }
        }
        Ok(Self {
            parameter_sets,
            prelude,
            length_size,
            mtu,
        })
    }

    /// One AVCC access unit to the RTP payloads of that frame, in order.
    ///
    /// Before every IDR the SPS and PPS go first (as one STAP-A when they
    /// fit), unless the access unit carries both itself; copies of the
    /// record's parameter sets inside the access unit are then not sent
    /// twice. NAL units up to `mtu` go as single NAL unit packets, larger ones
    /// as FU-A fragments. AUD and filler NAL units are dropped. The caller sets
    /// the RTP marker bit on the last payload: "set for the very last packet
    /// of the access unit indicated by the RTP timestamp" (RFC 6184, 5.1).
    ///
    /// # Errors
    /// A truncated access unit; nothing of it is returned.
    pub fn packetize(
        &self,
        access_unit: &[u8],
        keyframe: bool,
    ) -> Result<Vec<Bytes>, PacketizeError> {
        let nal_units = split_avcc(access_unit, self.length_size)?;
        let has = |kind: u8| nal_units.iter().any(|nal| nal_type(nal) == kind);
        let prepend = (keyframe || has(NAL_IDR)) && !(has(NAL_SPS) && has(NAL_PPS));

        let mut payloads = Vec::new();
        if prepend {
            payloads.extend(self.prelude.iter().cloned());
        }
        // Normally one allocation per frame, every payload a slice of it: the
        // estimate covers two header bytes per fragment.
        let fragments = access_unit.len() / (self.mtu - 2) + nal_units.len();
        let mut buf = BytesMut::with_capacity(access_unit.len() + 2 * fragments);
        for nal in nal_units {
            match nal_type(nal) {
                NAL_AUD | NAL_FILLER => continue,
                // Types H.264 leaves unspecified; 24 to 29 would be read as
                // RFC 6184 payload structures, so no receiver could use them.
                0 | 24..=31 => continue,
                NAL_SPS | NAL_PPS if prepend && self.parameter_sets.iter().any(|p| p == nal) => {
                    continue;
                }
                _ => push_nal(nal, self.mtu, &mut buf, &mut payloads),
            }
        }
        Ok(payloads)
    }
}

/// The type of a NAL unit; callers pass non-empty ones only.
fn nal_type(nal: &[u8]) -> u8 {
    nal[0] & 0x1f
}

/// Reads the length size and the SPS and PPS of an AVCDecoderConfigurationRecord
/// (ISO/IEC 14496-15, 5.3.3.1.2). Trailing fields (High profile chroma format
/// and bit depths) are not needed here.
fn read_record(record: &[u8]) -> Result<(usize, Vec<Bytes>), PacketizeError> {
    let mut rest = record;
    let header = take(&mut rest, 6).ok_or(SHORT_RECORD)?;
    if header[0] != 1 {
        return Err(PacketizeError::Record(
            "the configuration record version is not 1",
        ));
    }
    let length_size = usize::from(header[4] & 0x03) + 1;
    let sps = read_parameter_sets(&mut rest, usize::from(header[5] & 0x1f), NAL_SPS)?;
    let pps_count = take(&mut rest, 1).ok_or(SHORT_RECORD)?[0];
    let pps = read_parameter_sets(&mut rest, usize::from(pps_count), NAL_PPS)?;
    if sps.is_empty() {
        return Err(PacketizeError::Record("it carries no SPS"));
    }
    if pps.is_empty() {
        return Err(PacketizeError::Record("it carries no PPS"));
    }
    Ok((length_size, [sps, pps].concat()))
}

const SHORT_RECORD: PacketizeError =
    PacketizeError::Record("the configuration record is cut short");

/// `count` entries of a 16-bit length and a NAL unit. Empty entries and ones
/// not of type `kind` are left out: no decoder could use them in its place.
fn read_parameter_sets(
    rest: &mut &[u8],
    count: usize,
    kind: u8,
) -> Result<Vec<Bytes>, PacketizeError> {
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take(rest, 2).ok_or(SHORT_RECORD)?;
        let nal =
            take(rest, usize::from(u16::from_be_bytes([len[0], len[1]]))).ok_or(SHORT_RECORD)?;
        if nal.first().is_some_and(|&header| header & 0x1f == kind) {
            sets.push(Bytes::copy_from_slice(nal));
        }
    }
    Ok(sets)
}

/// The next `n` bytes of `rest`, which moves past them.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = rest.split_at_checked(n)?;
    *rest = tail;
    Some(head)
}

/// The NAL units of an AVCC access unit, without empty ones.
fn split_avcc(access_unit: &[u8], length_size: usize) -> Result<Vec<&[u8]>, PacketizeError> {
    let mut nal_units = Vec::new();
    let mut rest = access_unit;
    while !rest.is_empty() {
        let offset = access_unit.len() - rest.len();
        let truncated = || PacketizeError::Truncated {
            offset,
            len: access_unit.len(),
        };
        let prefix = take(&mut rest, length_size).ok_or_else(truncated)?;
        let len = prefix
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
        let nal = take(&mut rest, len).ok_or_else(truncated)?;
        if !nal.is_empty() {
            nal_units.push(nal);
        }
    }
    Ok(nal_units)
}

/// A STAP-A of `nal_units` (RFC 6184, 5.7.1). Per 5.7, "The value of NRI MUST
/// be the maximum of all the NAL units carried in the aggregation packet", and
/// F is set if any of theirs is.
fn stap_a(nal_units: &[Bytes], len: usize) -> Bytes {
    let f = nal_units.iter().fold(0, |f, nal| f | (nal[0] & 0x80));
    let nri = nal_units.iter().map(|nal| nal[0] & 0x60).max().unwrap_or(0);
    let mut buf = BytesMut::with_capacity(len);
    buf.put_u8(f | nri | STAP_A);
    for nal in nal_units {
        // Parameter sets come from 16-bit length fields of the record.
        buf.put_u16(nal.len() as u16);
        buf.put_slice(nal);
    }
    buf.freeze()
}

/// Appends `nal` as one single NAL unit packet (RFC 6184, 5.6) or, when larger
/// than `mtu`, as FU-A fragments (5.8). `buf` is split off for each payload.
fn push_nal(nal: &[u8], mtu: usize, buf: &mut BytesMut, payloads: &mut Vec<Bytes>) {
    if nal.len() <= mtu {
        buf.put_slice(nal);
        payloads.push(buf.split().freeze());
        return;
    }
    // The FU indicator takes F and NRI from the NAL unit header with type 28,
    // the FU header S, E and the NAL unit's type; the header itself is not
    // sent. A NAL unit larger than `mtu` always takes two fragments or more,
    // so S and E are never set together: "the Start bit and End bit MUST NOT
    // both be set to one in the same FU header".
    let indicator = (nal[0] & 0xe0) | FU_A;
    let body = &nal[1..];
    let chunks = body.chunks(mtu - 2);
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.enumerate() {
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i == last { 0x40 } else { 0 };
        buf.put_u8(indicator);
        buf.put_u8(start | end | nal_type(nal));
        buf.put_slice(chunk);
        payloads.push(buf.split().freeze());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of an FLV written by
    /// `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=30 -t 1 -c:v libx264
    /// -preset ultrafast -g 30 -bf 0 -f flv`, cut after the fourth video frame:
    /// the FLV header, a script tag, the AVC sequence header (Constrained
    /// Baseline, 42c00d), one IDR frame (SEI + IDR slice of 8054 bytes) and
    /// three P frames.
    const CAPTURE: &[u8] = include_bytes!("../../tests/data/testsrc2-320x240-cb.flv");

    const MTU: usize = 1200;

    /// What the capture holds, as the hub would carry it.
    struct Capture {
        record: &'static [u8],
        /// (keyframe, AVCC access unit)
        frames: Vec<(bool, &'static [u8])>,
    }

    /// FLV spec v10.1, E.2 and E.4: a 9-byte header, then tags of an 11-byte
    /// header and a body, each followed by a 4-byte previous tag size.
    fn capture() -> Capture {
        let mut record = None;
        let mut frames = Vec::new();
        let mut offset = 9 + 4;
        while offset + 11 <= CAPTURE.len() {
            let tag = &CAPTURE[offset..];
            let size = u32::from_be_bytes([0, tag[1], tag[2], tag[3]]) as usize;
            let body = &tag[11..11 + size];
            if tag[0] == 9 {
                match body[1] {
                    0 => record = Some(&body[5..]),
                    _ => frames.push((body[0] >> 4 == 1, &body[5..])),
                }
            }
            offset += 11 + size + 4;
        }
        Capture {
            record: record.expect("the capture has a sequence header"),
            frames,
        }
    }

    /// NAL units of an access unit with 4-byte lengths, read independently of
    /// the code under test.
    fn nal_units(access_unit: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = access_unit;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            out.push(rest[4..4 + len].to_vec());
            rest = &rest[4 + len..];
        }
        out
    }

    fn avcc(nal_units: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in nal_units {
            out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            out.extend_from_slice(nal);
        }
        out
    }

    /// The SPS and PPS of the capture's record.
    fn parameter_sets(record: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let sps_len = usize::from(u16::from_be_bytes([record[6], record[7]]));
        let sps = record[8..8 + sps_len].to_vec();
        let pps_at = 8 + sps_len + 1;
        let pps_len = usize::from(u16::from_be_bytes([record[pps_at], record[pps_at + 1]]));
        let pps = record[pps_at + 2..pps_at + 2 + pps_len].to_vec();
        (sps, pps)
    }

    /// A receiver's side of RFC 6184 non-interleaved mode: single NAL unit
    /// packets, STAP-A and FU-A back to NAL units, checking each structure.
    fn depacketize(payloads: &[Bytes]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut fragment: Option<Vec<u8>> = None;
        for payload in payloads {
            match payload[0] & 0x1f {
                1..=23 => {
                    assert!(fragment.is_none(), "single NAL unit inside an FU-A run");
                    out.push(payload.to_vec());
                }
                STAP_A => {
                    assert!(fragment.is_none(), "STAP-A inside an FU-A run");
                    let mut rest = &payload[1..];
                    let mut max_nri = 0;
                    while !rest.is_empty() {
                        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                        let nal = &rest[2..2 + len];
                        max_nri = max_nri.max(nal[0] & 0x60);
                        out.push(nal.to_vec());
                        rest = &rest[2 + len..];
                    }
                    assert_eq!(payload[0] & 0x60, max_nri, "STAP-A NRI is not the maximum");
                }
                FU_A => {
                    let (indicator, header) = (payload[0], payload[1]);
                    let (start, end) = (header & 0x80 != 0, header & 0x40 != 0);
                    assert!(!(start && end), "FU-A with both S and E");
                    assert_eq!(header & 0x20, 0, "FU-A R bit set");
                    let nal_header = (indicator & 0xe0) | (header & 0x1f);
                    let nal = match (start, fragment.take()) {
                        (true, None) => vec![nal_header],
                        (false, Some(nal)) => {
                            assert_eq!(nal[0], nal_header, "FU-A NRI or type changed mid-way");
                            nal
                        }
                        (true, Some(_)) => panic!("FU-A start before the previous one ended"),
                        (false, None) => panic!("FU-A continuation without a start"),
                    };
                    let mut nal = nal;
                    nal.extend_from_slice(&payload[2..]);
                    if end {
                        out.push(nal);
                    } else {
                        fragment = Some(nal);
                    }
                }
                other => panic!("unexpected payload type {other}"),
            }
        }
        assert!(fragment.is_none(), "FU-A run without an end");
        out
    }

    #[test]
    fn capture_frames_come_back_byte_exact_with_parameter_sets_on_the_keyframe() {
        let capture = capture();
        assert_eq!(capture.frames.len(), 4);
        let (sps, pps) = parameter_sets(capture.record);
        let packetizer = H264Packetizer::new(capture.record, MTU).unwrap();
        for (i, &(keyframe, access_unit)) in capture.frames.iter().enumerate() {
            let payloads = packetizer.packetize(access_unit, keyframe).unwrap();
            let mut expected = nal_units(access_unit);
            if keyframe {
                expected.splice(0..0, [sps.clone(), pps.clone()]);
            }
            assert_eq!(depacketize(&payloads), expected, "frame {i}");
            let largest = payloads.iter().map(Bytes::len).max().unwrap();
            assert!(largest <= MTU, "frame {i}: a payload of {largest} bytes");
        }
    }

    #[test]
    fn keyframe_starts_with_one_stap_a_of_sps_and_pps() {
        let capture = capture();
        let (sps, pps) = parameter_sets(capture.record);
        let packetizer = H264Packetizer::new(capture.record, MTU).unwrap();
        let (keyframe, idr) = capture.frames[0];
        assert!(keyframe);
        let payloads = packetizer.packetize(idr, true).unwrap();
        assert_eq!(payloads[0][0] & 0x1f, STAP_A);
        // SPS and PPS of x264 have NRI 3.
        assert_eq!(payloads[0][0], 0x60 | STAP_A);
        assert_eq!(depacketize(&payloads[..1]), vec![sps, pps]);
        // Then the SEI as a single NAL unit packet.
        assert_eq!(payloads[1][0] & 0x1f, 6);
    }

    #[test]
    fn large_idr_becomes_fu_a_fragments_with_start_and_end() {
        let capture = capture();
        let packetizer = H264Packetizer::new(capture.record, MTU).unwrap();
        let idr_nal = nal_units(capture.frames[0].1).pop().unwrap();
        assert_eq!(idr_nal.len(), 8054);
        let payloads = packetizer.packetize(capture.frames[0].1, true).unwrap();
        let fragments: Vec<&Bytes> = payloads.iter().filter(|p| p[0] & 0x1f == FU_A).collect();
        // 8053 bytes after the NAL unit header, 1198 per fragment.
        assert_eq!(fragments.len(), 7);
        for (i, fragment) in fragments.iter().enumerate() {
            assert_eq!(
                fragment[0] & 0xe0,
                idr_nal[0] & 0xe0,
                "F and NRI of fragment {i}"
            );
            assert_eq!(
                fragment[1] & 0x1f,
                NAL_IDR,
                "type in FU header of fragment {i}"
            );
            let start = fragment[1] & 0x80 != 0;
            let end = fragment[1] & 0x40 != 0;
            assert_eq!((start, end), (i == 0, i == 6), "S and E of fragment {i}");
        }
        assert!(fragments[..6].iter().all(|f| f.len() == MTU));
    }

    #[test]
    fn small_mtu_sends_parameter_sets_apart_and_everything_round_trips() {
        let capture = capture();
        let (sps, pps) = parameter_sets(capture.record);
        // The STAP-A would be 1 + 2 + 22 + 2 + 4 bytes, and the SPS alone
        // is larger than the MTU.
        assert_eq!((sps.len(), pps.len()), (22, 4));
        let mtu = 20;
        let packetizer = H264Packetizer::new(capture.record, mtu).unwrap();
        let (_, idr) = capture.frames[0];
        let payloads = packetizer.packetize(idr, true).unwrap();
        assert!(payloads.iter().all(|p| p.len() <= mtu));
        assert!(payloads.iter().all(|p| p[0] & 0x1f != STAP_A));
        assert_eq!(payloads[0][0] & 0x1f, FU_A, "the 22-byte SPS is fragmented");
        let mut expected = vec![sps, pps];
        expected.extend(nal_units(idr));
        assert_eq!(depacketize(&payloads), expected);
    }

    #[test]
    fn smallest_mtu_carries_one_byte_per_fragment() {
        let capture = capture();
        let packetizer = H264Packetizer::new(capture.record, MIN_MTU).unwrap();
        let (_, p_frame) = capture.frames[1];
        let payloads = packetizer.packetize(p_frame, false).unwrap();
        assert!(payloads.iter().all(|p| p.len() <= MIN_MTU));
        assert_eq!(depacketize(&payloads), nal_units(p_frame));
    }

    #[test]
    fn other_frames_carry_no_parameter_sets() {
        let capture = capture();
        let packetizer = H264Packetizer::new(capture.record, MTU).unwrap();
        for &(keyframe, access_unit) in &capture.frames[1..] {
            assert!(!keyframe);
            let payloads = packetizer.packetize(access_unit, false).unwrap();
            let types: Vec<u8> = depacketize(&payloads).iter().map(|n| n[0] & 0x1f).collect();
            assert_eq!(types, vec![1]);
        }
    }

    #[test]
    fn an_idr_slice_gets_parameter_sets_even_when_not_flagged_as_keyframe() {
        let capture = capture();
        let (sps, _) = parameter_sets(capture.record);
        let packetizer = H264Packetizer::new(capture.record, MTU).unwrap();
        let payloads = packetizer.packetize(capture.frames[0].1, false).unwrap();
        assert_eq!(depacketize(&payloads)[0], sps);
    }

    #[test]
    fn parameter_sets_already_in_the_access_unit_are_not_sent_twice() {
        let capture = capture();
        let (sps, pps) = parameter_sets(capture.record);
        let packetizer = H264Packetizer::new(capture.record, MTU).unwrap();
        let original = nal_units(capture.frames[0].1);
        let (sei, idr) = (&original[0], &original[1]);

        // Both in-band, as encoders that repeat headers send them: as they are.
        let both = avcc(&[&sps, &pps, sei, idr]);
        let payloads = packetizer.packetize(&both, true).unwrap();
        assert_eq!(
            depacketize(&payloads),
            vec![sps.clone(), pps.clone(), sei.clone(), idr.clone()]
        );

        // Only the SPS in-band: the record's pair goes first, the copy is dropped.
        let sps_only = avcc(&[sei, &sps, idr]);
        let payloads = packetizer.packetize(&sps_only, true).unwrap();
        assert_eq!(
            depacketize(&payloads),
            vec![sps.clone(), pps.clone(), sei.clone(), idr.clone()]
        );

        // A PPS that differs from the record's is kept after it, so it wins.
        let new_pps = [0x68, 0xce, 0x3c, 0x80];
        let changed = avcc(&[&new_pps, idr]);
        let payloads = packetizer.packetize(&changed, true).unwrap();
        assert_eq!(
            depacketize(&payloads),
            vec![sps, pps, new_pps.to_vec(), idr.clone()]
        );
    }

    #[test]
    fn aud_filler_and_unspecified_nal_units_are_dropped() {
        let capture = capture();
        let packetizer = H264Packetizer::new(capture.record, MTU).unwrap();
        let slice = nal_units(capture.frames[1].1).pop().unwrap();
        let aud = [0x09, 0xf0];
        let filler = [0x0c, 0xff, 0xff, 0x80];
        let unspecified = [0x18, 0x01];
        let empty: [u8; 0] = [];
        let access_unit = avcc(&[&aud, &slice, &empty, &filler, &unspecified]);
        let payloads = packetizer.packetize(&access_unit, false).unwrap();
        assert_eq!(depacketize(&payloads), vec![slice]);
        let nothing = avcc(&[&aud, &filler]);
        assert!(packetizer.packetize(&nothing, false).unwrap().is_empty());
    }

    #[test]
    fn two_byte_lengths_from_the_record_are_honoured() {
        let capture = capture();
        let mut record = capture.record.to_vec();
        // lengthSizeMinusOne = 1, keeping the six reserved bits.
        record[4] = 0xfd;
        let packetizer = H264Packetizer::new(&record, MTU).unwrap();
        let slice = nal_units(capture.frames[1].1).pop().unwrap();
        let mut access_unit = (slice.len() as u16).to_be_bytes().to_vec();
        access_unit.extend_from_slice(&slice);
        let payloads = packetizer.packetize(&access_unit, false).unwrap();
        assert_eq!(depacketize(&payloads), vec![slice]);
    }

    #[test]
    fn truncated_access_units_are_errors_not_panics() {
        let capture = capture();
        let packetizer = H264Packetizer::new(capture.record, MTU).unwrap();
        let (_, idr) = capture.frames[0];
        // The SEI ends at 4 + 594; every cut inside the IDR slice is an error.
        assert_eq!(
            packetizer.packetize(&idr[..1000], true),
            Err(PacketizeError::Truncated {
                offset: 598,
                len: 1000
            })
        );
        assert_eq!(
            packetizer.packetize(&idr[..2], true),
            Err(PacketizeError::Truncated { offset: 0, len: 2 })
        );
        for len in 0..idr.len() {
            let result = packetizer.packetize(&idr[..len], true);
            assert_eq!(result.is_ok(), len == 0 || len == 598, "cut at {len}");
        }
    }

    #[test]
    fn bad_records_and_mtus_are_refused() {
        let capture = capture();
        let record = capture.record;
        assert_eq!(
            H264Packetizer::new(record, 2).unwrap_err(),
            PacketizeError::MtuTooSmall(2)
        );
        for len in 0..record.len() {
            assert!(
                matches!(
                    H264Packetizer::new(&record[..len], MTU),
                    Err(PacketizeError::Record(_))
                ),
                "record cut at {len}"
            );
        }
        let mut version_2 = record.to_vec();
        version_2[0] = 2;
        assert!(H264Packetizer::new(&version_2, MTU).is_err());
        // One SPS and no PPS.
        let mut no_pps = record[..8 + 22].to_vec();
        no_pps.push(0);
        let err = H264Packetizer::new(&no_pps, MTU).unwrap_err();
        assert_eq!(err, PacketizeError::Record("it carries no PPS"));
        assert!(err.to_string().contains("restart the stream"));
    }
}
