//! Responses leave a worker in batches.
//!
//! A worker's event loop takes every connection that became readable, and
//! each would write its response the moment its guest answered: one
//! response every few tens of microseconds, each waking a client that has
//! just gone back to sleep. Waking a sleeping thread is the dearest part of
//! a small response (a reschedule, on a virtual machine an inter-processor
//! interrupt and an exit to the hypervisor). [`CoalescedWrites`] makes a
//! connection step aside once before it writes, behind the other ready
//! connections of its worker (tokio runs a worker's tasks in order), so
//! the responses of one turn of the loop go out back to back and a client
//! waiting on many connections finds many answers per wake-up.
//!
//! The cost is one more poll of the connection's task per write; under
//! load, a response waits for its worker's other ready requests, which it
//! would have waited for anyway before the worker read its next request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) struct CoalescedWrites<S> {
    inner: S,
    /// This write has already stepped aside once: the next poll writes.
    stepped_aside: bool,
}

impl<S> CoalescedWrites<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            stepped_aside: false,
        }
    }

    /// Whether to step aside before this write: once per write, waking
    /// the task at once so it runs again after the tasks already queued.
    fn step_aside(&mut self, cx: &mut Context<'_>) -> bool {
        if self.stepped_aside {
            return false;
        }
        self.stepped_aside = true;
        cx.waker().wake_by_ref();
        true
    }

    /// A write that completed (or failed) makes the next one step aside
    /// again; one the socket could not take yet is retried as it is.
    fn written<T>(&mut self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stepped_aside = false;
        }
        result
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CoalescedWrites<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.step_aside(cx) {
            return Poll::Pending;
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.written(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.step_aside(cx) {
            return Poll::Pending;
        }
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Counts wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll_write(
        writes: &mut CoalescedWrites<tokio::io::DuplexStream>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(writes).poll_write(cx, bytes)
    }

    #[tokio::test]
    async fn each_write_steps_aside_once_and_wakes_its_task() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut writes = CoalescedWrites::new(near);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);

        for (round, bytes) in [b"first".as_slice(), b"second"].into_iter().enumerate() {
            assert!(poll_write(&mut writes, &mut cx, bytes).is_pending());
            assert_eq!(
                wakes.0.load(Ordering::SeqCst),
                round + 1,
                "woken to run again"
            );
            match poll_write(&mut writes, &mut cx, bytes) {
                Poll::Ready(Ok(n)) => assert_eq!(n, bytes.len()),
                other => panic!("the second poll writes: {other:?}"),
            }
        }
        let mut received = vec![0; 11];
        far.read_exact(&mut received)
            .await
            .expect("both writes arrive");
        assert_eq!(received, b"firstsecond");
    }

    #[tokio::test]
    async fn a_write_the_socket_cannot_take_yet_does_not_step_aside_again() {
        // Room for 4 bytes: the second write waits for the reader.
        let (near, mut far) = tokio::io::duplex(4);
        let mut writes = CoalescedWrites::new(near);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);

        assert!(poll_write(&mut writes, &mut cx, b"full").is_pending());
        assert!(matches!(
            poll_write(&mut writes, &mut cx, b"full"),
            Poll::Ready(Ok(4))
        ));
        assert!(
            poll_write(&mut writes, &mut cx, b"more").is_pending(),
            "steps aside"
        );
        assert!(
            poll_write(&mut writes, &mut cx, b"more").is_pending(),
            "no room"
        );
        let mut first = [0; 4];
        far.read_exact(&mut first)
            .await
            .expect("the first write arrives");
        // Room again: written at once, without stepping aside a second time.
        assert!(matches!(
            poll_write(&mut writes, &mut cx, b"more"),
            Poll::Ready(Ok(4))
        ));
    }

    #[tokio::test]
    async fn whole_exchanges_pass_through_unchanged() {
        let (near, far) = tokio::io::duplex(1024);
        let mut writes = CoalescedWrites::new(near);
        let mut far = far;
        writes.write_all(b"response").await.expect("write");
        writes.flush().await.expect("flush");
        far.write_all(b"request").await.expect("write back");
        let (mut got_response, mut got_request) = ([0; 8], [0; 7]);
        far.read_exact(&mut got_response).await.expect("read");
        writes
            .read_exact(&mut got_request)
            .await
            .expect("read back");
        assert_eq!((&got_response, &got_request), (b"response", b"request"));
        writes.shutdown().await.expect("shutdown");
        assert_eq!(
            far.read(&mut [0; 1]).await.expect("read after shutdown"),
            0,
            "shut down"
        );
    }
}
