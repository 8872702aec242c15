//! An edge: a node that pulls its streams from origins instead of taking a
//! publisher, and serves them from its own hub (RTMP players, WHEP, the
//! watch page) with the same GOP catch-up as the origin.
//!
//! - [`settings`]: the origins, when to pull, the cluster secret.
//! - [`pull`]: one stream pulled from one origin into the hub.
//! - [`demand`]: who wants a stream on this edge (players, WebRTC sessions,
//!   watch pages), so an on-demand edge pulls only while someone watches.
//! - [`relay`]: the origin's lights and actions, for this edge's watch pages.
//!
//! Per stream, one task: wait for demand, then play the stream from the
//! first origin that has it (the cluster secret is the credential, never
//! the publish key) and publish it into the hub. A pull that ends (the
//! origin went away, the stream ended) tries the origins again from the
//! first; viewers stay attached to the hub meanwhile and resume at the next
//! keyframe, as they do when OBS reconnects to an origin. A probe marks the
//! node not ready while no origin answers.

pub mod demand;
pub mod pull;
pub mod relay;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use demand::Demand;
pub use settings::{EdgeConfigError, EdgeSettings, Pull, RawEdge};

use crate::media::StreamHub;
use crate::readiness::Readiness;

/// First wait before trying the origins again after all failed; doubles up
/// to [`LONGEST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(5);
/// How often the probe checks that an origin answers.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A connection, handshake and `play` taking longer means that origin is
/// down for now.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The readiness condition the probe sets.
const NO_ORIGIN: &str = "origin";

/// Starts the pull of every stream in `names` and the origin probe, on
/// `tracker`, until `token` is cancelled.
pub fn start(
    settings: Arc<EdgeSettings>,
    names: Vec<String>,
    hub: &StreamHub,
    demand: &Demand,
    readiness: &Arc<Readiness>,
    tracker: &TaskTracker,
    token: &CancellationToken,
) {
    info!(
        origins = %describe(&settings),
        pull = ?settings.pull,
        "this node is an edge"
    );
    for name in names {
        tracker.spawn(stream_task(
            Arc::clone(&settings),
            name,
            hub.clone(),
            demand.clone(),
            token.child_token(),
        ));
    }
    tracker.spawn(probe(
        Arc::clone(&settings),
        Arc::clone(readiness),
        token.child_token(),
    ));
}

fn describe(settings: &EdgeSettings) -> String {
    settings
        .origins
        .iter()
        .map(|o| format!("{}:{}", o.host, o.port))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pulls `name` whenever it is wanted, from the first origin that has it.
async fn stream_task(
    settings: Arc<EdgeSettings>,
    name: String,
    hub: StreamHub,
    demand: Demand,
    token: CancellationToken,
) {
    let mut retry = FIRST_RETRY;
    loop {
        if settings.pull == Pull::OnDemand && !demand.wait_wanted(&name, &token).await {
            return;
        }
        let mut last_error = None;
        for origin in &settings.origins {
            let pulled = tokio::select! {
                () = token.cancelled() => return,
                pulled = pull::run(origin, &settings, &name, &hub, &demand) => pulled,
            };
            match pulled {
                Ok(pull::Ended::Unwanted) => {
                    debug!(stream = %name, "edge pull stopped: no viewer for the idle time");
                    last_error = None;
                    retry = FIRST_RETRY;
                    break;
                }
                Ok(pull::Ended::Shutdown) => return,
                Ok(pull::Ended::StreamEnded) => {
                    info!(stream = %name, origin = %origin.host, "the stream ended on the origin; looking for it on every origin");
                    last_error = None;
                    retry = FIRST_RETRY;
                    break;
                }
                Err(err) => {
                    let at = format!("{}:{}", origin.host, origin.port);
                    if err.is_not_live() {
                        debug!(stream = %name, origin = %at, "not live on this origin");
                    } else {
                        warn!(stream = %name, origin = %at, "edge pull failed: {err}; trying the next origin");
                    }
                    last_error = Some(err);
                }
            }
        }
        if last_error.is_some() {
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(LONGEST_RETRY);
        }
    }
}

/// Marks the node not ready while no origin takes a TCP connection on its
/// RTMP port, and ready again once one does.
async fn probe(settings: Arc<EdgeSettings>, readiness: Arc<Readiness>, token: CancellationToken) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let mut reachable = true;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut any = false;
        for origin in &settings.origins {
            let dial = TcpStream::connect((origin.host.as_str(), origin.port));
            if matches!(tokio::time::timeout(CONNECT_TIMEOUT, dial).await, Ok(Ok(_))) {
                any = true;
                break;
            }
        }
        if any != reachable {
            reachable = any;
            if any {
                info!("an origin answers again; ready for viewers");
                readiness.clear(NO_ORIGIN);
            } else {
                warn!(origins = %describe(&settings), "no origin answers; not ready for new viewers");
            }
        }
        if !any {
            readiness.set(
                NO_ORIGIN,
                format!("no origin reachable (tried {})", describe(&settings)),
            );
        }
    }
}
