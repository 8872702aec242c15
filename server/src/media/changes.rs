//! What a publisher changed from the last one, or left out, in words for the
//! log: what happened and what each kind of viewer sees (pure).

use super::codec::{AudioParams, VideoParams};

/// Stream time a publisher has sent before missing tracks are reported:
/// encoders start audio and video within a frame or two of each other.
pub const TRACKS_SETTLE_MS: u64 = 5_000;

fn video(p: &VideoParams) -> String {
    format!(
        "{}x{} H.264 {} level {:.1}",
        p.width,
        p.height,
        p.profile,
        f64::from(p.level_idc) / 10.0
    )
}

fn audio(p: &AudioParams) -> String {
    format!("AAC {} Hz, {} channel(s)", p.sample_rate, p.channels)
}

/// The log line for new video settings, if they differ from the last
/// publisher's.
pub fn video_changed(old: &VideoParams, new: &VideoParams) -> Option<String> {
    (old != new).then(|| {
        format!(
            "the video changed from {} to {}: HLS viewers get a discontinuity with a new \
             init segment and play on, RTMP players get the new configuration before its \
             first frame, WebRTC viewers get the new picture at its first keyframe",
            video(old),
            video(new)
        )
    })
}

/// The log line for new audio settings, if they differ from the last
/// publisher's.
pub fn audio_changed(old: &AudioParams, new: &AudioParams) -> Option<String> {
    (old != new).then(|| {
        format!(
            "the audio changed from {} to {}: HLS viewers get a discontinuity with a new \
             init segment, RTMP players the new configuration, WebRTC viewers the same Opus \
             (it is encoded anew from the new audio)",
            audio(old),
            audio(new)
        )
    })
}

/// The log line for a stream that has sent only one kind of track so far.
pub fn missing_track(video: bool, audio: bool) -> Option<&'static str> {
    match (video, audio) {
        (true, true) | (false, false) => None,
        (true, false) => Some(
            "the stream has no audio (video only): every viewer gets a silent picture; \
             check the encoder's audio source if that is not meant",
        ),
        (false, true) => Some(
            "the stream has no video (audio only): RTMP players get the sound, but the watch \
             page (HLS and WebRTC) needs a picture and shows the stream as starting; add a \
             video source in the encoder",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(width: u32, profile: &str, profile_idc: u8) -> VideoParams {
        VideoParams {
            profile: profile.into(),
            profile_idc,
            constraint_flags: 0,
            level_idc: 31,
            width,
            height: width * 9 / 16,
        }
    }

    #[test]
    fn a_new_resolution_or_profile_is_told_and_the_same_is_not() {
        let (hd, sd) = (params(1280, "High", 100), params(640, "Main", 77));
        assert_eq!(video_changed(&hd, &hd.clone()), None);
        let line = video_changed(&hd, &sd).unwrap();
        assert!(
            line.starts_with(
                "the video changed from 1280x720 H.264 High level 3.1 to 640x360 H.264 Main level 3.1"
            ),
            "{line}"
        );
        let stereo = AudioParams {
            object_type: 2,
            sample_rate: 48_000,
            channels: 2,
        };
        let mono = AudioParams {
            channels: 1,
            ..stereo
        };
        assert_eq!(audio_changed(&stereo, &stereo), None);
        assert!(
            audio_changed(&stereo, &mono)
                .unwrap()
                .contains("2 channel(s) to AAC 48000 Hz, 1")
        );
    }

    #[test]
    fn one_track_alone_is_told() {
        assert_eq!(missing_track(true, true), None);
        assert!(missing_track(true, false).unwrap().contains("no audio"));
        assert!(missing_track(false, true).unwrap().contains("no video"));
    }
}
