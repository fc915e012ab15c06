//! A request body read from an HTTP/3 stream, as the handler chain takes any body.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::Frame;
use rr_runtime::BoxError;
use tokio::sync::oneshot;

use super::quic::RecvStream;

pub type Stream = RequestStream<RecvStream, Bytes>;

pub struct RequestBody {
    stream: Option<Stream>,
    ended: bool,
    /// Where a body dropped before its end (413) hands its stream, to be stopped once the
    /// response is out.
    unread: Option<oneshot::Sender<Stream>>,
}

impl RequestBody {
    pub fn new(stream: Stream, unread: oneshot::Sender<Stream>) -> Self {
        RequestBody { stream: Some(stream), ended: false, unread: Some(unread) }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut().filter(|_| !this.ended) else {
            return Poll::Ready(None);
        };
        let polled = ready!(stream.poll_recv_data(cx));
        Poll::Ready(match polled {
            Ok(Some(mut data)) => Some(Ok(Frame::data(data.copy_to_bytes(data.remaining())))),
            Ok(None) => {
                this.ended = true;
                None
            }
            Err(e) => {
                this.ended = true;
                Some(Err(e.into()))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let (Some(stream), Some(unread), false) = (self.stream.take(), self.unread.take(), self.ended) else { return };
        // The request task is gone only if the body outlived the response: stop here then.
        if let Err(stream) = unread.send(stream) {
            stop_reading(stream);
        }
    }
}

/// Tell the client to stop sending, without an error (RFC 9114 §4.1: the response is complete).
pub fn stop_reading(mut stream: Stream) {
    stream.stop_sending(h3::error::Code::H3_NO_ERROR);
}
