//! The FLV tag headers that prefix every RTMP audio and video message (pure).
//!
//! Video (FLV spec v10.1, E.4.3.1): `FrameType(4) CodecID(4)`, then for AVC
//! `AVCPacketType(8) CompositionTime(SI24)`. Audio (E.4.2.1): `SoundFormat(4)
//! SoundRate(2) SoundSize(1) SoundType(1)`, then for AAC `AACPacketType(8)`.
//!
//! The bytes come from the publisher before anything else reads them, so
//! this is where a broken tag stops: a sequence header is checked whole by
//! [`codec`], the NAL unit lengths of every video frame must end inside the
//! tag, and packet types FLV does not define are refused. What passes reaches
//! the hub, and every output after it can trust the structure.

use thiserror::Error;

use super::codec::{self, CodecError};

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
    #[error(
        "AVC packet type {0} is none of sequence header (0), NAL units (1), end of sequence (2)"
    )]
    AvcPacketType(u8),
    #[error("AAC packet type {0} is neither sequence header (0) nor raw (1)")]
    AacPacketType(u8),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// AVCPacketType values (E.4.3.1).
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;
const AVC_END_OF_SEQUENCE: u8 = 2;
/// AACPacketType values (E.4.2.1).
const AAC_SEQUENCE_HEADER: u8 = 0;
const AAC_RAW: u8 = 1;
/// Bytes before the payload: the video tag header, and the audio one.
const VIDEO_HEADER: usize = 5;
const AUDIO_HEADER: usize = 2;

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

/// Reads the header of an RTMP video message body, and checks what follows:
/// a sequence header must be a whole AVCDecoderConfigurationRecord, NAL
/// units must end inside the tag.
///
/// # Errors
/// A tag that is too short, one that is not H.264, an unknown packet type, a
/// broken sequence header or a NAL unit running past the tag.
pub fn parse_video(body: &[u8]) -> Result<VideoTag, FlvError> {
    let first = *body.first().ok_or(FlvError::ShortVideo(0))?;
    if first & 0x80 != 0 {
        return Err(FlvError::EnhancedRtmp);
    }
    let codec = first & 0x0f;
    if codec != CODEC_AVC {
        return Err(FlvError::VideoCodec(codec));
    }
    if body.len() < VIDEO_HEADER {
        return Err(FlvError::ShortVideo(body.len()));
    }
    let frame_type = first >> 4;
    let packet_type = body[1];
    let payload = &body[VIDEO_HEADER..];
    match packet_type {
        AVC_SEQUENCE_HEADER => {
            codec::check_video_config(payload)?;
        }
        AVC_NALU => codec::check_access_unit(payload)?,
        AVC_END_OF_SEQUENCE => {}
        other => return Err(FlvError::AvcPacketType(other)),
    }
    // CompositionTime is a signed 24-bit big-endian integer.
    let raw = i32::from_be_bytes([0, body[2], body[3], body[4]]);
    let cts = (raw << 8) >> 8;
    Ok(VideoTag {
        keyframe: frame_type == 1,
        config: packet_type == AVC_SEQUENCE_HEADER,
        end_of_sequence: packet_type == AVC_END_OF_SEQUENCE,
        cts,
    })
}

/// Reads the header of an RTMP audio message body; a sequence header must be
/// an AudioSpecificConfig Tinsel's outputs can carry.
///
/// # Errors
/// A tag that is too short, one that is not AAC, an unknown packet type, or a
/// broken or unsupported sequence header.
pub fn parse_audio(body: &[u8]) -> Result<AudioTag, FlvError> {
    let first = *body.first().ok_or(FlvError::ShortAudio(0))?;
    let format = first >> 4;
    if format != SOUND_AAC {
        return Err(FlvError::AudioCodec(format));
    }
    if body.len() < AUDIO_HEADER {
        return Err(FlvError::ShortAudio(body.len()));
    }
    match body[1] {
        AAC_SEQUENCE_HEADER => {
            codec::check_audio_config(&body[AUDIO_HEADER..])?;
        }
        AAC_RAW => {}
        other => return Err(FlvError::AacPacketType(other)),
    }
    Ok(AudioTag {
        config: body[1] == AAC_SEQUENCE_HEADER,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_keyframe_and_negative_cts() {
        let tag = parse_video(&[0x17, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x65]).unwrap();
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
        let tag = parse_video(&video(0, AVCC_720P_HIGH)).unwrap();
        assert!(tag.config && tag.keyframe);
    }

    use crate::media::codec::tests::AVCC_720P_HIGH;

    /// An AVC keyframe tag of `packet_type` around `payload`.
    fn video(packet_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut tag = vec![0x17, packet_type, 0, 0, 0];
        tag.extend_from_slice(payload);
        tag
    }

    #[test]
    fn empty_or_broken_avc_sequence_headers_are_refused_with_a_reason() {
        let err = parse_video(&video(0, &[])).unwrap_err();
        assert_eq!(err, FlvError::Codec(CodecError::EmptyVideoConfig));
        assert!(err.to_string().contains("SPS and PPS"), "{err}");
        // numOfSequenceParameterSets = 0.
        let no_sps = [
            0x01, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x01, 0x00, 0x02, 0x68, 0xef,
        ];
        assert_eq!(
            parse_video(&video(0, &no_sps)).unwrap_err(),
            FlvError::Codec(CodecError::NoParameterSet("SPS"))
        );
        // Cut anywhere: an error, never a panic.
        for cut in 0..AVCC_720P_HIGH.len() - 4 {
            assert!(
                parse_video(&video(0, &AVCC_720P_HIGH[..cut])).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn nal_lengths_past_the_tag_are_refused() {
        let err = parse_video(&video(1, &[0, 0, 0x10, 0, 0x65, 1, 2])).unwrap_err();
        assert_eq!(
            err,
            FlvError::Codec(CodecError::NalPastEnd {
                offset: 0,
                nal_len: 4096,
                len: 7
            })
        );
        assert!(err.to_string().contains("past its end"), "{err}");
        assert!(parse_video(&video(1, &[0, 0, 0])).is_err());
        // No NAL units at all, or an end of sequence: nothing to check.
        assert!(parse_video(&video(1, &[])).is_ok());
        assert!(parse_video(&video(2, &[])).unwrap().end_of_sequence);
    }

    #[test]
    fn undefined_packet_types_are_refused() {
        assert_eq!(
            parse_video(&video(3, &[])).unwrap_err(),
            FlvError::AvcPacketType(3)
        );
        assert_eq!(
            parse_audio(&[0xaf, 2, 0x21]).unwrap_err(),
            FlvError::AacPacketType(2)
        );
    }

    #[test]
    fn empty_or_unsupported_aac_sequence_headers_are_refused() {
        assert_eq!(
            parse_audio(&[0xaf, 0]).unwrap_err(),
            FlvError::Codec(CodecError::EmptyAudioConfig)
        );
        assert_eq!(
            parse_audio(&[0xaf, 0, 0x11]).unwrap_err(),
            FlvError::Codec(CodecError::TruncatedAudioConfig(1))
        );
        // AAC-LD (23) at 48 kHz, stereo.
        assert!(matches!(
            parse_audio(&[0xaf, 0, 0xb9, 0x90]).unwrap_err(),
            FlvError::Codec(CodecError::AudioObjectType {
                object_type: 23,
                ..
            })
        ));
        // Sample-rate index 14 is reserved.
        assert_eq!(
            parse_audio(&[0xaf, 0, 0x17, 0x10]).unwrap_err(),
            FlvError::Codec(CodecError::SampleRateIndex(14))
        );
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
