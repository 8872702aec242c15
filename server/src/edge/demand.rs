//! Who wants a stream on this edge, so an on-demand edge pulls it only while
//! someone watches: viewers attached (RTMP players, WebRTC sessions), watch
//! pages open (their event feed holds the stream), and a viewer that just
//! asked (a WHEP offer, which needs the stream live to be answered).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Viewers of a stream attached now, however they watch.
pub type ViewerCount = Arc<dyn Fn(&str) -> usize + Send + Sync>;

/// Cheap to clone; every clone sees the same demand.
#[derive(Clone)]
pub struct Demand {
    inner: Arc<Inner>,
}

struct Inner {
    streams: Mutex<HashMap<String, Wanted>>,
    viewers: ViewerCount,
    /// Wakes the pulls waiting for demand.
    changed: Notify,
    idle: Duration,
}

#[derive(Default)]
struct Wanted {
    holds: usize,
    asked: Option<Instant>,
}

impl Demand {
    /// `viewers` counts the viewers attached to a stream; a stream nobody
    /// wants for `idle` is no longer wanted.
    pub fn new(viewers: ViewerCount, idle: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                streams: Mutex::default(),
                viewers,
                changed: Notify::new(),
                idle,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Wanted>> {
        self.inner
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A viewer asked for `name` just now.
    pub fn ask(&self, name: &str) {
        self.lock().entry(name.to_string()).or_default().asked = Some(Instant::now());
        self.inner.changed.notify_waiters();
    }

    /// Wants `name` until the returned hold is dropped.
    pub fn hold(&self, name: &str) -> Hold {
        self.lock().entry(name.to_string()).or_default().holds += 1;
        self.inner.changed.notify_waiters();
        Hold {
            demand: self.clone(),
            name: name.to_string(),
        }
    }

    /// Whether someone wants `name` now: a viewer attached, a hold, or an
    /// ask within the idle time.
    pub fn wanted(&self, name: &str) -> bool {
        if (self.inner.viewers)(name) > 0 {
            return true;
        }
        self.lock().get(name).is_some_and(|w| {
            w.holds > 0 || w.asked.is_some_and(|at| at.elapsed() < self.inner.idle)
        })
    }

    /// How long nobody may want a stream before its pull stops.
    pub fn idle(&self) -> Duration {
        self.inner.idle
    }

    /// Waits until `name` is wanted; false when `token` is cancelled first.
    pub async fn wait_wanted(&self, name: &str, token: &CancellationToken) -> bool {
        loop {
            let changed = self.inner.changed.notified();
            if self.wanted(name) {
                return true;
            }
            // Viewers attaching are seen by polling: the hub and the WHEP
            // sessions do not call here.
            tokio::select! {
                () = token.cancelled() => return false,
                () = changed => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

/// See [`Demand::hold`].
pub struct Hold {
    demand: Demand,
    name: String,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut streams = self.demand.lock();
        if let Some(wanted) = streams.get_mut(&self.name) {
            wanted.holds = wanted.holds.saturating_sub(1);
            // The idle time runs from the last watch page closing.
            wanted.asked = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn wanted_while_held_or_watched_and_for_the_idle_time_after_an_ask() {
        let viewers = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&viewers);
        let demand = Demand::new(
            Arc::new(move |_: &str| count.load(Ordering::Relaxed)),
            Duration::from_millis(200),
        );
        assert!(!demand.wanted("tree"));
        viewers.store(1, Ordering::Relaxed);
        assert!(demand.wanted("tree"));
        viewers.store(0, Ordering::Relaxed);
        let hold = demand.hold("tree");
        assert!(demand.wanted("tree"));
        assert!(!demand.wanted("other"));
        drop(hold);
        // Still wanted for the idle time after the last page closed.
        assert!(demand.wanted("tree"));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!demand.wanted("tree"));
        demand.ask("tree");
        assert!(demand.wanted("tree"));
    }
}
