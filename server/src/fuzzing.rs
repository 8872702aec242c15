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
pub const TARGETS: &[(&str, fn(&[u8]))] = &[("flv_tags", flv_tags)];

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
