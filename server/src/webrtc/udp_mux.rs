//! One UDP port for every WebRTC session.
//!
//! Every session's host candidates name this one port, so a node behind a
//! load balancer or a firewall needs one UDP port open, not a range. Each
//! session registers the ICE ufrag of its answer and gets a [`SessionPort`]:
//! an inbox of the datagrams meant for it and a way to send on the shared
//! socket (several datagrams to one peer in one `sendmsg` with UDP GSO).
//!
//! An incoming datagram finds its session by its remote address. The first
//! one from a new remote is always an ICE connectivity check (a STUN Binding
//! request) whose USERNAME starts with our ufrag (RFC 8445, 7.2.2); that
//! teaches the route. A STUN request the session sends teaches it too, so the
//! answers to the server's own checks come home.
//!
//! The port is open to anyone. A datagram from an address without a route
//! costs a look at its first 20 bytes and, for a Binding request, a walk over
//! its attributes ([`stun_local_ufrag`]); then it is dropped. Routes are
//! learned before the session's ICE agent has checked the request's
//! MESSAGE-INTEGRITY, so each session may learn at most
//! `whep_max_remotes_per_session` of them, and they go with the session.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use webrtc::runtime::{AsyncUdpSocket, RecvMeta, Runtime, TokioRuntime, Transmit};

/// Datagrams waiting for one session before new ones are dropped (UDP may drop).
const SESSION_QUEUE: usize = 512;
/// Large enough for a GRO batch of full-size datagrams.
const RECV_BUFFER: usize = 64 * 1024;

/// What one session may hold on the shared port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxLimits {
    /// Remote addresses routed to one session.
    pub max_remotes_per_session: usize,
}

impl From<&super::limits::WhepLimits> for MuxLimits {
    fn from(limits: &super::limits::WhepLimits) -> Self {
        Self {
            max_remotes_per_session: limits.whep_max_remotes_per_session,
        }
    }
}

/// The shared socket and the routes from remote addresses to sessions.
pub struct UdpMux {
    socket: Arc<dyn AsyncUdpSocket>,
    local: SocketAddr,
    limits: MuxLimits,
    routes: Mutex<Routes>,
    next_id: AtomicU64,
    /// Datagrams dropped on a full session queue since the start.
    dropped: AtomicU64,
}

/// One session's place in the routes. It records its own entries in the map
/// of remotes, so that it leaves them in a few steps however many sessions
/// there are (every datagram waits on the lock meanwhile).
struct SessionRoute {
    inbox: mpsc::Sender<Datagram>,
    /// Its keys in `Routes::remotes` (at most `max_remotes_per_session`).
    remotes: Vec<(SocketAddr, IpAddr)>,
    ufrag: String,
}

#[derive(Default)]
struct Routes {
    /// Every session, by its id.
    sessions: HashMap<u64, SessionRoute>,
    /// Sessions by the ICE ufrag of their answer.
    ufrags: HashMap<String, u64>,
    /// (remote address, our IP it talks to) → the session.
    remotes: HashMap<(SocketAddr, IpAddr), u64>,
}

/// A datagram for a session: who sent it, to which of our IPs, and what
/// (copied once off the receive buffer, in the form the peer connection reads).
pub struct Datagram {
    pub from: SocketAddr,
    pub to: IpAddr,
    pub data: BytesMut,
}

impl fmt::Debug for UdpMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpMux")
            .field("local", &self.local)
            .finish()
    }
}

