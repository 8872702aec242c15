//! The task that feeds one stream's segmenter from the hub.
//!
//! Each frame is the publisher's and goes through parsers (the SPS among
//! them) inside [`contain`]: a panic costs that frame, logged at most once a
//! second. The task itself is supervised (see [`crate::supervisor`]).

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::store::HlsStream;
use crate::limits::refused;
use crate::media::StreamHub;
use crate::media::hub::Join;
use crate::supervisor::contain;

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
                let handled = contain(|| {
                    stream.update(|segmenter| segmenter.handle_frame(frame, SystemTime::now()));
                });
                if let Err(cause) = handled {
                    refused(
                        format_args!("the publisher of {name}"),
                        "hls_frame_panicked",
                        format_args!("a frame crashed the HLS segmenter ({cause}); it was dropped"),
                    );
                }
            }
        }
    }
    debug!(stream = %name, "HLS segmenter stopped");
}
