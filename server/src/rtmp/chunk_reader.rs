//! The RTMP chunk stream from a peer, read into messages with every cost
//! bounded (sans-IO).
//!
//! RTMP spec 1.0, 5.3: each chunk has a basic header (1 to 3 bytes: format
//! and chunk stream id), a message header of type 0 (11 bytes), 1 (7), 2 (3)
//! or 3 (none), an extended timestamp (4 bytes) when the 24-bit field is
//! `0xffffff`, and up to one chunk size of payload. Each chunk stream keeps its
//! own header state and its own partial message, so interleaved chunk streams
//! are read as the spec means them.
//!
//! What a peer may cost: the chunk size it sets ([`ChunkLimits::max_chunk_size`]),
//! the length of one message (smaller for commands and for anything before
//! the peer publishes), the chunk streams alive at once, and the bytes held
//! in partial messages on all of them. Memory grows only as payload bytes
//! actually arrive, never by the length a header announces; unparsed input
//! is at most one partial header (18 bytes).
//!
//! Set Chunk Size and Abort (5.4.1, 5.4.2) change how chunks are read, so
//! they are applied here; every other message is handed on.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

/// Message type ids (spec 5.4 and 7.1).
pub const SET_CHUNK_SIZE: u8 = 1;
pub const ABORT: u8 = 2;
pub const ACKNOWLEDGEMENT: u8 = 3;
pub const USER_CONTROL: u8 = 4;
pub const WINDOW_ACK_SIZE: u8 = 5;
pub const SET_PEER_BANDWIDTH: u8 = 6;
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const AMF3_DATA: u8 = 15;
pub const AMF3_COMMAND: u8 = 17;
pub const AMF0_DATA: u8 = 18;
pub const AMF0_COMMAND: u8 = 20;

/// The chunk size every connection starts with (spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// The longest header: 3 basic, 11 message, 4 extended timestamp.
const MAX_HEADER: usize = 18;
/// A 24-bit timestamp field with this value means an extended timestamp follows.
const EXTENDED: u32 = 0x00ff_ffff;

/// What one peer's chunk stream may cost (see `rtmp/limits.rs` for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    pub max_chunk_size: u32,
    /// Audio and video messages, once the peer publishes.
    pub max_message_bytes: u32,
    /// Every other message, and media before the peer publishes.
    pub max_command_bytes: u32,
    pub max_chunk_streams: usize,
    pub max_buffered_bytes: usize,
}

/// One complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub type_id: u8,
    pub stream_id: u32,
    /// Milliseconds; 32 bits that wrap (spec 5.3.1.3).
    pub timestamp: u32,
    pub payload: Bytes,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error(
        "the peer set a chunk size of {size} bytes; Tinsel accepts 1 to {max} (rtmp_max_chunk_size)"
    )]
    ChunkSize { size: u32, max: u32 },
    #[error("a message of type {type_id} announced {length} bytes; the limit is {max} ({key})")]
    MessageTooLarge {
        type_id: u8,
        length: u32,
        max: u32,
        key: &'static str,
    },
    #[error("the peer opened more than {max} chunk streams (rtmp_max_chunk_streams)")]
    TooManyChunkStreams { max: usize },
    #[error("the peer's unfinished messages passed {max} bytes in all ({key})")]
    TooMuchBuffered { max: usize, key: &'static str },
    #[error(
        "a type-{format} chunk header on chunk stream {csid}, which has no earlier header to take the rest from"
    )]
    NoEarlierHeader { csid: u32, format: u8 },
    #[error("a new message began on chunk stream {csid} before the last one was complete")]
    Interrupted { csid: u32 },
    #[error("a protocol control message of type {type_id} with {len} bytes, too short")]
    ShortControl { type_id: u8, len: usize },
}

