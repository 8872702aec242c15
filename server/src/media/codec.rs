//! What a stream's codec configuration says, and whether it can be used at all
//! (pure): H.264 profile and picture size, AAC sample rate and channels.
//!
//! Every byte here comes from a publisher, so it is hostile until checked. The
//! AVCDecoderConfigurationRecord is walked by hand first (ISO 14496-15, 5.3.3.1):
//! h264-reader 0.9 panics on a zero-length SPS or PPS entry and accepts a
//! record with no SPS at all. Only a record whose structure holds is given to
//! the library, and only its first SPS, under `catch_unwind`: a panic left in
//! the library costs that configuration's figures, never the connection.
//!
//! Two kinds of answer: a record that is broken (empty, truncated, no SPS or
//! PPS, an absurd picture size, an AAC object type no output can carry) is a
//! [`CodecError`] that ends that publisher with a reason it can act on; a
//! record that is whole but that the SPS parser cannot read still flows, and
//! only the figures in `/api/streams` stay empty.

use h264_reader::nal::sps::{SeqParameterSet, SpsError};
use h264_reader::nal::{Nal, RefNal};
use thiserror::Error;

/// NAL unit type of a sequence parameter set (H.264, Table 7-1).
const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
const NAL_PPS: u8 = 8;
/// Bytes in the length prefix of every NAL unit Tinsel takes. The record's
/// `lengthSizeMinusOne` may also say 1 or 2, but OBS, FFmpeg and every
/// hardware encoder behind them write 4, and the FLV tag parser checks NAL
/// lengths without state, so it must know the size without the record.
pub const NAL_LENGTH_SIZE: usize = 4;
/// Most macroblocks in a picture: MaxFS of levels 6 to 6.2, the largest
/// H.264 has (Table A-1).
const MAX_MACROBLOCKS: u32 = 139_264;
/// Most luma samples in a picture.
const MAX_PICTURE: u64 = MAX_MACROBLOCKS as u64 * 256;
/// Widest or tallest picture taken: level 6.2 pictures are 8192 luma samples
/// a side in practice; twice that leaves room for odd aspect ratios.
const MAX_SIDE: u32 = 16_384;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error(
        "the H.264 sequence header is empty; the encoder must send its SPS and PPS there \
         (restart the encoder, or choose x264 or another H.264 encoder)"
    )]
    EmptyVideoConfig,
    #[error("the H.264 sequence header ends after {len} bytes, inside its {field}")]
    TruncatedVideoConfig { len: usize, field: &'static str },
    #[error("the H.264 sequence header has configuration version {0}, not 1")]
    VideoConfigVersion(u8),
    #[error("the H.264 sequence header carries no {0}; the encoder must send at least one")]
    NoParameterSet(&'static str),
    #[error("the H.264 sequence header carries an empty {0}")]
    EmptyParameterSet(&'static str),
    #[error("an {expected} entry of the H.264 sequence header is a NAL unit of type {actual}")]
    WrongParameterSet { expected: &'static str, actual: u8 },
    #[error(
        "the encoder writes {0}-byte NAL unit lengths; Tinsel takes 4-byte ones \
         (what OBS and FFmpeg write)"
    )]
    NalLengthSize(usize),
    #[error(
        "the H.264 SPS describes a {width}x{height} picture; Tinsel takes up to \
         {MAX_SIDE} a side and H.264 level 6.2's picture size"
    )]
    Dimensions { width: u32, height: u32 },
    #[error(
        "the H.264 SPS describes a picture of {0} macroblocks; H.264 allows \
         {MAX_MACROBLOCKS} at most (level 6.2)"
    )]
    PictureTooLarge(u32),
    #[error(
        "an H.264 frame of {len} bytes announces a NAL unit of {nal_len} bytes at offset \
         {offset}, past its end"
    )]
    NalPastEnd {
        offset: usize,
        nal_len: usize,
        len: usize,
    },
    #[error("the AAC sequence header is empty; the encoder must send its AudioSpecificConfig")]
    EmptyAudioConfig,
    #[error("the AAC sequence header of {0} bytes ends inside its fields")]
    TruncatedAudioConfig(usize),
    #[error(
        "AAC object type {object_type} ({name}) is not supported; set the audio encoder \
         to AAC-LC"
    )]
    AudioObjectType { object_type: u8, name: &'static str },
    #[error("the AAC sequence header names sample-rate index {0}, which ISO 14496-3 reserves")]
    SampleRateIndex(u8),
    #[error("the AAC sequence header names a sample rate of {0} Hz; use 48 kHz or 44.1 kHz")]
    SampleRate(u32),
}

