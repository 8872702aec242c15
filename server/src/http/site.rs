//! `GET /api/site`: what the watch page needs to know about this server (the
//! RTMP port for "watch in VLC", the YouTube fallback). Never a stream key.

use axum::Json;
use axum::extract::State;
use tinsel_frontend::api::SiteInfo;

use crate::config::RTMP_APP;
use crate::state::AppState;

pub async fn site_get(State(state): State<AppState>) -> Json<SiteInfo> {
    let config = &state.config;
    Json(SiteInfo {
        default_stream: config
            .streams
            .first()
            .map(|s| s.name.clone())
            .unwrap_or_default(),
        rtmp_port: config.rtmp_listen.port(),
        rtmp_app: RTMP_APP.to_string(),
        youtube_fallback: config.youtube_fallback.clone(),
    })
}
