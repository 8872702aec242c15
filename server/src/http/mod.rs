//! The web layer: the Leptos app, the JSON API and health checks.

mod admin;
mod app;
mod error;
mod events;
mod hls;
pub mod hls_query;
mod lights;
pub mod limits;
mod push;
mod site;
mod streams;
mod tweets;
mod webrtc;

pub use error::ApiError;
pub use events::Shutdown;

use axum::Router;
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// Every HTTP route of the server.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/streams", get(streams::streams_list))
        .route("/lights", get(lights::lights_list))
        .route("/events", get(events::events_get))
        .route("/site", get(site::site_get))
        .merge(admin::admin_routes(&state));
    app::routes(&state)
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/api", api)
        .merge(hls::hls_routes())
        .merge(webrtc::webrtc_routes())
        .layer(CompressionLayer::new())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