/// H.264 parameters read from the AVCDecoderConfigurationRecord and its SPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    /// `profile_idc` as a name: "Baseline", "Main", "High", ...
    pub profile: String,
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub width: u32,
    pub height: u32,
}

/// AAC parameters read from the AudioSpecificConfig (ISO 14496-3, 1.6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioParams {
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

/// The parameter sets of a record whose structure holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvcRecord<'a> {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// The first SPS: the one that describes the picture.
    pub sps: &'a [u8],
    pub sps_count: usize,
    pub pps_count: usize,
}

/// Reads an AVCDecoderConfigurationRecord's structure (ISO 14496-15, 5.3.3.1):
///
/// ```text
/// configurationVersion(8) = 1, AVCProfileIndication(8), profile_compatibility(8),
/// AVCLevelIndication(8), reserved(6) lengthSizeMinusOne(2),
/// reserved(3) numOfSequenceParameterSets(5), { sequenceParameterSetLength(16) NAL }...,
/// numOfPictureParameterSets(8), { pictureParameterSetLength(16) NAL }...
/// ```
///
/// What may follow the PPS (High profiles' chroma and bit depth) is not read.
///
/// # Errors
/// An empty or truncated record, a version other than 1, NAL lengths other
/// than 4 bytes, no SPS or no PPS, an empty one, or one of the wrong NAL type.
pub fn read_avc_record(record: &[u8]) -> Result<AvcRecord<'_>, CodecError> {
    if record.is_empty() {
        return Err(CodecError::EmptyVideoConfig);
    }
    let mut reader = Cursor {
        data: record,
        pos: 0,
    };
    let header = reader.take(6).ok_or(reader.truncated("fixed fields"))?;
    if header[0] != 1 {
        return Err(CodecError::VideoConfigVersion(header[0]));
    }
    let length_size = usize::from(header[4] & 0x03) + 1;
    if length_size != NAL_LENGTH_SIZE {
        return Err(CodecError::NalLengthSize(length_size));
    }
    let sps_count = usize::from(header[5] & 0x1f);
    let mut first_sps = None;
    for _ in 0..sps_count {
        let sps = reader.parameter_set("SPS", NAL_SPS)?;
        first_sps.get_or_insert(sps);
    }
    let sps = first_sps.ok_or(CodecError::NoParameterSet("SPS"))?;
    let pps_count = usize::from(reader.take(1).ok_or(reader.truncated("PPS count"))?[0]);
    if pps_count == 0 {
        return Err(CodecError::NoParameterSet("PPS"));
    }
    for _ in 0..pps_count {
        reader.parameter_set("PPS", NAL_PPS)?;
    }
    Ok(AvcRecord {
        profile_idc: header[1],
        constraint_flags: header[2],
        level_idc: header[3],
        sps,
        sps_count,
        pps_count,
    })
}

/// Checks an AVCDecoderConfigurationRecord (the body of an FLV AVC sequence
/// header after its 5-byte tag header) and reads its figures.
///
/// `Ok(None)`: the record is whole but its SPS could not be read; the stream
/// can flow, only its figures stay unknown.
///
/// # Errors
/// The record is broken (see [`read_avc_record`]) or its SPS describes an
/// absurd picture.
pub fn check_video_config(record: &[u8]) -> Result<Option<VideoParams>, CodecError> {
    let avc = read_avc_record(record)?;
    let Some((width, height)) = sps_dimensions(avc.sps)? else {
        return Ok(None);
    };
    let area = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE || area > MAX_PICTURE {
        return Err(CodecError::Dimensions { width, height });
    }
    Ok(Some(VideoParams {
        profile: profile_name(avc.profile_idc, avc.constraint_flags).to_string(),
        profile_idc: avc.profile_idc,
        constraint_flags: avc.constraint_flags,
        level_idc: avc.level_idc,
        width,
        height,
    }))
}

/// Reads an AVCDecoderConfigurationRecord's figures. `None` when it is broken
/// or cannot be read: the figures in `/api/streams` stay empty.
pub fn video_params(record: &[u8]) -> Option<VideoParams> {
    check_video_config(record).ok().flatten()
}

