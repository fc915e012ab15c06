//! `centrifuge.hub`: the embedded hub's keys, named after Centrifugo's options (CENTRIFUGE.md §7).

use std::time::Duration;

use rr_runtime::config::duration;
use serde::Deserialize;

pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8000";
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_EXPIRED_CLOSE_DELAY: Duration = Duration::from_secs(25);
/// Centrifuge's defaults: a 1 MiB send queue per client, 64 KiB per message.
pub const DEFAULT_CLIENT_QUEUE_MAX_SIZE: usize = 1024 * 1024;
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 65536;
pub const DEFAULT_CLIENT_CHANNEL_LIMIT: usize = 128;
pub const DEFAULT_CHANNEL_MAX_LENGTH: usize = 255;
/// The endpoints, as Centrifugo serves them: `/connection` + these.
pub const CONNECTION_PREFIX: &str = "/connection";
pub const WEBSOCKET: &str = "/websocket";
pub const UNI_SSE: &str = "/uni_sse";
pub const UNI_HTTP_STREAM: &str = "/uni_http_stream";
pub const WEBSOCKET_PATH: &str = "/connection/websocket";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// The hub's own listener, `host:port`; empty with `http_path` set: none.
    pub address: String,
    /// The endpoints also on the http plugin's listeners, under this path (`/connection` gives
    /// Centrifugo's `/connection/websocket`, ...).
    pub http_path: Option<String>,
    /// `Origin` values accepted on the upgrade; empty or `*` accepts any.
    pub allowed_origins: Vec<String>,
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    #[serde(with = "duration")]
    pub pong_timeout: Duration,
    /// Connection JWTs (HS256) signed with this key skip the connect call to PHP.
    pub token_hmac_secret_key: String,
    /// How long after a token's `exp` a client that has not sent a `refresh` with a new token
    /// stays connected (Centrifugo's `client_expired_close_delay`); then it is closed with 3005.
    #[serde(with = "duration")]
    pub client_expired_close_delay: Duration,
    /// Publications kept per channel (0: no history).
    pub history_size: usize,
    #[serde(with = "duration")]
    pub history_ttl: Duration,
    pub presence: bool,
    pub join_leave: bool,
    /// Bytes waiting to be written to one client; more and it is disconnected with 3008.
    pub client_queue_max_size: usize,
    /// The largest frame a client may send, in bytes.
    pub max_message_size: usize,
    /// How long one PHP call may take; a silent worker is then replaced.
    #[serde(with = "duration")]
    pub proxy_timeout: Duration,
    /// Channels one client may be subscribed to; more: error 106 "limit exceeded".
    pub client_channel_limit: usize,
    /// The longest channel name; longer: error 106.
    pub channel_max_length: usize,
    /// Connections this node takes at once (0: no limit); more: HTTP 503 on the upgrade.
    pub client_connection_limit: usize,
    /// New connections per second this node takes (0: no limit); more: HTTP 503.
    pub client_connection_rate_limit: usize,
    /// Connections one user (non-empty) may have on this node (0: no limit); more: 3504.
    pub client_user_connection_limit: usize,
    /// Commands per second one connection may send (0: no limit); more: error 111.
    pub client_command_rate_limit: usize,
    pub broker: Broker,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            address: String::new(),
            http_path: None,
            allowed_origins: Vec::new(),
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            token_hmac_secret_key: String::new(),
            client_expired_close_delay: DEFAULT_EXPIRED_CLOSE_DELAY,
            history_size: 0,
            history_ttl: Duration::ZERO,
            presence: false,
            join_leave: false,
            client_queue_max_size: DEFAULT_CLIENT_QUEUE_MAX_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            proxy_timeout: DEFAULT_PROXY_TIMEOUT,
            client_channel_limit: DEFAULT_CLIENT_CHANNEL_LIMIT,
            channel_max_length: DEFAULT_CHANNEL_MAX_LENGTH,
            client_connection_limit: 0,
            client_connection_rate_limit: 0,
            client_user_connection_limit: 0,
            client_command_rate_limit: 0,
            broker: Broker::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Broker {
    pub driver: Driver,
    /// The driver's own keys (redis: the kv plugin's `addrs`, `master_name`, ...).
    pub config: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    #[default]
    Memory,
    Redis,
}

/// `broker.config` for redis: the kv plugin's keys (one node; several: a cluster; with
/// `master_name`: Sentinels), the key prefix and how long Redis keeps presence and stream meta.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub addrs: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
    pub master_name: Option<String>,
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    /// Starts every key and the pub/sub channel; hubs with the same prefix are one cluster.
    pub prefix: String,
    /// A server's presence entries outlive it by at most this (refreshed every third of it).
    #[serde(with = "duration")]
    pub presence_ttl: Duration,
    /// How long a channel's offset and epoch outlive its last publication (Centrifugo's
    /// `history_meta_ttl`).
    #[serde(with = "duration")]
    pub history_meta_ttl: Duration,
}

