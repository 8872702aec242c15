//! Login throttling: failed logins are counted per account and per client
//! address over a sliding window; past the limit, logins wait.
//!
//! Pure logic: the caller passes the time in, and this is the in-memory view
//! every login checks. The failures are also kept in the database
//! ([`super::login_failures`]) and put back with [`Throttle::restore`] at
//! startup: otherwise a restart, or each turn of a crash loop, would give a
//! guesser a fresh allowance. The throttle only slows guessing down; the
//! argon2 hash does the rest.
//!
//! Memory is bounded whatever a stranger sends: the caller passes only
//! account names that pass the account name rule (at most 64 bytes), an
//! address keeps at most `per_address` failures and an account `per_account`,
//! and each map keeps at most `max_entries` keys. When a map is full, the key
//! that failed least recently is forgotten. A flood of made-up names thus
//! pushes out other made-up names first; a name under attack right now stays
//! while it keeps failing.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits for [`Throttle`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub window: Duration,
    /// Failures one account may have within the window.
    pub per_account: usize,
    /// Failures one address may have within the window, over all names: higher,
    /// because people share addresses (an office, a proxy).
    pub per_address: usize,
    /// Accounts, and addresses, remembered at most (`login_throttle_max_entries`).
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            per_account: 5,
            per_address: 20,
            max_entries: 10_000,
        }
    }
}

#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    accounts: Failures<String>,
    addresses: Failures<IpAddr>,
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            accounts: Failures::new(limits.max_entries),
            addresses: Failures::new(limits.max_entries),
        }
    }

    /// Starts a login attempt: `Err(wait)` when a login for `account` from
    /// `address` must wait that long; otherwise the attempt counts as a failure
    /// until [`Throttle::handle_success`] or [`Throttle::handle_abandoned`]
    /// says otherwise. Counting it up front keeps many guesses sent at once
    /// from all passing the check together.
    pub fn begin(&mut self, now: Instant, account: &str, address: IpAddr) -> Result<(), Duration> {
        self.check(now, account, address)?;
        self.handle_failure(now, account, address);
        Ok(())
    }

    /// `Err(wait)` when a login for `account` from `address` must wait that long.
    pub fn check(&mut self, now: Instant, account: &str, address: IpAddr) -> Result<(), Duration> {
        let window = self.limits.window;
        let account_wait = self
            .accounts
            .get_mut(account)
            .and_then(|f| wait(f, now, window, self.limits.per_account));
        let address_wait = self
            .addresses
            .get_mut(&address)
            .and_then(|f| wait(f, now, window, self.limits.per_address));
        match account_wait.max(address_wait) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failure remembered from before a restart, at `at`; call it
    /// oldest first, before any login. `account` is `None` for a failure a
    /// good login cleared from the account's count but not from the
    /// address's. Only the newest failures up to each limit are kept, as
    /// [`Throttle::begin`] keeps them: older ones cannot change a wait.
    pub fn restore(&mut self, at: Instant, account: Option<&str>, address: IpAddr) {
        if let Some(account) = account {
            self.accounts.push(account, at);
            self.accounts.keep_newest(account, self.limits.per_account);
        }
        self.addresses.push(&address, at);
        self.addresses
            .keep_newest(&address, self.limits.per_address);
    }

    /// Counts a failed login.
    fn handle_failure(&mut self, now: Instant, account: &str, address: IpAddr) {
        self.accounts.push(account, now);
        self.addresses.push(&address, now);
    }

    /// The attempt [`Throttle::begin`] counted at `began` was a good login: it
    /// clears the account's failures, and takes back only that attempt from
    /// the address (one right password must not buy more guesses at other
    /// names).
    pub fn handle_success(&mut self, began: Instant, account: &str, address: IpAddr) {
        self.accounts.remove(account);
        self.addresses.take_back(&address, began);
    }

    /// The attempt [`Throttle::begin`] counted at `began` was never checked
    /// (the server was too busy): it is taken back from both counts.
    pub fn handle_abandoned(&mut self, began: Instant, account: &str, address: IpAddr) {
        self.accounts.take_back(account, began);
        self.addresses.take_back(&address, began);
    }
}

