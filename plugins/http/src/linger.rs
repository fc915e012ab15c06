//! A lingering close, as Go's net/http does it: when a request was answered without reading its
//! whole body (a 413 before the upload ends), closing the socket while the client still sends
//! makes the kernel answer with RST, and the client loses the response it has not read yet (it
//! sees a broken pipe instead of the 413). So such a connection is not closed at once: its write
//! side is shut (the client sees the response end) and what the client still sends is read and
//! dropped for up to [`LINGER`], then it is closed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Go's `rstAvoidanceDelay`.
const LINGER: Duration = Duration::from_millis(500);

/// A request's handle (in its extensions) to say it was answered with its body unread.
#[derive(Clone, Default)]
pub struct UnreadBody(Arc<AtomicBool>);

impl UnreadBody {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A client connection that lingers when dropped after a request left its body unread.
pub struct Linger {
    stream: Option<TcpStream>,
    unread: UnreadBody,
}

impl Linger {
    pub fn new(stream: TcpStream) -> (Self, UnreadBody) {
        let unread = UnreadBody::default();
        (Linger { stream: Some(stream), unread: unread.clone() }, unread)
    }

    fn stream(self: Pin<&mut Self>) -> Pin<&mut TcpStream> {
        Pin::new(self.get_mut().stream.as_mut().expect("taken only on drop"))
    }
}

impl Drop for Linger {
    fn drop(&mut self) {
        let Some(stream) = self.stream.take().filter(|_| self.unread.0.load(Ordering::Relaxed)) else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut stream = stream;
                let _ = stream.shutdown().await;
                let mut sink = vec![0u8; 64 * 1024];
                let _ = tokio::time::timeout(LINGER, async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} }).await;
            });
        }
    }
}

impl AsyncRead for Linger {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Linger {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}
