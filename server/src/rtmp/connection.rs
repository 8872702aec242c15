//! The task behind one RTMP connection: socket and clock around an
//! [`RtmpSession`].
//!
//! Until the connection publishes or plays it is a stranger's: it holds a
//! pending [`Slot`], a small read buffer, and a deadline
//! (`rtmp_start_timeout_s`) that covers the handshake, every command and
//! every write, so a peer that sends nothing, sends half a handshake or never
//! reads is closed on time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::chunk::BufList;
use super::listener::{Role, Slot, SlotError};
use super::session::{RtmpError, RtmpSession};
use crate::config::Config;
use crate::limits;
use crate::media::StreamHub;
use crate::media::counters::Output;

/// Frames in one write at most, so one write stays bounded; a burst larger
/// than this (a new player's first GOP) goes out in several.
const MAX_BATCH_FRAMES: usize = 256;
/// The kernel send buffer of a player's socket. Left to autotuning it grows to
/// megabytes per viewer, and a stalled player hides behind it for tens of
/// seconds; 512 KiB is over a second of a 3 Mbit/s stream, plenty to ride out
/// jitter on any real link.
const PLAYER_SEND_BUFFER: usize = 512 * 1024;
/// The read buffer before the connection starts: a handshake packet (1,537
/// bytes) and the commands that follow fit, and a crowd of idle strangers
/// costs little.
const PENDING_READ_BUFFER: usize = 4 * 1024;
/// The read buffer of a publisher or player: a publisher's reads are large.
const STARTED_READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer took no data for {0:?}; dropped")]
    Stalled(Duration),
    #[error("neither published nor played within {0:?} of connecting; closed")]
    StartTimeout(Duration),
    #[error(transparent)]
    Slot(#[from] SlotError),
}

/// Serves one connection until the peer leaves, fails, or `token` is
/// cancelled (shutdown, or the listener closing it to make room). `slot` is
/// its place among the connections, freed when this returns.
pub async fn serve(
    mut socket: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    config: Arc<Config>,
    hub: StreamHub,
    token: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    let timing = Timing {
        stall: config.viewer_stall_timeout,
        batch: config.rtmp_batch,
        start: Duration::from_secs(config.rtmp_limits.rtmp_start_timeout_s),
    };
    let mut session = RtmpSession::new(peer, config, hub);
    // A player takes its slot as its play starts, so one past the cap is
    // told why instead of being cut off after `NetStream.Play.Start`.
    let starter = slot.starter();
    session.set_player_gate(Box::new(move || {
        starter.start(Role::Player).map_err(|err| {
            limits::refused(peer, err.limit(), &err);
            match err {
                SlotError::Players { .. } => {
                    "this server has no room for more RTMP viewers; try again later, \
                     or watch in a browser"
                }
                SlotError::PerAddress { .. } => {
                    "too many RTMP connections from your address; close some and try again"
                }
                SlotError::Evicted => "the connection was closed to make room; try again",
            }
            .to_string()
        })
    }));
    match run(&mut socket, &mut session, &slot, timing, &token).await {
        Ok(()) => debug!(%peer, "RTMP connection closed"),
        Err(ConnectionError::Io(err)) => debug!(%peer, cause = %err, "RTMP connection ended"),
        Err(err @ ConnectionError::Stalled(_)) => warn!(%peer, "RTMP player dropped: {err}"),
        Err(err @ ConnectionError::StartTimeout(_)) => {
            limits::refused(peer, "rtmp_start_timeout_s", err);
        }
        Err(ConnectionError::Slot(err)) => limits::refused(peer, err.limit(), err),
        // Already logged, rate-limited, where the limit was hit.
        Err(ConnectionError::Rtmp(err)) if err.is_refusal() => {
            debug!(%peer, "RTMP connection closed: {err}");
        }
        Err(err) => warn!(%peer, "RTMP connection closed: {err}"),
    }
    if session.is_publishing() {
        info!(%peer, "publisher disconnected");
    }
}

/// The clocks of one connection.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// How long a write may wait for the peer to take data.
    stall: Duration,
    /// How far apart a player's writes are.
    batch: Duration,
    /// How long the connection has to publish or play.
    start: Duration,
}