impl ChunkError {
    /// The config key (or the name of the fixed rule) this error is about,
    /// for the refusal log line.
    pub fn limit_key(&self) -> &'static str {
        match self {
            Self::ChunkSize { .. } => "rtmp_max_chunk_size",
            Self::MessageTooLarge { key, .. } => key,
            Self::TooManyChunkStreams { .. } => "rtmp_max_chunk_streams",
            Self::TooMuchBuffered { key, .. } => key,
            Self::NoEarlierHeader { .. } | Self::Interrupted { .. } | Self::ShortControl { .. } => {
                "rtmp_chunk_format"
            }
        }
    }
}

/// Header state and the partial message of one chunk stream.
#[derive(Debug, Default)]
struct ChunkStream {
    /// Of the message being read, or the last one.
    timestamp: u32,
    /// The last timestamp field: a delta, or for type 0 the timestamp itself,
    /// which a following type 3 header adds again (spec 5.3.1.2.4).
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last type 0, 1 or 2 header had an extended timestamp; type
    /// 3 chunks then carry one too (spec 5.3.1.3).
    extended: bool,
    /// Whether a message has begun and is not complete.
    receiving: bool,
    payload: BytesMut,
}

/// Reads a peer's chunk stream (everything after the handshake).
#[derive(Debug)]
pub struct ChunkReader {
    limits: ChunkLimits,
    chunk_size: u32,
    /// Whether audio and video may be as large as `max_message_bytes`: only
    /// once the peer publishes.
    media_allowed: bool,
    streams: HashMap<u32, ChunkStream>,
    /// A header not yet complete.
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// The chunk whose payload is being read: its chunk stream id and the
    /// payload bytes it still has.
    current: Option<(u32, usize)>,
    /// Payload bytes held in partial messages, all chunk streams together.
    buffered: usize,
}

