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
    pub pool: PoolConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config { servers: BTreeMap::new(), read_buf_size: default_read_buf_size(), pool: PoolConfig::default() }
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
}

fn default_delimiter() -> String {
    "\r\n".into()
}

fn default_read_buf_size() -> usize {
    1
}

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
            if server.read_buf_size.is_some() {
                tracing::warn!(target: "tcp", server = %name, "`tcp.servers.{name}.read_buf_size` is ignored (as in RoadRunner); set `tcp.read_buf_size`");
            }
        }
        Ok(())
    }

    /// Bytes of one read.
    pub fn read_chunk(&self) -> usize {
        self.read_buf_size.max(1).saturating_mul(1024 * 1024)
    }
}
