//! Tasks that must run as long as the server does (a stream's HLS segmenter,
//! its WebRTC feed): restarted, with a log line, whenever one ends or panics
//! before shutdown.
//!
//! These tasks read the publisher's media, and a codec library panicking on
//! a crafted frame would otherwise leave the stream without HLS or WebRTC
//! until the server restarts. The restart waits a little longer each time in
//! a row ([`Backoff`]), so input that panics the task at once cannot make it
//! spin.
//!
//! For tests, `TINSEL_TEST_TASK_FAILURES=N` makes each supervised task's
//! first N runs panic [`PLANTED_AFTER`] after they start, so a test can watch
//! the restarts (and the counters in `/api/streams`) against the real binary.
//!
//! Inside a task, [`contain`] runs one unit of work (one frame through a
//! codec) so that a panic costs that unit only, and keeps the panic hook's
//! message off stderr: a stream of crafted frames must not flood the log. The
//! caller logs the returned cause, rate-limited.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// The wait before the first restart.
const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between restarts.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A task that ran this long before ending is healthy again: the next
/// restart waits only [`FIRST_DELAY`].
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long a run with a planted failure runs before it panics.
pub const PLANTED_AFTER: Duration = Duration::from_secs(2);

/// The failures planted by `TINSEL_TEST_TASK_FAILURES` (a test hook).
fn planted_failures() -> u32 {
    std::env::var("TINSEL_TEST_TASK_FAILURES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// How often a supervised task was restarted; shared with whoever reports it.
pub type Restarts = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// Runs `start(token)` in a task of its own, and again after it ends or
/// panics, until `token` is cancelled. `what` names it in the log; every
/// restart is counted in `restarts`.
pub fn supervise<F, Fut>(
    tracker: &TaskTracker,
    what: String,
    restarts: Restarts,
    token: CancellationToken,
    start: F,
) where
    F: Fn(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runs = tracker.clone();
    let mut planted = planted_failures();
    tracker.spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            let started = Instant::now();
            let run = start(token.child_token());
            let outcome = if planted > 0 {
                planted -= 1;
                runs.spawn(async move {
                    tokio::select! {
                        () = run => {}
                        () = tokio::time::sleep(PLANTED_AFTER) => {
                            panic!("a failure planted by TINSEL_TEST_TASK_FAILURES");
                        }
                    }
                })
                .await
            } else {
                runs.spawn(run).await
            };
            if token.is_cancelled() {
                return;
            }
            let delay = backoff.next(started.elapsed());
            restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match outcome {
                Err(err) if err.is_panic() => {
                    let cause = panic_message(&err.into_panic());
                    warn!(task = %what, ?delay, %cause, "task panicked; restarting it");
                }
                _ => warn!(task = %what, ?delay, "task ended; restarting it"),
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    });
}

thread_local! {
    /// Whether this thread is inside [`contain`], whose caller reports panics.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    /// Where the last contained panic happened, from the hook.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `work`, and turns a panic inside it into `Err` with its message and
/// place. State that `work` touched may be half-updated after a panic: the
/// caller resets it (the codec is rebuilt, video waits for a keyframe).
///
/// # Errors
/// `work` panicked; the message says what and where.
pub fn contain<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINED.with(Cell::get) {
                let place = info.location().map(ToString::to_string);
                LOCATION.with(|location| *location.borrow_mut() = place);
            } else {
                previous(info);
            }
        }));
    });
    let outer = CONTAINED.with(|contained| contained.replace(true));
    let result = catch_unwind(AssertUnwindSafe(work));
    CONTAINED.with(|contained| contained.set(outer));
    result.map_err(|panic| {
        let message = panic_message(&panic);
        match LOCATION.with(|location| location.borrow_mut().take()) {
            Some(place) => format!("{message} (at {place})"),
            None => message,
        }
    })
}

/// What a panic said, for the log.
pub fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// The wait before each restart: doubling from [`FIRST_DELAY`] up to
/// [`MAX_DELAY`] while the task keeps failing fast, back to the start once it
/// has run for [`HEALTHY_AFTER`].
#[derive(Debug, Default)]
pub struct Backoff {
    /// Restarts in a row of a task that did not stay up.
    failures: u32,
}

impl Backoff {
    /// The wait before restarting a task that ran for `ran`.
    pub fn next(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_AFTER {
            self.failures = 0;
        }
        let delay = FIRST_DELAY
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_DELAY);
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn contain_turns_a_panic_into_its_message() {
        assert_eq!(contain(|| 7), Ok(7));
        let err = contain(|| -> u8 { panic!("crafted frame") }).unwrap_err();
        assert!(
            err.starts_with("crafted frame (at ") && err.contains("supervisor.rs"),
            "{err}"
        );
        let nested = contain(|| contain(|| -> u8 { panic!("inner") }).is_err());
        assert_eq!(nested, Ok(true));
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_a_healthy_run() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(1);
        let waits: Vec<u64> = (0..9)
            .map(|_| backoff.next(quick).as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff.next(HEALTHY_AFTER), FIRST_DELAY);
        assert_eq!(backoff.next(quick), FIRST_DELAY * 2);
    }

    #[tokio::test]
    async fn a_panicking_task_is_restarted_until_shutdown() {
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let restarts = Restarts::default();
        supervise(
            &tracker,
            "test".into(),
            Arc::clone(&restarts),
            token.clone(),
            move |token| {
                let run = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(run >= 2, "the first two runs panic");
                    token.cancelled().await;
                }
            },
        );
        // Two restarts: 0.5 s and 1 s of backoff.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) < 3 {
            assert!(tokio::time::Instant::now() < deadline, "restarted twice");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A task that keeps running is left be.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(restarts.load(Ordering::SeqCst), 2, "two restarts counted");
        token.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("the supervisor and its task end at shutdown");
    }
}
