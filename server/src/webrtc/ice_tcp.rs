//! ICE-TCP (RFC 6544) for viewers on networks that block UDP: each session
//! listens on a port of its own, offered as a passive TCP candidate, and its
//! datagrams travel framed with a two-byte length (RFC 4571).
//!
//! The listener's port is in the answer, so anyone may connect to it: a
//! session keeps at most `whep_max_tcp_per_session` connections open, and a
//! connection silent for [`TCP_IDLE`] is closed.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// An ICE-TCP connection silent this long is closed: a connected viewer sends
/// consent checks every 5 s or so (RFC 7675, 5.1) and RTCP more often.
const TCP_IDLE: Duration = Duration::from_secs(30);
/// Frames waiting to be written to one connection before new ones are
/// dropped, as UDP would.
const WRITE_QUEUE: usize = 512;

/// What a session's TCP side hands it.
pub enum TcpEvent {
    /// A framed datagram from `peer`, to our `local` address.
    Frame {
        local: SocketAddr,
        peer: SocketAddr,
        data: BytesMut,
    },
    Closed(SocketAddr),
}

/// A session's ICE-TCP listener and its open connections.
pub struct IceTcp {
    listener: TcpListener,
    writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    events_tx: mpsc::Sender<TcpEvent>,
    events: mpsc::Receiver<TcpEvent>,
    max: usize,
    token: CancellationToken,
    _stop: DropGuard,
}

impl IceTcp {
    /// Listens on `addr` (port 0 for a free one).
    ///
    /// # Errors
    /// The listener cannot be bound.
    pub fn bind(addr: SocketAddr, max: usize) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let (events_tx, events) = mpsc::channel(WRITE_QUEUE);
        let token = CancellationToken::new();
        Ok(Self {
            listener,
            writers: HashMap::new(),
            events_tx,
            events,
            max,
            _stop: token.clone().drop_guard(),
            token,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// The next frame or closed connection; accepts connections meanwhile.
    pub async fn next(&mut self) -> TcpEvent {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    if let Ok((stream, peer)) = accepted {
                        self.open(stream, peer);
                    }
                }
                event = self.events.recv() => {
                    // The session holds a sender, so the channel stays open.
                    let Some(event) = event else { continue };
                    if let TcpEvent::Closed(peer) = &event {
                        self.writers.remove(peer);
                    }
                    return event;
                }
            }
        }
    }

    fn open(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        if self.writers.len() >= self.max {
            crate::limits::refused(
                peer,
                "whep_max_tcp_per_session",
                format_args!("{} ICE-TCP connections are open already", self.max),
            );
            return;
        }
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let (mut read, mut write) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        self.writers.insert(peer, tx);
        let (events, token) = (self.events_tx.clone(), self.token.clone());
        tokio::spawn(async move {
            let mut decoder = TcpFrameDecoder::new();
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let read = tokio::select! {
                    () = token.cancelled() => break,
                    read = tokio::time::timeout(TCP_IDLE, read.read(&mut buffer)) => read,
                };
                let n = match read {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => break,
                };
                decoder.extend_from_slice(&buffer[..n]);
                while let Some(frame) = decoder.next_packet() {
                    let data = BytesMut::from(&frame[..]);
                    if events
                        .send(TcpEvent::Frame { local, peer, data })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            let _ = events.send(TcpEvent::Closed(peer)).await;
        });
        let token = self.token.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    () = token.cancelled() => break,
                    frame = rx.recv() => frame,
                };
                let Some(frame) = frame else { break };
                if write.write_all(&frame).await.is_err() {
                    break;
                }
            }
            let _ = write.shutdown().await;
        });
    }

    /// Sends a datagram to `peer` framed; dropped if that connection is gone
    /// or its queue is full.
    pub fn send(&self, peer: SocketAddr, datagram: &[u8]) {
        if let Some(writer) = self.writers.get(&peer) {
            let _ = writer.try_send(frame_packet(datagram));
        }
    }
}
