//! One UDP port for every WebRTC session.
//!
//! The `webrtc` crate binds a UDP socket per peer connection, so every viewer
//! would need a port of their own, and a node behind a load balancer a whole
//! range. Its I/O goes through a [`Runtime`], though, and that is where the
//! sessions are folded onto one socket:
//!
//! - A peer connection still binds its own ephemeral socket. [`MuxRuntime`]
//!   keeps that socket only to reserve a unique address (the name the ICE
//!   agent gives its host candidate) and hands back a [`SessionSocket`] whose
//!   datagrams all travel through the shared socket.
//! - The WHEP answer's host candidates are rewritten to the shared port, and
//!   the answer's ICE ufrag is tied to the session's reserved address.
//! - An incoming datagram finds its session by its remote address. The first
//!   one from a new remote is always an ICE connectivity check (a STUN Binding
//!   request) whose USERNAME starts with our ufrag (RFC 8445, 7.2.2); that
//!   teaches the route. A STUN request the session sends teaches it too, so
//!   the answers to the server's own checks come home.
//!
//! The port is open to anyone. A datagram from an address without a route
//! costs a look at its first 20 bytes and, for a Binding request, a walk over
//! its attributes ([`stun_local_ufrag`]); then it is dropped. Routes are
//! learned before the session's ICE agent has checked the request's
//! MESSAGE-INTEGRITY, so each session may learn at most
//! `whep_max_remotes_per_session` of them, and they go with the session.
//! Each session's ICE-TCP listener is capped the same way
//! (`whep_max_tcp_per_session`), and a silent TCP connection is closed.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Datagrams waiting for one session before new ones are dropped (UDP may drop).
const SESSION_QUEUE: usize = 512;
/// Large enough for a GRO batch of full-size datagrams.
const RECV_BUFFER: usize = 64 * 1024;
/// An ICE-TCP connection silent this long is closed: a connected viewer sends
/// consent checks every 5 s or so (RFC 7675, 5.1) and RTCP more often.
const TCP_IDLE: Duration = Duration::from_secs(30);

/// What one session may hold on the shared port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxLimits {
    /// Remote addresses routed to one session.
    pub max_remotes_per_session: usize,
    /// ICE-TCP connections open at once to one session's listener.
    pub max_tcp_per_session: usize,
}

impl From<&super::limits::WhepLimits> for MuxLimits {
    fn from(limits: &super::limits::WhepLimits) -> Self {
        Self {
            max_remotes_per_session: limits.whep_max_remotes_per_session,
            max_tcp_per_session: limits.whep_max_tcp_per_session,
        }
    }
}

/// The shared socket and the routes from remote addresses to sessions.
pub struct UdpMux {
    socket: Arc<dyn AsyncUdpSocket>,
    local: SocketAddr,
    limits: MuxLimits,
    routes: Mutex<Routes>,
    /// Datagrams dropped on a full session queue since the start.
    dropped: AtomicU64,
}

/// One session socket's place in the routes. It records its own entries in
/// the maps below, so that it leaves them in a few steps however many
/// sessions there are (every datagram waits on the lock meanwhile).
struct SessionRoute {
    inbox: mpsc::Sender<Datagram>,
    /// Its keys in `Routes::remotes` (at most `max_remotes_per_session`).
    remotes: Vec<(SocketAddr, IpAddr)>,
    /// The ufrag of the answer that claimed it, once one did.
    ufrag: Option<String>,
}

#[derive(Default)]
struct Routes {
    /// Every session socket, by its reserved address.
    sessions: HashMap<SocketAddr, SessionRoute>,
    /// Session sockets no answer has claimed yet, by port: an answer names
    /// its sockets by the port of its host candidates.
    unclaimed: HashMap<u16, Vec<SocketAddr>>,
    /// Session sockets whose answer has gone out, by the answer's ICE ufrag.
    ufrags: HashMap<String, Vec<SocketAddr>>,
    /// (remote address, our IP it talks to) → the session socket.
    remotes: HashMap<(SocketAddr, IpAddr), SocketAddr>,
}

