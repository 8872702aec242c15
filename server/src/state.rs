//! What every HTTP handler can reach: handles that are cheap to clone.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::auth::logins::Logins;
use crate::auth::throttle::Limits;
use crate::config::Config;
use crate::control::Lights;
use crate::db::Db;
use crate::hls::HlsStore;
use crate::media::StreamHub;
use crate::metrics::Metrics;
use crate::push::Pushes;
use crate::readiness::Readiness;
use crate::tweets::Tweets;
use crate::web_app;
use crate::webrtc::whep::Whep;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub hub: StreamHub,
    pub hls: HlsStore,
    pub whep: Whep,
    pub db: Db,
    /// The one way to the tree's lights.
    pub lights: Lights,
    /// The tweet poller's status.
    pub tweets: Tweets,
    /// Failed admin logins: the throttle, and the table that keeps it over
    /// a restart.
    pub logins: Logins,
    /// Where the streams are pushed on to, and how that goes.
    pub pushes: Pushes,
    /// Where the built web app lives and what its files are called.
    pub leptos: LeptosOptions,
    /// Restarts of each stream's HLS and WebRTC tasks, by stream name.
    pub restarts: Arc<std::collections::HashMap<String, StreamRestarts>>,
    /// The counters behind `/metrics`.
    pub metrics: Metrics,
    /// Whether this node takes new viewers (`/readyz`).
    pub readiness: Arc<Readiness>,
    /// On an edge: who wants which stream, so it is pulled only then.
    pub demand: Option<crate::edge::Demand>,
}

/// The restart counters of one stream's supervised tasks.
#[derive(Clone, Default)]
pub struct StreamRestarts {
    pub hls: crate::supervisor::Restarts,
    pub webrtc: crate::supervisor::Restarts,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        hub: StreamHub,
        hls: HlsStore,
        whep: Whep,
        db: Db,
        lights: Lights,
        tweets: Tweets,
    ) -> Self {
        // The files in pkg/ carry content hashes that hash.txt lists; an
        // absolute hash_file is read where it is (leptos joins it to the
        // binary's folder, which leaves an absolute path as it is).
        let leptos = LeptosOptions::builder()
            .output_name(web_app::OUTPUT_NAME)
            .site_root(config.site_dir.to_string_lossy().into_owned())
            .site_pkg_dir(web_app::PKG_DIR)
            .hash_files(true)
            .hash_file(
                config
                    .site_dir
                    .join(web_app::HASH_FILE)
                    .to_string_lossy()
                    .into_owned()
                    .into(),
            )
            .build();
        let logins = Logins::new(
            db.clone(),
            Limits {
                max_entries: config.auth_limits.login_throttle_max_entries,
                ..Limits::default()
            },
        );
        Self {
            config,
            hub,
            hls,
            whep,
            db,
            lights,
            tweets,
            logins,
            pushes: Pushes::default(),
            restarts: Arc::default(),
            metrics: Metrics::default(),
            readiness: Arc::default(),
            demand: None,
            leptos,
        }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
