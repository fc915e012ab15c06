//! The `server` section: how workers are spawned (command, env, relay, user) and `on_init`.
//! [`Server`] is the worker-pool factory plugins use through [`Services::new_pool`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Config, ConfigError, duration};
use crate::pool::{Command, Pool, PoolConfig, PoolError};
use crate::relay::SocketListener;
use crate::services::Services;
use crate::worker::Spawner;

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
#[derive(Clone)]
pub struct Server {
    pub config: Option<ServerConfig>,
    /// `rpc.listen`, passed to workers as `RR_RPC`.
    pub rpc_listen: Option<String>,
    pub version: &'static str,
    /// The socket relay listener, bound when the first pool needs it and shared by all pools.
    listener: Arc<tokio::sync::OnceCell<Arc<SocketListener>>>,
}

impl Server {
    pub fn from_config(config: &Config, version: &'static str) -> Result<Server, ConfigError> {
        let server: Option<ServerConfig> = config.section("server")?;
        let rpc_listen = config
            .value("rpc.listen")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| config.has("rpc").then(|| "tcp://127.0.0.1:6001".to_string()));
        if let Some(server) = &server {
            let relay = server.relay.as_str();
            if !(relay.is_empty() || relay == "pipes" || relay.starts_with("tcp://") || relay.starts_with("unix://")) {
                return Err(ConfigError::Key {
                    key: "server.relay".into(),
                    message: format!("unknown relay `{relay}`: expected `pipes`, `tcp://host:port` or `unix://path`"),
                });
            }
            if server.command.args().is_empty() {
                return Err(ConfigError::Key { key: "server.command".into(), message: "command should not be empty".into() });
            }
        }
        Ok(Server { config: server, rpc_listen, version, listener: Default::default() })
    }

    /// The spawner for a pool of plugin `mode` with the pool's own command override.
    async fn spawner(&self, owner: &str, mode: &str, pool: &PoolConfig) -> Result<Spawner, PoolError> {
        let Some(server) = &self.config else {
            return Err(PoolError::Other(format!(
                "plugin `{owner}` needs PHP workers but the config has no `server` section: add `server.command` (e.g. `server: {{command: \"php worker.php\"}}`)"
            )));
        };
        let args = pool.command.as_ref().unwrap_or(&server.command).args();
        if args.is_empty() {
            return Err(PoolError::Other(format!("`{owner}.pool.command`: command should not be empty")));
        }
        let listener = match server.relay.as_str() {
            "" | "pipes" => None,
            relay => Some(
                self.listener
                    .get_or_try_init(|| SocketListener::bind(relay, std::process::id()))
                    .await
                    .map_err(|e| PoolError::Other(format!("cannot listen on `server.relay` {relay}: {e}")))?
                    .clone(),
            ),
        };
        let mut env = vec![("RR_RELAY".to_string(), listener.as_ref().map_or("pipes".to_string(), |l| l.address.clone()))];
        if let Some(rpc) = &self.rpc_listen {
            env.push(("RR_RPC".into(), rpc.clone()));
        }
        env.extend(server.env.iter().map(|(k, v)| (k.to_uppercase(), v.clone())));
        env.push(("RR_VERSION".into(), self.version.to_string()));
        env.push(("RR_MODE".into(), mode.to_string()));
        let uid_gid = match &server.user {
            None => None,
            Some(user) => Some(resolve_user(user, server.group.as_deref()).map_err(PoolError::Other)?),
        };
        Ok(Spawner { args, env, uid_gid, listener })
    }
}

/// `server.user` / `server.group` names to ids.
fn resolve_user(user: &str, group: Option<&str>) -> Result<(u32, u32), String> {
    let found = nix::unistd::User::from_name(user)
        .map_err(|e| format!("server.user `{user}`: {e}"))?
        .ok_or_else(|| format!("server.user `{user}`: no such user"))?;
    let gid = match group {
        None => found.gid.as_raw(),
        Some(g) => nix::unistd::Group::from_name(g)
            .map_err(|e| format!("server.group `{g}`: {e}"))?
            .ok_or_else(|| format!("server.group `{g}`: no such group"))?
            .gid
            .as_raw(),
    };
    Ok((found.uid.as_raw(), gid))
}

impl Services {
    /// Create, start and register a worker pool owned by plugin `owner`, with `RR_MODE=mode`.
    /// The pool is registered for `informer`, `rr reset`, metrics and status under `owner`.
    pub async fn new_pool(self: &Arc<Self>, owner: &str, mode: &str, config: PoolConfig) -> Result<Pool, PoolError> {
        self.new_pool_on(owner, mode, config, Vec::new()).await
    }

    /// [`Services::new_pool_on`] with a plugin's own worker environment on top of `server.env`
    /// (`grpc.env`); `RR_MODE` stays the plugin's.
    pub async fn new_pool_env(self: &Arc<Self>, owner: &str, mode: &str, config: PoolConfig, env: &BTreeMap<String, String>, homes: Vec<tokio::runtime::Handle>) -> Result<Pool, PoolError> {
        let mut spawner = self.server.spawner(owner, mode, &config).await?;
        spawner.env.extend(env.iter().map(|(k, v)| (k.to_uppercase(), v.clone())));
        spawner.env.push(("RR_MODE".into(), mode.to_string()));
        let pool = Pool::start(owner, config, spawner, homes).await?;
        self.pools.register(owner, pool.clone());
        self.resetters.register(owner, Arc::new(pool.clone()) as Arc<dyn crate::services::Resettable>);
        Ok(pool)
    }

    /// [`Services::new_pool`] with the workers spread over per-thread runtimes (`homes`), each
    /// started on its runtime so that its pipes belong to that thread (see `pool::set_home`).
    pub async fn new_pool_on(self: &Arc<Self>, owner: &str, mode: &str, config: PoolConfig, homes: Vec<tokio::runtime::Handle>) -> Result<Pool, PoolError> {
        let spawner = self.server.spawner(owner, mode, &config).await?;
        let pool = Pool::start(owner, config, spawner, homes).await?;
        self.pools.register(owner, pool.clone());
        self.resetters.register(owner, Arc::new(pool.clone()) as Arc<dyn crate::services::Resettable>);
        Ok(pool)
    }
}
