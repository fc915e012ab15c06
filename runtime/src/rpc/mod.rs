//! The goridge RPC core (PROTOCOL.md §4): the typed method registry plugins fill at init, and a
//! client (`rr reset`, `rr workers` and tests use it). The rpc plugin serves the registry on
//! `rpc.listen`.

pub mod client;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::frame;

/// The codec of one RPC call, chosen from the request flags by RoadRunner's priority (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Proto,
    Json,
    Raw,
    Msgpack,
    Gob,
}

impl Codec {
    pub fn from_flags(flags: u8) -> Codec {
        if flags & frame::CODEC_PROTO != 0 {
            Codec::Proto
        } else if flags & frame::CODEC_JSON != 0 {
            Codec::Json
        } else if flags & frame::CODEC_RAW != 0 {
            Codec::Raw
        } else if flags & frame::CODEC_MSGPACK != 0 {
            Codec::Msgpack
        } else {
            Codec::Gob
        }
    }

    pub fn flag(self) -> u8 {
        match self {
            Codec::Proto => frame::CODEC_PROTO,
            Codec::Json => frame::CODEC_JSON,
            Codec::Raw => frame::CODEC_RAW,
            Codec::Msgpack => frame::CODEC_MSGPACK,
            Codec::Gob => frame::CODEC_GOB,
        }
    }
}

/// An error returned to the caller as an ERROR frame; its text is what PHP libraries match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RpcError(pub String);

impl RpcError {
    pub fn new(text: impl std::fmt::Display) -> Self {
        RpcError(text.to_string())
    }
}

pub type Handler = Arc<dyn Fn(Codec, Bytes) -> BoxFuture<'static, Result<Bytes, RpcError>> + Send + Sync>;

/// `Service.Method` → handler.
#[derive(Default)]
pub struct RpcRegistry {
    methods: RwLock<HashMap<String, Handler>>,
    /// Methods whose running call the server drops when the caller disconnects.
    droppable: RwLock<HashSet<String>>,
}

impl RpcRegistry {
    /// Register a handler that sees the codec and the encoded argument.
    pub fn register_raw(&self, method: &str, handler: Handler) {
        self.methods.write().unwrap().insert(method.to_string(), handler);
    }

    /// Let the RPC server drop a running call of `method` when its caller's connection closes.
    /// For methods that only wait on the caller's behalf (a lock wait), never for ones that
    /// would stop halfway through a change.
    pub fn drop_on_disconnect(&self, method: &str) {
        self.droppable.write().unwrap().insert(method.to_string());
    }

    pub fn drops_on_disconnect(&self, method: &str) -> bool {
        self.droppable.read().unwrap().contains(method)
    }

    /// Register a method whose argument and reply travel as JSON (the PHP default codec).
    /// An empty body leaves the argument at its default, as Go's net/rpc does.
    pub fn register_json<A, R, F, Fut>(&self, method: &str, f: F)
    where
        A: serde::de::DeserializeOwned + Default + Send + 'static,
        R: serde::Serialize + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.register_raw(
            method,
            Arc::new(move |codec, body: Bytes| {
                let f = f.clone();
                Box::pin(async move {
                    if codec != Codec::Json && codec != Codec::Raw {
                        return Err(RpcError::new(format!("codec {codec:?} is not supported by this method, use JSON")));
                    }
                    let arg = if body.is_empty() {
                        A::default()
                    } else {
                        serde_json::from_slice(&body).map_err(|e| RpcError::new(format!("json decode: {e}")))?
                    };
                    let reply = f(arg).await?;
                    serde_json::to_vec(&reply).map(Bytes::from).map_err(|e| RpcError::new(format!("json encode: {e}")))
                })
            }),
        );
    }

    /// Register a method whose argument and reply are protobuf messages (jobs, kv).
    pub fn register_proto<A, R, F, Fut>(&self, method: &str, f: F)
    where
        A: prost::Message + Default + 'static,
        R: prost::Message + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.register_raw(
            method,
            Arc::new(move |codec, body: Bytes| {
                let f = f.clone();
                let arg = match codec {
                    Codec::Proto => A::decode(body).map_err(|e| RpcError::new(format!("proto decode: {e}"))),
                    _ => Err(RpcError::new("message type is not a proto")),
                };
                Box::pin(async move {
                    let reply = f(arg?).await?;
                    Ok(Bytes::from(reply.encode_to_vec()))
                })
            }),
        );
    }

    /// Dispatch one call, with Go net/rpc's texts for unknown names.
    pub async fn call(&self, method: &str, codec: Codec, body: Bytes) -> Result<Bytes, RpcError> {
        let Some((service, _)) = method.split_once('.') else {
            return Err(RpcError::new(format!("rpc: service/method request ill-formed: {method}")));
        };
        let handler = {
            let methods = self.methods.read().unwrap();
            match methods.get(method) {
                Some(h) => h.clone(),
                None if methods.keys().any(|m| m.split_once('.').map(|(s, _)| s) == Some(service)) => {
                    return Err(RpcError::new(format!("rpc: can't find method {method}")));
                }
                None => return Err(RpcError::new(format!("rpc: can't find service {method}"))),
            }
        };
        handler(codec, body).await
    }

    pub fn methods(&self) -> Vec<String> {
        let mut names: Vec<_> = self.methods.read().unwrap().keys().cloned().collect();
        names.sort();
        names
    }
}
