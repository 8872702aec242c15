//! What a stream's codec configuration says: H.264 profile and picture size, AAC
//! sample rate and channels (pure).

use h264_reader::avcc::AvcDecoderConfigurationRecord;

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

/// Reads an AVCDecoderConfigurationRecord (the body of an FLV AVC sequence
/// header after its 5-byte tag header). `None` when it cannot be read: the stream
/// still flows, only the figures in `/api/streams` stay empty.
pub fn video_params(record: &[u8]) -> Option<VideoParams> {
    // h264-reader 0.9 panics on some malformed records (an empty last PPS);
    // this comes straight from a publisher, so a bad one must not take the
    // connection down.
    let dimensions = std::panic::catch_unwind(|| {
        let avcc = AvcDecoderConfigurationRecord::try_from(record).ok()?;
        let ctx = avcc.create_context().ok()?;
        let sps = ctx.sps().next()?;
        sps.pixel_dimensions().ok()
    });
    let (width, height) = dimensions.ok().flatten()?;
    let avcc = AvcDecoderConfigurationRecord::try_from(record).ok()?;
    let profile_idc: u8 = avcc.avc_profile_indication().into();
    Some(VideoParams {
        profile: profile_name(profile_idc, record.get(2).copied().unwrap_or(0)).to_string(),
        profile_idc,
        constraint_flags: record.get(2).copied().unwrap_or(0),
        level_idc: record.get(3).copied().unwrap_or(0),
        width,
        height,
    })
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

/// Reads an AudioSpecificConfig (the body of an FLV AAC sequence header after its
/// 2-byte tag header).
pub fn audio_params(config: &[u8]) -> Option<AudioParams> {
    let bits = u16::from_be_bytes([*config.first()?, *config.get(1)?]);
    let object_type = (bits >> 11) as u8;
    // Index 15 means an explicit 24-bit frequency follows; encoders for
    // streaming use the table, so that form is reported as unknown.
    let sample_rate = *AAC_RATES.get(usize::from((bits >> 7) & 0x0f))?;
    let channels = ((bits >> 3) & 0x0f) as u8;
    Some(AudioParams {
        object_type,
        sample_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence header x264 (via ffmpeg) sends for a 1280x720 High profile stream.
    const AVCC_720P_HIGH: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
        0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0x8f, 0xcb, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    #[test]
    fn reads_profile_and_size_from_avcc() {
        let params = video_params(AVCC_720P_HIGH).expect("valid record");
        assert_eq!(params.profile, "High");
        assert_eq!((params.width, params.height), (1280, 720));
        assert_eq!(params.level_idc, 0x1f);
    }

    #[test]
    fn garbage_avcc_gives_none() {
        assert_eq!(video_params(&[1, 2, 3]), None);
    }

    #[test]
    fn record_with_an_empty_pps_gives_none_not_a_panic() {
        let mut record = AVCC_720P_HIGH[..AVCC_720P_HIGH.len() - 6].to_vec();
        record.extend_from_slice(&[0x01, 0x00, 0x00]);
        assert_eq!(video_params(&record), None);
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
}
