//! How one viewer's keyframe requests (PLI, FIR) are answered, at a bounded
//! cost.
//!
//! The publisher cannot be asked for a keyframe (RTMP has no way back), so
//! the only quick answer is to send the current GOP again, from its keyframe.
//! That costs as much as the GOP has grown: with ffmpeg's default 250-frame
//! GOP a request replays four seconds of video on average, and a viewer whose
//! player asks every few seconds (a lossy phone, a load generator's periodic
//! PLI) would nearly double its own traffic, the server's encryption and
//! sends with it.
//!
//! So each viewer earns replay bytes as a share of the live bytes it is sent
//! (a token bucket, `whep_keyframe_replay_percent`), holding at most two
//! GOPs' worth. A request the budget covers is answered at once; one it does
//! not is answered by the stream's next keyframe, which every viewer gets
//! anyway; further requests until then change nothing. A viewer's extra
//! traffic from requests stays within that share, however often it asks.

/// What to do about a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Send the current GOP again now.
    Replay,
    /// Over budget: the next keyframe of the stream answers it.
    NextKeyframe,
    /// Already waiting for the next keyframe: nothing more to do.
    Waiting,
}

/// Replays a viewer's budget holds at most, in GOPs of the size asked for.
const BURST_GOPS: f64 = 2.0;

/// One viewer's replay budget.
#[derive(Debug, Clone)]
pub struct ReplayBudget {
    /// Replay bytes earned per live byte sent.
    share: f64,
    /// Bytes it may replay now; `None` until its first request, which a new
    /// viewer may always have answered (browsers ask once while starting).
    tokens: Option<f64>,
    waiting: bool,
}

impl ReplayBudget {
    /// A budget earning `percent` of the live bytes (0: requests always wait
    /// for the next keyframe).
    pub fn new(percent: u64) -> Self {
        Self {
            share: percent as f64 / 100.0,
            tokens: None,
            waiting: false,
        }
    }

    /// Live media sent to the viewer; a keyframe among it answers a request
    /// that is waiting.
    pub fn sent(&mut self, bytes: usize, keyframe: bool) {
        if let Some(tokens) = &mut self.tokens {
            *tokens += bytes as f64 * self.share;
        }
        if keyframe {
            self.waiting = false;
        }
    }

    /// A keyframe request, when a replay would send `gop_bytes`.
    pub fn request(&mut self, gop_bytes: usize) -> Answer {
        if self.waiting {
            return Answer::Waiting;
        }
        let cost = gop_bytes as f64;
        let cap = cost * BURST_GOPS;
        let tokens = match self.tokens {
            None if self.share > 0.0 => cap,
            None => 0.0,
            Some(tokens) => tokens.min(cap),
        };
        if cost <= tokens {
            self.tokens = Some(tokens - cost);
            Answer::Replay
        } else {
            self.tokens = Some(tokens);
            self.waiting = true;
            Answer::NextKeyframe
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_viewer_may_ask_once_and_then_earns_its_replays() {
        let mut budget = ReplayBudget::new(10);
        assert_eq!(budget.request(1000), Answer::Replay);
        assert_eq!(budget.request(1000), Answer::Replay);
        // Two GOPs' worth was the whole start.
        assert_eq!(budget.request(1000), Answer::NextKeyframe);
        assert_eq!(budget.request(1000), Answer::Waiting);
        budget.sent(5000, true);
        // The keyframe answered it; 10 % of 5000 is not yet a GOP of 1000.
        assert_eq!(budget.request(1000), Answer::NextKeyframe);
        budget.sent(5000, false);
        assert_eq!(budget.request(1000), Answer::Waiting);
        budget.sent(100, true);
        assert_eq!(budget.request(1000), Answer::Replay);
    }

    #[test]
    fn a_viewer_asking_all_the_time_costs_at_most_its_share() {
        // A 300 KB/s stream, 40 KB a frame tick, a GOP growing to 2.5 MB, and a
        // request on every frame.
        let mut budget = ReplayBudget::new(10);
        let (mut live, mut replayed, mut gop) = (0usize, 0usize, 0usize);
        for frame in 0..3000 {
            let keyframe = frame % 250 == 0;
            if keyframe {
                gop = 0;
            }
            gop += 10_000;
            live += 10_000;
            budget.sent(10_000, keyframe);
            if budget.request(gop) == Answer::Replay {
                replayed += gop;
            }
        }
        let first_two = 2 * 10_000;
        assert!(
            replayed <= live / 10 + first_two,
            "replayed {replayed} of {live} live bytes"
        );
        assert!(replayed > 0);
    }

    #[test]
    fn no_share_means_the_next_keyframe_answers() {
        let mut budget = ReplayBudget::new(0);
        assert_eq!(budget.request(10), Answer::NextKeyframe);
        budget.sent(1_000_000, true);
        assert_eq!(budget.request(10), Answer::NextKeyframe);
    }

    #[test]
    fn the_budget_never_holds_more_than_two_gops() {
        let mut budget = ReplayBudget::new(100);
        assert_eq!(budget.request(10), Answer::Replay);
        budget.sent(1_000_000, false);
        assert_eq!(budget.request(100), Answer::Replay);
        assert_eq!(budget.request(100), Answer::Replay);
        assert_eq!(budget.request(100), Answer::NextKeyframe);
    }
}
