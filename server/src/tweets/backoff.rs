//! How long to wait after a failed poll: doubling from the poll interval up
//! to a ceiling, back to the interval after a success; and how long until an
//! announced rate-limit reset, never past the ceiling. Pure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// The wait after one more failure.
    pub fn failed(&mut self) -> Duration {
        let factor = 1u32 << self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        self.base.saturating_mul(factor).min(self.max)
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// How long from `now` until `reset_unix_s` (the `x-rate-limit-reset`
/// header: Unix seconds), at least a second and at most `max`. The header
/// comes from the network: any value, even one past the end of time, gives a
/// wait within those bounds.
pub fn until_reset(reset_unix_s: u64, now: SystemTime, max: Duration) -> Duration {
    let wait = UNIX_EPOCH
        .checked_add(Duration::from_secs(reset_unix_s))
        .map_or(max, |reset| {
            reset.duration_since(now).unwrap_or(Duration::ZERO)
        });
    wait.clamp(Duration::from_secs(1), max.max(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_of_any_value_gives_a_wait_within_bounds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_201_000);
        let max = Duration::from_secs(900);
        assert_eq!(
            until_reset(1_764_201_060, now, max),
            Duration::from_secs(60)
        );
        assert_eq!(until_reset(1_764_200_000, now, max), Duration::from_secs(1));
        assert_eq!(until_reset(0, now, max), Duration::from_secs(1));
        for far in [99_999_999_999_999, u64::MAX / 2, u64::MAX] {
            assert_eq!(until_reset(far, now, max), max, "reset {far}");
        }
    }

    #[test]
    fn doubles_to_the_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(15), Duration::from_secs(100));
        let waits: Vec<u64> = (0..5).map(|_| b.failed().as_secs()).collect();
        assert_eq!(waits, [15, 30, 60, 100, 100]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_secs(15));
        for _ in 0..100 {
            b.failed();
        }
        assert_eq!(b.failed(), Duration::from_secs(100));
    }
}
