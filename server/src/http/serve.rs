//! The HTTP accept loop: hyper with the limits `axum::serve` does not have.
//!
//! - **Header read timeout** (slowloris): a client gets
//!   `http_header_timeout_s` to send a request's line and headers, and an idle
//!   keep-alive connection lives as long. hyper only keeps this deadline when
//!   it has a timer, so the builder gets one.
//! - **Write timeout** (slow read): a write that waits
//!   `http_write_timeout_s` for the client to take data closes the
//!   connection (see [`super::write_deadline`]).
//! - **Header size and count**: beyond `http_max_header_bytes` or
//!   `http_max_headers` hyper answers 431 and closes.
//! - **Connections**: `http_max_connections` in all and
//!   `http_max_connections_per_ip` from one address. A connection beyond a cap
//!   gets a short JSON 503 or 429 saying which, and is closed; it never waits.
//! - **Accept errors** (out of file descriptors) back off instead of spinning.
//! - **Shutdown**: cancelling the token stops accepting; each connection
//!   finishes its request in flight and closes, and event feeds end (they
//!   watch the same token, see [`super::Shutdown`]). Connection tasks run on
//!   the server's tracker, so `run`'s drain deadline covers them.
//!
//! HTTP/1.1 only, as before, with hyper's HTTP/1 builder. hyper-util's `auto`
//! builder (which would let HTTP/2 in) was tried and left: its version
//! sniffing reads the first bytes with no deadline of its own, so a silent
//! connection outlived the header timeout, and it cannot set
//! `max_header_size`. HTTP/2 needs that phase to get a deadline first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, warn};

use super::limits::HttpLimits;
use super::write_deadline::{self, WriteDeadline};
use crate::limits::refused;
use crate::limits::slots::{Full, Slots};

/// Connections being turned away at once; beyond this a refused connection is
/// closed without an answer, so a flood cannot make the refusals themselves a
/// cost.
const MAX_TURNING_AWAY: usize = 64;
/// How long a refused connection gets to take its answer.
const TURN_AWAY_WITHIN: Duration = Duration::from_secs(2);
/// Accept errors wait this long at first, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `token` is cancelled.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.http_header_timeout_s))
        // A complete head is checked against max_header_size; the buffer
        // bound stops one that is still arriving.
        .max_header_size(limits.http_max_header_bytes)
        .max_buf_size(limits.http_max_header_bytes)
        .max_headers(limits.http_max_headers);
    let builder = Arc::new(builder);
    let connections = Slots::new(
        limits.http_max_connections,
        limits.http_max_connections_per_ip,
    );
    let turning_away = Arc::new(Semaphore::new(MAX_TURNING_AWAY));
    let mut backoff = FIRST_BACKOFF;
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = FIRST_BACKOFF;
                pair
            }
            // The client gave up between SYN and accept: nothing to wait for.
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                // Usually out of file descriptors: the table frees up as
                // connections end, and retrying at once would only spin.
                if backoff == FIRST_BACKOFF || backoff == MAX_BACKOFF {
                    warn!(cause = %err, "cannot accept HTTP connections; retrying in {backoff:?}");
                }
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let slot = match connections.try_take(peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                refused(
                    peer,
                    limit_key(full),
                    format_args!("HTTP connection: {full}"),
                );
                if let Ok(permit) = Arc::clone(&turning_away).try_acquire_owned() {
                    tokio::spawn(async move {
                        turn_away(stream, full).await;
                        drop(permit);
                    });
                }
                continue;
            }
        };
        let builder = Arc::clone(&builder);
        let app = app.clone();
        let token = token.clone();
        let stream = WriteDeadline::new(stream, Duration::from_secs(limits.http_write_timeout_s));
        tracker.spawn(async move {
            let _slot = slot;
            serve_connection(&builder, stream, peer, app, token).await;
        });
    }
}

async fn serve_connection(
    builder: &http1::Builder,
    stream: WriteDeadline<TcpStream>,
    peer: SocketAddr,
    app: Router,
    token: CancellationToken,
) {
    // Whether a request came: a connection that times out before its first
    // one is a refusal worth a log line, an idle keep-alive one is not.
    let served = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&served);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        request.extensions_mut().insert(ConnectInfo(peer));
        // A router is always ready, so calling it without `poll_ready` is fine.
        app.clone().call(request)
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = token.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    let Err(err) = ended else { return };
    if err.is_timeout() {
        if !served.load(Ordering::Relaxed) {
            refused(
                peer,
                "http_header_timeout_s",
                "sent no complete request headers in time; closed",
            );
        }
    } else if write_deadline::is_stalled(&err) {
        refused(
            peer,
            "http_write_timeout_s",
            "took no data of its answer in time; closed",
        );
    } else if err.is_parse_too_large() {
        refused(
            peer,
            "http_max_header_bytes",
            "request line and headers too large or too many; answered 431",
        );
    } else {
        debug!(%peer, cause = %err, "HTTP connection ended with an error");
    }
}

/// The config key of the cap a refused connection hit.
fn limit_key(full: Full) -> &'static str {
    match full {
        Full::Total { .. } => "http_max_connections",
        Full::PerAddress { .. } => "http_max_connections_per_ip",
    }
}

/// Answers a connection beyond a cap with a short JSON error, and closes it.
async fn turn_away(mut stream: TcpStream, full: Full) {
    let (status, message) = match full {
        Full::Total { max } => (
            "503 Service Unavailable",
            format!("the server is full ({max} connections); try again in a moment"),
        ),
        Full::PerAddress { max } => (
            "429 Too Many Requests",
            format!(
                "too many connections from your address (the most is {max}); \
                 close some and try again"
            ),
        ),
    };
    let body = serde_json::json!({ "error": message }).to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(TURN_AWAY_WITHIN, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent before closing: closing with unread bytes
        // makes the kernel send a reset, which can destroy the answer before
        // the client reads it.
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

fn is_per_connection(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted
    )
}
