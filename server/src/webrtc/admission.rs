//! Who may open another WHEP session: a cap on sessions in total and per
//! address, counted from the moment an offer is taken until the session's
//! task ends (pure bookkeeping; the caller passes the address).
//!
//! Every session holds a UDP socket, a TCP listener and a driver task, so
//! without a cap a flood of offers exhausts the file descriptors that RTMP and
//! HTTP need too. A slot is taken before anything costly is built and given
//! back when its [`Slot`] is dropped, however the session ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AdmissionError {
    #[error(
        "the server has its most WebRTC viewers at once ({max}, whep_max_sessions); try again \
         in a moment, or watch over HLS"
    )]
    Full { max: usize },
    #[error(
        "your address has its most WebRTC sessions at once ({max}, whep_max_sessions_per_ip); \
         close another player of this server first"
    )]
    FullForAddress { max: usize },
}

impl AdmissionError {
    /// The limit key a refusal names in the log.
    pub fn limit(&self) -> &'static str {
        match self {
            Self::Full { .. } => "whep_max_sessions",
            Self::FullForAddress { .. } => "whep_max_sessions_per_ip",
        }
    }
}

/// The counts behind the caps. Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_address: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Only addresses with a session; an entry goes with its last slot.
    per_address: HashMap<IpAddr, usize>,
}

/// One admitted session; dropping it frees its place.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    address: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            counts: Arc::default(),
            max_total,
            max_per_address,
        }
    }

    /// A place for one more session from `peer`.
    ///
    /// # Errors
    /// The server, or `peer`'s address, has its most sessions.
    pub fn admit(&self, peer: IpAddr) -> Result<Slot, AdmissionError> {
        let address = address_key(peer);
        let mut counts = lock(&self.counts);
        if counts.total >= self.max_total {
            return Err(AdmissionError::Full {
                max: self.max_total,
            });
        }
        let mine = counts.per_address.entry(address).or_default();
        if *mine >= self.max_per_address {
            return Err(AdmissionError::FullForAddress {
                max: self.max_per_address,
            });
        }
        *mine += 1;
        counts.total += 1;
        Ok(Slot {
            counts: Arc::clone(&self.counts),
            address,
        })
    }

    /// Sessions admitted and not yet ended.
    pub fn sessions(&self) -> usize {
        lock(&self.counts).total
    }

    /// Addresses holding a slot (for tests: the map empties as sessions end).
    pub fn addresses(&self) -> usize {
        lock(&self.counts).per_address.len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(mine) = counts.per_address.get_mut(&self.address) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                counts.per_address.remove(&self.address);
            }
        }
    }
}

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // The counts are updated in one step each; a panic elsewhere leaves them whole.
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

/// What "one address" means for the per-address cap: an IPv4 address, or the
/// /64 of an IPv6 one, since a single subscriber is given a whole /64 (RFC
/// 6177) and could otherwise open a session from every address in it.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn caps_per_address_then_in_total_and_frees_on_drop() {
        let admission = Admission::new(3, 2);
        let a1 = admission.admit(ip("192.0.2.1")).unwrap();
        let _a2 = admission.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.1")).err(),
            Some(AdmissionError::FullForAddress { max: 2 })
        );
        let _b = admission.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(
            admission.admit(ip("192.0.2.3")).err(),
            Some(AdmissionError::Full { max: 3 })
        );
        drop(a1);
        assert_eq!(admission.sessions(), 2);
        let _c = admission.admit(ip("192.0.2.3")).unwrap();
    }

    #[test]
    fn the_map_forgets_addresses_without_sessions() {
        let admission = Admission::new(100_000, 1);
        let slots: Vec<Slot> = (0..1000u32)
            .map(|i| admission.admit(IpAddr::V4(i.into())).unwrap())
            .collect();
        assert_eq!(admission.addresses(), 1000);
        drop(slots);
        assert_eq!((admission.sessions(), admission.addresses()), (0, 0));
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address() {
        let admission = Admission::new(10, 1);
        let _a = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(admission.admit(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }
}
