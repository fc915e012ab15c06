//! One QUIC connection: accept its request streams, give each to the handler chain with the
//! connection's facts, and write the answers as HTTP/3 frames.

use std::time::Duration;

use bytes::Bytes;
use h3::server::{RequestResolver, RequestStream};
use http_body_util::BodyExt;
use rr_runtime::http::{ClientAddr, Handler, Response};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::{self, RequestBody};
use crate::request::{ConnInfo, PeerAddr};

pub const H3_NO_ERROR: u32 = 0x100;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Closing a QUIC connection drops the stream data the client has not acknowledged yet, so a
/// connection that answered requests while stopping waits this long (Go's `rstAvoidanceDelay`,
/// as `linger` for TCP), or until the client closes, before it closes.
const LINGER: Duration = Duration::from_millis(500);
/// How long a refused body's stop may wait for the read in progress to complete (it completes
/// with the client's next packet; a stalled client gets quinn's stop when the stream drops).
const STOP_WAIT: Duration = Duration::from_secs(1);

type Connection = super::quic::Connection;

/// Serve `incoming` until the client leaves, or `shutdown`: then GOAWAY and answer what was
/// accepted; the requests of a connection end before it is dropped (which closes it).
pub async fn serve(incoming: quinn::Incoming, handler: Handler, head_bytes: usize, shutdown: CancellationToken) {
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return tracing::debug!(error = %e, "http3: handshake failed"),
        Err(_) => return tracing::debug!("http3: handshake timed out"),
    };
    let remote = conn.remote_address();
    let client = ClientAddr(remote.ip().to_canonical());
    // The access log's remote_address is host:port, as Go's RemoteAddr.
    let peer = PeerAddr(std::net::SocketAddr::new(client.0, remote.port()));
    let quic = conn.clone();
    let mut h3 = match h3::server::builder().max_field_section_size(head_bytes as u64).build(Connection::new(conn)).await {
        Ok(h3) => h3,
        Err(e) => return tracing::debug!(error = %e, "http3: connection setup failed"),
    };
    let requests = TaskTracker::new();
    let mut answering_while_stopping = false;
    loop {
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests.spawn(guarded(request(resolver, handler.clone(), (client, peer), head_bytes)));
                }
                Ok(None) => break,
                Err(e) => {
                    if !e.is_h3_no_error() {
                        tracing::debug!(error = %e, "http3: connection ended with an error");
                    }
                    break;
                }
            },
            _ = shutdown.cancelled(), if !requests.is_closed() => {
                let _ = h3.shutdown(1).await;
                requests.close();
                answering_while_stopping = !requests.is_empty();
            }
            _ = requests.wait(), if requests.is_closed() => break,
        }
    }
    requests.close();
    requests.wait().await;
    if answering_while_stopping {
        let _ = tokio::time::timeout(LINGER, quic.closed()).await;
    }
}

/// A panic below a request (the QUIC stack's included) ends that request only, with an error
/// log line; the connection serves on.
async fn guarded(request: impl std::future::Future<Output = ()>) {
    use futures::FutureExt;
    if std::panic::AssertUnwindSafe(request).catch_unwind().await.is_err() {
        tracing::error!("http3: a request task panicked; its stream is dropped");
    }
}

async fn request(resolver: RequestResolver<Connection, Bytes>, handler: Handler, (client, peer): (ClientAddr, PeerAddr), head_bytes: usize) {
    let (req, stream) = match resolver.resolve_request().await {
        Ok(accepted) => accepted,
        Err(e) => return tracing::debug!(error = %e, "http3: bad request stream"),
    };
    let (mut send, recv) = stream.split();
    let head = req.method() == http::Method::HEAD;
    let (unread_tx, mut unread) = tokio::sync::oneshot::channel();
    let resp = match crate::server::refuse(&req, head_bytes) {
        Some(refused) => {
            drop(unread_tx.send(recv));
            refused
        }
        None => {
            let mut req = req.map(|()| RequestBody::new(recv, unread_tx).boxed_unsync());
            req.extensions_mut().insert(ConnInfo { tls: true });
            req.extensions_mut().insert(client);
            req.extensions_mut().insert(peer);
            handler(req).await
        }
    };
    // A client gone mid-body drops the response body here: a PHP stream gets STOP, as over TCP.
    if let Err(e) = respond(&mut send, resp, head).await {
        tracing::debug!(error = %e, "http3: response not delivered");
    }
    // A body refused before its end (413): the answer is out, now the client may stop sending.
    if let Ok(recv) = unread.try_recv() {
        stop_reading(recv).await;
    }
}

/// Stop the receiving side of a request stream. A stop asked for while a read is pending goes
/// out when that read completes, so the stream is read (and what arrives dropped) until then.
async fn stop_reading(mut recv: body::Stream) {
    recv.stop_sending(h3::error::Code::H3_NO_ERROR);
    let stopped = std::future::poll_fn(|cx| loop {
        match std::task::ready!(recv.poll_recv_data(cx)) {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return std::task::Poll::Ready(()),
        }
    });
    let _ = tokio::time::timeout(STOP_WAIT, stopped).await;
}

/// Write the head, then the body frame by frame (each streamed chunk is sent as it comes). A
/// body that fails midway resets the stream, so the client cannot take it for complete.
async fn respond(send: &mut RequestStream<h3_quinn::SendStream<Bytes>, Bytes>, resp: Response, head: bool) -> Result<(), rr_runtime::BoxError> {
    let (mut parts, mut body) = resp.into_parts();
    connection_specific(&mut parts.headers);
    // As hyper does for HTTP/1 and 2: a body of known size gets its Content-Length.
    let bodiless = head || parts.status.is_informational() || matches!(parts.status.as_u16(), 204 | 304);
    if let (false, Some(len)) = (bodiless, http_body::Body::size_hint(&body).exact()) {
        parts.headers.entry(http::header::CONTENT_LENGTH).or_insert(len.into());
    }
    send.send_response(http::Response::from_parts(parts, ())).await?;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return Err(e);
            }
        };
        match frame.into_data() {
            Ok(data) => send.send_data(data).await?,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers).await?;
                }
            }
        }
    }
    send.finish().await?;
    Ok(())
}

/// Headers HTTP/3 forbids (RFC 9114 §4.2), which PHP apps written for HTTP/1 may still send;
/// hyper drops the same ones for HTTP/2.
fn connection_specific(headers: &mut http::HeaderMap) {
    for name in [http::header::CONNECTION, http::header::TRANSFER_ENCODING, http::header::UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}
