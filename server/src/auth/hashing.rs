//! Password checks at once, and the logins waiting for one.
//!
//! An argon2 check takes 19 MiB and tens of milliseconds of a core, on the
//! blocking pool that DNS lookups and file reads share. Unbounded, a login
//! flood is a memory and CPU lever, and starves everything else on the pool.
//! So at most `login_max_concurrent_hashes` run; up to
//! `login_max_waiting_hashes` more wait their turn; beyond that a login is
//! refused at once ([`AccountError::Busy`]) instead of queueing for minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::accounts::AccountError;
use super::limits::AuthLimits;

/// The gate every password check goes through. Cheap to clone.
#[derive(Clone)]
pub struct Hashing {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// The right to run one password check.
pub struct HashPermit {
    /// Given back when dropped.
    _permit: OwnedSemaphorePermit,
}

impl Hashing {
    pub fn new(limits: &AuthLimits) -> Self {
        return_big_blocks_to_the_system();
        Self {
            permits: Arc::new(Semaphore::new(limits.login_max_concurrent_hashes)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: limits.login_max_waiting_hashes,
        }
    }

    /// A turn to check a password: at once if one is free, after a wait if
    /// the queue has room.
    ///
    /// # Errors
    /// [`AccountError::Busy`] when the queue is full.
    pub async fn acquire(&self) -> Result<HashPermit, AccountError> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(HashPermit { _permit: permit });
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        // Counted down however the wait ends, also when the client goes away.
        let _queued = Queued(&self.waiting);
        if queued >= self.max_waiting {
            return Err(AccountError::Busy);
        }
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            // The semaphore is never closed.
            .map_err(|_| AccountError::Busy)?;
        Ok(HashPermit { _permit: permit })
    }
}

impl HashPermit {
    /// Runs `work` on the blocking pool, holding the turn until it is done,
    /// even if the request that asked for it is gone by then.
    ///
    /// # Errors
    /// The blocking task panicked.
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        tokio::task::spawn_blocking(move || {
            let _turn = self;
            work()
        })
        .await
        .map_err(|err| AccountError::Hash(err.to_string()))
    }
}

/// Makes glibc's malloc serve large blocks (argon2's 19 MiB) from `mmap`, so
/// they go back to the system when freed.
///
/// By default glibc raises its mmap threshold to the size of any mmapped block
/// freed, so after the first check every 19 MiB block comes from a thread's
/// heap instead and stays resident there: a login flood of 2,000 guesses (two
/// checks at a time) left the process at 640 MiB, for good. A fixed
/// threshold turns that adjustment off. Process-wide, and harmless for
/// everything else: blocks over 128 KiB were mmapped from the start anyway.
fn return_big_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator settings; any value is safe.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            }
        });
    }
}

struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashing(running: usize, waiting: usize) -> Hashing {
        Hashing::new(&AuthLimits {
            login_max_concurrent_hashes: running,
            login_max_waiting_hashes: waiting,
            ..AuthLimits::default()
        })
    }

    #[tokio::test]
    async fn beyond_the_running_and_waiting_checks_a_login_is_refused_at_once() {
        let gate = hashing(1, 1);
        let first = gate.acquire().await.unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.acquire().await.map(|_| ()) })
        };
        // Wait (with a deadline) until the second one is queued.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while gate.waiting.load(Ordering::Acquire) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never queued");
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.acquire().await, Err(AccountError::Busy)));
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
        assert!(gate.acquire().await.is_ok());
    }

    #[tokio::test]
    async fn a_turn_is_held_until_the_work_is_done() {
        let gate = hashing(1, 0);
        let permit = gate.acquire().await.unwrap();
        let answer = permit.run(|| 6 * 7).await.unwrap();
        assert_eq!(answer, 42);
        assert!(gate.acquire().await.is_ok(), "the turn was given back");
    }
}
