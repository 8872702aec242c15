//! Entry points for the fuzz targets (`fuzz/`), one per parser of bytes a
//! stranger or an outside peer controls.
//!
//! The cargo-fuzz targets are one line each calling these, and
//! `tests/fuzz_inputs.rs` feeds every committed seed and every input that
//! ever crashed one through the same functions on stable, so a crash found
//! once stays a plain regression test. Each function takes any bytes and must
//! return without panicking, whatever they are.

use crate::media::flv;

/// Every target, by the name its `fuzz/fuzz_targets/NAME.rs` has.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("rtmp_session", rtmp_session),
    ("amf0_values", amf0_values),
    ("flv_tags", flv_tags),
];

/// One RTMP connection after the handshake, as a stranger drives it: the
/// chunk reader, AMF0, the command sequence, publishing and playing (the first
/// byte is how many bytes each read hands over). The seeds are what FFmpeg
/// sends publishing and ffprobe sends playing, the handshake cut off.
pub fn rtmp_session(data: &[u8]) {
    crate::rtmp::session::fuzz_session(data);
}

/// AMF0 values within the command limits; what decodes, encodes to bytes
/// that decode to the same encoding (bytes, not values: NaN is not equal to
/// itself).
pub fn amf0_values(data: &[u8]) {
    use crate::rtmp::amf0;
    if let Ok(values) = amf0::decode_all(data, &amf0::COMMAND_LIMITS) {
        let encoded = amf0::encode(&values);
        let again = amf0::decode_all(&encoded, &amf0::COMMAND_LIMITS)
            .expect("what Tinsel encodes decodes within the same limits");
        assert_eq!(amf0::encode(&again), encoded, "AMF0 round trip");
    }
}

/// An RTMP video (first byte even) or audio (odd) message body, as a
/// publisher sends it: the FLV tag header, the AVC decoder configuration
/// record with its SPS and PPS (read by h264-reader), the NAL units of an
/// access unit, the AAC AudioSpecificConfig.
pub fn flv_tags(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        let _ = flv::parse_video(body);
    } else {
        let _ = flv::parse_audio(body);
    }
}
