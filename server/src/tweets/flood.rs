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
    /// A flash switches twice per blink (away and back), the other actions
    /// at most once; the guard allows `max_switches` per `window`, so that
    /// many commands' switches fit in it. A flash's switches spread over its
    /// span, so any window touches the commands that start within its
    /// length plus that span: those are spread out to fit. And each flash is
    /// seen on its own: the next starts once this one has ended and the tree
    /// has shown its own state for as long.
    pub fn new(action: Action, guard: GuardSettings) -> Self {
        let fit = (guard.max_switches / action.switches()).max(1);
        let spacing = ((guard.window + action.span()) / fit).max(action.cycle());
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
        for action in [
            Action::flash(5),
            Action::flash(1),
            Action::Flash {
                seconds: 2,
                blinks: 3,
            },
        ] {
            let mut flood = Flood::new(action, guard(10, 60));
            let start = Instant::now();
            // 1,000 tweets a second for five minutes.
            let fired: Vec<Instant> = (0..300_000u64)
                .map(|ms| start + Duration::from_millis(ms))
                .filter(|at| flood.offer(*at))
                .collect();
            assert_eq!(flood.fired as usize, fired.len());
            assert_eq!(flood.coalesced, 300_000 - flood.fired);
            // Every switch of every flash: away at the start, then one per
            // `seconds`, the last one back.
            let Action::Flash { seconds, blinks } = action else {
                unreachable!()
            };
            let switches: Vec<Instant> = fired
                .iter()
                .flat_map(|at| {
                    (0..2 * blinks).map(move |k| *at + Duration::from_secs(u64::from(k * seconds)))
                })
                .collect();
            // What the relay guard sees: no 60 s window holds more than 10.
            for first in &switches {
                let in_window = switches
                    .iter()
                    .filter(|at| {
                        **at >= *first && at.duration_since(*first) < Duration::from_secs(60)
                    })
                    .count();
                assert!(in_window <= 10, "{action}: {in_window} switches in 60 s");
            }
            assert!(
                flood.fired >= 5,
                "{action}: only {} flashes in 5 min",
                flood.fired
            );
            // Each flash ends, and the tree shows its state, before the next.
            for pair in fired.windows(2) {
                assert!(
                    pair[1] - pair[0] >= action.cycle(),
                    "{action}: flashes overlap"
                );
            }
        }
    }

    #[test]
    fn a_loose_guard_still_shows_each_flash_on_its_own() {
        let flood = Flood::new(Action::flash(3), guard(100_000, 1));
        assert_eq!(flood.spacing(), Duration::from_secs(6));
    }

    #[test]
    fn single_switch_actions_may_come_twice_as_often() {
        let flood = Flood::new(Action::Toggle, guard(10, 60));
        assert_eq!(flood.spacing(), Duration::from_secs(6));
    }
}
