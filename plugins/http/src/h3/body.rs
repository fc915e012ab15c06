//! A request body read from an HTTP/3 stream, as the handler chain takes any body.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::Frame;
use rr_runtime::BoxError;

pub struct RequestBody {
    stream: RequestStream<h3_quinn::RecvStream, Bytes>,
    ended: bool,
}

impl RequestBody {
    pub fn new(stream: RequestStream<h3_quinn::RecvStream, Bytes>) -> Self {
        RequestBody { stream, ended: false }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let polled = ready!(self.stream.poll_recv_data(cx));
        Poll::Ready(match polled {
            Ok(Some(mut data)) => Some(Ok(Frame::data(data.copy_to_bytes(data.remaining())))),
            Ok(None) => {
                self.ended = true;
                None
            }
            Err(e) => {
                self.ended = true;
                Some(Err(e.into()))
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// A body refused before its end (413) tells the client to stop sending, without an error
/// (RFC 9114 §4.1: the response is complete).
impl Drop for RequestBody {
    fn drop(&mut self) {
        if !self.ended {
            self.stream.stop_sending(h3::error::Code::H3_NO_ERROR);
        }
    }
}
