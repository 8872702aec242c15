//! Coalescing: however fast tweets arrive, the outlets get at most one tweet
//! command per `spacing`, chosen so tweet commands alone never reach the
//! relay guard. Tweets in between are counted, not queued. Pure: time comes
//! in as `Instant`s.

use std::time::{Duration, Instant};

use crate::control::Action;
use crate::control::guard::GuardSettings;

#[derive(Debug, Clone)]
pub struct Flood {
    spacing: Duration,
    last: Option<Instant>,
    pub fired: u64,
    pub coalesced: u64,
}

impl Flood {
    /// A flash switches twice (on and back), the other actions at most once;
    /// the guard allows `max_switches` per `window`.
    pub fn new(action: Action, guard: GuardSettings) -> Self {
        let per_command = if matches!(action, Action::Flash { .. }) {
            2
        } else {
            1
        };
        let spacing = guard.window.saturating_mul(per_command) / guard.max_switches.max(1);
        Self {
            spacing,
            last: None,
            fired: 0,
            coalesced: 0,
        }
    }

    pub fn spacing(&self) -> Duration {
        self.spacing
    }

    /// Whether a tweet arriving at `now` fires; counted either way.
    pub fn offer(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.spacing);
        if due {
            self.last = Some(now);
            self.fired += 1;
        } else {
            self.coalesced += 1;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_switches: u32, window_s: u64) -> GuardSettings {
        GuardSettings {
            max_switches,
            window: Duration::from_secs(window_s),
        }
    }

    #[test]
    fn flashes_stay_within_the_guard_however_many_tweets_arrive() {
        let mut flood = Flood::new(Action::Flash { seconds: 5 }, guard(10, 60));
        assert_eq!(flood.spacing(), Duration::from_secs(12));
        let start = Instant::now();
        // 1,000 tweets a second for two minutes.
        let fired: Vec<u64> = (0..120_000u64)
            .filter(|ms| flood.offer(start + Duration::from_millis(*ms)))
            .collect();
        assert_eq!(
            fired,
            [
                0, 12_000, 24_000, 36_000, 48_000, 60_000, 72_000, 84_000, 96_000, 108_000
            ]
        );
        assert_eq!(flood.fired, 10);
        assert_eq!(flood.coalesced, 120_000 - 10);
        // Any 60 s window holds at most 5 flashes = 10 switches.
        for w in fired.windows(6) {
            assert!(w[5] - w[0] >= 60_000, "{w:?}");
        }
    }

    #[test]
    fn single_switch_actions_may_come_twice_as_often() {
        let flood = Flood::new(Action::Toggle, guard(10, 60));
        assert_eq!(flood.spacing(), Duration::from_secs(6));
    }
}
