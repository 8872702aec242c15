//! The mark a stream leaves in the data dir when a publisher first goes live
//! on it (`DATA_DIR/NAME.published`): from then on its key is no longer shown
//! at start. A file beside the key file, not a database row, so the key and
//! its mark live and go together (a deleted key file makes a new key, which
//! forgets the mark).

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::media::StreamHub;
use crate::media::hub::Join;

fn path(data_dir: &Path, stream: &str) -> PathBuf {
    data_dir.join(format!("{stream}.published"))
}

/// Whether a publisher has gone live on `stream` with its current key.
pub fn is_published(data_dir: &Path, stream: &str) -> bool {
    path(data_dir, stream).exists()
}

/// Records the first publish of `stream`.
///
/// # Errors
/// The data dir cannot be written.
pub fn mark(data_dir: &Path, stream: &str) -> std::io::Result<()> {
    std::fs::write(
        path(data_dir, stream),
        "a publisher has gone live with this stream's key\n",
    )
}

/// Forgets the first publish of `stream`, for a key made anew.
///
/// # Errors
/// The mark exists and cannot be removed.
pub fn forget(data_dir: &Path, stream: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path(data_dir, stream)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Waits for the first frame a publisher sends on `stream`, marks the
/// stream published and ends; or ends when `token` is cancelled. A frame,
/// not the publish command: a publish that is refused or sends nothing has
/// not shown that the settings work.
pub async fn watch(hub: StreamHub, data_dir: PathBuf, stream: String, token: CancellationToken) {
    let Ok(mut subscription) = hub.subscribe_internal(&stream, Join::AsIs) else {
        return;
    };
    tokio::select! {
        () = token.cancelled() => return,
        frame = subscription.recv() => if frame.is_none() { return },
    }
    drop(subscription);
    let (dir, name) = (data_dir.clone(), stream.clone());
    match tokio::task::spawn_blocking(move || mark(&dir, &name)).await {
        Ok(Ok(())) => info!(
            stream = %stream,
            "first publish: the stream key is no longer shown at start (tinsel key show prints it)"
        ),
        Ok(Err(err)) => warn!(
            stream = %stream,
            "cannot mark the first publish in {}: {err}; the key is shown at start until it can",
            data_dir.display()
        ),
        Err(err) => warn!(stream = %stream, "marking the first publish failed: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_and_forget() {
        let dir = std::env::temp_dir().join(format!("tinsel-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_published(&dir, "tree"));
        forget(&dir, "tree").unwrap();
        mark(&dir, "tree").unwrap();
        assert!(is_published(&dir, "tree"));
        assert!(!is_published(&dir, "other"));
        forget(&dir, "tree").unwrap();
        assert!(!is_published(&dir, "tree"));
    }
}
