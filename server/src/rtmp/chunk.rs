//! RTMP chunking of media messages for players, sharing the payload (pure).
//!
//! rml_rtmp's serializer copies every payload into a fresh `Vec` per viewer; with
//! hundreds of viewers that copy is most of the work. Here each viewer gets only
//! its own few header bytes, and the payload goes to the socket as slices of the
//! one `Bytes` the publisher filled (RTMP spec 1.0, 5.3.1: chunk format).
//!
//! Every message starts with a full type-0 header, so no header compression
//! state is kept, and media (chunk streams 8 to 10) and the session's control
//! messages and commands (2 and 3) can go out in any order.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Chunk stream id for video messages.
pub const VIDEO_CSID: u8 = 8;
/// Chunk stream id for audio messages.
pub const AUDIO_CSID: u8 = 9;
/// Chunk stream id for `onMetaData`.
pub const DATA_CSID: u8 = 10;
/// RTMP message type ids (spec 7.1).
pub const MSG_AUDIO: u8 = 8;
pub const MSG_VIDEO: u8 = 9;
pub const MSG_DATA: u8 = 18;
/// Timestamps from this value up go in the extended timestamp field.
const EXTENDED: u32 = 0x00ff_ffff;

/// A queue of byte slices written to a socket with vectored writes.
///
/// Written out and handed back ([`crate::rtmp::RtmpSession::recycle`]), it
/// keeps its queue and its header buffer: a player's headers then reuse the
/// same memory frame after frame instead of allocating per frame.
#[derive(Debug, Default)]
pub struct BufList {
    parts: VecDeque<Bytes>,
    remaining: usize,
    /// Where headers are written; split off per message and reclaimed once
    /// the split parts are written and dropped.
    headers: BytesMut,
}

impl BufList {
    pub fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.remaining += part.len();
            self.parts.push_back(part);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl Buf for BufList {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.parts.front().map_or(&[], |part| part.as_ref())
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, part) in dst.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            filled += 1;
        }
        filled
    }

    fn advance(&mut self, mut count: usize) {
        self.remaining -= count;
        while count > 0 {
            let front = self.parts.front_mut().expect("advance within remaining");
            if count < front.len() {
                front.advance(count);
                return;
            }
            count -= front.len();
            self.parts.pop_front();
        }
    }
}

/// Appends one message, cut into chunks of `chunk_size`, to `out`.
///
/// # Panics
/// If `csid` is outside 2..=63 (the one-byte basic header form) or the payload
/// is larger than an RTMP message can be (16 MiB): both are programming errors.
pub fn push_message(
    out: &mut BufList,
    csid: u8,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &Bytes,
    chunk_size: usize,
) {
    assert!((2..=63).contains(&csid), "one-byte basic header");
    assert!(
        payload.len() <= 0x00ff_ffff,
        "RTMP message length is 24 bits"
    );
    let extended = timestamp >= EXTENDED;
    let chunks = payload.len().div_ceil(chunk_size).max(1);
    let ext_len = if extended { 4 } else { 0 };
    let headers = &mut out.headers;
    headers.reserve(12 + ext_len + (chunks - 1) * (1 + ext_len));

    // Type 0: basic header, then timestamp, length, type id, stream id (LE).
    headers.put_u8(csid);
    put_u24(headers, if extended { EXTENDED } else { timestamp });
    put_u24(headers, payload.len() as u32);
    headers.put_u8(type_id);
    headers.put_u32_le(stream_id);
    if extended {
        headers.put_u32(timestamp);
    }
    let first_len = headers.len();
    // Type 3 for the rest; like FFmpeg and nginx-rtmp, repeat the extended
    // timestamp in each, which is what readers of both expect.
    for _ in 1..chunks {
        headers.put_u8(0xc0 | csid);
        if extended {
            headers.put_u32(timestamp);
        }
    }
    let mut headers = headers.split().freeze();
    out.push(headers.split_to(first_len));
    for (i, start) in (0..payload.len()).step_by(chunk_size).enumerate() {
        if i > 0 {
            out.push(headers.split_to(1 + ext_len));
        }
        out.push(payload.slice(start..payload.len().min(start + chunk_size)));
    }
}

