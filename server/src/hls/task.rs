//! The task that feeds one stream's segmenter from the hub.

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::store::HlsStream;
use crate::media::StreamHub;
use crate::media::hub::Join;

/// Segments `name` until `token` is cancelled. The cached GOP comes first with
/// its own timestamps, so the first segment starts at once and plays true.
pub async fn run(hub: StreamHub, name: String, stream: Arc<HlsStream>, token: CancellationToken) {
    let Ok(mut subscription) = hub.subscribe_internal(&name, Join::AsIs) else {
        return;
    };
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            frame = subscription.recv() => {
                let Some(frame) = frame else { break };
                stream.update(|segmenter| segmenter.handle_frame(frame, SystemTime::now()));
            }
        }
    }
    debug!(stream = %name, "HLS segmenter stopped");
}
