//! Every stream's live status for the watch pages' event feeds, worked out
//! once per tick by one task and shared: a thousand open pages cost what one
//! does, apart from sending.
//!
//! A stream's status is published (as the JSON of its `stream` event) when it
//! goes live or offline, when its viewer counts change, and every
//! [`FIGURES_EVERY`] for fps and bitrate, which change all the time. A page
//! waits on a `watch` channel and wakes only for those.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tinsel_frontend::api::Viewers;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::streams::stream_status;
use crate::state::AppState;

/// How often the streams' state is looked at; changes reach the pages this fast.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// fps and bitrate go out this often, not on every change.
const FIGURES_EVERY: Duration = Duration::from_secs(2);

/// The JSON of a stream's latest status; `None` until the first tick.
pub type StatusJson = Option<Arc<str>>;

/// Cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    streams: Arc<HashMap<String, watch::Receiver<StatusJson>>>,
}

impl StatusBoard {
    /// Starts the task that keeps the board, until `token` is cancelled.
    pub fn start(state: &AppState, tracker: &TaskTracker, token: CancellationToken) -> Self {
        let mut senders = Vec::new();
        let mut streams = HashMap::new();
        for stream in &state.config.streams {
            let (tx, rx) = watch::channel(None);
            senders.push((stream.name.clone(), tx, None));
            streams.insert(stream.name.clone(), rx);
        }
        let state = state.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = Instant::now();
                for (name, tx, sent) in &mut senders {
                    publish(&state, name, tx, sent, now);
                }
            }
        });
        Self {
            streams: Arc::new(streams),
        }
    }

    /// The status of `name`, marked changed so the first wait returns at
    /// once; `None` for a stream that does not exist.
    pub fn subscribe(&self, name: &str) -> Option<watch::Receiver<StatusJson>> {
        let mut rx = self.streams.get(name)?.clone();
        rx.mark_changed();
        Some(rx)
    }
}

/// What a stream's last published status said, and when it went out.
type Sent = Option<(bool, Viewers, Instant)>;

fn publish(
    state: &AppState,
    name: &str,
    tx: &watch::Sender<StatusJson>,
    sent: &mut Sent,
    now: Instant,
) {
    let Some(status) = stream_status(state, name, now) else {
        return;
    };
    if !is_due(sent.as_ref(), status.live, &status.viewers, now) {
        return;
    }
    let Ok(json) = serde_json::to_string(&status) else {
        return;
    };
    *sent = Some((status.live, status.viewers, now));
    tx.send_replace(Some(json.into()));
}

fn is_due(
    sent: Option<&(bool, Viewers, Instant)>,
    live: bool,
    viewers: &Viewers,
    now: Instant,
) -> bool {
    match sent {
        None => true,
        Some((was_live, were, at)) => {
            *was_live != live || were != viewers || now.duration_since(*at) >= FIGURES_EVERY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_goes_out_at_once_and_figures_every_two_seconds() {
        let t0 = Instant::now();
        let none = Viewers::default();
        assert!(is_due(None, false, &none, t0), "the first status");
        let sent = (false, none.clone(), t0);
        let later = t0 + Duration::from_millis(250);
        assert!(!is_due(Some(&sent), false, &none, later), "nothing new");
        assert!(is_due(Some(&sent), true, &none, later), "went live");
        let one = Viewers {
            hls: 1,
            ..Viewers::default()
        };
        assert!(is_due(Some(&sent), false, &one, later), "a viewer came");
        assert!(
            is_due(Some(&sent), false, &none, t0 + FIGURES_EVERY),
            "figures are due"
        );
    }
}