/// go-redis options RoadRunner's redis config has; the redis crate's defaults are used instead.
const RR_TUNING_KEYS: &[&str] = &[
    "dial_timeout", "max_retries", "min_retry_backoff", "max_retry_backoff", "pool_size", "min_idle_conns", "max_conn_age", "read_timeout", "write_timeout",
    "pool_timeout", "idle_timeout", "idle_check_freq", "read_only", "route_by_latency", "route_randomly",
];

pub const DEFAULT_PRESENCE_TTL: Duration = Duration::from_secs(60);
pub const DEFAULT_HISTORY_META_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            addrs: vec!["127.0.0.1:6379".into()],
            username: None,
            password: None,
            db: 0,
            master_name: None,
            sentinel_username: None,
            sentinel_password: None,
            prefix: "rr-centrifuge".into(),
            presence_ttl: DEFAULT_PRESENCE_TTL,
            history_meta_ttl: DEFAULT_HISTORY_META_TTL,
        }
    }
}

/// `redis://user:password@addr/db`, as the kv plugin builds it.
pub fn redis_url(addr: &str, username: Option<&str>, password: Option<&str>, db: i64) -> String {
    let auth = match (username, password) {
        (Some(u), Some(p)) => format!("{u}:{p}@"),
        (None, Some(p)) => format!(":{p}@"),
        _ => String::new(),
    };
    format!("redis://{auth}{addr}/{db}")
}

impl RedisConfig {
    /// The URL of one data node.
    pub fn node_url(&self, addr: &str) -> String {
        redis_url(addr, self.username.as_deref(), self.password.as_deref(), self.db)
    }
}

impl Broker {
    pub fn redis(&self) -> Result<RedisConfig, String> {
        let key = "config key `centrifuge.hub.broker.config`";
        let mut cfg: RedisConfig = match &self.config {
            None | Some(serde_json::Value::Null) => RedisConfig::default(),
            Some(v) => {
                // RoadRunner's redis tuning keys (go-redis options) are taken and not used, so
                // that a kv section can be copied here; anything else unknown is refused.
                let mut v = v.clone();
                if let Some(map) = v.as_object_mut() {
                    map.retain(|k, _| !RR_TUNING_KEYS.contains(&k.as_str()));
                }
                serde_json::from_value(v).map_err(|e| format!("{key}: {e}"))?
            }
        };
        if cfg.addrs.is_empty() {
            return Err(format!("{key}: `addrs` is empty; name the Redis node (e.g. `addrs: [127.0.0.1:6379]`), the Sentinels or the cluster nodes"));
        }
        if cfg.master_name.as_deref().is_some_and(str::is_empty) {
            cfg.master_name = None;
        }
        if cfg.db != 0 && cfg.master_name.is_none() && cfg.addrs.len() > 1 {
            return Err(format!("{key}: `db` must be 0 with a Redis cluster (several `addrs` without `master_name`)"));
        }
        if cfg.prefix.is_empty() {
            cfg.prefix = RedisConfig::default().prefix;
        }
        if cfg.presence_ttl.is_zero() {
            cfg.presence_ttl = DEFAULT_PRESENCE_TTL;
        }
        if cfg.history_meta_ttl.is_zero() {
            cfg.history_meta_ttl = DEFAULT_HISTORY_META_TTL;
        }
        if cfg.presence_ttl < Duration::from_secs(1) {
            return Err(format!("{key}: `presence_ttl` must be at least 1s"));
        }
        Ok(cfg)
    }
}

