//! Pushing a stream to other RTMP servers (YouTube, a CDN, another Tinsel),
//! as nginx-rtmp's `push` did.
//!
//! One task per target. It waits for the publisher, connects and publishes,
//! forwards the stream as it is (no transcoding), and when the target drops it
//! reconnects with a growing delay; when the publisher leaves it ends the
//! publish, and starts a fresh one when the publisher is back.
//!
//! - [`target`]: the target's URL, with the key kept secret.

pub mod target;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::media::StreamHub;
use crate::media::hub::Join;
use crate::rtmp::client::{ClientError, RtmpClient};
use rml_rtmp::sessions::ClientSessionEvent;
pub use target::{PushTarget, TargetError};

/// Connecting and being accepted may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The publisher may be gone this long (a reconnecting OBS) before the push ends.
const OFFLINE_GRACE: Duration = Duration::from_secs(3);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the retry delay.
const STABLE: Duration = Duration::from_secs(30);

/// A push target from the config: where, and which stream.
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub target: PushTarget,
    pub stream: String,
}

/// What the admin panel shows of one target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PushStatus {
    /// The URL with the key hidden.
    pub target: String,
    pub stream: String,
    /// `waiting` (for the publisher), `connecting`, `live` or `retrying`.
    pub state: &'static str,
    pub connected: bool,
    pub bytes_sent: u64,
    pub last_error: Option<String>,
}

struct Shared {
    status: Mutex<PushStatus>,
    bytes_sent: Arc<AtomicU64>,
}

impl Shared {
    fn set(&self, state: &'static str, error: Option<String>) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.state = state;
        status.connected = state == "live";
        if error.is_some() {
            status.last_error = error;
        }
    }
}

/// Every push target's status. Cheap to clone.
#[derive(Clone, Default)]
pub struct Pushes {
    targets: Arc<Vec<Arc<Shared>>>,
}

impl Pushes {
    /// Starts one task per target on `tracker`.
    pub fn start(
        configs: &[PushConfig],
        hub: &StreamHub,
        tracker: &TaskTracker,
        token: &CancellationToken,
    ) -> Self {
        let mut targets = Vec::new();
        for config in configs {
            let shared = Arc::new(Shared {
                status: Mutex::new(PushStatus {
                    target: config.target.to_string(),
                    stream: config.stream.clone(),
                    state: "waiting",
                    connected: false,
                    bytes_sent: 0,
                    last_error: None,
                }),
                bytes_sent: Arc::default(),
            });
            tracker.spawn(run(
                config.clone(),
                hub.clone(),
                Arc::clone(&shared),
                token.child_token(),
            ));
            targets.push(shared);
        }
        Self {
            targets: Arc::new(targets),
        }
    }

    pub fn statuses(&self) -> Vec<PushStatus> {
        self.targets
            .iter()
            .map(|shared| {
                let mut status = shared
                    .status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                status.bytes_sent = shared.bytes_sent.load(Ordering::Relaxed);
                status
            })
            .collect()
    }
}

/// How a publishing connection ended without an error.
enum Ended {
    PublisherLeft,
    Shutdown,
}

async fn run(config: PushConfig, hub: StreamHub, shared: Arc<Shared>, token: CancellationToken) {
    let PushConfig { target, stream } = config;
    let mut retry = FIRST_RETRY;
    loop {
        shared.set("waiting", None);
        if !wait_live(&hub, &stream, &token).await {
            return;
        }
        shared.set("connecting", None);
        let opened = tokio::select! {
            () = token.cancelled() => return,
            opened = tokio::time::timeout(
                CONNECT_TIMEOUT,
                open(&target, Arc::clone(&shared.bytes_sent)),
            ) => opened,
        };
        let failure = match opened {
            Ok(Ok(relay)) => {
                info!(%target, stream, "pushing");
                shared.set("live", None);
                let started = Instant::now();
                let result = forward(relay, &hub, &stream, &token).await;
                if started.elapsed() >= STABLE {
                    retry = FIRST_RETRY;
                }
                match result {
                    Ok(Ended::Shutdown) => return,
                    Ok(Ended::PublisherLeft) => {
                        info!(%target, stream, "push ended: the publisher left");
                        retry = FIRST_RETRY;
                        continue;
                    }
                    Err(err) => err.to_string(),
                }
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
        };
        warn!(%target, stream, error = %failure, retry_in = ?retry, "push failed; retrying");
        shared.set("retrying", Some(failure));
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(LONGEST_RETRY);
    }
}

/// Connects and asks to publish; returns once the target accepted.
async fn open(target: &PushTarget, bytes_sent: Arc<AtomicU64>) -> Result<RtmpClient, ClientError> {
    let mut client = RtmpClient::connect(&target.endpoint(), bytes_sent).await?;
    client.publish(target.key.expose()).await?;
    Ok(client)
}

/// Waits until `stream` has a publisher; false on shutdown.
async fn wait_live(hub: &StreamHub, stream: &str, token: &CancellationToken) -> bool {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = token.cancelled() => return false,
            _ = tick.tick() => {
                if hub.snapshot(stream, Instant::now()).is_ok_and(|s| s.live) {
                    return true;
                }
            }
        }
    }
}

/// Sends the stream until the publisher leaves, the target fails or the
/// server shuts down.
async fn forward(
    mut relay: RtmpClient,
    hub: &StreamHub,
    stream: &str,
    token: &CancellationToken,
) -> Result<Ended, ClientError> {
    // The cached GOP with its own timing first: the target starts on a keyframe.
    let Ok(mut subscription) = hub.subscribe_internal(stream, Join::AsIs) else {
        return Ok(Ended::Shutdown);
    };
    if let Some(metadata) = subscription.metadata() {
        relay.send_metadata(&metadata).await?;
    }
    // Timestamps start at 0 on every connection, as a fresh OBS would send them.
    let mut base = None;
    let mut offline_since = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = token.cancelled() => {
                relay.close().await;
                return Ok(Ended::Shutdown);
            }
            frame = subscription.recv() => {
                let Some(frame) = frame else {
                    relay.close().await;
                    return Ok(Ended::Shutdown);
                };
                let base = *base.get_or_insert(frame.dts);
                let timestamp = frame.dts.saturating_sub(base) as u32;
                relay.send(&frame, timestamp).await?;
            }
            read = relay.readable() => {
                read?;
                for event in relay.handle_input().await? {
                    if let ClientSessionEvent::UnhandleableOnStatusCode { code } = event
                        && (code.contains("UnpublishNotify") || code.contains("Publish.BadName"))
                    {
                        return Err(ClientError::Refused(code));
                    }
                }
            }
            _ = tick.tick() => {
                let live = hub.snapshot(stream, Instant::now()).is_ok_and(|s| s.live);
                if live {
                    offline_since = None;
                } else if offline_since.get_or_insert_with(Instant::now).elapsed() >= OFFLINE_GRACE {
                    relay.close().await;
                    return Ok(Ended::PublisherLeft);
                }
            }
        }
    }
}
