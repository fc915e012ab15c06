//! The embedded hub (`centrifuge.hub`): `rr` serves the Centrifuge client protocol itself, so
//! the official Centrifuge clients connect to it directly, and every client event reaches PHP
//! as the same proxy request proxy mode sends (CENTRIFUGE.md §7).
//!
//! `config` the keys; `protocol` the client protocol and its framings; `jwt` connection tokens;
//! `broker` channels, fan-out and history in memory; `redis` history, presence and fan-out
//! across servers through Redis; `conn` one WebSocket session; `sse` the unidirectional ones
//! (SSE, HTTP streaming); `limits` what a client may ask; `nodes` the servers Info and Channels
//! report; `server` the hub's own listener,
//! `route` the endpoints on the http plugin's; `api` PHP's `centrifuge.*` RPC calls served here
//! instead of by Centrifugo.

pub mod api;
pub mod broker;
pub mod config;
pub mod conn;
pub mod jwt;
pub mod limits;
pub mod nodes;
pub mod protocol;
pub mod redis;
pub mod route;
pub mod server;
pub mod sse;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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
    /// Set with the redis broker: publications, history and presence go through Redis.
    pub remote: std::sync::OnceLock<Arc<redis::Remote>>,
    pub stats: Arc<Stats>,
    pub limits: limits::Limits,
}

/// Counters for the metrics plugin.
#[derive(Default)]
pub struct Stats {
    /// Published through this server (by PHP or its clients).
    pub publications: AtomicU64,
    /// Frames queued to clients (replies and pushes).
    pub messages_sent: AtomicU64,
    /// Connections this server closed, by close code.
    pub disconnects: Mutex<std::collections::BTreeMap<u16, u64>>,
}

impl Hub {
    pub fn new(cfg: HubConfig, pool: Pool) -> Arc<Hub> {
        Arc::new(Hub { broker: broker::Broker::new(&cfg), limits: limits::Limits::new(&cfg), cfg, pool, clients: Mutex::new(HashMap::new()), shutdown: CancellationToken::new(), node_id: uuid::Uuid::new_v4().to_string(), started: std::time::Instant::now(), remote: Default::default(), stats: Default::default() })
    }

    /// Publish to a channel: through Redis when that is the broker, else straight to the
    /// memory broker. The new stream position.
    pub async fn publish(&self, channel: &str, data: Vec<u8>, info: Option<protocol::ClientInfo>, tags: HashMap<String, String>, skip_history: bool) -> Result<broker::Position, String> {
        let position = match self.remote.get() {
            Some(remote) => remote.publish(channel, data, info, tags, skip_history).await?,
            None => self.broker.publish(channel, data, info, tags, skip_history),
        };
        self.stats.publications.fetch_add(1, Ordering::Relaxed);
        Ok(position)
    }

    /// A channel's history (see [`broker::Broker::history`]), from Redis or memory.
    pub async fn history(&self, channel: &str, limit: i32, since: Option<&broker::Position>, reverse: bool) -> Result<(Vec<protocol::Publication>, broker::Position), String> {
        match self.remote.get() {
            Some(remote) => remote.history(channel, limit, since, reverse).await,
            None => Ok(self.broker.history(channel, limit, since, reverse)),
        }
    }

    pub async fn position(&self, channel: &str) -> Result<broker::Position, String> {
        match self.remote.get() {
            Some(remote) => Ok(remote.history(channel, 0, None, false).await?.1),
            None => Ok(self.broker.position(channel)),
        }
    }

    pub async fn remove_history(&self, channel: &str) -> Result<(), String> {
        match self.remote.get() {
            Some(remote) => remote.remove_history(channel).await,
            None => {
                self.broker.remove_history(channel);
                Ok(())
            }
        }
    }

    /// The channel's subscribers, of every server with the redis broker.
    pub async fn presence(&self, channel: &str) -> Result<HashMap<String, protocol::ClientInfo>, String> {
        match self.remote.get() {
            Some(remote) => remote.presence(channel).await,
            None => Ok(self.broker.presence(channel)),
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
    stats: Arc<Stats>,
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
        self.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
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
            *self.stats.disconnects.lock().entry(code).or_default() += 1;
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
#[derive(Default)]
pub struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }
    pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `rr_centrifugo_hub_*` for the metrics plugin.
impl rr_runtime::metrics::Collector for Hub {
    fn collect(&self, out: &mut Vec<rr_runtime::metrics::Family>) {
        use rr_runtime::metrics::{Family, Kind, Value};
        let counter = |name: &str, help: &str, n: &AtomicU64| Family::single(name, help, Kind::Counter, n.load(Ordering::Relaxed) as f64);
        let mut disconnects = Family::new("rr_centrifugo_hub_disconnects_total", "Connections the hub closed, by close code.", Kind::Counter);
        for (code, n) in self.stats.disconnects.lock().iter() {
            disconnects = disconnects.with(vec![("code".into(), code.to_string())], Value::Single(*n as f64));
        }
        out.extend([
            Family::single("rr_centrifugo_hub_connections", "Clients connected to this server's hub.", Kind::Gauge, self.num_clients() as f64),
            Family::single("rr_centrifugo_hub_subscriptions", "Channel subscriptions of this server's clients.", Kind::Gauge, self.broker.num_subscriptions() as f64),
            counter("rr_centrifugo_hub_publications_total", "Publications made through this server (PHP's API and clients).", &self.stats.publications),
            counter("rr_centrifugo_hub_messages_sent_total", "Replies and pushes queued to this server's clients.", &self.stats.messages_sent),
            disconnects,
        ]);
    }
}
