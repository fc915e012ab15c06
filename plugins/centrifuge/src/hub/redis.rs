//! The redis driver: several `rr` processes with the same `prefix` share publications, history
//! and presence through Redis (one node, Sentinels with `master_name`, or a cluster), the way
//! Centrifugo's Redis engine does it.
//!
//! - Publications go out on one pub/sub channel, `<prefix>.publications`; every hub pushes what
//!   arrives there to its own subscribers (its own publications included), joins and leaves too.
//! - History: a Lua script appends to the channel's stream (`<prefix>.stream.{channel}`, entry
//!   id = offset, `MAXLEN history_size`, expiring `history_ttl` after the last publication),
//!   increments the offset kept with the epoch in `<prefix>.meta.{channel}`, and publishes, all
//!   at once: every hub sees the same offsets in the same order.
//! - Presence: a hash (client → info) and a sorted set (client → expiry time) per channel; each
//!   hub re-adds its subscribers every third of `presence_ttl`, so the entries of a server that
//!   died expire, and readers drop expired ones first.
//!
//! - Nodes: each hub's counts and channels in `<prefix>.nodes` (`super::nodes`), for Info and
//!   Channels across servers.
//!
//! The `{channel}` hash tag keeps a channel's keys in one cluster slot, as scripts need.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use tokio::sync::mpsc;

use super::Hub;
use super::nodes::{self, ANNOUNCE_EVERY, NodeState};
use super::broker::{Event, Position, now_ms};
use super::config::{RedisConfig, redis_url};
use super::protocol::{ClientInfo, Publication};

/// One message on the pub/sub channel (after `<offset> <epoch> `), and one stream entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Wire {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub info: Option<ClientInfo>,
    #[prost(map = "string, string", tag = "4")]
    pub tags: HashMap<String, String>,
    /// Unix milliseconds of the publication (history_ttl is checked against it).
    #[prost(int64, tag = "5")]
    pub time: i64,
    #[prost(enumeration = "Kind", tag = "6")]
    pub kind: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    Publication = 0,
    Join = 1,
    Leave = 2,
    /// PHP's Subscribe, Unsubscribe or Disconnect (`channel` the method, `data` the request)
    /// for every server's clients.
    Control = 3,
}

/// KEYS: stream, meta. ARGV: wire, history_size, stream ttl, meta ttl, pub/sub channel, a new
/// epoch. A channel without meta starts a new epoch and drops any stream left from before.
const PUBLISH: &str = r#"
local epoch = redis.call('hget', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[6]
  redis.call('hset', KEYS[2], 'e', epoch)
  redis.call('del', KEYS[1])
end
local offset = redis.call('hincrby', KEYS[2], 's', 1)
redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-0', 'd', ARGV[1])
redis.call('expire', KEYS[1], ARGV[3])
redis.call('expire', KEYS[2], ARGV[4])
redis.call('publish', ARGV[5], offset .. ' ' .. epoch .. ' ' .. ARGV[1])
return {offset, epoch}
"#;

/// KEYS: stream, meta. ARGV: first offset wanted (or '' for none), a new epoch, meta ttl.
/// Returns offset, epoch and the entries from that offset on.
const HISTORY: &str = r#"
local offset = tonumber(redis.call('hget', KEYS[2], 's') or '0')
local epoch = redis.call('hget', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('hset', KEYS[2], 'e', epoch)
  redis.call('expire', KEYS[2], ARGV[3])
  redis.call('del', KEYS[1])
end
local entries = {}
if ARGV[1] ~= '' then
  entries = redis.call('xrange', KEYS[1], ARGV[1], '+')
end
return {offset, epoch, entries}
"#;

/// KEYS: presence hash, expiry zset. ARGV: expire at (Unix s), key ttl, then client, info pairs.
const PRESENCE_ADD: &str = r#"
for i = 3, #ARGV, 2 do
  redis.call('zadd', KEYS[2], ARGV[1], ARGV[i])
  redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('expire', KEYS[1], ARGV[2])
redis.call('expire', KEYS[2], ARGV[2])
"#;

/// KEYS: presence hash, expiry zset. ARGV: client.
const PRESENCE_REMOVE: &str = r#"
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('zrem', KEYS[2], ARGV[1])
"#;

/// KEYS: presence hash, expiry zset. ARGV: now (Unix s). Expired entries go first.
const PRESENCE_GET: &str = r#"
local expired = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[1])
for _, client in ipairs(expired) do
  redis.call('hdel', KEYS[1], client)
end
redis.call('zremrangebyscore', KEYS[2], '-inf', ARGV[1])
return redis.call('hgetall', KEYS[1])
"#;

pub struct Remote {
    conn: Conn,
    cfg: RedisConfig,
    channel: String,
    history_size: usize,
    history_ttl: Duration,
}

#[derive(Clone)]
enum Conn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<Sentinel>),
}

