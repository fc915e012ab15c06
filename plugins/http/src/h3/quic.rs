//! h3-quinn's connection with a receive side that cannot panic. While a read is pending,
//! h3-quinn 0.0.10 keeps the quinn stream inside the read future, and its `stop_sending` and
//! `recv_id` unwrap it then (hyperium/h3#330, #351); h3 leaves such a read pending whenever it
//! returns data it had buffered. Here the stream id is kept from the start, and a stop asked
//! for during a pending read is applied as soon as that read completes.

use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};

pub struct Connection(h3_quinn::Connection);

impl Connection {
    pub fn new(conn: quinn::Connection) -> Self {
        Connection(h3_quinn::Connection::new(conn))
    }
}

impl<B: Buf> quic::Connection<B> for Connection {
    type RecvStream = RecvStream;
    type OpenStreams = OpenStreams;

    fn poll_accept_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<RecvStream, ConnectionErrorIncoming>> {
        quic::Connection::<B>::poll_accept_recv(&mut self.0, cx).map_ok(RecvStream::new)
    }

    fn poll_accept_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<BidiStream<B>, ConnectionErrorIncoming>> {
        quic::Connection::<B>::poll_accept_bidi(&mut self.0, cx).map_ok(BidiStream::new)
    }

    fn opener(&self) -> OpenStreams {
        OpenStreams(quic::Connection::<B>::opener(&self.0))
    }
}

impl<B: Buf> quic::OpenStreams<B> for Connection {
    type BidiStream = BidiStream<B>;
    type SendStream = h3_quinn::SendStream<B>;

    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_bidi(&mut self.0, cx).map_ok(BidiStream::new)
    }

    fn poll_open_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_send(&mut self.0, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        quic::OpenStreams::<B>::close(&mut self.0, code, reason)
    }
}

#[derive(Clone)]
pub struct OpenStreams(h3_quinn::OpenStreams);

impl<B: Buf> quic::OpenStreams<B> for OpenStreams {
    type BidiStream = BidiStream<B>;
    type SendStream = h3_quinn::SendStream<B>;

    fn poll_open_bidi(&mut self, cx: &mut Context<'_>) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_bidi(&mut self.0, cx).map_ok(BidiStream::new)
    }

    fn poll_open_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_send(&mut self.0, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        quic::OpenStreams::<B>::close(&mut self.0, code, reason)
    }
}

/// h3-quinn's send half beside our receive half.
pub struct BidiStream<B: Buf> {
    send: h3_quinn::SendStream<B>,
    recv: RecvStream,
}

impl<B: Buf> BidiStream<B> {
    fn new(stream: h3_quinn::BidiStream<B>) -> Self {
        let (send, recv) = quic::BidiStream::split(stream);
        BidiStream { send, recv: RecvStream::new(recv) }
    }
}

impl<B: Buf> quic::BidiStream<B> for BidiStream<B> {
    type SendStream = h3_quinn::SendStream<B>;
    type RecvStream = RecvStream;

    fn split(self) -> (Self::SendStream, RecvStream) {
        (self.send, self.recv)
    }
}

impl<B: Buf> quic::RecvStream for BidiStream<B> {
    type Buf = Bytes;

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code)
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl<B: Buf> quic::SendStream<B> for BidiStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code)
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

/// h3-quinn's receive half, knowing when its quinn stream is lent to a pending read.
pub struct RecvStream {
    inner: h3_quinn::RecvStream,
    id: StreamId,
    /// The last read returned `Pending`: the quinn stream is inside the read future.
    reading: bool,
    /// A stop asked for during a pending read.
    deferred: Option<u64>,
    stopped: bool,
}

impl RecvStream {
    fn new(inner: h3_quinn::RecvStream) -> Self {
        // Not read yet, so the quinn stream is at hand.
        let id = quic::RecvStream::recv_id(&inner);
        RecvStream { inner, id, reading: false, deferred: None, stopped: false }
    }

    fn stop_now(&mut self, error_code: u64) {
        quic::RecvStream::stop_sending(&mut self.inner, error_code);
        self.stopped = true;
    }
}

impl quic::RecvStream for RecvStream {
    type Buf = Bytes;

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        if self.stopped {
            return Poll::Ready(Err(stopped()));
        }
        let polled = self.inner.poll_data(cx);
        self.reading = polled.is_pending();
        match (polled, self.deferred.take()) {
            (Poll::Ready(Ok(Some(_))), Some(code)) => {
                self.stop_now(code);
                Poll::Ready(Err(stopped()))
            }
            (Poll::Ready(polled), Some(code)) => {
                self.stop_now(code);
                Poll::Ready(polled)
            }
            (polled, deferred) => {
                self.deferred = deferred;
                polled
            }
        }
    }

    fn stop_sending(&mut self, error_code: u64) {
        if self.stopped {
            return;
        }
        if self.reading {
            self.deferred = Some(error_code);
        } else {
            self.stop_now(error_code);
        }
    }

    fn recv_id(&self) -> StreamId {
        self.id
    }
}

fn stopped() -> StreamErrorIncoming {
    StreamErrorIncoming::Unknown("the receiving side of the stream was stopped".into())
}