impl ChunkReader {
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            media_allowed: false,
            streams: HashMap::new(),
            header: [0; MAX_HEADER],
            header_len: 0,
            current: None,
            buffered: 0,
        }
    }

    /// Lets audio and video messages be as large as `max_message_bytes` (the
    /// peer is a publisher), or not.
    pub fn allow_media(&mut self, allowed: bool) {
        self.media_allowed = allowed;
    }

    /// The chunk size the peer set.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Payload bytes held in unfinished messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Reads from `input` until a message is complete, advancing `input` past
    /// what it used. `Ok(None)`: all of `input` is used and no message is
    /// complete yet. Call again with the rest of `input` after each message,
    /// so that what the message says (a new chunk size) applies to the
    /// chunks after it.
    ///
    /// # Errors
    /// A limit exceeded or a malformed chunk; the connection should end.
    pub fn read(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ChunkError> {
        loop {
            if let Some((csid, left)) = self.current {
                if left > 0 {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(input.len());
                    let (max, key) = self.buffer_limit();
                    if self.buffered + n > max {
                        return Err(ChunkError::TooMuchBuffered { max, key });
                    }
                    let stream = self.stream(csid);
                    stream.payload.extend_from_slice(&input[..n]);
                    self.buffered += n;
                    *input = &input[n..];
                    self.current = Some((csid, left - n));
                    if left > n {
                        return Ok(None);
                    }
                }
                self.current = None;
                let stream = self.stream(csid);
                if stream.payload.len() < stream.length as usize {
                    continue;
                }
                stream.receiving = false;
                let payload = stream.payload.split().freeze();
                let message = Message {
                    csid,
                    type_id: stream.type_id,
                    stream_id: stream.stream_id,
                    timestamp: stream.timestamp,
                    payload,
                };
                self.buffered -= message.payload.len();
                if let Some(message) = self.control(message)? {
                    return Ok(Some(message));
                }
                continue;
            }
            if !self.read_header(input)? {
                return Ok(None);
            }
        }
    }

    /// Before it publishes, a peer has no business with more than one
    /// command's worth of unfinished messages: that keeps what a stranger
    /// can hold on one connection to `max_command_bytes`, not
    /// `max_buffered_bytes` (a publisher's interleaved audio and video).
    fn buffer_limit(&self) -> (usize, &'static str) {
        let all = self.limits.max_buffered_bytes;
        let commands = self.limits.max_command_bytes as usize;
        if self.media_allowed || all <= commands {
            (all, "rtmp_max_buffered_bytes")
        } else {
            (commands, "rtmp_max_command_bytes")
        }
    }

    fn stream(&mut self, csid: u32) -> &mut ChunkStream {
        // `current` only ever names a chunk stream that `start_chunk` created.
        self.streams
            .get_mut(&csid)
            .expect("the current chunk's stream exists")
    }

    /// Collects header bytes; `true` once a whole header has been read and
    /// applied.
    fn read_header(&mut self, input: &mut &[u8]) -> Result<bool, ChunkError> {
        loop {
            let need = self.header_needed()?;
            if self.header_len >= need {
                break;
            }
            if input.is_empty() {
                return Ok(false);
            }
            let take = (need - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
            self.header_len += take;
            *input = &input[take..];
        }
        self.start_chunk()?;
        self.header_len = 0;
        Ok(true)
    }

    /// How long the header being read is, as far as its bytes so far tell.
    fn header_needed(&self) -> Result<usize, ChunkError> {
        let h = &self.header[..self.header_len];
        let Some(&first) = h.first() else {
            return Ok(1);
        };
        let basic = match first & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if h.len() < basic {
            return Ok(basic);
        }
        let format = first >> 6;
        let base = basic + [11, 7, 3, 0][usize::from(format)];
        if h.len() < base {
            return Ok(base);
        }
        let extended = if format < 3 {
            u24(&h[basic..basic + 3]) == EXTENDED
        } else {
            let csid = csid(h);
            self.streams
                .get(&csid)
                .ok_or(ChunkError::NoEarlierHeader { csid, format })?
                .extended
        };
        Ok(base + if extended { 4 } else { 0 })
    }

    /// Applies the complete header in `self.header` and sets up its chunk.
    fn start_chunk(&mut self) -> Result<(), ChunkError> {
        let h = &self.header[..self.header_len];
        let format = h[0] >> 6;
        let csid = csid(h);
        let basic = match h[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let fields = &h[basic..];
        if !self.streams.contains_key(&csid) {
            if format != 0 {
                return Err(ChunkError::NoEarlierHeader { csid, format });
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams {
                    max: self.limits.max_chunk_streams,
                });
            }
            self.streams.insert(csid, ChunkStream::default());
        }
        let limits = self.limits;
        let media_allowed = self.media_allowed;
        let chunk_size = self.chunk_size;
        let stream = self.streams.get_mut(&csid).expect("inserted above");
        if stream.receiving && format != 3 {
            return Err(ChunkError::Interrupted { csid });
        }
        if format < 3 {
            let field = u24(&fields[..3]);
            stream.extended = field == EXTENDED;
            let time = if stream.extended {
                let at = [11, 7, 3][usize::from(format)];
                u32::from_be_bytes([fields[at], fields[at + 1], fields[at + 2], fields[at + 3]])
            } else {
                field
            };
            if format < 2 {
                stream.length = u24(&fields[3..6]);
                stream.type_id = fields[6];
            }
            if format == 0 {
                stream.stream_id =
                    u32::from_le_bytes([fields[7], fields[8], fields[9], fields[10]]);
                stream.timestamp = time;
            } else {
                stream.timestamp = stream.timestamp.wrapping_add(time);
            }
            stream.delta = time;
        } else if !stream.receiving {
            // A type 3 header starting a message: everything as before, and
            // the timestamp advances by the last delta.
            stream.timestamp = stream.timestamp.wrapping_add(stream.delta);
        }
        if !stream.receiving {
            let (max, key) = match stream.type_id {
                AUDIO | VIDEO if media_allowed => {
                    (limits.max_message_bytes, "rtmp_max_message_bytes")
                }
                _ => (limits.max_command_bytes, "rtmp_max_command_bytes"),
            };
            if stream.length > max {
                return Err(ChunkError::MessageTooLarge {
                    type_id: stream.type_id,
                    length: stream.length,
                    max,
                    key,
                });
            }
            stream.receiving = true;
        }
        let left = stream.length as usize - stream.payload.len();
        self.current = Some((csid, left.min(chunk_size as usize)));
        Ok(())
    }

    /// Applies Set Chunk Size and Abort; hands every other message back.
    fn control(&mut self, message: Message) -> Result<Option<Message>, ChunkError> {
        if !matches!(message.type_id, SET_CHUNK_SIZE | ABORT) {
            return Ok(Some(message));
        }
        let Some(value) = message.payload.get(..4) else {
            return Err(ChunkError::ShortControl {
                type_id: message.type_id,
                len: message.payload.len(),
            });
        };
        let value = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
        if message.type_id == SET_CHUNK_SIZE {
            // The top bit must be zero (5.4.1), so 2^31 and up are refused
            // along with everything above the limit.
            if value == 0 || value > self.limits.max_chunk_size {
                return Err(ChunkError::ChunkSize {
                    size: value,
                    max: self.limits.max_chunk_size,
                });
            }
            self.chunk_size = value;
        } else if let Some(stream) = self.streams.get_mut(&value)
            && stream.receiving
        {
            self.buffered -= stream.payload.len();
            stream.payload = BytesMut::new();
            stream.receiving = false;
        }
        Ok(None)
    }
}

/// The chunk stream id of a basic header (5.3.1.1); `h` holds all of it.
fn csid(h: &[u8]) -> u32 {
    match h[0] & 0x3f {
        0 => 64 + u32::from(h[1]),
        1 => 64 + u32::from(h[1]) + 256 * u32::from(h[2]),
        id => u32::from(id),
    }
}

fn u24(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChunkLimits = ChunkLimits {
        max_chunk_size: 1 << 20,
        max_message_bytes: 8 << 20,
        max_command_bytes: 64 << 10,
        max_chunk_streams: 64,
        max_buffered_bytes: 16 << 20,
    };

    /// A type 0 header on a one-byte chunk stream id.
    fn type0(csid: u8, timestamp: u32, length: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
        let mut h = vec![csid];
        let field = timestamp.min(EXTENDED);
        h.extend_from_slice(&field.to_be_bytes()[1..]);
        h.extend_from_slice(&length.to_be_bytes()[1..]);
        h.push(type_id);
        h.extend_from_slice(&stream_id.to_le_bytes());
        if field == EXTENDED {
            h.extend_from_slice(&timestamp.to_be_bytes());
        }
        h
    }

    fn read_all(reader: &mut ChunkReader, bytes: &[u8]) -> Result<Vec<Message>, ChunkError> {
        let mut input = bytes;
        let mut messages = Vec::new();
        while let Some(message) = reader.read(&mut input)? {
            messages.push(message);
        }
        assert!(input.is_empty());
        Ok(messages)
    }

    /// Every split of the input into two reads gives the same messages.
    fn read_in_every_split(bytes: &[u8]) -> Vec<Message> {
        let whole = read_all(&mut ChunkReader::new(LIMITS), bytes).unwrap();
        for split in 0..bytes.len() {
            let mut reader = ChunkReader::new(LIMITS);
            let mut messages = read_all(&mut reader, &bytes[..split]).unwrap();
            messages.extend(read_all(&mut reader, &bytes[split..]).unwrap());
            assert_eq!(messages, whole, "split at {split}");
        }
        whole
    }

    #[test]
    fn a_message_in_several_chunks_with_type_3_headers() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut bytes = type0(3, 1000, 300, AMF0_COMMAND, 0);
        bytes.extend_from_slice(&payload[..128]);
        bytes.push(0xc3);
        bytes.extend_from_slice(&payload[128..256]);
        bytes.push(0xc3);
        bytes.extend_from_slice(&payload[256..]);
        let messages = read_in_every_split(&bytes);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].payload, payload);
        assert_eq!(messages[0].timestamp, 1000);
    }

    #[test]
    fn interleaved_chunk_streams_keep_their_own_payloads() {
        let mut bytes = Vec::new();
        bytes.extend(type0(4, 10, 200, AUDIO, 1));
        bytes.extend([b'a'; 128]);
        bytes.extend(type0(6, 20, 150, VIDEO, 1));
        bytes.extend([b'v'; 128]);
        bytes.push(0xc4);
        bytes.extend([b'a'; 72]);
        bytes.push(0xc6);
        bytes.extend([b'v'; 22]);
        let messages = read_in_every_split(&bytes);
        assert_eq!(messages.len(), 2);
        assert_eq!((messages[0].csid, messages[0].payload.len()), (4, 200));
        assert!(messages[0].payload.iter().all(|b| *b == b'a'));
        assert_eq!((messages[1].csid, messages[1].payload.len()), (6, 150));
        assert!(messages[1].payload.iter().all(|b| *b == b'v'));
    }

    #[test]
    fn header_types_1_2_3_carry_deltas() {
        let mut bytes = type0(5, 100, 1, AUDIO, 1);
        bytes.push(b'x');
        // Type 1: delta 20, length 2, video.
        bytes.extend([0x45, 0, 0, 20, 0, 0, 2, VIDEO, b'y', b'y']);
        // Type 2: delta 30.
        bytes.extend([0x85, 0, 0, 30, b'z', b'z']);
        // Type 3 starting a message: the same delta again.
        bytes.extend([0xc5, b'w', b'w']);
        let messages = read_in_every_split(&bytes);
        let seen: Vec<_> = messages
            .iter()
            .map(|m| (m.timestamp, m.type_id, m.stream_id, m.payload.len()))
            .collect();
        assert_eq!(
            seen,
            [
                (100, AUDIO, 1, 1),
                (120, VIDEO, 1, 2),
                (150, VIDEO, 1, 2),
                (180, VIDEO, 1, 2)
            ]
        );
    }

    #[test]
    fn extended_timestamps_also_on_type_3_chunks() {
        let ts = 0x0123_4567;
        let mut bytes = type0(6, ts, 200, VIDEO, 1);
        bytes.extend([1u8; 128]);
        bytes.push(0xc6);
        bytes.extend(ts.to_be_bytes());
        bytes.extend([2u8; 72]);
        let messages = read_in_every_split(&bytes);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].timestamp, ts);
        assert_eq!(&messages[0].payload[..128], &[1u8; 128][..]);
        assert_eq!(&messages[0].payload[128..], &[2u8; 72][..]);
    }

    #[test]
    fn two_and_three_byte_basic_headers() {
        let mut bytes = vec![0x00, 10];
        bytes.extend(type0(0, 5, 1, AUDIO, 1)[1..].iter());
        bytes.push(b'a');
        bytes.extend([0x01, 0x10, 0x02]);
        bytes.extend(type0(0, 6, 1, AUDIO, 1)[1..].iter());
        bytes.push(b'b');
        let messages = read_in_every_split(&bytes);
        assert_eq!(messages[0].csid, 74);
        assert_eq!(messages[1].csid, 64 + 0x10 + 2 * 256);
    }

    #[test]
    fn set_chunk_size_applies_to_the_chunks_after_it() {
        let mut bytes = type0(2, 0, 4, SET_CHUNK_SIZE, 0);
        bytes.extend(4096u32.to_be_bytes());
        bytes.extend(type0(6, 0, 3000, VIDEO, 1));
        bytes.extend([9u8; 3000]);
        let mut reader = ChunkReader::new(LIMITS);
        reader.allow_media(true);
        let messages = read_all(&mut reader, &bytes).unwrap();
        assert_eq!(reader.chunk_size(), 4096);
        assert_eq!(
            messages.len(),
            1,
            "set chunk size is applied, not handed on"
        );
        assert_eq!(messages[0].payload.len(), 3000);
    }

    #[test]
    fn a_chunk_size_of_2_to_the_31_minus_1_is_refused() {
        for size in [0x7fff_ffff, 0xffff_ffff, 0, (1 << 20) + 1] {
            let mut bytes = type0(2, 0, 4, SET_CHUNK_SIZE, 0);
            bytes.extend(u32::to_be_bytes(size));
            let err = read_all(&mut ChunkReader::new(LIMITS), &bytes).unwrap_err();
            assert_eq!(err, ChunkError::ChunkSize { size, max: 1 << 20 });
        }
    }

    #[test]
    fn a_16_mib_announcement_is_refused_before_any_payload_is_held() {
        let mut bytes = type0(3, 0, 0x00ff_ffff, AMF0_COMMAND, 0);
        bytes.extend([0u8; 129]);
        let mut reader = ChunkReader::new(LIMITS);
        let err = read_all(&mut reader, &bytes).unwrap_err();
        assert_eq!(err.limit_key(), "rtmp_max_command_bytes");
        // Even as a publisher's video, 16 MiB is over the media limit.
        let mut reader = ChunkReader::new(LIMITS);
        reader.allow_media(true);
        let err = read_all(&mut reader, &type0(6, 0, 0x00ff_ffff, VIDEO, 1)).unwrap_err();
        assert_eq!(err.limit_key(), "rtmp_max_message_bytes");
    }

    #[test]
    fn media_before_publishing_is_held_to_the_command_limit() {
        let bytes = type0(6, 0, 1 << 20, VIDEO, 1);
        let err = read_all(&mut ChunkReader::new(LIMITS), &bytes).unwrap_err();
        assert_eq!(err.limit_key(), "rtmp_max_command_bytes");
        let mut reader = ChunkReader::new(LIMITS);
        reader.allow_media(true);
        assert_eq!(read_all(&mut reader, &bytes).unwrap(), []);
    }

    #[test]
    fn memory_grows_with_the_bytes_that_arrive_not_the_announced_length() {
        let mut reader = ChunkReader::new(LIMITS);
        reader.allow_media(true);
        let mut bytes = type0(6, 0, 8 << 20, VIDEO, 1);
        bytes.extend([0u8; 128]);
        assert_eq!(read_all(&mut reader, &bytes).unwrap(), []);
        assert_eq!(reader.buffered, 128);
        assert!(reader.streams[&6].payload.capacity() < 4096);
    }

    #[test]
    fn bytes_held_across_chunk_streams_are_capped() {
        let limits = ChunkLimits {
            max_buffered_bytes: 1000,
            ..LIMITS
        };
        let mut reader = ChunkReader::new(limits);
        reader.allow_media(true);
        let mut bytes = Vec::new();
        for csid in 4..20 {
            bytes.extend(type0(csid, 0, 60_000, VIDEO, 1));
            bytes.extend([0u8; 128]);
        }
        let err = read_all(&mut reader, &bytes).unwrap_err();
        assert_eq!(
            err,
            ChunkError::TooMuchBuffered {
                max: 1000,
                key: "rtmp_max_buffered_bytes"
            }
        );
        assert!(reader.buffered <= 1000);
    }

    #[test]
    fn before_publishing_one_commands_worth_may_be_buffered() {
        let mut reader = ChunkReader::new(LIMITS);
        let mut bytes = Vec::new();
        for csid in 4..60 {
            bytes.extend(type0(csid, 0, 60_000, AMF0_COMMAND, 0));
            bytes.extend([0u8; 128]);
        }
        for _ in 0..10 {
            for csid in 4..60 {
                bytes.push(0xc0 | csid);
                bytes.extend([0u8; 128]);
            }
        }
        let err = read_all(&mut reader, &bytes).unwrap_err();
        assert_eq!(err.limit_key(), "rtmp_max_command_bytes");
        assert!(reader.buffered <= 64 << 10);
    }

    #[test]
    fn chunk_stream_churn_is_capped() {
        let mut bytes = Vec::new();
        for csid in 0..=255u8 {
            bytes.extend([0x00, csid]);
            bytes.extend(&type0(0, 0, 1, AUDIO, 1)[1..]);
            bytes.push(0);
        }
        let err = read_all(&mut ChunkReader::new(LIMITS), &bytes).unwrap_err();
        assert_eq!(err, ChunkError::TooManyChunkStreams { max: 64 });
    }

    #[test]
    fn type_1_2_3_on_a_fresh_chunk_stream_are_errors() {
        for first in [0x47u8, 0x87, 0xc7] {
            let mut bytes = vec![first];
            bytes.extend([0u8; 20]);
            let err = read_all(&mut ChunkReader::new(LIMITS), &bytes).unwrap_err();
            assert_eq!(
                err,
                ChunkError::NoEarlierHeader {
                    csid: 7,
                    format: first >> 6
                }
            );
        }
    }

    #[test]
    fn a_new_message_inside_an_unfinished_one_is_an_error() {
        let mut bytes = type0(4, 0, 200, AUDIO, 1);
        bytes.extend([0u8; 128]);
        bytes.extend(type0(4, 0, 10, AUDIO, 1));
        let err = read_all(&mut ChunkReader::new(LIMITS), &bytes).unwrap_err();
        assert_eq!(err, ChunkError::Interrupted { csid: 4 });
    }

    #[test]
    fn abort_drops_a_partial_message() {
        let mut bytes = type0(4, 0, 200, AUDIO, 1);
        bytes.extend([0u8; 128]);
        bytes.extend(type0(2, 0, 4, ABORT, 0));
        bytes.extend(4u32.to_be_bytes());
        bytes.extend(type0(4, 0, 1, AUDIO, 1));
        bytes.push(b'k');
        let mut reader = ChunkReader::new(LIMITS);
        let messages = read_all(&mut reader, &bytes).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].payload, &b"k"[..]);
        assert_eq!(reader.buffered, 0);
    }

    #[test]
    fn short_control_messages_are_errors() {
        let mut bytes = type0(2, 0, 2, SET_CHUNK_SIZE, 0);
        bytes.extend([0, 1]);
        let err = read_all(&mut ChunkReader::new(LIMITS), &bytes).unwrap_err();
        assert_eq!(
            err,
            ChunkError::ShortControl {
                type_id: SET_CHUNK_SIZE,
                len: 2
            }
        );
    }

    #[test]
    fn empty_messages_complete_at_their_header() {
        let mut bytes = type0(4, 7, 0, AUDIO, 1);
        bytes.extend(type0(4, 8, 1, AUDIO, 1));
        bytes.push(1);
        let messages = read_in_every_split(&bytes);
        assert_eq!(messages.len(), 2);
        assert!(messages[0].payload.is_empty());
    }

    #[test]
    fn reads_what_our_own_chunker_writes() {
        use bytes::Buf;
        let payload = Bytes::from(vec![5u8; 10_000]);
        let mut out = super::super::chunk::BufList::default();
        super::super::chunk::push_message(&mut out, 8, VIDEO, 1, 0x0100_0000, &payload, 128);
        let mut bytes = vec![0; out.remaining()];
        out.copy_to_slice(&mut bytes);
        let mut reader = ChunkReader::new(LIMITS);
        reader.allow_media(true);
        let messages = read_all(&mut reader, &bytes).unwrap();
        assert_eq!(messages[0].payload, payload);
        assert_eq!(messages[0].timestamp, 0x0100_0000);
    }
}
