//! Tinsel: a live-streaming server with a web app and a light controller.
//!
//! # Layout
//!
//! ```text
//!   OBS ──RTMP──▶ rtmp::session ──▶ media::StreamHub ──▶ rtmp::session ──RTMP──▶ VLC, ffplay,
//!                 (publisher)       a bounded broadcast   (players)               edges
//!                                   and GOP cache a stream
//!   or, on an edge:    ▲
//!   origin ──RTMP──▶ edge::pull (play NAME?cluster_secret=..., the first
//!                    origin that has it live; on demand, edge::demand)
//!                                          │
//!                  ┌───────────────────────┼───────────────────────┐
//!                  ▼                       ▼                       ▼
//!           hls::segmenter           webrtc::feed             push::relay ──RTMP──▶ YouTube
//!           LL-HLS parts (fMP4)      RTP, and AAC to Opus,    one task a target
//!                  │                 once a stream
//!                  │                       ▼
//!                  │                 webrtc::session ──UDP, one port (udp_mux)──▶ WebRTC viewers
//!                  │                 a task a viewer   (or ICE-TCP)
//!                  ▼                       ▲ webrtc::whep: offer in, answer out
//!  browser ◀─HTTP─ http (axum) ────────────┘
//!                  the Leptos app (watch page, admin panel; web_app finds its
//!                  build), /api, /api/events, /hls, /whep; each handler gets
//!                  a state::AppState
//!                     │              │  ▲
//!                     ▼     commands ▼  │ states, audit
//!            auth: accounts,    control::Lights ◀── tweets::poller ◀──HTTPS── X API
//!            sessions, the      a worker a PDU:     claims, coalescing
//!            login throttle     relay guard,
//!                     │         read-back, audit
//!                     │             ▲        │
//!                     │             │        └──SNMP v2c/v3──▶ PDU outlets
//!                     │   control::scheduler                   (or the simulated PDU)
//!                     │   (daily schedules)
//!                     ▼
//!            db: one SQLite file in the data dir, migrated at start: accounts,
//!            sessions, login failures, audit, schedules, lights memory, tweet claims
//!
//!   supervisor: restarts the per-stream HLS and WebRTC tasks and the UDP port
//!   when they end or panic, and counts it.
//!   metrics: what every output sent and every viewer missed (the hub's
//!   counters a stream), read with the rest at each Prometheus scrape.
//! ```
//!
//! Every port a stranger reaches checks what it reads against the limits its
//! module declares (see [`limits`]) before anything reaches the hub.
//!
//! - [`config`]: flags, environment and file merged into a checked [`Config`].
//! - `fuzzing` (hidden): the entry points of the cargo-fuzz targets.
//! - [`db`]: the embedded SQLite database in the data dir, and its migrations.
//! - [`edge`]: a node that pulls its streams from origins instead of taking
//!   a publisher, and serves them from its own hub.
//! - [`media`]: the core, with no sockets: frames, the hub and its GOP cache,
//!   codec facts.
//! - [`rtmp`]: RTMP in and out on one port.
//! - [`hls`]: Low-Latency HLS from memory.
//! - [`webrtc`]: WebRTC playback over WHEP: RTP payloads and Opus made once a
//!   stream, every session on one UDP port.
//! - [`control`]: the light controller: a worker a PDU (SNMP, or simulated),
//!   the relay guard, daily schedules, the audit log.
//! - [`tweets`]: the X API poller: matching tweets flash the tree.
//! - [`push`]: the streams pushed on to other RTMP servers (YouTube).
//! - [`http`]: the web layer: the Leptos app (watch page, admin panel), the
//!   API, live events, the HLS and WHEP routes.
//! - [`metrics`]: `/metrics` for Prometheus: counters the handlers bump, and
//!   figures read at scrape time from the hub, the outputs and the process.
//! - [`readiness`]: whether this node takes new viewers (`/readyz`).
//! - [`state`]: [`state::AppState`], the handles every HTTP handler reaches.
//! - [`auth`]: admin accounts, login throttling and sessions.
//! - [`limits`]: how every module declares what a stranger may cost it, and
//!   the rate-limited log line of a refusal.
//! - [`onboarding`]: what the first starts print (watch page, OBS settings,
//!   the first admin), and the mark of a stream's first publish.
//! - [`supervisor`]: the per-stream tasks (HLS, WebRTC feed), restarted and
//!   counted if they end or panic.
//! - [`web_app`]: where the built web app (`sitebuild`'s output) is, and the
//!   check at start that it is there.
//!
//! [`run`] takes listeners that are already bound (so tests can use port 0) and
//! a cancellation token; cancelling it stops accepting, lets requests finish,
//! and returns when every connection task has ended.

