//! The task behind one RTMP connection: socket and clock around an
//! [`RtmpSession`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::chunk::BufList;
use super::session::{RtmpError, RtmpSession};
use crate::config::Config;
use crate::media::StreamHub;

/// Frames in one write at most, so one write stays bounded; a burst larger
/// than this (a new player's first GOP) goes out in several.
const MAX_BATCH_FRAMES: usize = 256;
/// The kernel send buffer of a player's socket. Left to autotuning it grows to
/// megabytes per viewer, and a stalled player hides behind it for tens of
/// seconds; 512 KiB is over a second of a 3 Mbit/s stream, plenty to ride out
/// jitter on any real link.
const PLAYER_SEND_BUFFER: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer took no data for {0:?}; dropped")]
    Stalled(Duration),
}

/// Serves one connection until the peer leaves, fails, or `token` is cancelled.
pub async fn serve(
    mut socket: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    hub: StreamHub,
    token: CancellationToken,
) {
    let _ = socket.set_nodelay(true);
    let stall = config.viewer_stall_timeout;
    let batch = config.rtmp_batch;
    let mut session = RtmpSession::new(peer, config, hub);
    match run(&mut socket, &mut session, stall, batch, &token).await {
        Ok(()) => debug!(%peer, "RTMP connection closed"),
        Err(ConnectionError::Io(err)) => debug!(%peer, cause = %err, "RTMP connection ended"),
        Err(err @ ConnectionError::Stalled(_)) => warn!(%peer, "RTMP player dropped: {err}"),
        Err(err) => warn!(%peer, "RTMP connection closed: {err}"),
    }
    if session.is_publishing() {
        info!(%peer, "publisher disconnected");
    }
}

async fn run(
    socket: &mut TcpStream,
    session: &mut RtmpSession,
    stall: Duration,
    batch: Duration,
    token: &CancellationToken,
) -> Result<(), ConnectionError> {
    let mut input = BytesMut::with_capacity(64 * 1024);
    // When the next write to a player is due. The first frame of a batch arms
    // it; until then this task sleeps instead of waking for every frame, and at
    // the deadline it takes everything that arrived meanwhile. The first write
    // after a player starts goes at once: it carries the keyframe.
    let mut due: Option<Instant> = None;
    let mut started = false;
    loop {
        let playing = session.subscription().is_some();
        tokio::select! {
            () = token.cancelled() => return Ok(()),
            read = socket.read_buf(&mut input) => {
                if read? == 0 {
                    return Ok(());
                }
                session.handle_input(&input, std::time::Instant::now())?;
                input.clear();
                if let Some(out) = session.poll_output() {
                    write(socket, out, stall).await?;
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
                if let Some(out) = session.poll_output() {
                    write(socket, out, stall).await?;
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

/// Writes everything, or fails when the peer takes nothing for `stall`.
async fn write(
    socket: &mut TcpStream,
    mut out: BufList,
    stall: Duration,
) -> Result<(), ConnectionError> {
    match timeout(stall, socket.write_all_buf(&mut out)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ConnectionError::Stalled(stall)),
    }
}
