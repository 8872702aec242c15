//! The Leptos app: server-rendered pages, and the built WASM, JS and CSS files.
//!
//! Caching: the build (sitebuild) puts content hashes in the names of the
//! `/pkg/*` files and `/vendor/` files carry their version in their name, so
//! neither ever changes under its name and browsers may keep both.
//! Compression (gzip, br) is the router's.

use axum::Router;
use axum::http::{HeaderValue, header};
use leptos_axum::{LeptosRoutes, file_and_error_handler, generate_route_list};
use tinsel_frontend::app::{App, shell};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The page routes, `/pkg` and `/vendor`, with the site folder as the fallback.
pub fn routes(state: &AppState) -> Router<AppState> {
    let options = state.leptos.clone();
    let site = std::path::Path::new(options.site_root.as_ref());
    let files = |dir: &str, cache: &'static str| {
        Router::new()
            .fallback_service(ServeDir::new(site.join(dir)))
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache),
            ))
    };
    let pkg = files(options.site_pkg_dir.as_ref(), IMMUTABLE);
    let vendor = files("vendor", IMMUTABLE);
    Router::new()
        .leptos_routes(state, generate_route_list(App), move || {
            shell(options.clone())
        })
        .nest("/pkg", pkg)
        .nest("/vendor", vendor)
        .fallback(file_and_error_handler::<AppState, _>(shell))
}
