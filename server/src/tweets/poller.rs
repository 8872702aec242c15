//! The polling task: search, claim, coalesce, command; then wait the poll
//! interval, the rate-limit reset, or a backoff.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::api::{ApiError, Client, RateLimit, Tweet};
use super::backoff::{Backoff, until_reset};
use super::claim::Claims;
use super::flood::Flood;
use super::settings::TwitterConfig;
use super::{PollerState, TweetsStatus};
use crate::control::guard::GuardSettings;
use crate::control::{Action, Lights, Source};
use crate::db::Db;

/// Pages followed in one poll: 2,000 tweets, more than a busy query gets
/// between polls. Older tweets past that are skipped (they would only be
/// coalesced anyway). With the answer size cap, this also bounds a poll's
/// memory.
const MAX_PAGES: usize = 20;
/// How often old claims are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub(crate) struct Poller {
    client: Client,
    query: String,
    interval: Duration,
    action: Action,
    outlets: Vec<String>,
    claims: Claims,
    lights: Lights,
    flood: Flood,
    backoff: Backoff,
    /// The longest wait for a rate-limit reset or after failures.
    max_wait: Duration,
    /// How long claims are kept, and when they were last pruned.
    retention: Duration,
    pruned_at: Option<std::time::Instant>,
    status: Arc<Mutex<TweetsStatus>>,
}

/// What one poll found.
struct Found {
    tweets: Vec<Tweet>,
    newest_id: Option<String>,
    pages: usize,
}

impl Poller {
    pub(crate) fn new(
        config: &TwitterConfig,
        guard: GuardSettings,
        db: Db,
        lights: Lights,
        status: Arc<Mutex<TweetsStatus>>,
    ) -> Result<Self, reqwest::Error> {
        let instance = format!("pid {} #{:08x}", std::process::id(), rand::random::<u32>());
        Ok(Self {
            client: Client::new(
                &config.api_base,
                config.bearer_token.clone(),
                config.timeout,
                config.max_response_bytes,
            )?,
            query: config.query.clone(),
            interval: config.poll_interval,
            action: config.action,
            outlets: config.outlets.clone(),
            claims: Claims::new(db, instance),
            lights,
            flood: Flood::new(config.action, guard),
            backoff: Backoff::new(config.poll_interval, config.max_wait),
            max_wait: config.max_wait,
            retention: config.retention,
            pruned_at: None,
            status,
        })
    }

