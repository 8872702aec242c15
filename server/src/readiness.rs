//! Whether this node should get new viewers: what `/readyz` answers and
//! load balancers act on. A node that is draining (SIGTERM) is not, even
//! while it keeps serving the viewers it has.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Readiness {
    /// Why not, if not.
    not_ready: Mutex<Option<String>>,
}

impl Readiness {
    /// `None` when ready; else the reason, for people.
    pub fn reason(&self) -> Option<String> {
        self.lock().clone()
    }

    pub fn is_ready(&self) -> bool {
        self.lock().is_none()
    }

    /// Not ready from now on, for `reason`.
    pub fn refuse(&self, reason: impl Into<String>) {
        *self.lock() = Some(reason.into());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic elsewhere cannot leave an Option half-written.
        self.not_ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
