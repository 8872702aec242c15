//! The RTMP accept loop, and who may hold a connection.
//!
//! Anyone can open connections, for free and long before a key is checked, so
//! connections are not served first come, first served. Each one is in one of
//! three classes, counted by [`Slots`] from accept to close:
//!
//! - **pending**: accepted, not yet publishing or playing. At most
//!   `rtmp_max_pending`, and each has `rtmp_start_timeout_s` to start (see
//!   [`super::connection`]). A new connection is admitted even when the pool
//!   is full: the oldest pending connection *of the address that has the most
//!   pending* is closed for it. A flood from a few addresses so only ever
//!   evicts itself, and the publisher, one pending connection from its own
//!   address for the length of a handshake, is closed only if more than
//!   `rtmp_max_pending` other addresses each hold a pending connection too.
//! - **players**: at most `rtmp_max_connections`; a play past it is refused
//!   with `NetStream.Play.Failed` and a reason.
//! - **publishers**: never refused for room. Their key was checked, and the
//!   hub takes one per stream.
//!
//! Besides, one address holds at most `rtmp_max_connections_per_ip`
//! connections of any class; an IPv4-mapped IPv6 address counts as its IPv4
//! address, and a native IPv6 address as its /64, the block one host or one
//! LAN gets, as an IPv4 NAT would.
//!
//! Open sockets so stay under `rtmp_max_pending + rtmp_max_connections` plus
//! one per stream, and nothing a stranger can do without the key keeps the
//! publisher out.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

use super::connection;
use crate::config::Config;
use crate::limits;
use crate::limits::slots::client_key;
use crate::media::StreamHub;

/// Accepts RTMP connections until `token` is cancelled. Each connection runs in
/// a task of `tracker` with a child token, so shutdown reaches all of them.
pub async fn run(
    listener: TcpListener,
    config: Arc<Config>,
    hub: StreamHub,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let slots = Arc::new(Mutex::new(Slots::new(SlotLimits::from_config(&config))));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                backoff = Duration::from_millis(10);
                let conn_token = token.child_token();
                let pending = Pending {
                    peer,
                    token: conn_token.clone(),
                };
                let admitted = lock(&slots).admit(peer.ip(), pending);
                let Admitted { id, evicted } = match admitted {
                    Ok(admitted) => admitted,
                    Err(err) => {
                        // Dropping the socket closes it at once: a refusal
                        // costs one accept, no task and no buffer.
                        limits::refused(peer, err.limit(), &err);
                        continue;
                    }
                };
                if let Some(evicted) = evicted {
                    limits::refused(
                        evicted.peer,
                        "rtmp_max_pending",
                        format_args!(
                            "closed to make room: {} connections had not published or \
                             played yet, and this was the oldest of the address with the most",
                            config.rtmp_limits.rtmp_max_pending
                        ),
                    );
                    evicted.token.cancel();
                }
                let slot = Slot(SlotStarter {
                    slots: Arc::clone(&slots),
                    id,
                });
                let (config, hub) = (Arc::clone(&config), hub.clone());
                tracker.spawn(connection::serve(
                    socket, peer, slot, config, hub, conn_token,
                ));
            }
            Err(err) => {
                // Out of file descriptors and the like: wait, then try again
                // (as mini-redis does), instead of spinning.
                if backoff >= Duration::from_secs(2) {
                    error!(cause = %err, "RTMP accept keeps failing");
                } else {
                    warn!(cause = %err, "RTMP accept failed; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// What the accept loop keeps of a pending connection, to close it for room.
struct Pending {
    peer: SocketAddr,
    token: CancellationToken,
}

fn lock<T>(slots: &Mutex<Slots<T>>) -> MutexGuard<'_, Slots<T>> {
    // Nothing panics while holding the lock; were it poisoned anyway, the
    // counts are still whole (every change is one statement block).
    slots.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// A handle on one connection's place in [`Slots`] that starts it: the
/// connection task's own [`Slot`] holds one, and the session's player gate
/// another (see [`Slot::starter`]).
#[derive(Clone)]
pub struct SlotStarter {
    slots: Arc<Mutex<Slots<Pending>>>,
    id: SlotId,
}

impl SlotStarter {
    /// The connection has started publishing or playing: it leaves the
    /// pending pool and its start deadline.
    ///
    /// # Errors
    /// A player past `rtmp_max_connections`, or a connection already closed
    /// to make room.
    pub fn start(&self, role: Role) -> Result<(), SlotError> {
        lock(&self.slots).start(self.id, role)
    }
}

/// One connection's place in [`Slots`]: the connection task holds it, and
/// dropping it (the task ending, however it ends) frees the place.
pub struct Slot(SlotStarter);

impl Slot {
    /// See [`SlotStarter::start`].
    ///
    /// # Errors
    /// As [`SlotStarter::start`].
    pub fn start(&self, role: Role) -> Result<(), SlotError> {
        self.0.start(role)
    }

    /// A handle that starts this slot from elsewhere; the place is still
    /// freed when the [`Slot`] is dropped.
    pub fn starter(&self) -> SlotStarter {
        self.0.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.0.slots).close(self.0.id);
    }
}

/// What a connection became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Player,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SlotError {
    #[error(
        "{open} RTMP connections from this address already; raise \
         rtmp_max_connections_per_ip if they are all real"
    )]
    PerAddress { open: usize },
    #[error(
        "{players} RTMP players already, the most this server takes; raise \
         rtmp_max_connections if it has the bandwidth"
    )]
    Players { players: usize },
    #[error("the connection was closed to make room for a newer one")]
    Evicted,
}

