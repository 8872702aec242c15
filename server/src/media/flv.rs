//! The FLV tag headers that prefix every RTMP audio and video message (pure).
//!
//! Video (FLV spec v10.1, E.4.3.1): `FrameType(4) CodecID(4)`, then for AVC
//! `AVCPacketType(8) CompositionTime(SI24)`. Audio (E.4.2.1): `SoundFormat(4)
//! SoundRate(2) SoundSize(1) SoundType(1)`, then for AAC `AACPacketType(8)`.

use thiserror::Error;

/// FLV codec id of H.264/AVC.
pub const CODEC_AVC: u8 = 7;
/// FLV sound format of AAC.
pub const SOUND_AAC: u8 = 10;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("video tag of {0} bytes is too short")]
    ShortVideo(usize),
    #[error("audio tag of {0} bytes is too short")]
    ShortAudio(usize),
    #[error(
        "the encoder sends enhanced RTMP (HEVC, AV1 or VP9 with a FourCC); Tinsel takes H.264 only: \
         set the encoder to H.264 (x264 or a hardware H.264 encoder)"
    )]
    EnhancedRtmp,
    #[error("video codec id {0} is not H.264 (7); set the encoder to H.264")]
    VideoCodec(u8),
    #[error("audio format {0} is not AAC (10); set the audio encoder to AAC")]
    AudioCodec(u8),
}

/// What the hub needs to know of a video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTag {
    pub keyframe: bool,
    /// An AVCDecoderConfigurationRecord (AVCPacketType 0).
    pub config: bool,
    /// AVC end of sequence (AVCPacketType 2): carries no picture.
    pub end_of_sequence: bool,
    pub cts: i32,
}

/// What the hub needs to know of an audio tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTag {
    /// An AudioSpecificConfig (AACPacketType 0).
    pub config: bool,
}

/// Reads the header of an RTMP video message body.
///
/// # Errors
/// A tag that is too short, or one that is not H.264.
pub fn parse_video(body: &[u8]) -> Result<VideoTag, FlvError> {
    let first = *body.first().ok_or(FlvError::ShortVideo(0))?;
    if first & 0x80 != 0 {
        return Err(FlvError::EnhancedRtmp);
    }
    let codec = first & 0x0f;
    if codec != CODEC_AVC {
        return Err(FlvError::VideoCodec(codec));
    }
    if body.len() < 5 {
        return Err(FlvError::ShortVideo(body.len()));
    }
    let frame_type = first >> 4;
    let packet_type = body[1];
    // CompositionTime is a signed 24-bit big-endian integer.
    let raw = i32::from_be_bytes([0, body[2], body[3], body[4]]);
    let cts = (raw << 8) >> 8;
    Ok(VideoTag {
        keyframe: frame_type == 1,
        config: packet_type == 0,
        end_of_sequence: packet_type == 2,
        cts,
    })
}

/// Reads the header of an RTMP audio message body.
///
/// # Errors
/// A tag that is too short, or one that is not AAC.
pub fn parse_audio(body: &[u8]) -> Result<AudioTag, FlvError> {
    let first = *body.first().ok_or(FlvError::ShortAudio(0))?;
    let format = first >> 4;
    if format != SOUND_AAC {
        return Err(FlvError::AudioCodec(format));
    }
    if body.len() < 2 {
        return Err(FlvError::ShortAudio(body.len()));
    }
    Ok(AudioTag {
        config: body[1] == 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_keyframe_and_negative_cts() {
        let tag = parse_video(&[0x17, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 1]).unwrap();
        assert_eq!(
            tag,
            VideoTag {
                keyframe: true,
                config: false,
                end_of_sequence: false,
                cts: -33
            }
        );
    }

    #[test]
    fn avc_sequence_header() {
        let tag = parse_video(&[0x17, 0, 0, 0, 0, 1, 0x64]).unwrap();
        assert!(tag.config && tag.keyframe);
    }

    #[test]
    fn enhanced_rtmp_is_refused_with_advice() {
        let err = parse_video(&[0x90, b'h', b'v', b'c', b'1']).unwrap_err();
        assert_eq!(err, FlvError::EnhancedRtmp);
        assert!(err.to_string().contains("H.264"));
    }

    #[test]
    fn other_codecs_are_refused() {
        assert_eq!(
            parse_video(&[0x12, 0]).unwrap_err(),
            FlvError::VideoCodec(2)
        );
        assert_eq!(
            parse_audio(&[0x2f, 0]).unwrap_err(),
            FlvError::AudioCodec(2)
        );
    }

    #[test]
    fn aac_config_and_raw() {
        assert!(parse_audio(&[0xaf, 0, 0x11, 0x90]).unwrap().config);
        assert!(!parse_audio(&[0xaf, 1, 0x21]).unwrap().config);
    }

    #[test]
    fn short_tags_are_errors_not_panics() {
        assert_eq!(parse_video(&[]).unwrap_err(), FlvError::ShortVideo(0));
        assert_eq!(
            parse_video(&[0x17, 1]).unwrap_err(),
            FlvError::ShortVideo(2)
        );
        assert_eq!(parse_audio(&[0xaf]).unwrap_err(), FlvError::ShortAudio(1));
    }
}
