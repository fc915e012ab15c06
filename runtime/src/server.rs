//! The `server` section: how workers are spawned (command, env, relay, user) and `on_init`.
//! [`Server`] is the worker-pool factory plugins use through [`Services::new_pool`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Config, ConfigError, duration};
use crate::pool::{Command, Pool, PoolConfig, PoolError};
use crate::services::Services;

#[derive(Debug, Clone, Deserialize)]
pub struct ServerConfig {
    pub command: Command,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `pipes`, `tcp://host:port` or `unix://path`.
    #[serde(default = "default_relay")]
    pub relay: String,
    #[serde(default)]
    pub on_init: Option<OnInit>,
}

fn default_relay() -> String {
    "pipes".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct OnInit {
    pub command: Command,
    #[serde(default = "default_exec_timeout", with = "duration")]
    pub exec_timeout: Duration,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exit_on_error: bool,
}

fn default_exec_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Worker spawning settings resolved from config; `None` config when `server` is absent.
#[derive(Debug, Clone)]
pub struct Server {
    pub config: Option<ServerConfig>,
    /// `rpc.listen`, passed to workers as `RR_RPC`.
    pub rpc_listen: Option<String>,
    pub version: &'static str,
}

impl Server {
    pub fn from_config(config: &Config, version: &'static str) -> Result<Server, ConfigError> {
        let server: Option<ServerConfig> = config.section("server")?;
        let rpc_listen = config
            .value("rpc.listen")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| config.has("rpc").then(|| "tcp://127.0.0.1:6001".to_string()));
        Ok(Server { config: server, rpc_listen, version })
    }
}

impl Services {
    /// Create, start and register a worker pool owned by plugin `owner`, with `RR_MODE=mode`.
    /// The pool is registered for `informer`, `rr reset`, metrics and status under `owner`.
    pub async fn new_pool(self: &Arc<Self>, owner: &str, mode: &str, config: PoolConfig) -> Result<Pool, PoolError> {
        let _ = (owner, mode, config);
        todo!()
    }
}
