//! Counted places for things a client holds open (connections, event feeds):
//! a total cap and a cap per client address, released when the [`Slot`] is
//! dropped, so no path can forget to give one back.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The address a client is counted under: IPv4 as it is, IPv6 by its /64.
///
/// A home, a phone or a rented server gets a whole /64 and may use any address
/// in it, so per-address caps keyed by single IPv6 addresses would cap nobody.
/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, from a dual-stack
/// socket) counts as that IPv4 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

/// Which cap a refused client hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every place is taken.
    Total { max: usize },
    /// This client's address holds its share already.
    PerAddress { max: usize },
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Full::Total { max } => write!(f, "all {max} places are taken"),
            Full::PerAddress { max } => write!(f, "this address already holds {max}"),
        }
    }
}

/// Places shared by every client. Cheap to clone.
#[derive(Clone)]
pub struct Slots {
    inner: Arc<Inner>,
}

struct Inner {
    max_total: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Only addresses holding at least one place, so the map is never larger
    /// than `max_total`.
    per_address: HashMap<IpAddr, usize>,
}

impl Slots {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_total,
                max_per_address,
                counts: Mutex::new(Counts::default()),
            }),
        }
    }

    /// Takes a place for a client at `ip`, or says which cap is reached.
    ///
    /// # Errors
    /// [`Full`] when the total or this address's share is used up.
    pub fn try_take(&self, ip: IpAddr) -> Result<Slot, Full> {
        let key = client_key(ip);
        let mut counts = self.inner.lock();
        if counts.total >= self.inner.max_total {
            return Err(Full::Total {
                max: self.inner.max_total,
            });
        }
        let held = counts.per_address.get(&key).copied().unwrap_or(0);
        if held >= self.inner.max_per_address {
            return Err(Full::PerAddress {
                max: self.inner.max_per_address,
            });
        }
        counts.total += 1;
        counts.per_address.insert(key, held + 1);
        Ok(Slot {
            slots: Arc::clone(&self.inner),
            key,
        })
    }

    /// Places taken now, in all.
    pub fn taken(&self) -> usize {
        self.inner.lock().total
    }

    /// Addresses holding a place now (the map empties as places are given back).
    pub fn addresses(&self) -> usize {
        self.inner.lock().per_address.len()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts are updated in a few lines that cannot panic midway.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One place, given back when dropped.
pub struct Slot {
    slots: Arc<Inner>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(held) = counts.per_address.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                counts.per_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_per_address_and_in_total_and_gives_back_on_drop() {
        let slots = Slots::new(3, 2);
        let a1 = slots.try_take(ip("192.0.2.1")).unwrap();
        let _a2 = slots.try_take(ip("192.0.2.1")).unwrap();
        assert_eq!(
            slots.try_take(ip("192.0.2.1")).err(),
            Some(Full::PerAddress { max: 2 })
        );
        let _b1 = slots.try_take(ip("192.0.2.2")).unwrap();
        assert_eq!(
            slots.try_take(ip("192.0.2.3")).err(),
            Some(Full::Total { max: 3 })
        );
        drop(a1);
        assert_eq!(slots.taken(), 2);
        let _a3 = slots.try_take(ip("192.0.2.1")).unwrap();
    }

    #[test]
    fn an_empty_address_is_forgotten() {
        let slots = Slots::new(10, 10);
        drop(slots.try_take(ip("192.0.2.1")).unwrap());
        assert_eq!(slots.addresses(), 0);
        assert_eq!(slots.taken(), 0);
    }

    #[test]
    fn ipv6_counts_by_its_slash_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        let slots = Slots::new(10, 1);
        let _one = slots.try_take(ip("2001:db8::1")).unwrap();
        assert!(slots.try_take(ip("2001:db8::2")).is_err());
        assert!(slots.try_take(ip("2001:db8:0:1::1")).is_ok());
    }
}
