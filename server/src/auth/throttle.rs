//! Login throttling: failed logins are counted per account and per client
//! address over a sliding window; past the limit, logins wait.
//!
//! Pure logic: the caller passes the time in. The counts live in memory, so a
//! restart forgets them; that is fine for slowing down guessing, which is all
//! this is for (the argon2 hash does the rest).

use std::collections::{HashMap, VecDeque};
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            per_account: 5,
            per_address: 20,
        }
    }
}

/// Keys kept before old ones are swept, so guessing many names cannot grow the
/// map without bound.
const SWEEP_ABOVE: usize = 4096;

#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    accounts: HashMap<String, VecDeque<Instant>>,
    addresses: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            accounts: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// Starts a login attempt: `Err(wait)` when a login for `account` from
    /// `address` must wait that long; otherwise the attempt counts as a failure
    /// until [`Throttle::handle_success`] says otherwise. Counting it up front
    /// keeps many guesses sent at once from all passing the check together.
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

    /// Counts a failed login.
    fn handle_failure(&mut self, now: Instant, account: &str, address: IpAddr) {
        if self.accounts.len() + self.addresses.len() > SWEEP_ABOVE {
            self.sweep(now);
        }
        self.accounts
            .entry(account.to_owned())
            .or_default()
            .push_back(now);
        self.addresses.entry(address).or_default().push_back(now);
    }

    /// The attempt [`Throttle::begin`] counted at `began` was a good login: it
    /// clears the account's failures, and takes back only that attempt from
    /// the address (one right password must not buy more guesses at other
    /// names).
    pub fn handle_success(&mut self, began: Instant, account: &str, address: IpAddr) {
        self.accounts.remove(account);
        if let Some(failures) = self.addresses.get_mut(&address)
            && let Some(i) = failures.iter().rposition(|&at| at == began)
        {
            failures.remove(i);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let window = self.limits.window;
        let fresh = |f: &mut VecDeque<Instant>| {
            forget_old(f, now, window);
            !f.is_empty()
        };
        self.accounts.retain(|_, f| fresh(f));
        self.addresses.retain(|_, f| fresh(f));
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
            throttle.addresses[&ip(1)].len(),
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
    fn old_keys_are_swept() {
        let start = Instant::now();
        let mut throttle = Throttle::new(LIMITS);
        for i in 0..=SWEEP_ABOVE {
            throttle.handle_failure(start, &format!("user{i}"), ip(1));
        }
        throttle.handle_failure(start + LIMITS.window, "late", ip(2));
        assert_eq!(throttle.accounts.len(), 1);
        assert_eq!(throttle.addresses.len(), 1);
    }
}
