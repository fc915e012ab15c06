//! 1xx informational responses (103 Early Hints) on HTTP/1.1, which hyper's server cannot send.
//!
//! Each HTTP/1 connection's IO is wrapped in [`HintsIo`]; the request carries an [`EarlyHints`]
//! handle to it. A hint is queued with a wake-up of the connection task and written by the
//! wrapper's `poll_flush`, which hyper calls on every turn of its dispatch loop after writing its
//! own buffered bytes (the previous response's tail, if any). The handler waits until the hint is
//! on the wire before it goes on, so the final response head can never overtake it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::task::AtomicWaker;
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// Lock-free on the hot path: the IO only takes the lock when `pending` says a hint waits.
#[derive(Default)]
struct Shared {
    queue: Mutex<std::collections::VecDeque<(Bytes, oneshot::Sender<()>)>>,
    pending: AtomicBool,
    /// The connection task, from its latest poll of the IO.
    waker: AtomicWaker,
}

/// The request's handle for sending informational responses on its connection.
#[derive(Clone, Default)]
pub struct EarlyHints(Arc<Shared>);

impl EarlyHints {
    /// Write `HTTP/1.1 <status>` with exactly these headers, names in the canonical case Go's
    /// server writes (`Link`), and wait until it is written. An error means the connection is gone.
    pub async fn send(&self, status: StatusCode, headers: &HeaderMap) -> Result<(), &'static str> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or("Informational")).into_bytes();
        for (name, value) in headers {
            head.extend_from_slice(crate::request::canonical(name.as_str()).as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let (written, on_wire) = oneshot::channel();
        self.0.queue.lock().unwrap_or_else(|p| p.into_inner()).push_back((Bytes::from(head), written));
        self.0.pending.store(true, Ordering::Release);
        self.0.waker.wake();
        on_wire.await.map_err(|_| "the connection closed before the informational response was written")
    }
}

/// A connection's IO that also writes queued informational responses.
pub struct HintsIo<T> {
    inner: T,
    shared: Arc<Shared>,
}

impl<T> HintsIo<T> {
    pub fn new(inner: T) -> (HintsIo<T>, EarlyHints) {
        let shared = Arc::new(Shared::default());
        (HintsIo { inner, shared: shared.clone() }, EarlyHints(shared))
    }

    fn remember(&self, cx: &Context<'_>) {
        self.shared.waker.register(cx.waker());
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HintsIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.remember(cx);
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HintsIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.remember(cx);
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.remember(cx);
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.remember(cx);
        let this = self.get_mut();
        while this.shared.pending.load(Ordering::Acquire) {
            let mut queue = this.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            let Some((bytes, _)) = queue.front_mut() else {
                this.shared.pending.store(false, Ordering::Release);
                break;
            };
            if bytes.is_empty() {
                if let Some((_, written)) = queue.pop_front() {
                    let _ = written.send(());
                }
                continue;
            }
            let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, bytes))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            bytes.advance(n);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
