//! The Leptos app: server-rendered pages, and the built WASM, JS and CSS files.

use axum::Router;
use leptos_axum::{LeptosRoutes, file_and_error_handler, generate_route_list};
use tinsel_frontend::app::{App, shell};

use crate::state::AppState;

/// The page routes, with the site folder (`/pkg/...`) as the fallback.
pub fn routes(state: &AppState) -> Router<AppState> {
    let options = state.leptos.clone();
    Router::new()
        .leptos_routes(state, generate_route_list(App), move || {
            shell(options.clone())
        })
        .fallback(file_and_error_handler::<AppState, _>(shell))
}