async fn run(
    socket: &mut TcpStream,
    session: &mut RtmpSession,
    slot: &Slot,
    timing: Timing,
    token: &CancellationToken,
) -> Result<(), ConnectionError> {
    let Timing { stall, batch, .. } = timing;
    let mut input = BytesMut::with_capacity(PENDING_READ_BUFFER);
    // Until the connection publishes or plays, when it is closed.
    let mut start_deadline = Some(Instant::now() + timing.start);
    // When the next write to a player is due. The first frame of a batch arms
    // it; until then this task sleeps instead of waking for every frame, and at
    // the deadline it takes everything that arrived meanwhile. The first write
    // after a player starts goes at once: it carries the keyframe.
    let mut due: Option<Instant> = None;
    let mut started = false;
    loop {
        let playing = session.subscription().is_some();
        let refused_until = session.closes_at().map(Instant::from_std);
        tokio::select! {
            () = token.cancelled() => return Ok(()),
            // A refused publisher that sends nothing more is closed on time too.
            () = sleep_until(refused_until), if refused_until.is_some() => {
                return match session.take_refusal() {
                    Some(err) => Err(err.into()),
                    None => Ok(()),
                };
            }
            () = sleep_until(start_deadline), if start_deadline.is_some() => {
                return Err(ConnectionError::StartTimeout(timing.start));
            }
            read = socket.read_buf(&mut input) => {
                if read? == 0 {
                    return Ok(());
                }
                session.handle_input(&input, std::time::Instant::now())?;
                input.clear();
                if start_deadline.is_some() {
                    // A player's slot started in the player gate.
                    // An edge is capped as a publisher is: it carries a crowd.
                    let begun = if session.is_publishing() || session.is_edge() {
                        slot.start(Role::Publisher)?;
                        true
                    } else {
                        session.subscription().is_some()
                    };
                    if begun {
                        start_deadline = None;
                        input.reserve(STARTED_READ_BUFFER);
                    }
                }
                if let Some(mut out) = session.poll_output() {
                    write(socket, &mut out, stall, start_deadline, timing.start).await?;
                    session.recycle(out);
                }
            }
            frame = next_frame(session), if playing && due.is_none() => {
                let Some(frame) = frame else { return Ok(()) };
                session.push_frame(&frame);
                due = Some(if started { Instant::now() + batch } else { Instant::now() });
                if !started {
                    let _ = socket2::SockRef::from(&*socket).set_send_buffer_size(PLAYER_SEND_BUFFER);
                }
            }
            () = sleep_until(due), if due.is_some() => {
                for _ in 1..MAX_BATCH_FRAMES {
                    let Some(frame) = session.subscription().and_then(|s| s.try_recv()) else { break };
                    session.push_frame(&frame);
                }
                if let Some(mut out) = session.poll_output() {
                    let bytes = out.remaining();
                    write(socket, &mut out, stall, None, timing.start).await?;
                    session.recycle(out);
                    if let Some(subscription) = session.subscription() {
                        subscription.counters().sent(Output::Rtmp, bytes);
                    }
                }
                started = true;
                due = None;
            }
        }
    }
}

async fn next_frame(session: &mut RtmpSession) -> Option<crate::media::Frame> {
    match session.subscription() {
        Some(subscription) => subscription.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Writes everything, or fails when the peer takes nothing for `stall`, or
/// when `start_deadline` (a connection yet to start) comes first: a stranger
/// that never reads is closed on time too.
async fn write(
    socket: &mut TcpStream,
    out: &mut BufList,
    stall: Duration,
    start_deadline: Option<Instant>,
    start: Duration,
) -> Result<(), ConnectionError> {
    let stalled_at = Instant::now() + stall;
    let (until, err) = match start_deadline {
        Some(deadline) if deadline < stalled_at => (deadline, ConnectionError::StartTimeout(start)),
        _ => (stalled_at, ConnectionError::Stalled(stall)),
    };
    match timeout_at(until, socket.write_all_buf(out)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(err),
    }
}
