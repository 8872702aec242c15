//! The RTMP accept loop: a connection limit, a task per connection, and a
//! graceful stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

use super::connection;
use crate::config::Config;
use crate::media::StreamHub;

/// Accepts RTMP connections until `token` is cancelled. Each connection runs in
/// a task of `tracker` with a child token, so shutdown reaches all of them.
pub async fn run(
    listener: TcpListener,
    config: Arc<Config>,
    hub: StreamHub,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(config.rtmp_max_connections));
    let mut backoff = Duration::from_millis(10);
    loop {
        // Wait for a free slot first, so a full server stops accepting rather
        // than accepting and dropping.
        let permit = tokio::select! {
            () = token.cancelled() => return,
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                backoff = Duration::from_millis(10);
                let (config, hub, token) = (Arc::clone(&config), hub.clone(), token.child_token());
                tracker.spawn(async move {
                    connection::serve(socket, peer, config, hub, token).await;
                    drop(permit);
                });
            }
            Err(err) => {
                // Out of file descriptors and the like: wait, then try again
                // (as mini-redis does), instead of spinning.
                if backoff >= Duration::from_secs(2) {
                    error!(cause = %err, "RTMP accept keeps failing");
                } else {
                    warn!(cause = %err, "RTMP accept failed; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}