/// The master the Sentinels name; asked again when a command finds the connection gone or the
/// node demoted (a failover).
struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    master: tokio::sync::RwLock<MultiplexedConnection>,
}

const FAILOVER_ATTEMPTS: u32 = 10;
/// A Redis that does not answer fails the call (error 100) after this, instead of holding the
/// client's commands; connecting gives up sooner.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new().set_connection_timeout(CONNECT_TIMEOUT).set_response_timeout(RESPONSE_TIMEOUT)
}

/// The master went away or was demoted, or the Sentinels name no usable master for a moment
/// while they switch.
fn failover_error(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || matches!(e.kind(), redis::ErrorKind::ReadOnly | redis::ErrorKind::MasterNameNotFoundBySentinel)
}

impl Sentinel {
    async fn master(client: &mut SentinelClient) -> redis::RedisResult<MultiplexedConnection> {
        client.async_get_client().await?.get_multiplexed_async_connection_with_config(&connection_config()).await
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self.master.read().await.clone();
        let mut result = cmd.query_async(&mut conn).await;
        for attempt in 1..FAILOVER_ATTEMPTS {
            match &result {
                Err(e) if failover_error(e) => {}
                _ => break,
            }
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let fresh = Self::master(&mut *self.client.lock().await).await;
            result = match fresh {
                Ok(mut fresh) => {
                    *self.master.write().await = fresh.clone();
                    cmd.query_async(&mut fresh).await
                }
                Err(e) => Err(e),
            };
        }
        result
    }
}

impl Conn {
    async fn connect(cfg: &RedisConfig) -> redis::RedisResult<Conn> {
        if let Some(master_name) = &cfg.master_name {
            let sentinels: Vec<String> = cfg.addrs.iter().map(|a| redis_url(a, cfg.sentinel_username.as_deref(), cfg.sentinel_password.as_deref(), 0)).collect();
            let node = redis::RedisConnectionInfo { db: cfg.db, username: cfg.username.clone(), password: cfg.password.clone(), ..Default::default() };
            let mut client = SentinelClient::build(sentinels, master_name.clone(), Some(SentinelNodeConnectionInfo { tls_mode: None, redis_connection_info: Some(node) }), SentinelServerType::Master)?;
            let master = Sentinel::master(&mut client).await?;
            return Ok(Conn::Sentinel(Arc::new(Sentinel { client: tokio::sync::Mutex::new(client), master: tokio::sync::RwLock::new(master) })));
        }
        if cfg.addrs.len() > 1 {
            let nodes: Vec<String> = cfg.addrs.iter().map(|a| cfg.node_url(a)).collect();
            let client = redis::cluster::ClusterClientBuilder::new(nodes).connection_timeout(CONNECT_TIMEOUT).response_timeout(RESPONSE_TIMEOUT).retries(2).build()?;
            return Ok(Conn::Cluster(client.get_async_connection().await?));
        }
        // A lost connection is re-made on the next call; while Redis is down, calls fail at once.
        let manager = redis::aio::ConnectionManagerConfig::new().set_connection_timeout(CONNECT_TIMEOUT).set_response_timeout(RESPONSE_TIMEOUT).set_number_of_retries(1);
        Ok(Conn::Node(ConnectionManager::new_with_config(redis::Client::open(cfg.node_url(&cfg.addrs[0]))?, manager).await?))
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Conn::Node(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Sentinel(s) => s.query(cmd).await,
        }
    }