#![warn(clippy::await_holding_lock)]

pub mod auth;
pub mod config;
pub mod control;
pub mod db;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
pub mod hls;
pub mod http;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod onboarding;
pub mod push;
pub mod readiness;
pub mod rtmp;
pub mod state;
pub mod supervisor;
pub mod tweets;
pub mod web_app;
pub mod webrtc;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use config::Config;
use media::hub::HubSettings;
use state::AppState;

/// How long connections get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound listening sockets for [`run`].
pub struct Listeners {
    pub rtmp: TcpListener,
    pub http: TcpListener,
    /// The one UDP port of every WebRTC session.
    pub webrtc_udp: std::net::UdpSocket,
}

/// Serves until `token` is cancelled, then shuts down gracefully.
///
/// # Errors
/// The database or a listening socket failing at startup.
pub async fn run(
    config: Config,
    listeners: Listeners,
    token: CancellationToken,
) -> std::io::Result<()> {
    run_with(config, listeners, token, Arc::default()).await
}

/// [`run`], with the node's readiness in the caller's hands too (it drains
/// on SIGTERM: not ready at once, cancelled later).
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    token: CancellationToken,
    readiness: Arc<readiness::Readiness>,
) -> std::io::Result<()> {
    // The addresses really bound (port 0 becomes the port the OS picked), for
    // the pages that tell viewers where to connect.
    let mut config = config;
    config.rtmp_listen = listeners.rtmp.local_addr()?;
    config.http_listen = listeners.http.local_addr()?;
    let config = Arc::new(config);
    let wanted = config.http_limits.http_max_connections
        + config.rtmp_max_connections
        + config.rtmp_limits.rtmp_max_pending
        + config.whep_limits.whep_max_sessions;
    match limits::raise_open_files() {
        Some(open_files) if open_files < wanted as u64 => warn!(
            open_files,
            "the open-file limit is below what the connection caps allow ({wanted}); \
             raise it (ulimit -n, or LimitNOFILE= in systemd) or lower the caps"
        ),
        Some(open_files) => debug!(open_files, "open-file limit"),
        None => {}
    }
    let db = db::Db::open(&config.data_dir)
        .await
        .map_err(std::io::Error::other)?;
    let hub = media::StreamHub::new(
        config.streams.iter().map(|s| s.name.as_str()),
        HubSettings {
            viewer_queue_frames: config.viewer_queue_frames,
            ..HubSettings::default()
        },
    );
    let hls = hls::HlsStore::new(config.streams.iter().map(|s| s.name.as_str()), &config.hls);
    let tracker = TaskTracker::new();
    let mut feeds = std::collections::HashMap::new();
    let mut restarts = std::collections::HashMap::new();
    // A stream's outputs read the publisher's media, which a stranger with
    // the key (or a broken encoder) controls: they are restarted if they die.
    for stream in &config.streams {
        let counted = state::StreamRestarts::default();
        restarts.insert(stream.name.clone(), counted.clone());
        // An edge does not package: LL-HLS comes from the origin, through
        // the caches in front of it, packaged once.
        if let Some(segmenter) = hls.stream(&stream.name).filter(|_| config.edge.is_none()) {
            let (segment_hub, name, segmenter) =
                (hub.clone(), stream.name.clone(), Arc::clone(segmenter));
            supervisor::supervise(
                &tracker,
                format!("HLS of {name}"),
                Arc::clone(&counted.hls),
                token.child_token(),
                move |token| {
                    hls::task::run(
                        segment_hub.clone(),
                        name.clone(),
                        Arc::clone(&segmenter),
                        token,
                    )
                },
            );
        }
        let counters = hub
            .counters(&stream.name)
            .expect("the hub has every configured stream");
        let feed = Arc::new(webrtc::feed::Feed::new(counters));
        let (feed_hub, name, task_feed) = (hub.clone(), stream.name.clone(), Arc::clone(&feed));
        supervisor::supervise(
            &tracker,
            format!("WebRTC feed of {name}"),
            Arc::clone(&counted.webrtc),
            token.child_token(),
            move |token| {
                webrtc::feed::run(
                    feed_hub.clone(),
                    name.clone(),
                    Arc::clone(&task_feed),
                    token,
                )
            },
        );
        feeds.insert(stream.name.clone(), feed);
    }
    let mux = webrtc::udp_mux::UdpMux::new(
        listeners.webrtc_udp,
        webrtc::udp_mux::MuxLimits::from(&config.whep_limits),
    )?;
    info!(addr = %mux.local_addr(), "WebRTC UDP listening");
    let shared_udp = Arc::clone(&mux);
    supervisor::supervise(
        &tracker,
        "WebRTC UDP port".into(),
        supervisor::Restarts::default(),
        token.child_token(),
        move |token| Arc::clone(&shared_udp).run(token),
    );
    let whep = webrtc::whep::Whep::new(
        feeds,
        config.webrtc.clone(),
        config.whep_limits,
        mux,
        tracker.clone(),
        token.child_token(),
    );
    auth::session::sweep_expired(&db, &tracker, token.child_token());
    // An edge switches nothing: its pages show the origin's lights, relayed.
    let lights = match &config.edge {
        None => control::Lights::start(&config.lights, db.clone(), &tracker, token.child_token()),
        Some(edge) => {
            let (lights, mirror) = control::Lights::mirror(db.clone());
            let first = config
                .streams
                .first()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            tracker.spawn(edge::relay::run(
                Arc::new(edge.clone()),
                first,
                mirror,
                token.child_token(),
            ));
            lights
        }
    };
    let tweets = tweets::Tweets::start(
        config.twitter.as_ref(),
        config.lights.guard,
        db.clone(),
        lights.clone(),
        &tracker,
        token.child_token(),
    );
    let mut state = AppState::new(
        Arc::clone(&config),
        hub.clone(),
        hls.clone(),
        whep,
        db,
        lights,
        tweets,
    );
    state.pushes = push::Pushes::start(&config.pushes, &hub, &tracker, &token);
    // Before the HTTP port is served: a login must not slip in before the
    // failures from before a restart count again.
    state.logins.restore().await;
    state.restarts = Arc::new(restarts);
    state.readiness = readiness;
    if let Some(edge) = &config.edge {
        let (players, whep) = (hub.clone(), state.whep.clone());
        let demand = edge::Demand::new(
            Arc::new(move |name: &str| {
                let rtmp = players
                    .snapshot(name, std::time::Instant::now())
                    .map_or(0, |s| s.players);
                rtmp + whep.viewers(name)
            }),
            edge.idle,
        );
        edge::start(
            Arc::new(edge.clone()),
            config.streams.iter().map(|s| s.name.clone()).collect(),
            &hub,
            &demand,
            &state.readiness,
            &tracker,
            &token,
        );
        state.demand = Some(demand);
    }
    state
        .metrics
        .count_lights(state.lights.audit_events(), token.child_token());

    for stream in &config.streams {
        if !onboarding::marker::is_published(&config.data_dir, &stream.name) {
            tracker.spawn(onboarding::marker::watch(
                hub.clone(),
                config.data_dir.clone(),
                stream.name.clone(),
                token.child_token(),
            ));
        }
    }

    info!(addr = %listeners.rtmp.local_addr()?, "RTMP listening");
    info!(addr = %listeners.http.local_addr()?, "HTTP listening");

    tracker.spawn(rtmp::listener::run(
        listeners.rtmp,
        Arc::clone(&config),
        hub,
        tracker.clone(),
        token.child_token(),
    ));

    let board = http::status_board::StatusBoard::start(&state, &tracker, token.child_token());
    let app = http::router(state, board).layer(axum::Extension(http::Shutdown(token.clone())));
    http::serve::run(
        listeners.http,
        app,
        config.http_limits,
        tracker.clone(),
        token.clone(),
    )
    .await;

    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        warn!("some connections did not finish within {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}