impl UdpMux {
    /// Takes over a bound socket. Call inside the Tokio runtime.
    ///
    /// # Errors
    /// The socket cannot be registered with the runtime.
    pub fn new(socket: std::net::UdpSocket, limits: MuxLimits) -> io::Result<Arc<Self>> {
        let local = socket.local_addr()?;
        // Tokio's socket through the webrtc crate's wrapper (quinn-udp): it
        // reports each datagram's destination IP, can choose the source IP
        // (which a socket on 0.0.0.0 needs to answer from the address it was
        // asked on) and sends GSO batches.
        let socket = TokioRuntime.wrap_udp_socket(socket)?;
        Ok(Arc::new(Self {
            socket,
            local,
            limits,
            routes: Mutex::default(),
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
        }))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session's place on the port, found by the ICE ufrag of its answer.
    /// `None` if another session has that ufrag already.
    pub fn register(self: &Arc<Self>, ufrag: &str) -> Option<SessionPort> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, inbox) = mpsc::channel(SESSION_QUEUE);
        self.routes().register(id, ufrag, tx).then(|| SessionPort {
            mux: Arc::clone(self),
            id,
            inbox,
        })
    }

    /// Receives on the shared socket and hands each datagram to its session
    /// until `token` is cancelled.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let mut buffer = vec![0u8; RECV_BUFFER];
        loop {
            let mut meta = [RecvMeta::default()];
            let received = {
                let recv = std::future::poll_fn(|cx| {
                    let mut bufs = [IoSliceMut::new(&mut buffer)];
                    self.socket.poll_recv(cx, &mut bufs, &mut meta)
                });
                tokio::select! {
                    () = token.cancelled() => return,
                    received = recv => received,
                }
            };
            match received {
                Ok(0) => {}
                Ok(_) => {
                    let meta = meta[0];
                    let dst = meta.dst_ip.unwrap_or(self.local.ip());
                    // A GRO batch holds several datagrams of `stride` bytes.
                    for datagram in buffer[..meta.len].chunks(meta.stride.max(1)) {
                        self.deliver(meta.addr, dst, datagram);
                    }
                }
                Err(err) if is_transient(&err) => {}
                Err(err) => {
                    warn!(%err, addr = %self.local, "WebRTC UDP socket failed; retrying");
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }

    fn our_ip(&self, dst: IpAddr) -> IpAddr {
        if self.local.ip().is_unspecified() {
            dst
        } else {
            self.local.ip()
        }
    }

    fn deliver(&self, from: SocketAddr, dst: IpAddr, datagram: &[u8]) {
        let dst = self.our_ip(dst);
        let mut routes = self.routes();
        let max = self.limits.max_remotes_per_session;
        let Some(session) = routes.route(from, dst, datagram, max) else {
            return;
        };
        let Some(route) = routes.sessions.get(&session) else {
            return;
        };
        // Full queue: drop, as a congested network would, and say so.
        let sent = route.inbox.try_send(Datagram {
            from,
            to: dst,
            data: BytesMut::from(datagram),
        });
        if let Err(mpsc::error::TrySendError::Full(_)) = sent {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            crate::limits::warn_every(
                "webrtc_inbox_full",
                format_args!(
                    "WebRTC: a session's inbound queue ({SESSION_QUEUE} datagrams) is full; \
                     a datagram from {from} was dropped, {dropped} since the start (the \
                     server is short of CPU)"
                ),
            );
        }
    }

    /// Remote addresses routed to sessions (for tests and logs).
    pub fn remotes(&self) -> usize {
        self.routes().remotes.len()
    }

    /// Sessions currently routed (for tests and logs).
    pub fn sessions(&self) -> usize {
        self.routes().sessions.len()
    }
}

/// A session's inbox on the shared port, and its way out. The session's
/// routes go when it is dropped.
pub struct SessionPort {
    mux: Arc<UdpMux>,
    id: u64,
    pub inbox: mpsc::Receiver<Datagram>,
}

impl SessionPort {
    /// The shared port's number, for the session's host candidates.
    pub fn port(&self) -> u16 {
        self.mux.local.port()
    }

    /// Most datagrams one [`send`](Self::send) may carry.
    pub fn max_segments(&self) -> usize {
        self.mux.socket.max_gso_segments()
    }

    /// Sends `contents` from our `from` IP to `to`: one datagram, or with
    /// `segment` several of that size (the last may be shorter). A STUN
    /// request the session sends teaches the route its answer comes back on.
    pub async fn send(
        &self,
        from: IpAddr,
        to: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
    ) {
        if segment.is_none() && is_stun(contents) {
            let max = self.mux.limits.max_remotes_per_session;
            let key = (to, self.mux.our_ip(from));
            self.mux.routes().add_remote(key, self.id, max);
        }
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: self.mux.local.ip().is_unspecified().then_some(from),
        };
        let sent = std::future::poll_fn(|cx| self.mux.socket.poll_send(cx, &transmit)).await;
        if let Err(err) = sent {
            // UDP may drop; a viewer that is gone ends by its consent checks.
            if !is_transient(&err) {
                crate::limits::warn_every(
                    "webrtc_send_failed",
                    format_args!("WebRTC: sending to {to} failed: {err}"),
                );
            }
        }
    }
}

impl Drop for SessionPort {
    fn drop(&mut self) {
        self.mux.routes().forget(self.id);
    }
}

impl Routes {
    /// False if the ufrag is taken.
    fn register(&mut self, id: u64, ufrag: &str, inbox: mpsc::Sender<Datagram>) -> bool {
        if self.ufrags.contains_key(ufrag) {
            return false;
        }
        self.ufrags.insert(ufrag.to_string(), id);
        self.sessions.insert(
            id,
            SessionRoute {
                inbox,
                remotes: Vec::new(),
                ufrag: ufrag.to_string(),
            },
        );
        true
    }

    /// Removes a session and every entry that leads to it.
    fn forget(&mut self, id: u64) {
        let Some(route) = self.sessions.remove(&id) else {
            return;
        };
        for key in &route.remotes {
            self.remotes.remove(key);
        }
        self.ufrags.remove(&route.ufrag);
    }