impl HubConfig {
    /// Defaults for empty values, then the checks, each naming its key.
    pub fn resolve(mut self) -> Result<HubConfig, String> {
        if let Some(path) = &mut self.http_path {
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                return Err(format!("config key `centrifuge.hub.http_path`: `{path}` is not a path; use one like `/connection` (the WebSocket is then at `/connection/websocket` on the http plugin's listeners)"));
            }
            path.truncate(path.trim_end_matches('/').len());
        }
        if self.address.trim().is_empty() && self.http_path.is_none() {
            self.address = DEFAULT_ADDRESS.into();
        }
        if self.ping_interval.is_zero() {
            self.ping_interval = DEFAULT_PING_INTERVAL;
        }
        if self.pong_timeout.is_zero() {
            self.pong_timeout = DEFAULT_PONG_TIMEOUT;
        }
        if self.proxy_timeout.is_zero() {
            self.proxy_timeout = DEFAULT_PROXY_TIMEOUT;
        }
        if self.client_expired_close_delay.is_zero() {
            self.client_expired_close_delay = DEFAULT_EXPIRED_CLOSE_DELAY;
        }
        if self.client_queue_max_size == 0 {
            self.client_queue_max_size = DEFAULT_CLIENT_QUEUE_MAX_SIZE;
        }
        if self.max_message_size == 0 {
            self.max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
        }
        if self.client_channel_limit == 0 {
            self.client_channel_limit = DEFAULT_CLIENT_CHANNEL_LIMIT;
        }
        if self.channel_max_length == 0 {
            self.channel_max_length = DEFAULT_CHANNEL_MAX_LENGTH;
        }
        // As Centrifugo: history needs both, so that a channel's history is bounded in time too.
        if self.history_size > 0 && self.history_ttl.is_zero() {
            return Err("config key `centrifuge.hub.history_ttl` must be set when `centrifuge.hub.history_size` is (e.g. `history_ttl: 5m`)".into());
        }
        if self.pong_timeout >= self.ping_interval {
            return Err(format!(
                "config key `centrifuge.hub.pong_timeout` ({:?}) must be shorter than `centrifuge.hub.ping_interval` ({:?})",
                self.pong_timeout, self.ping_interval
            ));
        }
        if self.broker.driver == Driver::Redis {
            self.broker.redis()?;
        }
        Ok(self)
    }

    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        self.allowed_origins.is_empty() || self.allowed_origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<HubConfig, String> {
        serde_yaml_ng::from_str::<HubConfig>(yaml).map_err(|e| e.to_string())?.resolve()
    }

    #[test]
    fn defaults_are_centrifugos() {
        let c = parse("{}").unwrap();
        assert_eq!(c.address, "127.0.0.1:8000");
        assert_eq!((c.client_expired_close_delay, parse("client_expired_close_delay: 2s").unwrap().client_expired_close_delay), (Duration::from_secs(25), Duration::from_secs(2)));
        assert_eq!((c.ping_interval, c.pong_timeout, c.proxy_timeout), (Duration::from_secs(25), Duration::from_secs(10), Duration::from_secs(10)));
        assert_eq!((c.client_queue_max_size, c.max_message_size, c.history_size), (1048576, 65536, 0));
        assert_eq!((c.presence, c.join_leave, c.broker.driver), (false, false, Driver::Memory));
        assert_eq!((c.client_channel_limit, c.channel_max_length), (128, 255));
        assert_eq!((c.client_connection_limit, c.client_connection_rate_limit, c.client_user_connection_limit, c.client_command_rate_limit), (0, 0, 0, 0), "no limits");
        // With http_path alone the hub has no listener of its own; a trailing slash is dropped.
        let c = parse("http_path: /connection/").unwrap();
        assert_eq!((c.address.as_str(), c.http_path.as_deref()), ("", Some("/connection")));
        let c = parse("http_path: /\naddress: 127.0.0.1:1").unwrap();
        assert_eq!((c.address.as_str(), c.http_path.as_deref()), ("127.0.0.1:1", Some("")), "`/`: the endpoints at /websocket, ...");
        assert!(c.origin_allowed(Some("http://x")) && c.origin_allowed(None));
        let c = parse("address: 127.0.0.1:1\nping_interval: 2s\npong_timeout: 1s\nhistory_size: 10\nhistory_ttl: 1m\nallowed_origins: [http://a.test]\ntoken_hmac_secret_key: k\nbroker: {driver: memory}").unwrap();
        assert_eq!((c.ping_interval, c.history_ttl, c.history_size), (Duration::from_secs(2), Duration::from_secs(60), 10));
        assert!(c.origin_allowed(Some("HTTP://A.test")) && !c.origin_allowed(Some("http://b.test")));
    }

    #[test]
    fn errors_name_the_key() {
        assert!(parse("adress: x").unwrap_err().contains("unknown field `adress`"));
        assert!(parse("broker: {driver: kafka}").unwrap_err().contains("unknown variant `kafka`"));
        let redis = parse("broker: {driver: redis}").unwrap().broker.redis().unwrap();
        assert_eq!((redis.node_url("127.0.0.1:6379"), redis.presence_ttl, redis.prefix.as_str()), ("redis://127.0.0.1:6379/0".into(), Duration::from_secs(60), "rr-centrifuge"));
        let redis = parse("broker: {driver: redis, config: {addrs: [s:1], master_name: m, password: p, db: 2, presence_ttl: 5s}}").unwrap().broker.redis().unwrap();
        assert_eq!((redis.node_url("h:1"), redis.master_name.as_deref(), redis.presence_ttl), ("redis://:p@h:1/2".into(), Some("m"), Duration::from_secs(5)));
        assert!(parse("broker: {driver: redis, config: {addrs: [a:1, b:2], db: 1}}").unwrap_err().contains("`db` must be 0 with a Redis cluster"));
        assert!(parse("broker: {driver: redis, config: {addrs: []}}").unwrap_err().contains("`addrs` is empty"));
        assert!(parse("broker: {driver: redis, config: {addrs: [a:1], dial_timeout: 5s, pool_size: 10}}").is_ok(), "RoadRunner's tuning keys are taken");
        assert!(parse("broker: {driver: redis, config: {presence_ttl: 100ms}}").unwrap_err().contains("`presence_ttl` must be at least 1s"));
        assert!(parse("broker: {driver: redis, config: {adrs: [a:1]}}").unwrap_err().contains("unknown field `adrs`"));
        assert!(parse("ping_interval: 1s\npong_timeout: 2s").unwrap_err().starts_with("config key `centrifuge.hub.pong_timeout`"));
        assert!(parse("history_size: 10").unwrap_err().starts_with("config key `centrifuge.hub.history_ttl` must be set"));
        assert!(parse("http_path: ws").unwrap_err().starts_with("config key `centrifuge.hub.http_path`: `ws` is not a path"));
        assert!(parse("http_path: /ws?x").unwrap_err().contains("is not a path"));
    }
}
