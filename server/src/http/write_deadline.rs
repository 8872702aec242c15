//! A connection whose writes must make progress: a client that stops reading
//! (a slow-read attack, or a phone that lost its signal) is closed once a
//! write has waited `http_write_timeout_s`, instead of holding its connection
//! slot and the response it was being sent for as long as it likes.
//!
//! A stalled TCP connection is reset rather than closed: a plain close would
//! leave the kernel holding the unsent answer and trying to deliver it to a
//! client that does not read, so the attack would cost memory all the same.
//!
//! Only a write that cannot proceed is timed. A response the server itself is
//! still waiting for (an LL-HLS blocking playlist request, an event feed
//! between events) costs the client nothing and is not cut short.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The message of the error a stalled write ends with.
pub const STALLED: &str = "the client took no data within http_write_timeout_s";

/// How a connection is given up once a write stalled.
pub trait Abort {
    /// Called once, before the error that ends the connection.
    fn abort(&self);
}

impl Abort for tokio::net::TcpStream {
    fn abort(&self) {
        // Linger 0: the close that follows sends a reset and drops the
        // unsent bytes.
        let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
    }
}

/// `inner` with a deadline on every write that has to wait.
pub struct WriteDeadline<T> {
    inner: T,
    within: Duration,
    /// Armed when a write first has to wait; disarmed by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T: Abort> WriteDeadline<T> {
    pub fn new(inner: T, within: Duration) -> Self {
        Self {
            inner,
            within,
            stalled: None,
        }
    }

    /// What a write that returned `Pending` does: wait, or fail once the
    /// deadline has passed.
    fn wait<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let within = self.within;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(within)));
        ready!(stalled.as_mut().poll(cx));
        self.inner.abort();
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, STALLED)))
    }

    fn progressed<R>(&mut self, result: io::Result<R>) -> Poll<io::Result<R>> {
        self.stalled = None;
        Poll::Ready(result)
    }
}

/// Whether `err` (or what caused it) is a write that timed out here.
pub fn is_stalled(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::TimedOut
            && io.to_string() == STALLED
        {
            return true;
        }
        cause = err.source();
    }
    false
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Abort + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.wait(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.wait(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.wait(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(result) => self.progressed(result),
            Poll::Pending => self.wait(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    impl Abort for DuplexStream {
        fn abort(&self) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_deadline() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut conn = WriteDeadline::new(ours, Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let err = conn.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(is_stalled(&err));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_data_is_never_cut_off() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut conn = WriteDeadline::new(ours, Duration::from_secs(30));
        // Takes 1 KiB every 20 s: slower than the whole write may take in
        // total, but never a 30 s wait for one write.
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 1024];
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                match theirs.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got += n,
                }
            }
        });
        conn.write_all(&[7u8; 8 * 1024]).await.unwrap();
        conn.shutdown().await.unwrap();
        drop(conn);
        assert_eq!(reader.await.unwrap(), 8 * 1024);
    }

    #[test]
    fn other_errors_are_not_stalls() {
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "something else");
        assert!(!is_stalled(&timed_out));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(!is_stalled(&reset));
    }
}
