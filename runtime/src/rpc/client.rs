//! A goridge RPC client: `rr reset`, `rr workers`, `rr jobs` and tests use it.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{Bytes, BytesMut};

use super::Codec;
use crate::frame::{self, Frame};
use crate::relay::{Relay, RelayError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the RPC server at `{address}`: {source}; is `rr serve` running with an `rpc` section?")]
    Connect { address: String, source: std::io::Error },
    #[error("rpc: {0}")]
    Relay(#[from] RelayError),
    /// The server answered with an ERROR frame; the text is the server's.
    #[error("{0}")]
    Server(String),
    #[error("invalid RPC response: {0}")]
    Protocol(String),
}

pub struct RpcClient {
    relay: Relay,
    seq: AtomicU32,
}

impl RpcClient {
    /// Connect to `tcp://host:port` or `unix://path` (as in `rpc.listen`).
    pub async fn connect(address: &str) -> Result<RpcClient, ClientError> {
        let err = |source| ClientError::Connect { address: address.to_string(), source };
        let relay = if let Some(path) = address.strip_prefix("unix://") {
            let (r, w) = tokio::net::UnixStream::connect(path).await.map_err(err)?.into_split();
            Relay::new(Box::new(r), Box::new(w))
        } else {
            let addr = address.strip_prefix("tcp://").unwrap_or(address);
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(err)?;
            let _ = stream.set_nodelay(true);
            let (r, w) = stream.into_split();
            Relay::new(Box::new(r), Box::new(w))
        };
        Ok(RpcClient { relay, seq: AtomicU32::new(1) })
    }

    /// One call; the reply body (encoded with `codec`).
    pub async fn call(&mut self, method: &str, codec: Codec, body: &[u8]) -> Result<Bytes, ClientError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut payload = BytesMut::with_capacity(method.len() + body.len());
        payload.extend_from_slice(method.as_bytes());
        payload.extend_from_slice(body);
        self.relay.send(&Frame::new(codec.flag(), vec![seq, method.len() as u32], payload.freeze())).await?;
        let reply = self.relay.receive().await?;
        if reply.options.len() != 2 {
            return Err(ClientError::Protocol("options missing".into()));
        }
        if reply.options[0] != seq {
            return Err(ClientError::Protocol(format!("sequence mismatch: sent {seq}, got {}", reply.options[0])));
        }
        let at = (reply.options[1] as usize).min(reply.payload.len());
        let body = reply.payload.slice(at..);
        if reply.is(frame::ERROR) {
            return Err(ClientError::Server(String::from_utf8_lossy(&body).into_owned()));
        }
        Ok(body)
    }

    pub async fn call_json<A: serde::Serialize, R: serde::de::DeserializeOwned>(&mut self, method: &str, arg: &A) -> Result<R, ClientError> {
        let body = serde_json::to_vec(arg).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let reply = self.call(method, Codec::Json, &body).await?;
        serde_json::from_slice(&reply).map_err(|e| ClientError::Protocol(format!("{method}: {e}")))
    }
}