/// Failure times by key, at most `max` keys, the least recently failed
/// forgotten first.
#[derive(Debug)]
struct Failures<K> {
    max: usize,
    /// The failures of each key, and the stamp of its latest one.
    entries: HashMap<K, (u64, VecDeque<Instant>)>,
    /// `(key, stamp)` for every failure, oldest first. A pair whose stamp is no
    /// longer its key's is stale and skipped; the queue is rebuilt when stale
    /// pairs outnumber live keys, so it stays within twice `max`.
    recency: VecDeque<(K, u64)>,
    next_stamp: u64,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            entries: HashMap::new(),
            recency: VecDeque::new(),
            next_stamp: 0,
        }
    }

    fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut VecDeque<Instant>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key).map(|(_, failures)| failures)
    }

    fn push<Q>(&mut self, key: &Q, now: Instant)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        match self.entries.get_mut(key) {
            Some((latest, failures)) => {
                *latest = stamp;
                failures.push_back(now);
            }
            None => {
                while self.entries.len() >= self.max && self.forget_least_recent() {}
                self.entries
                    .insert(key.to_owned(), (stamp, VecDeque::from([now])));
            }
        }
        self.recency.push_back((key.to_owned(), stamp));
        if self.recency.len() > 2 * self.max {
            self.rebuild_recency();
        }
    }

    fn remove<Q>(&mut self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(key);
    }

    /// Takes back the failure counted at `at`.
    fn take_back<Q>(&mut self, key: &Q, at: Instant)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some((_, failures)) = self.entries.get_mut(key)
            && let Some(i) = failures.iter().rposition(|&t| t == at)
        {
            failures.remove(i);
        }
    }

    /// Forgets all but the newest `limit` failures of `key`.
    fn keep_newest<Q>(&mut self, key: &Q, limit: usize)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some((_, failures)) = self.entries.get_mut(key) {
            let excess = failures.len().saturating_sub(limit);
            failures.drain(..excess);
        }
    }

    /// Forgets the key that failed least recently; false if there was none
    /// (every key has a pair in the queue, so only when the map is empty).
    fn forget_least_recent(&mut self) -> bool {
        while let Some((key, stamp)) = self.recency.pop_front() {
            if self
                .entries
                .get(&key)
                .is_some_and(|(latest, _)| *latest == stamp)
            {
                self.entries.remove(&key);
                return true;
            }
        }
        false
    }

    fn rebuild_recency(&mut self) {
        let mut live: Vec<(K, u64)> = self
            .entries
            .iter()
            .map(|(key, (stamp, _))| (key.clone(), *stamp))
            .collect();
        live.sort_unstable_by_key(|(_, stamp)| *stamp);
        self.recency = live.into();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// How long until a failure falls out of the window, if `limit` are in it.
fn wait(
    failures: &mut VecDeque<Instant>,
    now: Instant,
    window: Duration,
    limit: usize,
) -> Option<Duration> {
    forget_old(failures, now, window);
    if failures.len() < limit {
        return None;
    }
    // The oldest failure that keeps the count at the limit.
    let blocking = failures[failures.len() - limit];
    Some((blocking + window).saturating_duration_since(now))
}

fn forget_old(failures: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while failures
        .front()
        .is_some_and(|&at| now.saturating_duration_since(at) >= window)
    {
        failures.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        window: Duration::from_secs(900),
        per_account: 5,
        per_address: 20,
        max_entries: 100,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn the_sixth_try_on_an_account_waits_until_the_first_failure_is_old() {
        let start = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        for i in 0..5 {
            let now = start + Duration::from_secs(i * 10);
            assert_eq!(throttle.begin(now, "alice", ip(1)), Ok(()));
        }
        let now = start + Duration::from_secs(60);
        assert_eq!(
            throttle.check(now, "alice", ip(1)),
            Err(Duration::from_secs(840))
        );
        // From elsewhere too: the account is what is being guessed.
        assert!(throttle.check(now, "alice", ip(2)).is_err());
        // Another account from another address is not affected.
        assert_eq!(throttle.check(now, "bob", ip(2)), Ok(()));
        // Once the first failure is out of the window, one more try is allowed.
        assert_eq!(
            throttle.check(start + Duration::from_secs(900), "alice", ip(1)),
            Ok(())
        );
    }

    #[test]
    fn an_address_guessing_many_names_is_held_back() {
        let now = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        for i in 0..20 {
            throttle.handle_failure(now, &format!("user{i}"), ip(1));
        }
        assert!(throttle.check(now, "someone-new", ip(1)).is_err());
        assert_eq!(throttle.check(now, "someone-new", ip(2)), Ok(()));
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let now = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        for _ in 0..4 {
            throttle.begin(now, "alice", ip(1)).unwrap();
        }
        let good = now + Duration::from_secs(1);
        throttle.begin(good, "alice", ip(1)).unwrap();
        throttle.handle_success(good, "alice", ip(1));
        for _ in 0..4 {
            throttle.begin(now, "alice", ip(1)).unwrap();
        }
        assert_eq!(throttle.check(now, "alice", ip(1)), Ok(()));
        assert_eq!(
            throttle.addresses.get_mut(&ip(1)).unwrap().len(),
            8,
            "the good login is not counted"
        );
    }

    #[test]
    fn guesses_sent_at_once_are_counted_before_they_are_checked() {
        let now = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        // Six attempts begun before any has been answered: the sixth waits.
        for _ in 0..5 {
            assert_eq!(throttle.begin(now, "alice", ip(1)), Ok(()));
        }
        assert!(throttle.begin(now, "alice", ip(1)).is_err());
    }

    #[test]
    fn a_full_map_forgets_the_least_recently_failed_key() {
        let start = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        throttle.begin(start, "alice", ip(1)).unwrap();
        // 10,000 made-up names from many addresses, alice failing now and then.
        for i in 0..10_000u32 {
            let now = start + Duration::from_millis(u64::from(i));
            let address = IpAddr::from(i.to_be_bytes());
            throttle.handle_failure(now, &format!("made-up-{i}"), address);
            if i % 50 == 0 {
                throttle.handle_failure(now, "alice", ip(1));
            }
            assert!(throttle.accounts.len() <= LIMITS.max_entries);
            assert!(throttle.addresses.len() <= LIMITS.max_entries);
            assert!(throttle.accounts.recency.len() <= 2 * LIMITS.max_entries + 1);
        }
        assert_eq!(throttle.accounts.len(), LIMITS.max_entries);
        assert!(
            throttle.accounts.get_mut("alice").is_some(),
            "a name failing lately is kept"
        );
        assert!(throttle.accounts.get_mut("made-up-0").is_none());
        assert!(throttle.accounts.get_mut("made-up-9999").is_some());
    }

    #[test]
    fn restored_failures_count_as_before_a_restart() {
        let start = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        for i in 0..7 {
            throttle.restore(start + Duration::from_secs(i * 10), Some("alice"), ip(1));
        }
        // Cleared from bob's count by a good login; still the address's.
        throttle.restore(start + Duration::from_secs(70), None, ip(2));
        let now = start + Duration::from_secs(100);
        // The newest five of alice's seven: the first of them was at 20 s.
        assert_eq!(
            throttle.check(now, "alice", ip(3)),
            Err(Duration::from_secs(820))
        );
        assert_eq!(throttle.accounts.get_mut("alice").unwrap().len(), 5);
        assert_eq!(throttle.check(now, "bob", ip(3)), Ok(()));
        assert_eq!(throttle.addresses.get_mut(&ip(2)).unwrap().len(), 1);
    }

    #[test]
    fn an_abandoned_attempt_is_taken_back() {
        let now = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        for i in 0..10 {
            let at = now + Duration::from_millis(i);
            throttle.begin(at, "alice", ip(1)).unwrap();
            throttle.handle_abandoned(at, "alice", ip(1));
        }
        assert_eq!(throttle.check(now, "alice", ip(1)), Ok(()));
        assert!(throttle.addresses.get_mut(&ip(1)).unwrap().is_empty());
    }
}
