//! The relay guard: how often one outlet may switch.
//!
//! A PDU's relays wear with every switch, and a busy tweet feed could switch
//! the tree many times a minute. An outlet may switch at most
//! `max_switches` times in any `window`; a command that would go over is
//! refused with the time to wait. Only real switches count: "on" for an
//! outlet that is on switches nothing.
//!
//! A flash needs two switches, on and back. Both are checked when the flash
//! starts, and the return is only recorded, never refused, so a flash never
//! leaves the tree stuck on.
//!
//! Pure logic: time comes in as `Instant`s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardSettings {
    pub max_switches: u32,
    pub window: Duration,
}

/// A refusal: the outlet has switched `switches` times within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub switches: u32,
    /// When enough old switches have left the window.
    pub retry_after: Duration,
}

/// The switches of one outlet within the window.
#[derive(Debug, Clone)]
pub struct RelayGuard {
    settings: GuardSettings,
    switches: VecDeque<Instant>,
}

impl RelayGuard {
    pub fn new(settings: GuardSettings) -> Self {
        Self {
            settings,
            switches: VecDeque::new(),
        }
    }

    /// Whether `needed` more switches may happen at `now`.
    ///
    /// # Errors
    /// The refusal, with how long to wait.
    pub fn check(&mut self, now: Instant, needed: u32) -> Result<(), Refusal> {
        self.forget_before(now);
        let max = self.settings.max_switches as usize;
        let needed = needed as usize;
        let count = self.switches.len();
        if count + needed <= max {
            return Ok(());
        }
        // The oldest switches must leave the window until `needed` fit.
        let must_leave = count + needed - max;
        // The window is bounded in the config; the checked add keeps a guard
        // built by hand from panicking all the same.
        let retry_after = match self.switches.get(must_leave - 1) {
            Some(at) => at
                .checked_add(self.settings.window)
                .map_or(self.settings.window, |end| {
                    end.saturating_duration_since(now)
                }),
            None => self.settings.window,
        };
        Err(Refusal {
            switches: count as u32,
            retry_after,
        })
    }

    /// Notes a switch that happened at `now`.
    pub fn record(&mut self, now: Instant) {
        self.forget_before(now);
        self.switches.push_back(now);
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(at) = self.switches.front() {
            if now.saturating_duration_since(*at) >= self.settings.window {
                self.switches.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_switches: u32, window_s: u64) -> RelayGuard {
        RelayGuard::new(GuardSettings {
            max_switches,
            window: Duration::from_secs(window_s),
        })
    }

    #[test]
    fn allows_up_to_the_limit_then_says_how_long_to_wait() {
        let start = Instant::now();
        let mut g = guard(3, 60);
        for s in 0..3 {
            let at = start + Duration::from_secs(s * 10);
            g.check(at, 1).unwrap();
            g.record(at);
        }
        let at = start + Duration::from_secs(25);
        assert_eq!(
            g.check(at, 1),
            Err(Refusal {
                switches: 3,
                retry_after: Duration::from_secs(35),
            })
        );
        // The first switch leaves the window at 60 s.
        assert!(g.check(start + Duration::from_secs(59), 1).is_err());
        assert!(g.check(start + Duration::from_secs(60), 1).is_ok());
    }

    #[test]
    fn a_flash_needs_room_for_both_switches() {
        let start = Instant::now();
        let mut g = guard(3, 60);
        g.record(start);
        g.record(start + Duration::from_secs(1));
        // One switch fits, two do not: the flash must wait for the first to expire.
        assert!(g.check(start + Duration::from_secs(2), 1).is_ok());
        assert_eq!(
            g.check(start + Duration::from_secs(2), 2),
            Err(Refusal {
                switches: 2,
                retry_after: Duration::from_secs(58),
            })
        );
    }

    #[test]
    fn a_window_past_the_end_of_time_refuses_without_panicking() {
        let start = Instant::now();
        let mut g = RelayGuard::new(GuardSettings {
            max_switches: 2,
            window: Duration::MAX,
        });
        g.record(start);
        g.record(start);
        assert_eq!(g.check(start, 1).unwrap_err().retry_after, Duration::MAX);
    }

    #[test]
    fn recording_past_the_limit_is_allowed_and_counted() {
        let start = Instant::now();
        let mut g = guard(2, 10);
        g.record(start);
        g.record(start);
        // The return of a flash is recorded even when it goes over.
        g.record(start + Duration::from_secs(1));
        let refusal = g.check(start + Duration::from_secs(2), 1).unwrap_err();
        assert_eq!(refusal.switches, 3);
        assert_eq!(refusal.retry_after, Duration::from_secs(8));
    }
}
