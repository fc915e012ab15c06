//! The `tcp` section with RoadRunner's keys and defaults (PLUGINS-MORE.md §A).

use std::collections::BTreeMap;

use rr_runtime::pool::PoolConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listeners by name; the name is the `server` field of every event.
    pub servers: BTreeMap<String, Server>,
    /// Megabytes; the largest single read from a connection. 0 means the default, 1.
    pub read_buf_size: usize,
    /// Megabytes; the largest message (the bytes up to the delimiter) a connection may send,
    /// for every server without its own. 0 means the default, 10. Not in RoadRunner, which
    /// buffers without a limit.
    pub max_message_size: usize,
    pub pool: PoolConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config { servers: BTreeMap::new(), read_buf_size: default_read_buf_size(), max_message_size: 0, pool: PoolConfig::default() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// `host:port`, `:port`, `tcp://host:port` or `unix://path`.
    #[serde(default)]
    pub addr: String,
    /// Ends a message; the DATA body keeps it. Empty: every read is a message.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Accepted because RoadRunner's docs show it here, but RoadRunner reads only the top-level key.
    #[serde(default)]
    pub read_buf_size: Option<usize>,
    /// Megabytes; this server's `max_message_size` (default: the top-level key's).
    #[serde(default)]
    pub max_message_size: Option<usize>,
}

fn default_delimiter() -> String {
    "\r\n".into()
}

fn default_read_buf_size() -> usize {
    1
}

/// Megabytes of `max_message_size` when it is unset or 0.
const DEFAULT_MAX_MESSAGE_SIZE: usize = 10;

const MB: usize = 1024 * 1024;

impl Config {
    /// RoadRunner's init checks, with the key that is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers.is_empty() {
            return Err("config key `tcp.servers`: no servers registered; add one, e.g. `tcp: {servers: {echo: {addr: \"127.0.0.1:7000\"}}}`".into());
        }
        for (name, server) in &self.servers {
            if server.addr.trim().is_empty() {
                return Err(format!("config key `tcp.servers.{name}.addr`: empty address for the server: {name}; set `host:port`"));
            }
            if let Some((scheme, _)) = server.addr.split_once("://")
                && scheme != "tcp"
                && scheme != "unix"
            {
                return Err(format!(
                    "config key `tcp.servers.{name}.addr`: unsupported scheme `{scheme}://` in `{}`; the tcp plugin serves TCP streams: use `host:port`, `tcp://host:port` or `unix://path`",
                    server.addr
                ));
            }
            if server.read_buf_size.is_some() {
                tracing::warn!(target: "tcp", server = %name, "`tcp.servers.{name}.read_buf_size` is ignored (as in RoadRunner); set `tcp.read_buf_size`");
            }
        }
        Ok(())
    }

    /// Bytes of one read.
    pub fn read_chunk(&self) -> usize {
        self.read_buf_size.max(1).saturating_mul(MB)
    }

    /// Bytes of the largest message of server `server`.
    pub fn max_message(&self, server: &Server) -> usize {
        let mb = match server.max_message_size.unwrap_or(self.max_message_size) {
            0 => DEFAULT_MAX_MESSAGE_SIZE,
            mb => mb,
        };
        mb.saturating_mul(MB)
    }
}
