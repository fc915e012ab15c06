//! The goridge RPC server (PROTOCOL.md §4): each connection is served on its own, one call at a
//! time, always answered; a framing error closes that connection only.

use std::sync::Arc;

use bytes::BytesMut;
use rr_runtime::frame::{self, Frame, FrameError};
use rr_runtime::relay::{Relay, RelayError};
use rr_runtime::Services;
use rr_runtime::rpc::Codec;
use tokio_util::sync::CancellationToken;

pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    pub async fn bind(address: &str) -> Result<Listener, String> {
        if let Some(path) = address.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
            let l = tokio::net::UnixListener::bind(path).map_err(|e| format!("config key `rpc.listen`: cannot listen on `{address}`: {e}"))?;
            Ok(Listener::Unix(l, path.into()))
        } else if let Some(addr) = address.strip_prefix("tcp://") {
            let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("config key `rpc.listen`: cannot listen on `{address}`: {e}"))?;
            Ok(Listener::Tcp(l))
        } else {
            Err(format!("config key `rpc.listen`: `{address}` must start with tcp:// or unix://"))
        }
    }

    async fn accept(&self) -> std::io::Result<Relay> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                Relay::new(Box::new(r), Box::new(w))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                let (r, w) = s.into_split();
                Relay::new(Box::new(r), Box::new(w))
            }
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Accept and serve connections; a request frame over `max_payload` bytes closes its connection.
pub async fn run(listener: Listener, services: Arc<Services>, max_payload: usize, shutdown: CancellationToken) {
    loop {
        let mut relay = tokio::select! {
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(target: "rpc", error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        relay.limit_payload(max_payload);
        tokio::spawn(serve_connection(relay, services.clone(), shutdown.clone()));
    }
}

async fn serve_connection(mut relay: Relay, services: Arc<Services>, shutdown: CancellationToken) {
    loop {
        let request = tokio::select! {
            r = relay.receive() => r,
            _ = shutdown.cancelled() => return,
        };
        let request = match request {
            Ok(f) => f,
            Err(RelayError::Closed) => return,
            Err(RelayError::Frame(FrameError::TooLarge { declared, max })) => {
                tracing::warn!(
                    target: "rpc",
                    "a request frame announces {declared} bytes, over rpc.max_request_size ({} MB); closing this connection \
                     (raise rpc.max_request_size if the client is legitimate)",
                    max >> 20
                );
                return;
            }
            Err(e) => {
                tracing::warn!(target: "rpc", error = %e, "invalid frame; closing this connection");
                return;
            }
        };
        if request.options.len() != 2 {
            tracing::warn!(target: "rpc", "should be 2 options. SEQ_ID and METHOD_LEN; closing this connection");
            return;
        }
        let (seq, method_len) = (request.options[0], request.options[1] as usize);
        if method_len > request.payload.len() {
            tracing::warn!(target: "rpc", "method length exceeds the payload; closing this connection");
            return;
        }
        let method = String::from_utf8_lossy(&request.payload[..method_len]).into_owned();
        let body = request.payload.slice(method_len..);
        let codec = Codec::from_flags(request.flags);
        let call = services.rpc.call(&method, codec, body);
        let result = if services.rpc.drops_on_disconnect(&method) {
            // A caller that went away (a killed PHP process) must not get what it waited for.
            tokio::select! {
                result = call => result,
                () = relay.closed() => {
                    tracing::debug!(target: "rpc", %method, "the caller disconnected; its call is dropped");
                    return;
                }
            }
        } else {
            call.await
        };
        let (flags, reply) = match result {
            Ok(reply) => (codec.flag(), reply),
            Err(e) => (codec.flag() | frame::ERROR, bytes::Bytes::from(e.0)),
        };
        let mut payload = BytesMut::with_capacity(method_len + reply.len());
        payload.extend_from_slice(method.as_bytes());
        payload.extend_from_slice(&reply);
        let response = Frame::new(flags, vec![seq, method.len() as u32], payload.freeze());
        if relay.send(&response).await.is_err() {
            return;
        }
    }
}