/// The picture size an SPS describes, read by h264-reader. `Ok(None)` when
/// it cannot read the SPS, or panics on it.
///
/// # Errors
/// The SPS describes more macroblocks than any H.264 level allows.
/// (h264-reader also refuses a picture larger than the SPS's own level
/// allows; encoders that understate their level exist, so that one flows,
/// only without figures.)
fn sps_dimensions(sps: &[u8]) -> Result<Option<(u32, u32)>, CodecError> {
    // `read_avc_record` guarantees a non-empty SPS, which `RefNal::new`
    // needs; anything else the library might still trip on is caught here.
    let read = std::panic::catch_unwind(|| {
        let nal = RefNal::new(sps, &[], true);
        match SeqParameterSet::from_bits(nal.rbsp_bits()) {
            Ok(sps) => Ok(sps.pixel_dimensions().ok()),
            Err(SpsError::FieldValueTooLarge {
                name: "pic_size_in_map_units",
                value,
            }) if value > MAX_MACROBLOCKS => Err(CodecError::PictureTooLarge(value)),
            Err(_) => Ok(None),
        }
    });
    read.unwrap_or(Ok(None))
}

/// Checks the NAL units of an AVC access unit (the body of an FLV AVC NALU
/// tag after its 5-byte tag header): every 4-byte length must end inside the
/// frame. Empty NAL units are allowed (the outputs skip them).
///
/// # Errors
/// A length prefix cut short, or a NAL unit running past the end.
pub fn check_access_unit(access_unit: &[u8]) -> Result<(), CodecError> {
    let len = access_unit.len();
    let mut offset = 0;
    while offset < len {
        let past = |nal_len| CodecError::NalPastEnd {
            offset,
            nal_len,
            len,
        };
        let prefix = access_unit
            .get(offset..offset + NAL_LENGTH_SIZE)
            .ok_or(past(NAL_LENGTH_SIZE))?;
        let nal_len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let end = (offset + NAL_LENGTH_SIZE)
            .checked_add(nal_len)
            .filter(|&end| end <= len)
            .ok_or(past(nal_len))?;
        offset = end;
    }
    Ok(())
}

/// The name of an H.264 profile (ITU-T H.264, Annex A.2).
fn profile_name(profile_idc: u8, constraint_flags: u8) -> &'static str {
    match profile_idc {
        // constraint_set1_flag marks Constrained Baseline (A.2.1.1).
        66 if constraint_flags & 0x40 != 0 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        _ => "unknown",
    }
}

/// Sampling frequencies by index (ISO 14496-3, Table 1.18).
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];
/// The sample-rate index that says a 24-bit frequency follows.
const EXPLICIT_RATE: u32 = 15;
/// The highest rate of Table 1.18; an explicit rate above it is no AAC stream.
const MAX_AAC_RATE: u32 = 96_000;
const OBJECT_MAIN: u8 = 1;
const OBJECT_LC: u8 = 2;
const OBJECT_SBR: u8 = 5;
const OBJECT_PS: u8 = 29;

/// Checks an AudioSpecificConfig (the body of an FLV AAC sequence header
/// after its 2-byte tag header) and reads its figures (ISO 14496-3, 1.6.2.1):
///
/// ```text
/// audioObjectType(5, 31 escapes to 32 + 6 bits), samplingFrequencyIndex(4,
/// 15 = a 24-bit frequency follows), channelConfiguration(4),
/// and for SBR (5) or PS (29): extensionSamplingFrequencyIndex, audioObjectType
/// ```
///
/// Taken: AAC Main, AAC-LC, and HE-AAC v1 and v2 over an AAC-LC core, which
/// HLS players decode. The sample rate reported is the first one written (the
/// core's); a channel configuration of 0 (layout in a PCE) is reported as 0.
///
/// # Errors
/// An empty or truncated config, another object type, a reserved sample-rate
/// index, or an explicit rate of 0 or above 96 kHz.
pub fn check_audio_config(config: &[u8]) -> Result<AudioParams, CodecError> {
    if config.is_empty() {
        return Err(CodecError::EmptyAudioConfig);
    }
    let mut bits = Bits {
        data: config,
        pos: 0,
    };
    let truncated = || CodecError::TruncatedAudioConfig(config.len());
    let object_type = bits.object_type().ok_or_else(truncated)?;
    let sample_rate = bits.sample_rate()?.ok_or_else(truncated)?;
    let channels = bits.read(4).ok_or_else(truncated)? as u8;
    let core = if object_type == OBJECT_SBR || object_type == OBJECT_PS {
        bits.sample_rate()?.ok_or_else(truncated)?;
        bits.object_type().ok_or_else(truncated)?
    } else {
        object_type
    };
    let supported = match object_type {
        OBJECT_MAIN | OBJECT_LC => true,
        OBJECT_SBR | OBJECT_PS => core == OBJECT_LC,
        _ => false,
    };
    if !supported {
        // For HE-AAC it is the core that no output can carry.
        let named = if matches!(object_type, OBJECT_SBR | OBJECT_PS) {
            core
        } else {
            object_type
        };
        return Err(CodecError::AudioObjectType {
            object_type: named,
            name: object_type_name(named),
        });
    }
    Ok(AudioParams {
        object_type,
        sample_rate,
        channels,
    })
}

