//! The web layer: the Leptos app, the JSON API and health checks.
//!
//! What a stranger may cost it is bounded in three places: [`serve`]
//! (connections, header time and size), [`body`] (request bodies, every
//! route), and the handlers that hold a request open (event feeds in
//! `events`, blocking playlist reloads in `hls`). Every refusal is a 4xx or
//! a 503 with the reason, and one rate-limited log line
//! ([`crate::limits::refused`]).

mod admin;
mod app;
mod body;
mod error;
mod events;
mod hls;
pub mod hls_query;
mod json_errors;
mod lights;
pub mod limits;
mod node;
mod push;
pub mod serve;
mod site;
pub mod status_board;
mod streams;
mod tweets;
mod webrtc;
mod write_deadline;
pub mod youtube;

pub use error::ApiError;
pub use events::Shutdown;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Extension, Router};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// Every HTTP route of the server; `board` feeds the watch pages' events.
pub fn router(state: AppState, board: status_board::StatusBoard) -> Router {
    let limits = state.config.http_limits;
    let feeds = events::FeedSlots(crate::limits::slots::Slots::new(
        limits.http_max_sse,
        limits.http_max_sse_per_ip,
    ));
    let api = Router::new()
        .route("/streams", get(streams::streams_list))
        .route("/lights", get(lights::lights_list))
        .route(
            "/events",
            get(events::events_get).layer(Extension((feeds, board))),
        )
        .route("/site", get(site::site_get))
        .merge(admin::admin_routes(&state));
    let routes = app::routes(&state)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(node::ready_get))
        .route("/metrics", get(node::metrics_get))
        .nest("/api", api)
        .merge(hls::hls_routes())
        .merge(webrtc::webrtc_routes())
        .layer(DefaultBodyLimit::max(limits.http_max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            body::BodyLimit(limits.http_max_body_bytes),
            body::limit,
        ))
        .with_state(state);
    // Around the whole router, not each route: a 405's `Allow` header is
    // added as a route's answer leaves the router.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(json_errors::json_errors))
        // Text compresses; fMP4 media (HLS parts, segments, init) is already
        // compressed video and audio, and gzipping it again on every request
        // would cost CPU per viewer for nothing.
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(NotForContentType::const_new("video/"))),
        )
        .layer(TraceLayer::new_for_http())
}
