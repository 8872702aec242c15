//! One access unit (or codec configuration) as the hub carries it.

use bytes::Bytes;

/// Which elementary stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// A timestamped access unit, shared by every viewer: cloning copies a reference
/// count, never the payload.
///
/// The payload is the FLV tag body exactly as RTMP carries it (the codec header
/// byte(s) followed by AVCC NAL units or a raw AAC frame). RTMP output sends it as
/// it is; the other outputs parse it with [`crate::media::flv`].
#[derive(Debug, Clone)]
pub struct Frame {
    pub track: Track,
    /// Decode time in milliseconds on the stream's own timeline, which stays
    /// monotonic across publisher restarts (see [`crate::media::timeline`]).
    pub dts: u64,
    /// Presentation minus decode time, in milliseconds. Non-zero only with B-frames.
    pub cts: i32,
    /// A video frame a decoder can start from (IDR).
    pub keyframe: bool,
    /// A codec configuration record (AVC decoder configuration or AAC
    /// AudioSpecificConfig) rather than media.
    pub config: bool,
    pub payload: Bytes,
}

impl Frame {
    pub fn is_video_keyframe(&self) -> bool {
        self.track == Track::Video && self.keyframe && !self.config
    }

    /// Size of the payload in bytes.
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }
}
