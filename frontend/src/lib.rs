//! Tinsel's web app, rendered on the server and hydrated in the browser.
//!
//! - [`app`]: the page shell and routes.
//! - [`watch`]: the watch page.
//! - [`api`]: the JSON the server answers, and the one place the browser fetches it.
//! - [`live`]: the server's pushed events (`/api/events`) as signals.
//! - [`player`]: WebRTC, LL-HLS or YouTube, whichever plays.
//! - [`lights`]: the tree's lights on the watch page.

pub mod admin;
pub mod api;
pub mod app;
pub mod lights;
pub mod live;
pub mod player;
pub mod watch;

/// The browser's entry point: takes over the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