struct Datagram {
    from: SocketAddr,
    data: Bytes,
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
        // Tokio's socket through the crate's own wrapper: it reports each
        // datagram's destination IP and can choose the source IP, which a
        // socket on 0.0.0.0 needs to answer from the address it was asked on.
        let socket = TokioRuntime.wrap_udp_socket(socket)?;
        Ok(Arc::new(Self {
            socket,
            local,
            limits,
            routes: Mutex::default(),
            dropped: AtomicU64::new(0),
        }))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The runtime peer connections must be built with to use this socket.
    pub fn runtime(self: &Arc<Self>) -> Arc<dyn Runtime> {
        Arc::new(MuxRuntime {
            mux: Arc::clone(self),
        })
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Our IP a session socket's traffic uses on the shared socket.
    fn local_ip_for(&self, reserved: SocketAddr) -> IpAddr {
        if self.local.ip().is_unspecified() {
            reserved.ip()
        } else {
            self.local.ip()
        }
    }

    /// Ties the answer's ICE ufrag to the session sockets its host candidates
    /// name, and returns the answer with those candidates on the shared port.
    pub fn route_answer(&self, answer: &str) -> String {
        let Some(ufrag) = sdp_ice_ufrag(answer) else {
            return answer.to_string();
        };
        let ports = sdp_udp_candidate_ports(answer);
        let mine = self.routes().claim(ufrag, &ports);
        debug!(ufrag, sockets = ?mine, "WebRTC session routed through the shared UDP port");
        rewrite_udp_candidate_ports(answer, &ports, self.local.port())
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

    fn deliver(&self, from: SocketAddr, dst: IpAddr, datagram: &[u8]) {
        let dst = if self.local.ip().is_unspecified() {
            dst
        } else {
            self.local.ip()
        };
        let mut routes = self.routes();
        let max = self.limits.max_remotes_per_session;
        let Some(session) = routes.route(from, dst, datagram, self.local.ip(), max) else {
            return;
        };
        let Some(route) = routes.sessions.get(&session) else {
            return;
        };
        // Full queue: drop, as a congested network would, and say so.
        let sent = route.inbox.try_send(Datagram {
            from,
            data: Bytes::copy_from_slice(datagram),
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

    fn register(&self, reserved: SocketAddr) -> mpsc::Receiver<Datagram> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.routes().register(reserved, tx);
        rx
    }

    fn learn(&self, remote: SocketAddr, reserved: SocketAddr) {
        let key = (remote, self.local_ip_for(reserved));
        let max = self.limits.max_remotes_per_session;
        self.routes().add_remote(key, reserved, max);
    }

    fn forget(&self, reserved: SocketAddr) {
        self.routes().forget(reserved);
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

impl Routes {
    fn register(&mut self, reserved: SocketAddr, inbox: mpsc::Sender<Datagram>) {
        self.forget(reserved);
        self.sessions.insert(
            reserved,
            SessionRoute {
                inbox,
                remotes: Vec::new(),
                ufrag: None,
            },
        );
        self.unclaimed
            .entry(reserved.port())
            .or_default()
            .push(reserved);
    }

    /// Ties `ufrag` to the unclaimed session sockets on `ports`, and returns
    /// them.
    fn claim(&mut self, ufrag: &str, ports: &[u16]) -> Vec<SocketAddr> {
        let mine: Vec<SocketAddr> = ports
            .iter()
            .filter_map(|port| self.unclaimed.remove(port))
            .flatten()
            .collect();
        for socket in &mine {
            if let Some(route) = self.sessions.get_mut(socket) {
                route.ufrag = Some(ufrag.to_string());
            }
        }
        if !mine.is_empty() {
            self.ufrags
                .entry(ufrag.to_string())
                .or_default()
                .extend(&mine);
        }
        mine
    }

    /// Removes a session socket and every entry that leads to it.
    fn forget(&mut self, reserved: SocketAddr) {
        let Some(route) = self.sessions.remove(&reserved) else {
            return;
        };
        for key in &route.remotes {
            self.remotes.remove(key);
        }
        let without = |sockets: &mut Vec<SocketAddr>| {
            sockets.retain(|s| *s != reserved);
            sockets.is_empty()
        };
        if let Some(ufrag) = &route.ufrag {
            if self.ufrags.get_mut(ufrag).is_some_and(without) {
                self.ufrags.remove(ufrag);
            }
        } else if self
            .unclaimed
            .get_mut(&reserved.port())
            .is_some_and(without)
        {
            self.unclaimed.remove(&reserved.port());
        }
    }

    /// The session a datagram from `from` to our `dst` belongs to: the route
    /// already learned, or the one a Binding request's ufrag names (learned
    /// then, up to `max` per session). `None` drops it: a scan, junk, or a
    /// session already gone. `local` is the shared socket's IP.
    fn route(
        &mut self,
        from: SocketAddr,
        dst: IpAddr,
        datagram: &[u8],
        local: IpAddr,
        max: usize,
    ) -> Option<SocketAddr> {
        if let Some(&session) = self.remotes.get(&(from, dst)) {
            return Some(session);
        }
        let ufrag = stun_local_ufrag(datagram)?;
        let sockets = self.ufrags.get(ufrag)?;
        let ip_of = |s: &SocketAddr| {
            if local.is_unspecified() {
                s.ip()
            } else {
                local
            }
        };
        let session = sockets
            .iter()
            .find(|s| ip_of(s) == dst)
            .or(sockets.first())
            .copied()?;
        self.add_remote((from, dst), session, max)
            .then_some(session)
    }

    /// Routes `key` to `session` unless it has `max` remotes already; false
    /// when the datagram should be dropped.
    fn add_remote(&mut self, key: (SocketAddr, IpAddr), session: SocketAddr, max: usize) -> bool {
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
                format_args!("session {session} already has {max} remote addresses"),
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
    routes.register(local, inbox);
    routes.claim(ufrag, &[local.port()]);
    let routed = datagrams
        .into_iter()
        .filter(|(from, datagram)| {
            routes
                .route(*from, local.ip(), datagram, local.ip(), max_remotes)
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

/// One peer connection's view of the shared socket.
struct SessionSocket {
    mux: Arc<UdpMux>,
    /// Held only so that no other socket takes this address.
    _reserved: std::net::UdpSocket,
    addr: SocketAddr,
    inbox: Mutex<mpsc::Receiver<Datagram>>,
}

impl fmt::Debug for SessionSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSocket")
            .field("addr", &self.addr)
            .field("shared", &self.mux.local)
            .finish()
    }
}

impl Drop for SessionSocket {
    fn drop(&mut self) {
        self.mux.forget(self.addr);
    }
}

impl AsyncUdpSocket for SessionSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if is_stun(transmit.contents) {
            self.mux.learn(transmit.destination, self.addr);
        }
        let src_ip = if self.mux.local.ip().is_unspecified() {
            Some(self.addr.ip())
        } else {
            transmit.src_ip
        };
        let transmit = Transmit {
            destination: transmit.destination,
            ecn: transmit.ecn,
            contents: transmit.contents,
            segment_size: transmit.segment_size,
            src_ip,
        };
        self.mux.socket.poll_send(cx, &transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let capacity = bufs.len().min(meta.len());
        if capacity == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        let mut filled = 0;
        while filled < capacity {
            let datagram = if filled == 0 {
                match inbox.poll_recv(cx) {
                    Poll::Ready(Some(datagram)) => datagram,
                    Poll::Ready(None) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::NotConnected,
                            "the shared WebRTC socket is closed",
                        )));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                match inbox.try_recv() {
                    Ok(datagram) => datagram,
                    Err(_) => break,
                }
            };
            let len = datagram.data.len().min(bufs[filled].len());
            bufs[filled][..len].copy_from_slice(&datagram.data[..len]);
            let mut m = RecvMeta::default();
            m.addr = datagram.from;
            m.len = len;
            m.stride = len.max(1);
            m.dst_ip = Some(self.addr.ip());
            meta[filled] = m;
            filled += 1;
        }
        Poll::Ready(Ok(filled))
    }
}

/// Tokio, except that UDP sockets become [`SessionSocket`]s on the mux.
#[derive(Debug)]
struct MuxRuntime {
    mux: Arc<UdpMux>,
}

impl Runtime for MuxRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let addr = socket.local_addr()?;
        let inbox = self.mux.register(addr);
        Ok(Arc::new(SessionSocket {
            mux: Arc::clone(&self.mux),
            _reserved: socket,
            addr,
            inbox: Mutex::new(inbox),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        Ok(Arc::new(CappedListener {
            inner: TokioRuntime.wrap_tcp_listener(listener)?,
            open: Arc::default(),
            max: self.mux.limits.max_tcp_per_session,
        }))
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        TokioRuntime.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        TokioRuntime.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future);
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio, one UDP port"
    }
}

/// A session's ICE-TCP listener that keeps at most `max` connections open:
/// its port is in the answer, and the `webrtc` crate would hold every
/// connection anyone makes until its peer closes it.
#[derive(Debug)]
struct CappedListener {
    inner: Arc<dyn AsyncTcpListener>,
    open: Arc<AtomicUsize>,
    max: usize,
}

impl AsyncTcpListener for CappedListener {
    fn accept<'a>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = io::Result<(Arc<dyn AsyncTcpStream>, SocketAddr)>> + Send + 'a>>
    {
        Box::pin(async move {
            loop {
                let (stream, peer) = self.inner.accept().await?;
                if self.open.load(Ordering::Acquire) >= self.max {
                    crate::limits::refused(
                        peer,
                        "whep_max_tcp_per_session",
                        format_args!("{} ICE-TCP connections are open already", self.max),
                    );
                    continue;
                }
                self.open.fetch_add(1, Ordering::AcqRel);
                let counted: Arc<dyn AsyncTcpStream> = Arc::new(CountedStream {
                    inner: stream,
                    open: Arc::clone(&self.open),
                });
                return Ok((counted, peer));
            }
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted ICE-TCP connection, counted while it lives, that reads as
/// closed once its peer has been silent for [`TCP_IDLE`].
#[derive(Debug)]
struct CountedStream {
    inner: Arc<dyn AsyncTcpStream>,
    open: Arc<AtomicUsize>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncTcpStream for CountedStream {
    fn read<'a, 'b>(
        &'a self,
        buf: &'b mut [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<usize>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            // End of stream, which makes the crate drop the connection.
            tokio::time::timeout(TCP_IDLE, self.inner.read(buf))
                .await
                .unwrap_or(Ok(0))
        })
    }

    fn write_all<'a, 'b>(
        &'a self,
        buf: &'b [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'b>>
    where
        'a: 'b,
    {
        self.inner.write_all(buf)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
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

fn sdp_ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:"))
}

/// `a=candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ ...`
fn udp_candidate_port(line: &str) -> Option<u16> {
    let fields: Vec<&str> = line
        .trim_end()
        .strip_prefix("a=candidate:")?
        .split(' ')
        .collect();
    if fields.len() < 6 || !fields[2].eq_ignore_ascii_case("udp") {
        return None;
    }
    fields[5].parse().ok()
}

fn sdp_udp_candidate_ports(sdp: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = sdp.lines().filter_map(udp_candidate_port).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The SDP with every UDP candidate on one of `ports` moved to `shared`.
fn rewrite_udp_candidate_ports(sdp: &str, ports: &[u16], shared: u16) -> String {
    sdp.split_inclusive('\n')
        .map(|line| match udp_candidate_port(line) {
            Some(port) if ports.contains(&port) => {
                let mut fields: Vec<&str> = line.split(' ').collect();
                let shared = shared.to_string();
                fields[5] = &shared;
                fields.join(" ")
            }
            _ => line.to_string(),
        })
        .collect()
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
        for port in 10_000..10_000 + count {
            let (tx, rx) = mpsc::channel(1);
            inboxes.push(rx);
            let reserved = SocketAddr::new(ip, port);
            routes.register(reserved, tx);
            let ufrag = format!("u{port}");
            // Each answer claims its own socket, never another's.
            assert_eq!(routes.claim(&ufrag, &[port]), vec![reserved]);
            assert!(routes.claim("late", &[port]).is_empty());
            for remote in 0..3 {
                let from = SocketAddr::new("198.51.100.7".parse().unwrap(), port + remote * 10_000);
                let request = binding_request(&format!("{ufrag}:remote"));
                assert_eq!(routes.route(from, ip, &request, ip, 16), Some(reserved));
            }
        }
        assert_eq!(routes.remotes.len(), 3 * usize::from(count));
        for port in 10_000..10_000 + count {
            routes.forget(SocketAddr::new(ip, port));
        }
        // Quadratic bookkeeping would take minutes here.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(routes.sessions.is_empty());
        assert!(routes.remotes.is_empty());
        assert!(routes.ufrags.is_empty() && routes.unclaimed.is_empty());
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

    const ANSWER: &str = "v=0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 106\r\n\
        a=ice-ufrag:AbCd\r\n\
        a=candidate:1 1 udp 2130706431 192.0.2.1 40123 typ host\r\n\
        a=candidate:2 1 tcp 1671430143 192.0.2.1 40999 typ host tcptype passive\r\n\
        a=candidate:3 1 UDP 2130706431 10.0.0.5 40124 typ host\r\n";

    #[test]
    fn moves_udp_candidates_to_the_shared_port() {
        assert_eq!(sdp_ice_ufrag(ANSWER), Some("AbCd"));
        let ports = sdp_udp_candidate_ports(ANSWER);
        assert_eq!(ports, vec![40123, 40124]);
        let moved = rewrite_udp_candidate_ports(ANSWER, &ports, 8189);
        assert!(moved.contains("a=candidate:1 1 udp 2130706431 192.0.2.1 8189 typ host\r\n"));
        assert!(moved.contains("a=candidate:3 1 UDP 2130706431 10.0.0.5 8189 typ host\r\n"));
        // ICE-TCP keeps its own listener.
        assert!(moved.contains("192.0.2.1 40999 typ host tcptype passive\r\n"));
        assert!(moved.starts_with("v=0\r\nm=video 9 "));
    }
}
