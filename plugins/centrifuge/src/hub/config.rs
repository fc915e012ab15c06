//! `centrifuge.hub`: the embedded hub's keys, named after Centrifugo's options (CENTRIFUGE.md §7).

use std::time::Duration;

use rr_runtime::config::duration;
use serde::Deserialize;

pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8000";
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_PROXY_TIMEOUT: Duration = Duration::from_secs(10);
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

/// `broker.config` for redis: the kv plugin's keys for one node, and the key prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub addrs: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
    pub master_name: Option<String>,
    /// Names the Redis channel the hubs share; hubs with the same prefix are one cluster.
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig { addrs: vec!["127.0.0.1:6379".into()], username: None, password: None, db: 0, master_name: None, prefix: "rr-centrifuge".into() }
    }
}

impl RedisConfig {
    pub fn url(&self) -> String {
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(p)) => format!("{u}:{p}@"),
            (None, Some(p)) => format!(":{p}@"),
            _ => String::new(),
        };
        format!("redis://{auth}{}/{}", self.addrs[0], self.db)
    }
}

impl Broker {
    pub fn redis(&self) -> Result<RedisConfig, String> {
        let cfg: RedisConfig = match &self.config {
            None | Some(serde_json::Value::Null) => RedisConfig::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("config key `centrifuge.hub.broker.config`: {e}"))?,
        };
        if cfg.master_name.is_some() || cfg.addrs.len() != 1 {
            return Err("config key `centrifuge.hub.broker.config`: the hub's redis broker takes one node in `addrs` (Sentinel and cluster are not supported yet)".into());
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
        assert_eq!(parse("broker: {driver: redis}").unwrap().broker.redis().unwrap().url(), "redis://127.0.0.1:6379/0");
        assert!(parse("broker: {driver: redis, config: {addrs: [a:1, b:2]}}").unwrap_err().contains("one node"));
        assert!(parse("broker: {driver: redis, config: {adrs: [a:1]}}").unwrap_err().contains("unknown field `adrs`"));
        assert!(parse("ping_interval: 1s\npong_timeout: 2s").unwrap_err().starts_with("config key `centrifuge.hub.pong_timeout`"));
        assert!(parse("history_size: 10").unwrap_err().starts_with("config key `centrifuge.hub.history_ttl` must be set"));
        assert!(parse("http_path: ws").unwrap_err().starts_with("config key `centrifuge.hub.http_path`: `ws` is not a path"));
        assert!(parse("http_path: /ws?x").unwrap_err().contains("is not a path"));
    }
}