    /// The session a datagram from `from` to our `dst` belongs to: the route
    /// already learned, or the one a Binding request's ufrag names (learned
    /// then, up to `max` per session). `None` drops it: a scan, junk, or a
    /// session already gone.
    fn route(&mut self, from: SocketAddr, dst: IpAddr, datagram: &[u8], max: usize) -> Option<u64> {
        if let Some(&session) = self.remotes.get(&(from, dst)) {
            return Some(session);
        }
        let ufrag = stun_local_ufrag(datagram)?;
        let session = *self.ufrags.get(ufrag)?;
        self.add_remote((from, dst), session, max)
            .then_some(session)
    }

    /// Routes `key` to `session` unless it has `max` remotes already; false
    /// when the datagram should be dropped.
    fn add_remote(&mut self, key: (SocketAddr, IpAddr), session: u64, max: usize) -> bool {
        if let Some(&current) = self.remotes.get(&key) {
            if current == session {
                return true;
            }
            // The remote moved to another session: it leaves the old one.
            if let Some(old) = self.sessions.get_mut(&current) {
                old.remotes.retain(|k| *k != key);
            }
            self.remotes.remove(&key);
        }
        let Some(route) = self.sessions.get_mut(&session) else {
            return false;
        };
        if route.remotes.len() >= max {
            crate::limits::refused(
                key.0,
                "whep_max_remotes_per_session",
                format_args!("a WebRTC session already has {max} remote addresses"),
            );
            return false;
        }
        route.remotes.push(key);
        self.remotes.insert(key, session);
        true
    }
}

/// The demux of the shared port without a socket, for fuzzing: one session
/// with the ICE ufrag `ufrag` on `local`, and `datagrams` (sender, bytes)
/// routed in turn. Returns how many were routed to the session and how many
/// remote addresses it learned, which never exceeds `max_remotes`.
#[doc(hidden)]
pub fn demux_for_fuzz<'a>(
    ufrag: &str,
    local: SocketAddr,
    datagrams: impl IntoIterator<Item = (SocketAddr, &'a [u8])>,
    max_remotes: usize,
) -> (usize, usize) {
    let mut routes = Routes::default();
    let (inbox, _rx) = mpsc::channel(1);
    routes.register(1, ufrag, inbox);
    let routed = datagrams
        .into_iter()
        .filter(|(from, datagram)| {
            routes
                .route(*from, local.ip(), datagram, max_remotes)
                .is_some()
        })
        .count();
    (routed, routes.remotes.len())
}

/// What the driver treats as a passing hiccup of a socket shared by many peers.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// STUN messages start with two zero bits and carry the magic cookie
/// (RFC 8489, 5); RTP, RTCP and DTLS never do.
pub fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet[0] & 0xC0 == 0 && packet[4..8] == [0x21, 0x12, 0xA4, 0x42]
}