    pub(crate) async fn run(mut self, token: CancellationToken) {
        loop {
            let wait = tokio::select! {
                () = token.cancelled() => return,
                wait = self.poll() => wait,
            };
            if self.pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                self.prune().await;
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn prune(&mut self) {
        self.pruned_at = Some(std::time::Instant::now());
        match self.claims.prune(self.retention).await {
            Ok(0) => {}
            Ok(n) => info!(
                deleted = n,
                days = self.retention.as_secs() / 86_400,
                "deleted claimed tweet IDs older than the retention"
            ),
            Err(err) => {
                warn!(cause = %err, "cannot prune old tweet claims; trying again in an hour")
            }
        }
    }

    /// One poll; returns how long to wait before the next.
    async fn poll(&mut self) -> Duration {
        let (found, rate) = self.fetch().await;
        let now = Utc::now();
        let failed = found.is_err();
        let (state, detail, wait) = match found {
            Ok(found) => {
                let count = found.tweets.len();
                self.process(found.tweets).await;
                if let Some(newest) = &found.newest_id
                    && let Err(err) = self.claims.advance_since_id(newest).await
                {
                    warn!(cause = %err, "cannot store the newest tweet ID; the next poll asks again");
                }
                self.backoff.succeeded();
                let detail = format!("{count} new tweets in {} pages", found.pages);
                match (rate.remaining, self.until_reset(rate)) {
                    (Some(0), Some(reset)) if reset > self.interval => (
                        PollerState::RateLimited,
                        format!(
                            "{detail}; the rate limit is used up until {}",
                            at(now, reset)
                        ),
                        reset,
                    ),
                    _ => (PollerState::Ok, detail, self.interval),
                }
            }
            Err(err @ ApiError::RateLimited { .. }) => {
                let wait = self
                    .until_reset(rate)
                    .unwrap_or_else(|| self.backoff.failed());
                warn!(cause = %err, wait_s = wait.as_secs_f64(), "tweet poller rate limited");
                (
                    PollerState::RateLimited,
                    format!("{err}; waiting until {}", at(now, wait)),
                    wait,
                )
            }
            Err(err) => {
                // One line per failed poll, and failed polls back off up to
                // max_wait: the log grows no faster than that.
                let wait = self.backoff.failed();
                warn!(cause = %err, wait_s = wait.as_secs_f64(), "tweet poll failed");
                (
                    PollerState::Failing,
                    format!("{err}; next try at {}", at(now, wait)),
                    wait,
                )
            }
        };
        self.update(|s| {
            s.state = state;
            s.detail = detail;
            s.last_poll_at = Some(now.to_rfc3339_opts(SecondsFormat::Millis, true));
            s.polls += 1;
            s.failed_polls += u64::from(failed);
        });
        wait
    }

    /// Every page of tweets newer than `since_id`, and the last rate limit seen.
    async fn fetch(&mut self) -> (Result<Found, ApiError>, RateLimit) {
        let since_id = match self.claims.since_id().await {
            Ok(id) => id,
            Err(err) => {
                warn!(cause = %err, "cannot read the newest tweet ID; asking without it");
                None
            }
        };
        let mut found = Found {
            tweets: Vec::new(),
            newest_id: None,
            pages: 0,
        };
        let mut next_token: Option<String> = None;
        let mut rate = RateLimit::default();
        while found.pages < MAX_PAGES {
            let answer = self
                .client
                .search(&self.query, since_id.as_deref(), next_token.as_deref())
                .await;
            rate = answer.rate;
            let page = match answer.page {
                Ok(page) => page,
                Err(err) => return (Err(err), rate),
            };
            found.pages += 1;
            // The first page holds the newest tweet; later pages are older.
            if found.newest_id.is_none() {
                found.newest_id = page.newest_id.or_else(|| {
                    page.tweets
                        .iter()
                        .max_by_key(|t| t.number())
                        .map(|t| t.id.clone())
                });
            }
            found.tweets.extend(page.tweets);
            next_token = page.next_token;
            if next_token.is_none() {
                return (Ok(found), rate);
            }
        }
        warn!(
            pages = MAX_PAGES,
            "more matching tweets than one poll reads; the oldest are skipped"
        );
        (Ok(found), rate)
    }

    /// Oldest first: claim each tweet, and fire the ones this instance won
    /// and the flood guard lets through.
    async fn process(&mut self, mut tweets: Vec<Tweet>) {
        tweets.sort_by_key(Tweet::number);
        tweets.dedup_by(|a, b| a.id == b.id);
        for tweet in tweets {
            let author = tweet.author();
            match self.claims.claim(&tweet.id, &author).await {
                Ok(true) => {}
                Ok(false) => {
                    self.update(|s| s.already_claimed += 1);
                    continue;
                }
                Err(err) => {
                    // Unclaimed means unfired: at most once beats twice.
                    warn!(cause = %err, tweet = %tweet.id, "cannot claim a tweet; skipped");
                    continue;
                }
            }
            let fire = self.flood.offer(Instant::now());
            let (fired, coalesced) = (self.flood.fired, self.flood.coalesced);
            self.update(|s| {
                s.fired = fired;
                s.coalesced = coalesced;
            });
            if fire {
                self.fire(&tweet, &author).await;
            }
        }
    }

    async fn fire(&self, tweet: &Tweet, author: &str) {
        info!(tweet = %tweet.id, %author, "a tweet lights the tree");
        let label = format!("{} for {author}", self.action);
        for outlet in &self.outlets {
            // The outcome, good or bad, is in the audit log.
            if let Err(err) = self
                .lights
                .command_labelled(outlet, self.action, Source::Tweet(tweet.id.clone()), &label)
                .await
            {
                warn!(cause = %err, tweet = %tweet.id, %outlet, "tweet command failed");
            }
        }
    }

    fn update(&self, change: impl FnOnce(&mut TweetsStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// How long until the rate-limit window resets, from `x-rate-limit-reset`,
    /// within 1 s and `max_wait` whatever the header says.
    fn until_reset(&self, rate: RateLimit) -> Option<Duration> {
        Some(until_reset(rate.reset?, SystemTime::now(), self.max_wait))
    }
}

/// The time `wait` after `now`, as the status shows it; never panics, even
/// for a wait no calendar holds.
fn at(now: DateTime<Utc>, wait: Duration) -> String {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| now.checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_past_the_calendar_reads_as_its_end() {
        let now = Utc::now();
        assert!(at(now, Duration::from_secs(60)).ends_with('Z'));
        assert_eq!(
            at(now, Duration::MAX),
            DateTime::<Utc>::MAX_UTC.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        assert!(!at(now, Duration::from_secs(99_999_999_999_999)).is_empty());
    }
}