impl SlotError {
    /// The config key of the limit hit, for [`limits::refused`].
    pub fn limit(&self) -> &'static str {
        match self {
            SlotError::PerAddress { .. } => "rtmp_max_connections_per_ip",
            SlotError::Players { .. } => "rtmp_max_connections",
            SlotError::Evicted => "rtmp_max_pending",
        }
    }
}

/// The three caps of [`Slots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLimits {
    pub per_address: usize,
    pub pending: usize,
    pub players: usize,
}

impl SlotLimits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            per_address: config.rtmp_limits.rtmp_max_connections_per_ip,
            pending: config.rtmp_limits.rtmp_max_pending,
            players: config.rtmp_max_connections,
        }
    }
}

/// Names one admitted connection. Ids only grow, so a smaller one is older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(u64);

/// The result of [`Slots::admit`].
#[derive(Debug)]
pub struct Admitted<T> {
    pub id: SlotId,
    /// The pending connection closed to make room, if one was: the caller
    /// closes it.
    pub evicted: Option<T>,
}

/// Who holds a connection, by class and by address (pure; see the module
/// docs for the rules). `T` is what the caller needs to close a pending
/// connection that is evicted.
#[derive(Debug)]
pub struct Slots<T> {
    limits: SlotLimits,
    next_id: u64,
    connections: HashMap<SlotId, Connection<T>>,
    addresses: HashMap<IpAddr, Address>,
    pending: usize,
    players: usize,
    publishers: usize,
}

#[derive(Debug)]
struct Connection<T> {
    address: IpAddr,
    state: State<T>,
}

#[derive(Debug)]
enum State<T> {
    Pending(T),
    Started(Role),
}

/// The connections of one address.
#[derive(Debug, Default)]
struct Address {
    open: usize,
    /// Its pending connections, oldest first.
    pending: BTreeSet<SlotId>,
}

/// How many connections of each class are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotCounts {
    pub pending: usize,
    pub players: usize,
    pub publishers: usize,
}

impl<T> Slots<T> {
    pub fn new(limits: SlotLimits) -> Self {
        Self {
            limits,
            next_id: 0,
            connections: HashMap::new(),
            addresses: HashMap::new(),
            pending: 0,
            players: 0,
            publishers: 0,
        }
    }

    /// Admits a connection from `ip` as pending; `handle` comes back in
    /// [`Admitted::evicted`] if it is later evicted for another.
    ///
    /// # Errors
    /// The address already holds `per_address` connections.
    pub fn admit(&mut self, ip: IpAddr, handle: T) -> Result<Admitted<T>, SlotError> {
        let address = client_key(ip);
        let open = self.addresses.get(&address).map_or(0, |a| a.open);
        if open >= self.limits.per_address {
            return Err(SlotError::PerAddress { open });
        }
        let evicted = if self.pending >= self.limits.pending {
            self.evict()
        } else {
            None
        };
        let id = SlotId(self.next_id);
        self.next_id += 1;
        self.connections.insert(
            id,
            Connection {
                address,
                state: State::Pending(handle),
            },
        );
        let entry = self.addresses.entry(address).or_default();
        entry.open += 1;
        entry.pending.insert(id);
        self.pending += 1;
        Ok(Admitted { id, evicted })
    }

