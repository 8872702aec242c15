//! What `/api/...` answers (shared with the server, which serializes the same
//! types), and the browser's calls to it.

use serde::{Deserialize, Serialize};

/// One entry of `GET /api/streams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub name: String,
    pub live: bool,
    pub video: Option<VideoStatus>,
    pub audio: Option<AudioStatus>,
    pub viewers: Viewers,
    /// Seconds since the publisher started; `None` while offline.
    pub uptime_s: Option<u64>,
    /// How often the stream's outputs were restarted after a failure.
    #[serde(default)]
    pub restarts: TaskRestarts,
}

/// Restarts of a stream's per-stream tasks since the server started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRestarts {
    /// The HLS segmenter.
    pub hls: u64,
    /// The WebRTC feed (packetizer and AAC to Opus).
    pub webrtc: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStatus {
    pub codec: String,
    pub profile: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Measured over the last seconds of media.
    pub fps: Option<f64>,
    pub kbps: Option<f64>,
    /// B-frames in the stream: WebRTC players cannot show it (set Max B-frames
    /// to 0 in OBS).
    pub bframes: bool,
    /// Seconds of stream time since the last keyframe: past the HLS segment
    /// limit (12 s by default) the web picture waits for the next one.
    #[serde(default)]
    pub keyframe_age_s: Option<f64>,
}

/// Past this many seconds without a keyframe, the web picture is waiting.
const KEYFRAME_WAIT_S: f64 = 10.0;

/// What the watch page and the admin panel say when the camera has sent no
/// keyframe for a while.
pub fn keyframe_warning(age_s: Option<f64>) -> Option<String> {
    age_s.filter(|age| *age > KEYFRAME_WAIT_S).map(|age| {
        format!(
            "No keyframe from the camera for {age:.0} s: the picture in browsers resumes at \
             the next one. Set the keyframe interval to 2 s in OBS."
        )
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStatus {
    pub codec: String,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
    pub kbps: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Viewers {
    pub rtmp: usize,
    pub hls: usize,
    pub webrtc: usize,
}

/// One entry of `GET /api/lights`: an outlet of the tree's PDU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutletState {
    pub name: String,
    /// `None` while the PDU has not answered.
    pub on: Option<bool>,
    /// On the built-in simulated PDU, not real hardware.
    pub simulated: bool,
    /// Why the last command or poll failed, if it did.
    pub error: Option<String>,
    /// Powers something that must stay up: it never flashes, and tweets
    /// never switch it (`[[outlet]] protected = true`).
    #[serde(default)]
    pub protected: bool,
}

/// One action on the lights, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339, UTC.
    pub at: String,
    /// `admin:NAME`, `schedule` or `tweet:ID`.
    pub source: String,
    pub outlet: String,
    pub action: String,
    /// What the PDU did, as read back: `switched on (was off)`, `already on`,
    /// `flashed off for 5 s (read back: off)`, or why it failed.
    pub result: String,
    /// Whether it did what was asked.
    #[serde(default = "yes")]
    pub ok: bool,
}

fn yes() -> bool {
    true
}

/// An outlet's daily schedule, in the server's time zone: `HH:MM` or `HH:MM:SS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub outlet: String,
    pub on: String,
    pub off: String,
}

/// `GET /api/site`: what the watch page needs to know about this server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// The first configured stream, which `/` shows.
    pub default_stream: String,
    /// The port RTMP players (VLC) connect to, on the page's own host name.
    pub rtmp_port: u16,
    /// The RTMP application in play URLs: `rtmp://HOST:PORT/APP/NAME`.
    pub rtmp_app: String,
    /// The page's last resort: a YouTube video id, or `channel:ID` for a
    /// channel's current live stream.
    pub youtube_fallback: Option<String>,
}

/// `GET /api/streams`, from the browser.
///
/// # Errors
/// A network failure or an answer that is not the expected JSON, as text for
/// the page to show.
#[cfg(feature = "hydrate")]
pub async fn streams() -> Result<Vec<StreamStatus>, String> {
    get_json("/api/streams").await
}

/// `GET /api/site`, from the browser.
///
/// # Errors
/// As [`streams`].
#[cfg(feature = "hydrate")]
pub async fn site() -> Result<SiteInfo, String> {
    get_json("/api/site").await
}

#[cfg(feature = "hydrate")]
async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let response = gloo_net::http::Request::get(url)
        .send()
        .await
        .map_err(|err| format!("cannot reach the server: {err}"))?;
    if !response.ok() {
        return Err(format!("the server answered {}", response.status()));
    }
    response
        .json()
        .await
        .map_err(|err| format!("unexpected answer: {err}"))
}

/// On the server the page renders without data; the browser fetches it.
#[cfg(not(feature = "hydrate"))]
pub async fn streams() -> Result<Vec<StreamStatus>, String> {
    Err("stream status is fetched in the browser".to_string())
}

/// As [`streams`].
#[cfg(not(feature = "hydrate"))]
pub async fn site() -> Result<SiteInfo, String> {
    Err("site settings are fetched in the browser".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyframe_long_awaited_is_told_and_a_recent_one_is_not() {
        assert_eq!(keyframe_warning(None), None);
        assert_eq!(keyframe_warning(Some(1.9)), None);
        let text = keyframe_warning(Some(31.4)).unwrap();
        assert!(
            text.starts_with("No keyframe from the camera for 31 s"),
            "{text}"
        );
    }

    #[test]
    fn a_status_without_the_keyframe_age_still_reads() {
        let video: VideoStatus = serde_json::from_str(
            r#"{"codec":"H.264","profile":"High","width":1280,"height":720,"fps":30.0,"kbps":2500.0,"bframes":false}"#,
        )
        .unwrap();
        assert_eq!(video.keyframe_age_s, None);
    }
}
