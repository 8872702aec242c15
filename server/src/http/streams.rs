//! `GET /api/streams`: every stream, live or not, with measured figures.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use std::sync::atomic::Ordering;

use tinsel_frontend::api::{AudioStatus, StreamStatus, TaskRestarts, VideoStatus, Viewers};

use crate::media::hub::StreamSnapshot;
use crate::state::AppState;

pub async fn streams_list(State(state): State<AppState>) -> Json<Vec<StreamStatus>> {
    let now = Instant::now();
    // Config order, so the default stream comes first.
    let list = state
        .config
        .streams
        .iter()
        .filter_map(|stream| stream_status(&state, &stream.name, now))
        .collect();
    Json(list)
}

/// One stream's status, as `/api/streams` and `/api/events` give it; `None`
/// for a stream that does not exist.
pub fn stream_status(state: &AppState, name: &str, now: Instant) -> Option<StreamStatus> {
    let snapshot = state.hub.snapshot(name, now).ok()?;
    let hls_viewers = state
        .hls
        .stream(&snapshot.name)
        .map_or(0, |s| s.viewers(now));
    let webrtc_viewers = state.whep.viewers(&snapshot.name);
    let restarts = state
        .restarts
        .get(&snapshot.name)
        .map(|r| TaskRestarts {
            hls: r.hls.load(Ordering::Relaxed),
            webrtc: r.webrtc.load(Ordering::Relaxed),
        })
        .unwrap_or_default();
    Some(to_status(snapshot, hls_viewers, webrtc_viewers, restarts))
}

fn to_status(
    snapshot: StreamSnapshot,
    hls_viewers: usize,
    webrtc_viewers: usize,
    restarts: TaskRestarts,
) -> StreamStatus {
    let round = |value: Option<f64>| value.map(|v| (v * 10.0).round() / 10.0);
    let video = snapshot.video.as_ref().map(|params| VideoStatus {
        codec: "H.264".to_string(),
        profile: Some(params.profile.clone()),
        width: Some(params.width),
        height: Some(params.height),
        fps: round(snapshot.fps),
        kbps: round(snapshot.video_kbps),
        bframes: snapshot.bframes,
        keyframe_age_s: round(snapshot.keyframe_age.map(|age| age.as_secs_f64())),
    });
    let audio = snapshot.audio.map(|params| AudioStatus {
        codec: "AAC".to_string(),
        sample_rate: Some(params.sample_rate),
        channels: Some(params.channels),
        kbps: round(snapshot.audio_kbps),
    });
    StreamStatus {
        name: snapshot.name,
        live: snapshot.live,
        video,
        audio,
        viewers: Viewers {
            rtmp: snapshot.players,
            hls: hls_viewers,
            webrtc: webrtc_viewers,
        },
        uptime_s: snapshot.uptime.map(|d| d.as_secs()),
        restarts,
    }
}