fn put_u24(buf: &mut BytesMut, value: u32) {
    buf.put_slice(&value.to_be_bytes()[1..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::ChunkDeserializer;

    fn flatten(mut list: BufList) -> Vec<u8> {
        let mut bytes = vec![0; list.remaining()];
        list.copy_to_slice(&mut bytes);
        bytes
    }

    /// rml_rtmp's own deserializer reads back what we chunked.
    fn read_back(bytes: &[u8], chunk_size: u32) -> Vec<(u32, u8, u32, Vec<u8>)> {
        let mut reader = ChunkDeserializer::new();
        reader.set_max_chunk_size(chunk_size as usize).unwrap();
        let mut messages = Vec::new();
        let mut input = bytes;
        while let Some(payload) = reader.get_next_message(input).unwrap() {
            input = &[];
            messages.push((
                payload.timestamp.value,
                payload.type_id,
                payload.message_stream_id,
                payload.data.to_vec(),
            ));
        }
        messages
    }

    #[test]
    fn a_list_written_out_reuses_its_header_memory() {
        let payload = Bytes::from_static(b"frame");
        let mut out = BufList::default();
        push_message(&mut out, VIDEO_CSID, MSG_VIDEO, 1, 40, &payload, 4096);
        let first = out.chunk().as_ptr();
        out.advance(out.remaining());
        for dts in [80, 120, 160] {
            push_message(&mut out, VIDEO_CSID, MSG_VIDEO, 1, dts, &payload, 4096);
            assert_eq!(out.chunk().as_ptr(), first, "frame at {dts} ms");
            out.advance(out.remaining());
        }
    }

    #[test]
    fn small_message_is_one_chunk_with_a_type_0_header() {
        let mut out = BufList::default();
        push_message(
            &mut out,
            VIDEO_CSID,
            MSG_VIDEO,
            1,
            1000,
            &Bytes::from_static(b"abc"),
            4096,
        );
        let bytes = flatten(out);
        assert_eq!(
            bytes,
            [8, 0, 3, 0xe8, 0, 0, 3, 9, 1, 0, 0, 0, b'a', b'b', b'c']
        );
    }

    #[test]
    fn large_message_reads_back_through_rml_rtmp() {
        let payload: Bytes = (0..10_000u32).map(|i| i as u8).collect::<Vec<_>>().into();
        let mut out = BufList::default();
        push_message(&mut out, VIDEO_CSID, MSG_VIDEO, 1, 40, &payload, 4096);
        push_message(
            &mut out,
            AUDIO_CSID,
            MSG_AUDIO,
            1,
            45,
            &payload.slice(..10),
            4096,
        );
        let messages = read_back(&flatten(out), 4096);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0], (40, MSG_VIDEO, 1, payload.to_vec()));
        assert_eq!(messages[1].0, 45);
    }

    #[test]
    fn extended_timestamps_read_back() {
        let payload = Bytes::from(vec![7u8; 5000]);
        let mut out = BufList::default();
        let ts = 0x0100_0000;
        push_message(&mut out, VIDEO_CSID, MSG_VIDEO, 1, ts, &payload, 4096);
        let messages = read_back(&flatten(out), 4096);
        assert_eq!(messages[0].0, ts);
        assert_eq!(messages[0].3.len(), 5000);
    }

    #[test]
    fn partial_advance_keeps_the_rest() {
        let mut list = BufList::default();
        list.push(Bytes::from_static(b"hello"));
        list.push(Bytes::from_static(b"world"));
        list.advance(7);
        assert_eq!(flatten(list), b"rld");
    }
}