/// The receiver's ufrag from a STUN Binding request's USERNAME
/// (`RECEIVER:SENDER`, RFC 8445, 7.2.2).
pub fn stun_local_ufrag(packet: &[u8]) -> Option<&str> {
    const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
    const USERNAME: u16 = 0x0006;
    if !is_stun(packet) || packet[0..2] != BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let mut attributes = packet.get(20..20 + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        // Attributes are padded to four bytes.
        attributes = attributes.get(4 + len.next_multiple_of(4)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request as Chromium sends it: USERNAME, then other attributes.
    fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        attrs.resize(attrs.len().next_multiple_of(4), 0);
        // PRIORITY
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6e, 0x7f, 0x1e, 0xff]);
        let mut packet = vec![0x00, 0x01];
        packet.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        packet.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        packet.extend_from_slice(&[7; 12]);
        packet.extend_from_slice(&attrs);
        packet
    }

    /// Bytes that look random, the same every run (xorshift).
    fn junk(seed: u64, count: usize) -> Vec<Vec<u8>> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 1500) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                // Half of them dressed as STUN, to reach the attribute walk.
                if next() % 2 == 0 && bytes.len() >= 8 {
                    bytes[0] &= 0x3f;
                    bytes[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
                    if next() % 2 == 0 {
                        bytes[0..2].copy_from_slice(&[0x00, 0x01]);
                    }
                }
                bytes
            })
            .collect()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 9], port))
    }

    #[test]
    fn every_cut_and_every_lying_length_of_a_binding_request_is_dropped() {
        let packet = binding_request("srvUfrag:brwsr");
        for len in 0..packet.len() {
            let cut = &packet[..len];
            // Cut inside the PRIORITY attribute the USERNAME is still whole,
            // but the header's length now lies.
            assert_eq!(stun_local_ufrag(cut), None, "cut at {len}");
        }
        for length in [0u16, 3, 4, 19, 23, 24, 0xfffc, 0xffff] {
            let mut lying = packet.clone();
            lying[2..4].copy_from_slice(&length.to_be_bytes());
            let _ = stun_local_ufrag(&lying);
        }
        for attribute_length in [0u16, 1, 13, 15, 16, 0x7fff, 0xffff] {
            let mut lying = packet.clone();
            lying[22..24].copy_from_slice(&attribute_length.to_be_bytes());
            let ufrag = stun_local_ufrag(&lying);
            assert!(
                ufrag.is_none_or(|u| "srvUfrag:brwsr".starts_with(u)),
                "{ufrag:?}"
            );
        }
        let mut not_utf8 = binding_request("srvUfrag:brwsr");
        not_utf8[24] = 0xff;
        assert_eq!(stun_local_ufrag(&not_utf8), None);
        // A zero-length USERNAME names no session.
        assert_eq!(stun_local_ufrag(&binding_request("")), Some(""));
    }

    #[test]
    fn junk_from_anywhere_is_dropped_and_learns_nothing() {
        let datagrams = junk(0x7153e1, 20_000);
        let started = std::time::Instant::now();
        let (routed, learned) = demux_for_fuzz(
            "srvUfrag",
            "127.0.0.1:8189".parse().unwrap(),
            datagrams
                .iter()
                .enumerate()
                .map(|(i, d)| (addr(i as u16), d.as_slice())),
            16,
        );
        assert_eq!((routed, learned), (0, 0));
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "20,000 datagrams took {took:?}"
        );
    }

    #[test]
    fn a_session_learns_at_most_its_cap_of_remote_addresses() {
        let request = binding_request("srvUfrag:brwsr");
        let from_many = (0..1000u16).map(|port| (addr(port), request.as_slice()));
        let (routed, learned) =
            demux_for_fuzz("srvUfrag", "127.0.0.1:8189".parse().unwrap(), from_many, 16);
        assert_eq!((routed, learned), (16, 16));
        // A learned remote keeps its route, whatever it sends next.
        let again = [(addr(3), request.as_slice()), (addr(3), &b"junk"[..])];
        let (routed, learned) =
            demux_for_fuzz("srvUfrag", "127.0.0.1:8189".parse().unwrap(), again, 16);
        assert_eq!((routed, learned), (2, 1));
        let wrong = [(addr(1), binding_request("other:brwsr"))];
        let (routed, _) = demux_for_fuzz(
            "srvUfrag",
            "127.0.0.1:8189".parse().unwrap(),
            wrong.iter().map(|(a, d)| (*a, d.as_slice())),
            16,
        );
        assert_eq!(routed, 0);
    }

    #[test]
    fn thousands_of_sessions_come_and_go_in_steps_that_do_not_grow_with_them() {
        let mut routes = Routes::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut inboxes = Vec::new();
        let count = 4000u16;
        let started = std::time::Instant::now();
        for id in 0..u64::from(count) {
            let (tx, rx) = mpsc::channel(1);
            inboxes.push(rx);
            let ufrag = format!("u{id}");
            assert!(routes.register(id, &ufrag, tx.clone()));
            // A ufrag names one session only.
            assert!(!routes.register(id + 100_000, &ufrag, tx));
            for remote in 0..3u16 {
                let port = 10_000 + id as u16 + remote * 10_000;
                let from = SocketAddr::new("198.51.100.7".parse().unwrap(), port);
                let request = binding_request(&format!("{ufrag}:remote"));
                assert_eq!(routes.route(from, ip, &request, 16), Some(id));
            }
        }
        assert_eq!(routes.remotes.len(), 3 * usize::from(count));
        for id in 0..u64::from(count) {
            routes.forget(id);
        }
        // Quadratic bookkeeping would take minutes here.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(routes.sessions.is_empty());
        assert!(routes.remotes.is_empty());
        assert!(routes.ufrags.is_empty());
    }

    #[test]
    fn finds_our_ufrag_in_a_binding_request() {
        let packet = binding_request("srvUfrag:brwsr");
        assert_eq!(stun_local_ufrag(&packet), Some("srvUfrag"));
    }

    #[test]
    fn ignores_what_is_not_a_binding_request() {
        let rtp = [
            0x80, 0x60, 0, 1, 0, 0, 0, 1, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(stun_local_ufrag(&rtp), None);
        assert!(!is_stun(&rtp));
        let mut response = binding_request("a:b");
        response[0..2].copy_from_slice(&[0x01, 0x01]);
        assert!(is_stun(&response));
        assert_eq!(stun_local_ufrag(&response), None);
        let mut truncated = binding_request("srvUfrag:brwsr");
        truncated.truncate(26);
        assert_eq!(stun_local_ufrag(&truncated), None);
    }
}
