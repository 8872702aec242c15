//! Whether this node should get new viewers: what `/readyz` answers and
//! load balancers act on. A node that is draining (SIGTERM), or an edge that
//! reaches no origin, is not, while it keeps serving the viewers it has.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The conditions that hold the node back, each with its reason.
#[derive(Debug, Default)]
pub struct Readiness {
    not_ready: Mutex<BTreeMap<&'static str, String>>,
}

impl Readiness {
    /// `None` when ready; else every reason, for people.
    pub fn reason(&self) -> Option<String> {
        let conditions = self.lock();
        (!conditions.is_empty())
            .then(|| conditions.values().cloned().collect::<Vec<_>>().join("; "))
    }

    pub fn is_ready(&self) -> bool {
        self.lock().is_empty()
    }

    /// Not ready while `condition` holds, for `reason`.
    pub fn set(&self, condition: &'static str, reason: impl Into<String>) {
        self.lock().insert(condition, reason.into());
    }

    pub fn clear(&self, condition: &'static str) {
        self.lock().remove(condition);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        // A panic elsewhere cannot leave the map half-written.
        self.not_ready
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_until_a_condition_holds_and_again_when_all_cleared() {
        let readiness = Readiness::default();
        assert_eq!(readiness.reason(), None);
        readiness.set("draining", "draining: shutting down in 30 s");
        readiness.set("origin", "no origin reachable");
        assert!(!readiness.is_ready());
        assert_eq!(
            readiness.reason().unwrap(),
            "draining: shutting down in 30 s; no origin reachable"
        );
        readiness.clear("origin");
        readiness.clear("draining");
        assert!(readiness.is_ready());
    }
}