/// Reads an AudioSpecificConfig's figures. `None` when it is broken.
pub fn audio_params(config: &[u8]) -> Option<AudioParams> {
    check_audio_config(config).ok()
}

/// A name for the error message, as encoder settings call it.
fn object_type_name(object_type: u8) -> &'static str {
    match object_type {
        0 => "null",
        1 => "AAC Main",
        2 => "AAC-LC",
        3 => "AAC SSR",
        4 => "AAC LTP",
        5 => "HE-AAC",
        6 => "AAC scalable",
        23 => "AAC-LD",
        29 => "HE-AAC v2",
        32..=34 => "MPEG-1/2 audio layer",
        39 => "AAC-ELD",
        42 => "USAC (xHE-AAC)",
        _ => "not an AAC type",
    }
}

/// Bytes of a record, read front to back.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let taken = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(taken)
    }

    fn truncated(&self, field: &'static str) -> CodecError {
        CodecError::TruncatedVideoConfig {
            len: self.data.len(),
            field,
        }
    }

    /// One `length(16) NAL` entry, which must be a non-empty NAL unit of `kind`.
    fn parameter_set(&mut self, name: &'static str, kind: u8) -> Result<&'a [u8], CodecError> {
        let prefix = self.take(2).ok_or(self.truncated(name))?;
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        let nal = self.take(len).ok_or(self.truncated(name))?;
        let header = *nal.first().ok_or(CodecError::EmptyParameterSet(name))?;
        let actual = header & 0x1f;
        if actual != kind {
            return Err(CodecError::WrongParameterSet {
                expected: name,
                actual,
            });
        }
        Ok(nal)
    }
}

