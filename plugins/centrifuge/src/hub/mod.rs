//! The embedded hub (`centrifuge.hub`): `rr` serves the Centrifuge client protocol itself, so
//! the official Centrifuge clients connect to it directly, and every client event reaches PHP
//! as the same proxy request proxy mode sends (CENTRIFUGE.md §7).
//!
//! `config` the keys; `protocol` the client protocol and its framings; `jwt` connection tokens;
//! `broker` channels, fan-out and history in memory; `conn` one WebSocket session; `sse` the
//! unidirectional ones (SSE, HTTP streaming); `limits` what a client may ask; `server` the
//! hub's own listener, `route` the endpoints on the http plugin's; `api` PHP's `centrifuge.*`
//! RPC calls served here instead of by Centrifugo.

pub mod api;
pub mod broker;
pub mod config;
pub mod conn;
pub mod jwt;
pub mod limits;
pub mod protocol;
pub mod redis;
pub mod route;
pub mod server;
pub mod sse;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use rr_runtime::pool::Pool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::HubConfig;
use protocol::{Protocol, Reply};

/// The hub's shared state: its connections and its broker.
pub struct Hub {
    pub cfg: HubConfig,
    pub pool: Pool,
    pub broker: broker::Broker,
    clients: Mutex<HashMap<String, Arc<Client>>>,
    pub shutdown: CancellationToken,
    pub node_id: String,
    pub started: std::time::Instant,
    /// Set with the redis broker: publications go through Redis.
    pub remote: std::sync::OnceLock<redis::Remote>,
    pub limits: limits::Limits,
}

impl Hub {
    pub fn new(cfg: HubConfig, pool: Pool) -> Arc<Hub> {
        Arc::new(Hub { broker: broker::Broker::new(&cfg), limits: limits::Limits::new(&cfg), cfg, pool, clients: Mutex::new(HashMap::new()), shutdown: CancellationToken::new(), node_id: uuid::Uuid::new_v4().to_string(), started: std::time::Instant::now(), remote: Default::default() })
    }

    /// Publish to a channel: through Redis when that is the broker (the position is then
    /// unknown here), else straight to the memory broker.
    pub async fn publish(&self, channel: &str, data: Vec<u8>, info: Option<protocol::ClientInfo>, tags: HashMap<String, String>, skip_history: bool) -> Result<broker::Position, String> {
        match self.remote.get() {
            Some(remote) => {
                remote.publish(redis::Wire { channel: channel.into(), data, info, tags, skip_history }).await?;
                Ok(broker::Position::default())
            }
            None => Ok(self.broker.publish(channel, data, info, tags, skip_history)),
        }
    }

    fn add(&self, client: Arc<Client>) {
        self.clients.lock().insert(client.id.clone(), client);
    }

    fn remove(&self, client: &Client) {
        self.clients.lock().remove(&client.id);
        self.broker.unsubscribe_all(client);
    }

    /// Connected clients of `user` (all when `user` is empty), optionally one `client` id.
    pub fn clients_of(&self, user: &str, client: &str) -> Vec<Arc<Client>> {
        self.clients.lock().values().filter(|c| c.is_connected() && (user.is_empty() || c.user() == user) && (client.is_empty() || c.id == client)).cloned().collect()
    }

    pub fn num_clients(&self) -> usize {
        self.clients.lock().values().filter(|c| c.is_connected()).count()
    }

    pub fn num_users(&self) -> usize {
        let clients = self.clients.lock();
        let users: std::collections::HashSet<String> = clients.values().filter(|c| c.is_connected()).map(|c| c.user()).collect();
        users.len()
    }
}

/// What the writer of a connection sends next.
pub enum Out {
    Frame(Bytes),
}

/// One connected client as the broker and the API see it: who it is and its send queue.
pub struct Client {
    pub id: String,
    pub protocol: Protocol,
    identity: Mutex<Identity>,
    connected: AtomicBool,
    queue: mpsc::UnboundedSender<Out>,
    /// Bytes queued and not yet written; above `client_queue_max_size` the client is slow.
    queued: AtomicUsize,
    queue_max: usize,
    /// Calls to PHP in flight: meanwhile the reader is not reading, so a pong may wait unread.
    pub(crate) in_calls: AtomicUsize,
    /// Why the session ends (code, reason); set once, then `closing` fires.
    close: Mutex<Option<(u16, String)>>,
    pub closing: CancellationToken,
}

#[derive(Default, Clone)]
pub struct Identity {
    pub user: String,
    /// `info` from the connect result or token: `ClientInfo.conn_info`.
    pub info: Vec<u8>,
    pub meta: Vec<u8>,
}

impl Client {
    pub fn user(&self) -> String {
        self.identity.lock().user.clone()
    }

    pub fn identity(&self) -> Identity {
        self.identity.lock().clone()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Queue a frame; a client whose queue is over its limit is disconnected with 3008.
    pub fn send(&self, frame: Bytes) {
        if self.closing.is_cancelled() {
            return;
        }
        let queued = self.queued.fetch_add(frame.len(), Ordering::AcqRel) + frame.len();
        if queued > self.queue_max {
            let p = protocol::DISCONNECT_SLOW;
            self.disconnect(p.0, p.1);
            return;
        }
        let _ = self.queue.send(Out::Frame(frame));
    }

    pub fn send_replies(&self, replies: &[Reply]) {
        if !replies.is_empty() {
            self.send(protocol::encode_replies(self.protocol, replies));
        }
    }

    /// End the session with a close frame carrying `code` and `reason`; the first call wins.
    pub fn disconnect(&self, code: u16, reason: &str) {
        let mut close = self.close.lock();
        if close.is_none() {
            *close = Some((code, reason.to_string()));
            self.closing.cancel();
        }
    }

    pub(crate) fn written(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    pub(crate) fn close_reason(&self) -> Option<(u16, String)> {
        self.close.lock().clone()
    }
}

/// A std mutex whose poisoning is ignored: no lock here is held across code that can panic on
/// the data it guards.
pub struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }
    pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