    /// A script by its SHA1, loaded with `EVAL` the first time a node does not know it.
    async fn eval<T: redis::FromRedisValue>(&self, script: &str, keys: &[String], args: &[&[u8]]) -> redis::RedisResult<T> {
        let sha = redis::Script::new(script).get_hash().to_string();
        let build = |first: &str, body: &str| {
            let mut cmd = redis::cmd(first);
            cmd.arg(body).arg(keys.len()).arg(keys);
            for a in args {
                cmd.arg(*a);
            }
            cmd
        };
        match self.query(&build("EVALSHA", &sha)).await {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError => self.query(&build("EVAL", script)).await,
            other => other,
        }
    }
}

/// A client for the pub/sub connection: the node, the master the Sentinels name now, or the
/// first cluster node that answers (a cluster forwards `PUBLISH` to every node).
async fn pubsub_client(cfg: &RedisConfig, conn: &Conn) -> redis::RedisResult<redis::Client> {
    match conn {
        Conn::Sentinel(s) => s.client.lock().await.async_get_client().await,
        Conn::Node(_) => redis::Client::open(cfg.node_url(&cfg.addrs[0])),
        Conn::Cluster(_) => {
            let mut last = None;
            for addr in &cfg.addrs {
                let client = redis::Client::open(redis_url(addr, cfg.username.as_deref(), cfg.password.as_deref(), 0))?;
                match client.get_multiplexed_async_connection().await {
                    Ok(_) => return Ok(client),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| (redis::ErrorKind::InvalidClientConfig, "no addrs").into()))
        }
    }
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl Remote {
    /// Connect, subscribe, and deliver what arrives until the hub stops (the subscription is
    /// re-established after a lost connection); with presence or join/leave on, also keep this
    /// server's subscriptions in Redis.
    pub async fn start(hub: &Arc<Hub>, cfg: &RedisConfig) -> Result<Arc<Remote>, String> {
        let fail = |e: redis::RedisError| {
            let what = match (&cfg.master_name, cfg.addrs.len()) {
                (Some(m), _) => format!("the Redis master `{m}` through the Sentinels {:?}", cfg.addrs),
                (None, 1) => format!("Redis at {}", cfg.addrs[0]),
                _ => format!("the Redis cluster {:?}", cfg.addrs),
            };
            format!("config key `centrifuge.hub.broker.config`: cannot reach {what}: {e}")
        };
        let conn = Conn::connect(cfg).await.map_err(fail)?;
        let channel = format!("{}.publications", cfg.prefix);
        let mut pubsub = pubsub_client(cfg, &conn).await.map_err(fail)?.get_async_pubsub().await.map_err(fail)?;
        pubsub.subscribe(&channel).await.map_err(fail)?;
        let remote = Arc::new(Remote { conn, cfg: cfg.clone(), channel, history_size: hub.cfg.history_size, history_ttl: hub.cfg.history_ttl });
        tokio::spawn(remote.clone().receive(hub.clone(), pubsub));
        if hub.cfg.presence || hub.cfg.join_leave {
            let (tx, rx) = mpsc::unbounded_channel();
            hub.broker.send_events(tx);
            tokio::spawn(remote.clone().events(hub.cfg.presence, hub.cfg.join_leave, rx));
        }
        if hub.cfg.presence {
            tokio::spawn(remote.clone().refresh(hub.clone()));
        }
        tokio::spawn(remote.clone().announce(hub.clone()));
        Ok(remote)
    }

    async fn receive(self: Arc<Self>, hub: Arc<Hub>, pubsub: redis::aio::PubSub) {
        let mut pubsub = Some(pubsub);
        loop {
            if let Some(p) = pubsub.take() {
                let mut messages = p.into_on_message();
                loop {
                    tokio::select! {
                        _ = hub.shutdown.cancelled() => return,
                        msg = messages.next() => match msg {
                            Some(msg) => deliver(&hub, msg.get_payload_bytes()),
                            None => break,
                        },
                    }
                }
                tracing::warn!(target: "centrifuge", "hub: the Redis subscription was lost; reconnecting");
            }
            tokio::select! {
                _ = hub.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let subscribed = async {
                let mut p = pubsub_client(&self.cfg, &self.conn).await?.get_async_pubsub().await?;
                p.subscribe(&self.channel).await?;
                redis::RedisResult::Ok(p)
            };
            match subscribed.await {
                Ok(p) => pubsub = Some(p),
                Err(e) => tracing::warn!(target: "centrifuge", error = %e, "hub: Redis subscribe failed"),
            }
        }
    }

    fn key(&self, kind: &str, channel: &str) -> String {
        format!("{}.{kind}.{{{channel}}}", self.cfg.prefix)
    }

    /// A control message to every server (this one included).
    pub async fn control(&self, method: &str, request: Vec<u8>) -> Result<(), String> {
        let wire = Wire { channel: method.into(), data: request, time: now_ms(), kind: Kind::Control as i32, ..Default::default() };
        let mut payload = b"0  ".to_vec();
        payload.extend_from_slice(&wire.encode_to_vec());
        self.conn.query::<()>(redis::cmd("PUBLISH").arg(&self.channel).arg(payload)).await.map_err(|e| format!("redis publish: {e}"))
    }

    /// Publish: with history, appended to the stream and positioned; without, only sent.
    pub async fn publish(&self, channel: &str, data: Vec<u8>, info: Option<ClientInfo>, tags: HashMap<String, String>, skip_history: bool) -> Result<Position, String> {
        let wire = Wire { channel: channel.into(), data, info, tags, time: now_ms(), kind: Kind::Publication as i32 }.encode_to_vec();
        if self.history_size == 0 || skip_history {
            let mut payload = b"0  ".to_vec();
            payload.extend_from_slice(&wire);
            self.conn.query::<()>(redis::cmd("PUBLISH").arg(&self.channel).arg(payload)).await.map_err(|e| format!("redis publish: {e}"))?;
            // Centrifugo: a publication kept out of history has no position.
            return Ok(Position::default());
        }
        let (stream, meta) = (self.key("stream", channel), self.key("meta", channel));
        let (size, ttl, meta_ttl, epoch) = (self.history_size.to_string(), secs(self.history_ttl).to_string(), secs(self.cfg.history_meta_ttl).to_string(), new_epoch());
        let args: [&[u8]; 6] = [&wire, size.as_bytes(), ttl.as_bytes(), meta_ttl.as_bytes(), self.channel.as_bytes(), epoch.as_bytes()];
        let (offset, epoch): (u64, String) = self.conn.eval(PUBLISH, &[stream, meta], &args).await.map_err(|e| format!("redis publish: {e}"))?;
        Ok(Position { offset, epoch })
    }

    /// As the memory broker's `history`: after `since` (all when None), oldest first, at most
    /// `limit` (<0: all), newest first when `reverse`; publications older than `history_ttl`
    /// are left out. `limit` 0 reads only the position.
    pub async fn history(&self, channel: &str, limit: i32, since: Option<&Position>, reverse: bool) -> Result<(Vec<Publication>, Position), String> {
        let from = match (limit, since) {
            (0, _) => String::new(),
            (_, Some(s)) => format!("{}-0", s.offset + 1),
            (_, None) => "-".into(),
        };
        let (stream, meta) = (self.key("stream", channel), self.key("meta", channel));
        let (epoch, meta_ttl) = (new_epoch(), secs(self.cfg.history_meta_ttl).to_string());
        let args: [&[u8]; 3] = [from.as_bytes(), epoch.as_bytes(), meta_ttl.as_bytes()];
        type Entries = Vec<(String, Vec<Vec<u8>>)>;
        let (offset, epoch, entries): (u64, String, Entries) = self.conn.eval(HISTORY, &[stream, meta], &args).await.map_err(|e| format!("redis history: {e}"))?;
        let oldest = now_ms() - self.history_ttl.as_millis() as i64;
        let mut pubs: Vec<Publication> = entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let offset = id.split('-').next()?.parse().ok()?;
                let wire = Wire::decode(fields.get(1)?.as_slice()).ok()?;
                (self.history_ttl.is_zero() || wire.time > oldest).then(|| Publication { data: wire.data, info: wire.info, offset, tags: wire.tags, time: wire.time, ..Default::default() })
            })
            .collect();
        if reverse {
            pubs.reverse();
        }
        if limit >= 0 {
            pubs.truncate(limit as usize);
        }
        Ok((pubs, Position { offset, epoch }))
    }

    pub async fn remove_history(&self, channel: &str) -> Result<(), String> {
        self.conn.query::<()>(redis::cmd("DEL").arg(self.key("stream", channel))).await.map_err(|e| format!("redis history remove: {e}"))
    }

    /// Every client subscribed to `channel` on any server, by client id.
    pub async fn presence(&self, channel: &str) -> Result<HashMap<String, ClientInfo>, String> {
        let now = (now_ms() / 1000).to_string();
        let (data, expiry) = (self.key("presence", channel), self.key("presence.expire", channel));
        let pairs: HashMap<String, Vec<u8>> = self.conn.eval(PRESENCE_GET, &[data, expiry], &[now.as_bytes()]).await.map_err(|e| format!("redis presence: {e}"))?;
        Ok(pairs.into_iter().filter_map(|(client, info)| Some((client, ClientInfo::decode(info.as_slice()).ok()?))).collect())
    }

    async fn presence_add(&self, channel: &str, infos: &[ClientInfo]) -> redis::RedisResult<()> {
        let ttl = self.cfg.presence_ttl;
        let expire_at = (now_ms() / 1000 + ttl.as_secs() as i64).to_string();
        let key_ttl = secs(ttl).to_string();
        let encoded: Vec<(String, Vec<u8>)> = infos.iter().map(|i| (i.client.clone(), i.encode_to_vec())).collect();
        let mut args: Vec<&[u8]> = vec![expire_at.as_bytes(), key_ttl.as_bytes()];
        for (client, info) in &encoded {
            args.push(client.as_bytes());
            args.push(info);
        }
        self.conn.eval(PRESENCE_ADD, &[self.key("presence", channel), self.key("presence.expire", channel)], &args).await
    }

    /// Joins and leaves of this server's clients, in order: presence entries and join/leave
    /// messages for every server's subscribers. Ends when the hub (its broker) is gone.
    async fn events(self: Arc<Self>, presence: bool, join_leave: bool, mut rx: mpsc::UnboundedReceiver<Event>) {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 256).await > 0 {
            for event in batch.drain(..) {
                let (channel, info, kind) = match event {
                    Event::Join { channel, info } => (channel, info, Kind::Join),
                    Event::Leave { channel, info } => (channel, info, Kind::Leave),
                };
                let mut result = Ok(());
                if presence {
                    result = match kind {
                        Kind::Join => self.presence_add(&channel, std::slice::from_ref(&info)).await,
                        _ => self.conn.eval(PRESENCE_REMOVE, &[self.key("presence", &channel), self.key("presence.expire", &channel)], &[info.client.as_bytes()]).await,
                    };
                }
                if join_leave && result.is_ok() {
                    let wire = Wire { channel, info: Some(info), time: now_ms(), kind: kind as i32, ..Default::default() };
                    let mut payload = b"0  ".to_vec();
                    payload.extend_from_slice(&wire.encode_to_vec());
                    result = self.conn.query(redis::cmd("PUBLISH").arg(&self.channel).arg(payload)).await;
                }
                if let Err(e) = result {
                    tracing::warn!(target: "centrifuge", error = %e, "hub: a join or leave did not reach Redis");
                }
            }
        }
    }

    fn nodes_key(&self) -> String {
        format!("{}.nodes", self.cfg.prefix)
    }

    /// The servers' entries (`super::nodes`), expired ones removed.
    pub async fn nodes(&self) -> Result<Vec<NodeState>, String> {
        let key = self.nodes_key();
        let entries: HashMap<String, Vec<u8>> = self.conn.query(redis::cmd("HGETALL").arg(&key)).await.map_err(|e| format!("redis hgetall {key}: {e}"))?;
        let now = now_ms();
        let (mut live, mut dead) = (Vec::new(), Vec::new());
        for (id, bytes) in entries {
            match NodeState::decode(bytes.as_slice()) {
                Ok(n) if n.expires_ms > now => live.push(n),
                _ => dead.push(id),
            }
        }
        if !dead.is_empty() {
            self.conn.query::<()>(redis::cmd("HDEL").arg(&key).arg(dead)).await.map_err(|e| format!("redis hdel {key}: {e}"))?;
        }
        Ok(live)
    }

    /// Write this server's entry every `ANNOUNCE_EVERY` until the hub stops, then remove it.
    async fn announce(self: Arc<Self>, hub: Arc<Hub>) {
        let key = self.nodes_key();
        let mut ticker = tokio::time::interval(ANNOUNCE_EVERY);
        loop {
            tokio::select! {
                _ = hub.shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let state = nodes::local(&hub).encode_to_vec();
            if let Err(e) = self.conn.query::<()>(redis::cmd("HSET").arg(&key).arg(&hub.node_id).arg(state)).await {
                tracing::warn!(target: "centrifuge", error = %e, "hub: writing this node's state to Redis failed");
            }
        }
        let _ = self.conn.query::<()>(redis::cmd("HDEL").arg(&key).arg(&hub.node_id)).await;
    }

    /// Every third of `presence_ttl`, this server's subscriptions are written again with a new
    /// expiry: a server that stops doing so (it died) drops out of presence.
    async fn refresh(self: Arc<Self>, hub: Arc<Hub>) {
        let every = self.cfg.presence_ttl / 3;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                _ = hub.shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let chunks: Vec<(String, Vec<ClientInfo>)> = hub.broker.subscriptions().into_iter().flat_map(|(channel, infos)| infos.chunks(500).map(|c| (channel.clone(), c.to_vec())).collect::<Vec<_>>()).collect();
            let writes = chunks.into_iter().map(|(channel, infos)| {
                let this = self.clone();
                async move { this.presence_add(&channel, &infos).await }
            });
            let results: Vec<_> = futures::stream::iter(writes).buffer_unordered(32).collect().await;
            if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
                tracing::warn!(target: "centrifuge", error = %e, "hub: presence refresh in Redis failed");
            }
        }
    }
}

