//! Classifying RTMP audio and video payloads by their FLV tag header, which
//! is all a viewer needs to know about a frame to measure the stream.

/// Which RTMP message type a frame arrived as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    Video,
    Audio,
}

/// What the first bytes of a payload say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TagKind {
    /// Video frame type 1 ("key frame"). The AVC sequence header carries it too.
    pub keyframe: bool,
    /// A decoder configuration record (AVC or AAC sequence header), not a frame.
    pub config: bool,
}

/// FLV `CodecID` 7: AVC.
const CODEC_AVC: u8 = 7;
/// FLV `SoundFormat` 10: AAC.
const SOUND_AAC: u8 = 10;
/// Enhanced RTMP sets the top bit of the first video byte (`IsExHeader`).
const EX_HEADER: u8 = 0x80;
/// Enhanced RTMP `PacketType` 0: `SequenceStart`.
const EX_SEQUENCE_START: u8 = 0;

/// Reads the FLV tag header at the start of an RTMP audio or video payload.
///
/// Video (FLV spec, `VIDEODATA`): `FrameType` is the high nibble of the first
/// byte, 1 meaning key frame; `CodecID` is the low nibble; for AVC the second
/// byte is `AVCPacketType`, 0 meaning sequence header. Enhanced RTMP (HEVC,
/// AV1) is recognised too: there the frame type is three bits and the low
/// nibble is the packet type. Audio (`AUDIODATA`): `SoundFormat` is the high
/// nibble, 10 meaning AAC, whose second byte is `AACPacketType`, 0 meaning
/// sequence header. Payloads too short to say are plain frames.
pub fn classify(track: Track, data: &[u8]) -> TagKind {
    let Some(&first) = data.first() else {
        return TagKind::default();
    };
    match track {
        Track::Video if first & EX_HEADER != 0 => TagKind {
            keyframe: (first >> 4) & 0x07 == 1,
            config: first & 0x0f == EX_SEQUENCE_START,
        },
        Track::Video => TagKind {
            keyframe: first >> 4 == 1,
            config: first & 0x0f == CODEC_AVC && data.get(1) == Some(&0),
        },
        Track::Audio => TagKind {
            keyframe: false,
            config: first >> 4 == SOUND_AAC && data.get(1) == Some(&0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_keyframe_and_inter_frame() {
        assert_eq!(
            classify(Track::Video, &[0x17, 0x01, 0, 0, 0]),
            TagKind {
                keyframe: true,
                config: false
            }
        );
        assert_eq!(
            classify(Track::Video, &[0x27, 0x01, 0, 0, 0]),
            TagKind {
                keyframe: false,
                config: false
            }
        );
    }

    #[test]
    fn avc_sequence_header_is_config_and_flagged_key() {
        assert_eq!(
            classify(Track::Video, &[0x17, 0x00, 0, 0, 0, 1]),
            TagKind {
                keyframe: true,
                config: true
            }
        );
    }

    #[test]
    fn packet_type_zero_means_config_only_for_avc() {
        // Sorenson H.263 (codec 2) has no packet-type byte.
        assert_eq!(
            classify(Track::Video, &[0x12, 0x00]),
            TagKind {
                keyframe: true,
                config: false
            }
        );
    }

    #[test]
    fn enhanced_rtmp_video() {
        // IsExHeader | FrameType 1 | PacketType 0 (SequenceStart), then "hvc1".
        assert_eq!(
            classify(Track::Video, &[0x90, b'h', b'v', b'c', b'1']),
            TagKind {
                keyframe: true,
                config: true
            }
        );
        // IsExHeader | FrameType 2 | PacketType 1 (CodedFrames).
        assert_eq!(
            classify(Track::Video, &[0xa1, b'h', b'v', b'c', b'1']),
            TagKind {
                keyframe: false,
                config: false
            }
        );
    }

    #[test]
    fn aac_config_and_raw() {
        assert_eq!(
            classify(Track::Audio, &[0xaf, 0x00, 0x11, 0x90]),
            TagKind {
                keyframe: false,
                config: true
            }
        );
        assert_eq!(
            classify(Track::Audio, &[0xaf, 0x01, 0x21]),
            TagKind::default()
        );
    }

    #[test]
    fn non_aac_audio_is_never_config() {
        // MP3 (SoundFormat 2) whose first data byte happens to be zero.
        assert_eq!(classify(Track::Audio, &[0x2f, 0x00]), TagKind::default());
    }

    #[test]
    fn short_payloads_are_plain_frames() {
        assert_eq!(classify(Track::Video, &[]), TagKind::default());
        assert_eq!(classify(Track::Audio, &[]), TagKind::default());
        assert_eq!(
            classify(Track::Video, &[0x17]),
            TagKind {
                keyframe: true,
                config: false
            }
        );
        assert_eq!(classify(Track::Audio, &[0xaf]), TagKind::default());
    }
}
