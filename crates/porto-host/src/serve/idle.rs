//! Ends an HTTP/2 connection that has had no stream open for a while.
//!
//! An HTTP/1.1 keep-alive connection ends when no request head comes
//! within hyper's head timeout, but hyper's HTTP/2 server keeps a
//! connection without streams for as long as its client answers pings, so
//! a client could hold thousands of them for nothing. [`Idle`] wraps such
//! a connection's socket: once nothing has been read for the timeout while
//! no stream is open ([`Streams`] counts them, each until its response is
//! done with), reading ends as at the end of the stream and hyper closes
//! the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The streams open on one connection.
#[derive(Clone, Default)]
pub(crate) struct Streams(Arc<AtomicUsize>);

/// One open stream, until dropped.
pub(crate) struct Open(Arc<AtomicUsize>);

impl Streams {
    pub(crate) fn open(&self) -> Open {
        self.0.fetch_add(1, Ordering::Relaxed);
        Open(self.0.clone())
    }

    fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) struct Idle<S> {
    inner: S,
    streams: Streams,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    pub(crate) fn new(inner: S, streams: Streams, timeout: Duration) -> Self {
        Self {
            inner,
            streams,
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Poll::Ready(read) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            this.timer.as_mut().reset(Instant::now() + this.timeout);
            return Poll::Ready(read);
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            if !this.streams.any() {
                // Nothing read into `buf`: the end of the stream to hyper.
                return Poll::Ready(Ok(()));
            }
            this.timer.as_mut().reset(Instant::now() + this.timeout);
        }
        Poll::Pending
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
