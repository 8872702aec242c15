//! Who may open another WHEP session: a cap on sessions in total and per
//! address, counted from the moment an offer is taken until the session's
//! task ends (pure bookkeeping; the caller passes the address).
//!
//! Every session holds a UDP socket, a TCP listener and a driver task, so
//! without a cap a flood of offers exhausts the file descriptors that RTMP and
//! HTTP need too. A slot is taken before anything costly is built and given
//! back when its [`Slot`] is dropped, however the session ends.

use std::net::IpAddr;

use thiserror::Error;

pub use crate::limits::slots::Slot;
use crate::limits::slots::{Full, Slots};

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
    slots: Slots,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            slots: Slots::new(max_total, max_per_address),
        }
    }

    /// A place for one more session from `peer`; dropping the [`Slot`] frees it.
    ///
    /// # Errors
    /// The server, or `peer`'s address, has its most sessions.
    pub fn admit(&self, peer: IpAddr) -> Result<Slot, AdmissionError> {
        self.slots.try_take(peer).map_err(|full| match full {
            Full::Total { max } => AdmissionError::Full { max },
            Full::PerAddress { max } => AdmissionError::FullForAddress { max },
        })
    }

    /// Sessions admitted and not yet ended.
    pub fn sessions(&self) -> usize {
        self.slots.taken()
    }

    /// Addresses holding a slot (for tests: the map empties as sessions end).
    pub fn addresses(&self) -> usize {
        self.slots.addresses()
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
    }
}