    /// Moves a pending connection to `role`. Starting again is a no-op.
    ///
    /// # Errors
    /// A player past `players`, or a connection that was evicted.
    pub fn start(&mut self, id: SlotId, role: Role) -> Result<(), SlotError> {
        let Some(connection) = self.connections.get_mut(&id) else {
            return Err(SlotError::Evicted);
        };
        if matches!(connection.state, State::Started(_)) {
            return Ok(());
        }
        if role == Role::Player && self.players >= self.limits.players {
            return Err(SlotError::Players {
                players: self.players,
            });
        }
        connection.state = State::Started(role);
        if let Some(address) = self.addresses.get_mut(&connection.address) {
            address.pending.remove(&id);
        }
        self.pending -= 1;
        match role {
            Role::Player => self.players += 1,
            Role::Publisher => self.publishers += 1,
        }
        Ok(())
    }

    /// Frees a connection's place; closing one already evicted is a no-op.
    pub fn close(&mut self, id: SlotId) {
        self.remove(id);
    }

    pub fn counts(&self) -> SlotCounts {
        SlotCounts {
            pending: self.pending,
            players: self.players,
            publishers: self.publishers,
        }
    }

    /// Connections open from `ip`'s address (as [`client_key`] counts it).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.addresses.get(&client_key(ip)).map_or(0, |a| a.open)
    }

    /// Removes the oldest pending connection of the address with the most
    /// pending ones (of those, the one whose oldest is oldest).
    ///
    /// This scans the addresses that hold connections: at most one per open
    /// connection, a few microseconds at the limits' scale, and only when the
    /// pending pool is full.
    fn evict(&mut self) -> Option<T> {
        let id = self
            .addresses
            .values()
            .filter_map(|address| Some((address.pending.len(), *address.pending.first()?)))
            .max_by_key(|&(count, oldest)| (count, Reverse(oldest)))
            .map(|(_, oldest)| oldest)?;
        match self.remove(id)? {
            State::Pending(handle) => Some(handle),
            State::Started(_) => None,
        }
    }

    fn remove(&mut self, id: SlotId) -> Option<State<T>> {
        let connection = self.connections.remove(&id)?;
        if let Some(address) = self.addresses.get_mut(&connection.address) {
            address.open -= 1;
            address.pending.remove(&id);
            if address.open == 0 {
                self.addresses.remove(&connection.address);
            }
        }
        match connection.state {
            State::Pending(_) => self.pending -= 1,
            State::Started(Role::Player) => self.players -= 1,
            State::Started(Role::Publisher) => self.publishers -= 1,
        }
        Some(connection.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(per_address: usize, pending: usize, players: usize) -> Slots<u32> {
        Slots::new(SlotLimits {
            per_address,
            pending,
            players,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_address_is_capped_from_accept_to_close() {
        let mut slots = slots(2, 10, 10);
        let a = slots.admit(ip("192.0.2.1"), 0).unwrap().id;
        let b = slots.admit(ip("192.0.2.1"), 1).unwrap().id;
        slots.start(b, Role::Player).unwrap();
        assert_eq!(
            slots.admit(ip("192.0.2.1"), 2).unwrap_err(),
            SlotError::PerAddress { open: 2 },
            "started connections count too"
        );
        assert!(slots.admit(ip("192.0.2.2"), 3).is_ok(), "another address");
        slots.close(a);
        assert!(slots.admit(ip("192.0.2.1"), 4).is_ok(), "a close frees one");
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4_and_ipv6_per_64() {
        let mut slots = slots(1, 10, 10);
        slots.admit(ip("192.0.2.1"), 0).unwrap();
        assert!(slots.admit(ip("::ffff:192.0.2.1"), 1).is_err());
        slots.admit(ip("2001:db8:1:2::1"), 2).unwrap();
        assert!(slots.admit(ip("2001:db8:1:2:ffff::9"), 3).is_err());
        assert!(slots.admit(ip("2001:db8:1:3::1"), 4).is_ok());
        assert_eq!(client_key(ip("::1")), ip("::"));
    }

    #[test]
    fn a_full_pool_evicts_the_oldest_of_the_busiest_address() {
        let mut slots = slots(100, 4, 10);
        let publisher = ip("198.51.100.7");
        let attacker = ip("203.0.113.1");
        slots.admit(attacker, 1).unwrap();
        let own = slots.admit(publisher, 100).unwrap().id;
        slots.admit(attacker, 2).unwrap();
        slots.admit(attacker, 3).unwrap();
        // Full: each newcomer closes the attacker's oldest, never the
        // publisher's, though the publisher's is older than most.
        for n in 4..50 {
            let admitted = slots.admit(attacker, n).unwrap();
            assert_eq!(admitted.evicted, Some(n - 3), "newcomer {n}");
        }
        assert_eq!(slots.counts().pending, 4);
        slots.start(own, Role::Publisher).unwrap();
        assert_eq!(
            slots.counts(),
            SlotCounts {
                pending: 3,
                players: 0,
                publishers: 1
            }
        );
    }

    #[test]
    fn between_equally_busy_addresses_the_oldest_goes() {
        let mut slots = slots(100, 3, 10);
        slots.admit(ip("192.0.2.1"), 1).unwrap();
        slots.admit(ip("192.0.2.2"), 2).unwrap();
        slots.admit(ip("192.0.2.3"), 3).unwrap();
        assert_eq!(slots.admit(ip("192.0.2.4"), 4).unwrap().evicted, Some(1));
        assert_eq!(slots.admit(ip("192.0.2.5"), 5).unwrap().evicted, Some(2));
        assert_eq!(slots.open_from(ip("192.0.2.1")), 0);
    }

    #[test]
    fn an_evicted_connection_cannot_start_and_its_close_is_harmless() {
        let mut slots = slots(100, 1, 10);
        let first = slots.admit(ip("192.0.2.1"), 1).unwrap().id;
        let second = slots.admit(ip("192.0.2.2"), 2).unwrap();
        assert_eq!(second.evicted, Some(1));
        assert_eq!(slots.start(first, Role::Publisher), Err(SlotError::Evicted));
        slots.close(first);
        assert_eq!(slots.counts().pending, 1);
        slots.close(second.id);
        assert_eq!(slots.counts().pending, 0);
        assert!(slots.addresses.is_empty() && slots.connections.is_empty());
    }

    #[test]
    fn players_are_capped_but_publishers_always_start() {
        let mut slots = slots(100, 10, 2);
        for n in 0..2 {
            let id = slots.admit(ip("192.0.2.1"), n).unwrap().id;
            slots.start(id, Role::Player).unwrap();
        }
        let third = slots.admit(ip("192.0.2.2"), 9).unwrap().id;
        let err = slots.start(third, Role::Player).unwrap_err();
        assert_eq!(err, SlotError::Players { players: 2 });
        assert!(err.to_string().contains("rtmp_max_connections"), "{err}");
        slots.start(third, Role::Publisher).unwrap();
        assert_eq!(
            slots.start(third, Role::Player),
            Ok(()),
            "starting twice changes nothing"
        );
        assert_eq!(
            slots.counts(),
            SlotCounts {
                pending: 0,
                players: 2,
                publishers: 1
            }
        );
    }

    #[test]
    fn counts_return_to_zero_whatever_the_order() {
        let mut slots = slots(3, 5, 4);
        let mut ids = Vec::new();
        for n in 0..40u32 {
            let address = ip(&format!("192.0.2.{}", n % 7));
            if let Ok(admitted) = slots.admit(address, n) {
                if n % 3 == 0 {
                    let role = if n % 2 == 0 {
                        Role::Player
                    } else {
                        Role::Publisher
                    };
                    let _ = slots.start(admitted.id, role);
                }
                ids.push(admitted.id);
            }
            if n % 5 == 0
                && let Some(id) = ids.pop()
            {
                slots.close(id);
            }
        }
        for id in ids {
            slots.close(id);
        }
        assert_eq!(
            slots.counts(),
            SlotCounts {
                pending: 0,
                players: 0,
                publishers: 0
            }
        );
        assert!(slots.addresses.is_empty() && slots.connections.is_empty());
    }
}