/// Bits of an AudioSpecificConfig, most significant first.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    /// `None` past the end. At most 32 bits.
    fn read(&mut self, count: usize) -> Option<u32> {
        let mut value = 0;
        for _ in 0..count {
            let byte = self.data.get(self.pos / 8)?;
            value = (value << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(value)
    }

    /// GetAudioObjectType() (1.6.2.1): 31 escapes to 32 + 6 more bits.
    fn object_type(&mut self) -> Option<u8> {
        match self.read(5)? {
            31 => Some(32 + self.read(6)? as u8),
            object_type => Some(object_type as u8),
        }
    }

    /// samplingFrequencyIndex and, for index 15, samplingFrequency(24).
    /// `Ok(None)` past the end.
    fn sample_rate(&mut self) -> Result<Option<u32>, CodecError> {
        let Some(index) = self.read(4) else {
            return Ok(None);
        };
        if index == EXPLICIT_RATE {
            let Some(rate) = self.read(24) else {
                return Ok(None);
            };
            if rate == 0 || rate > MAX_AAC_RATE {
                return Err(CodecError::SampleRate(rate));
            }
            return Ok(Some(rate));
        }
        AAC_RATES
            .get(index as usize)
            .copied()
            .map(Some)
            .ok_or(CodecError::SampleRateIndex(index as u8))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sequence header x264 (via ffmpeg) sends for a 1280x720 High profile stream.
    pub(crate) const AVCC_720P_HIGH: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
        0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0x8f, 0xcb, 0xfd, 0xf8, 0xf8, 0x00,
    ];
    /// Where the SPS of [`AVCC_720P_HIGH`] starts, and its length.
    const SPS_AT: usize = 8;
    const SPS_LEN: usize = 0x1a;

    /// A record around one SPS and one PPS, 4-byte NAL lengths.
    fn record(sps: &[u8], pps: &[u8]) -> Vec<u8> {
        let mut record = vec![0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1];
        record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        record.extend_from_slice(sps);
        record.push(1);
        record.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        record.extend_from_slice(pps);
        record
    }

    fn real_sps() -> &'static [u8] {
        &AVCC_720P_HIGH[SPS_AT..SPS_AT + SPS_LEN]
    }

    const REAL_PPS: &[u8] = &[0x68, 0xef, 0x8f, 0xcb];

    #[test]
    fn reads_profile_and_size_from_avcc() {
        let params = video_params(AVCC_720P_HIGH).expect("valid record");
        assert_eq!(params.profile, "High");
        assert_eq!((params.width, params.height), (1280, 720));
        assert_eq!(params.level_idc, 0x1f);
        assert_eq!(record(real_sps(), REAL_PPS), &AVCC_720P_HIGH[..41]);
    }

    #[test]
    fn garbage_avcc_is_an_error() {
        assert_eq!(
            check_video_config(&[1, 2, 3]),
            Err(CodecError::TruncatedVideoConfig {
                len: 3,
                field: "fixed fields"
            })
        );
        assert_eq!(video_params(&[1, 2, 3]), None);
    }

    #[test]
    fn empty_sequence_header_is_an_error() {
        let err = check_video_config(&[]).unwrap_err();
        assert_eq!(err, CodecError::EmptyVideoConfig);
        assert!(err.to_string().contains("SPS and PPS"), "{err}");
    }

    #[test]
    fn record_with_an_empty_sps_is_an_error() {
        assert_eq!(
            check_video_config(&record(&[], REAL_PPS)),
            Err(CodecError::EmptyParameterSet("SPS"))
        );
    }

    #[test]
    fn record_with_an_empty_pps_is_an_error_not_a_panic() {
        let record = record(real_sps(), &[]);
        assert_eq!(
            check_video_config(&record),
            Err(CodecError::EmptyParameterSet("PPS"))
        );
        assert_eq!(video_params(&record), None);
        // The same bytes as h264-reader 0.9 would get them: it panics.
        assert!(
            std::panic::catch_unwind(|| {
                let avcc =
                    h264_reader::avcc::AvcDecoderConfigurationRecord::try_from(&record[..]).ok()?;
                avcc.create_context().ok()
            })
            .is_err(),
            "h264-reader still panics here; if it no longer does, this test can go"
        );
    }

    #[test]
    fn zero_sps_or_zero_pps_is_an_error() {
        // numOfSequenceParameterSets = 0, then one PPS.
        let mut no_sps = vec![0x01, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x01, 0x00, 0x04];
        no_sps.extend_from_slice(REAL_PPS);
        assert_eq!(
            check_video_config(&no_sps),
            Err(CodecError::NoParameterSet("SPS"))
        );
        let mut no_pps = record(real_sps(), REAL_PPS);
        no_pps.truncate(SPS_AT + SPS_LEN);
        no_pps.push(0);
        assert_eq!(
            check_video_config(&no_pps),
            Err(CodecError::NoParameterSet("PPS"))
        );
    }

    #[test]
    fn truncated_records_are_errors() {
        let whole = record(real_sps(), REAL_PPS);
        for cut in 1..whole.len() {
            let err = check_video_config(&whole[..cut]).unwrap_err();
            assert!(
                matches!(err, CodecError::TruncatedVideoConfig { len, .. } if len == cut),
                "cut at {cut}: {err:?}"
            );
        }
        // An SPS length past the end of the record.
        let mut lying = whole.clone();
        lying[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
        assert!(matches!(
            check_video_config(&lying),
            Err(CodecError::TruncatedVideoConfig { field: "SPS", .. })
        ));
    }

    #[test]
    fn wrong_version_length_size_and_nal_types_are_errors() {
        let mut version = record(real_sps(), REAL_PPS);
        version[0] = 2;
        assert_eq!(
            check_video_config(&version),
            Err(CodecError::VideoConfigVersion(2))
        );
        let mut two_byte = record(real_sps(), REAL_PPS);
        two_byte[4] = 0xfd;
        let err = check_video_config(&two_byte).unwrap_err();
        assert_eq!(err, CodecError::NalLengthSize(2));
        assert!(err.to_string().contains("4-byte"), "{err}");
        assert_eq!(
            check_video_config(&record(REAL_PPS, REAL_PPS)),
            Err(CodecError::WrongParameterSet {
                expected: "SPS",
                actual: 8
            })
        );
    }

    #[test]
    fn an_unreadable_sps_leaves_the_figures_empty_but_flows() {
        // A whole record whose SPS is only a NAL header: nothing to read.
        assert_eq!(check_video_config(&record(&[0x67], REAL_PPS)), Ok(None));
        // Junk after the header, any junk: never a panic.
        for seed in 0u8..=255 {
            let sps: Vec<u8> = std::iter::once(0x67)
                .chain((0..24u8).map(|i| seed.wrapping_mul(31).wrapping_add(i.wrapping_mul(seed))))
                .collect();
            let _ = check_video_config(&record(&sps, REAL_PPS));
        }
    }

    #[test]
    fn absurd_dimensions_are_an_error() {
        // Level 6.2, 2048x1 macroblocks: allowed by the level, but 32,768
        // samples wide.
        let err = check_video_config(&record(&sps_baseline(2047, 0, 62), REAL_PPS)).unwrap_err();
        assert_eq!(
            err,
            CodecError::Dimensions {
                width: 32_768,
                height: 16
            }
        );
        // 16x16 is a picture, if a small one.
        let params = video_params(&record(&sps_baseline(0, 0, 30), REAL_PPS)).unwrap();
        assert_eq!((params.width, params.height), (16, 16));
        // 8192x8192 is too many macroblocks for any level.
        let err = check_video_config(&record(&sps_baseline(511, 511, 62), REAL_PPS)).unwrap_err();
        assert_eq!(err, CodecError::PictureTooLarge(512 * 512));
        assert!(err.to_string().contains("level 6.2"), "{err}");
        // More than level 3.0 allows, fewer than H.264 does: an encoder that
        // understates its level still streams, without figures.
        assert_eq!(
            check_video_config(&record(&sps_baseline(2047, 0, 30), REAL_PPS)),
            Ok(None)
        );
    }

    /// Writes a Baseline SPS (sps id 0, log2_max_frame_num 4, POC type 2,
    /// one reference frame, frame_mbs_only, no cropping, no VUI) of the
    /// given size in macroblocks and `level_idc`, exp-Golomb by hand.
    fn sps_baseline(width_mbs_minus1: u32, height_mbs_minus1: u32, level_idc: u8) -> Vec<u8> {
        let mut bits = String::new();
        let ue = |bits: &mut String, value: u32| {
            let code = value + 1;
            let len = 32 - code.leading_zeros();
            bits.push_str(&"0".repeat(len as usize - 1));
            bits.push_str(&format!("{code:b}"));
        };
        ue(&mut bits, 0); // seq_parameter_set_id
        ue(&mut bits, 0); // log2_max_frame_num_minus4
        ue(&mut bits, 2); // pic_order_cnt_type
        ue(&mut bits, 1); // max_num_ref_frames
        bits.push('0'); // gaps_in_frame_num_value_allowed_flag
        ue(&mut bits, width_mbs_minus1);
        ue(&mut bits, height_mbs_minus1);
        bits.push('1'); // frame_mbs_only_flag
        bits.push('1'); // direct_8x8_inference_flag
        bits.push('0'); // frame_cropping_flag
        bits.push('0'); // vui_parameters_present_flag
        bits.push('1'); // rbsp_stop_one_bit
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let mut sps = vec![0x67, 66, 0xc0, level_idc];
        sps.extend(
            bits.as_bytes()
                .chunks(8)
                .map(|byte| u8::from_str_radix(std::str::from_utf8(byte).unwrap(), 2).unwrap()),
        );
        // An RBSP must not contain 0x000000..0x000003: none of these sizes
        // writes two zero bytes in a row.
        assert!(!sps.windows(2).any(|w| w == [0, 0]), "{sps:02x?}");
        sps
    }

    #[test]
    fn nal_units_must_end_inside_the_frame() {
        let mut frame = Vec::new();
        for nal in [&[0x65, 1, 2, 3][..], &[], &[0x06, 9]] {
            frame.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            frame.extend_from_slice(nal);
        }
        assert_eq!(check_access_unit(&frame), Ok(()));
        assert_eq!(check_access_unit(&[]), Ok(()));
        assert_eq!(
            check_access_unit(&frame[..frame.len() - 1]),
            Err(CodecError::NalPastEnd {
                offset: 12,
                nal_len: 2,
                len: 17
            })
        );
        assert_eq!(
            check_access_unit(&[0, 0, 1]),
            Err(CodecError::NalPastEnd {
                offset: 0,
                nal_len: 4,
                len: 3
            })
        );
        let huge = [0xff, 0xff, 0xff, 0xff, 0x65];
        assert!(matches!(
            check_access_unit(&huge),
            Err(CodecError::NalPastEnd {
                nal_len: 0xffff_ffff,
                ..
            })
        ));
    }

    #[test]
    fn reads_aac_lc_48k_stereo() {
        // AAC-LC (2), 48 kHz (index 3), 2 channels.
        let params = audio_params(&[0x11, 0x90]).unwrap();
        assert_eq!(
            params,
            AudioParams {
                object_type: 2,
                sample_rate: 48000,
                channels: 2
            }
        );
    }

    #[test]
    fn reads_aac_lc_44k1_mono() {
        let params = audio_params(&[0x12, 0x08]).unwrap();
        assert_eq!(
            params,
            AudioParams {
                object_type: 2,
                sample_rate: 44100,
                channels: 1
            }
        );
    }

    /// An AudioSpecificConfig from its bits, written as 0s and 1s (spaces
    /// between fields), padded with zeros to whole bytes.
    fn asc(fields: &str) -> Vec<u8> {
        let mut bits: String = fields.chars().filter(|c| !c.is_whitespace()).collect();
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        bits.as_bytes()
            .chunks(8)
            .map(|byte| u8::from_str_radix(std::str::from_utf8(byte).unwrap(), 2).unwrap())
            .collect()
    }

    #[test]
    fn reads_he_aac_and_an_explicit_rate() {
        assert_eq!(asc("00010 0011 0010"), [0x11, 0x90], "AAC-LC 48 kHz stereo");
        // HE-AAC (5), core 24 kHz (6), stereo, extension 48 kHz (3), core AAC-LC (2).
        let params = check_audio_config(&asc("00101 0110 0010 0011 00010")).unwrap();
        assert_eq!((params.object_type, params.sample_rate), (5, 24000));
        // AAC-LC, index 15 then 48000 in 24 bits, stereo.
        let explicit = asc(&format!("00010 1111 {:024b} 0010", 48_000));
        let params = check_audio_config(&explicit).unwrap();
        assert_eq!((params.sample_rate, params.channels), (48000, 2));
    }

    #[test]
    fn empty_and_truncated_aac_configs_are_errors() {
        assert_eq!(check_audio_config(&[]), Err(CodecError::EmptyAudioConfig));
        assert_eq!(
            check_audio_config(&[0x11]),
            Err(CodecError::TruncatedAudioConfig(1))
        );
        // HE-AAC with its extension fields cut off.
        assert_eq!(
            check_audio_config(&asc("00101 0110 0010")),
            Err(CodecError::TruncatedAudioConfig(2))
        );
        // An explicit rate cut off.
        assert_eq!(
            check_audio_config(&asc("00010 1111 0000000")),
            Err(CodecError::TruncatedAudioConfig(2))
        );
    }

    #[test]
    fn unsupported_object_types_and_rates_are_errors() {
        let err = check_audio_config(&asc("10111 0011 0010")).unwrap_err();
        assert_eq!(
            err,
            CodecError::AudioObjectType {
                object_type: 23,
                name: "AAC-LD"
            }
        );
        assert!(err.to_string().contains("AAC-LC"), "{err}");
        // 31 escapes to 32 + 10 = 42, USAC.
        assert!(matches!(
            check_audio_config(&asc("11111 001010 0011 0010")),
            Err(CodecError::AudioObjectType {
                object_type: 42,
                ..
            })
        ));
        assert_eq!(
            check_audio_config(&asc("00010 1101 0010")),
            Err(CodecError::SampleRateIndex(13))
        );
        assert_eq!(
            check_audio_config(&asc(&format!("00010 1111 {:024b} 0010", 10_000_000))),
            Err(CodecError::SampleRate(10_000_000))
        );
        assert_eq!(
            check_audio_config(&asc(&format!("00010 1111 {:024b} 0010", 0))),
            Err(CodecError::SampleRate(0))
        );
        // HE-AAC over an AAC-LD core is not HE-AAC anyone plays.
        assert!(matches!(
            check_audio_config(&asc("00101 0110 0010 0011 10111")),
            Err(CodecError::AudioObjectType {
                object_type: 23,
                ..
            })
        ));
    }
}