/// `<offset> <epoch> <wire>` from the pub/sub channel to this server's subscribers.
fn deliver(hub: &Arc<Hub>, payload: &[u8]) {
    let mut parts = payload.splitn(3, |b| *b == b' ');
    let (Some(offset), Some(_epoch), Some(wire)) = (parts.next(), parts.next(), parts.next()) else {
        tracing::warn!(target: "centrifuge", "hub: a message on the Redis channel is not a hub message; ignored");
        return;
    };
    let offset = std::str::from_utf8(offset).ok().and_then(|o| o.parse::<u64>().ok()).unwrap_or(0);
    match Wire::decode(wire) {
        Ok(w) => match Kind::try_from(w.kind) {
            Ok(Kind::Publication) => {
                hub.broker.deliver(&w.channel, Publication { data: w.data, info: w.info, offset, tags: w.tags, time: w.time, ..Default::default() });
            }
            Ok(Kind::Control) => {
                let hub = hub.clone();
                tokio::spawn(async move { super::api::act(&hub, &w.channel, w.data.into()).await });
            }
            Ok(kind) => {
                if let Some(info) = w.info {
                    hub.broker.deliver_join(&w.channel, info, kind == Kind::Leave);
                }
            }
            Err(_) => tracing::warn!(target: "centrifuge", kind = w.kind, "hub: unknown message kind on the Redis channel; ignored"),
        },
        Err(e) => tracing::warn!(target: "centrifuge", error = %e, "hub: a message on the Redis channel is not a hub message; ignored"),
    }
}
