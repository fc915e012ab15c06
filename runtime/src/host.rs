//! The plugin host: init in registration order, serve concurrently, stop in reverse order
//! within the grace period.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::plugin::{Build, DynPlugin, InitContext};
use crate::server::Server;
use crate::services::{Lifecycle, Registry, Services};

/// Build the runtime services from the config.
pub fn services(build: &Build, config: &Config) -> anyhow::Result<Arc<Services>> {
    Ok(Arc::new(Services {
        version: build.version,
        compiled: build.plugins.iter().map(|p| p.name).collect(),
        enabled: Registry::default(),
        server: Server::from_config(config, build.version)?,
        pools: Registry::default(),
        resetters: Registry::default(),
        health: Registry::default(),
        rpc: Default::default(),
        metrics: Arc::new(Mutex::new(Default::default())),
        http_middleware: Registry::default(),
        jobs_drivers: Registry::default(),
        kv_drivers: Registry::default(),
        lifecycle: Lifecycle::default(),
    }))
}

/// A running set of plugins.
pub struct Host {
    pub services: Arc<Services>,
    plugins: Vec<(Arc<dyn DynPlugin>, CancellationToken)>,
    tasks: JoinSet<(&'static str, Result<(), crate::plugin::BoxError>)>,
}

impl Host {
    /// Initialise every plugin of `build` against `config`.
    pub fn init(build: &Build, config: &Config) -> anyhow::Result<Host> {
        let services = services(build, config)?;
        warn_unknown_sections(build, config);
        let ctx = InitContext { config, services: &services };
        let mut plugins = Vec::new();
        for entry in &build.plugins {
            let plugin = (entry.init)(&ctx).map_err(|e| anyhow!("plugin `{}` failed to initialise: {e}", entry.name))?;
            if let Some(plugin) = plugin {
                tracing::debug!(plugin = entry.name, "plugin initialised");
                services.enabled.register(entry.name, ());
                plugins.push((plugin, CancellationToken::new()));
            }
        }
        Ok(Host { services, plugins, tasks: JoinSet::new() })
    }

    /// Start every plugin's `serve`.
    pub fn start(&mut self) {
        for (plugin, token) in &self.plugins {
            let plugin = plugin.clone();
            let token = token.clone();
            self.tasks.spawn(async move {
                let name = plugin.name();
                (name, plugin.serve(token).await)
            });
        }
    }

    /// Wait until a plugin fails or `shutdown` resolves; then stop everything gracefully.
    pub async fn run_until(mut self, shutdown: impl std::future::Future<Output = ()>, grace: Duration) -> anyhow::Result<()> {
        self.start();
        let failure = tokio::select! {
            _ = shutdown => None,
            failure = first_failure(&mut self.tasks) => failure,
        };
        let stopped = tokio::time::timeout(grace, self.stop()).await;
        match (failure, stopped) {
            (Some(err), _) => Err(err),
            (None, Err(_)) => Err(anyhow!("graceful stop did not finish within the grace period of {grace:?}")),
            (None, Ok(result)) => result,
        }
    }

    /// Cancel plugins in reverse order, wait for each serve to return, then run `stop` hooks.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.services.lifecycle.set_stopping();
        let mut first_error = None;
        // Front ends (registered last, e.g. http) stop taking work before the plugins they use.
        for (_, token) in self.plugins.iter().rev() {
            token.cancel();
        }
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok((name, Err(e))) = joined {
                first_error.get_or_insert_with(|| anyhow!("plugin `{name}`: {e}"));
            }
        }
        for (plugin, _) in self.plugins.iter().rev() {
            if let Err(e) = plugin.clone().stop().await {
                first_error.get_or_insert_with(|| anyhow!("plugin `{}` failed to stop: {e}", plugin.name()));
            }
        }
        // Safety net: no worker outlives the server, even if a plugin forgot its pool.
        futures::future::join_all(self.services.pools.all().into_iter().map(|(_, pool)| async move { pool.destroy().await })).await;
        first_error.map_or(Ok(()), Err)
    }
}

/// Resolves when a serve task ends with an error (a plugin that ends with `Ok` early is fine).
async fn first_failure(tasks: &mut JoinSet<(&'static str, Result<(), crate::plugin::BoxError>)>) -> Option<anyhow::Error> {
    loop {
        match tasks.join_next().await {
            None => return std::future::pending().await,
            Some(Ok((_, Ok(())))) => continue,
            Some(Ok((name, Err(e)))) => return Some(anyhow!("plugin `{name}`: {e}")),
            Some(Err(join)) => return Some(anyhow!("a plugin task panicked: {join}")),
        }
    }
}

/// Sections that neither a compiled plugin nor the runtime reads are warned about.
fn warn_unknown_sections(build: &Build, config: &Config) {
    const RUNTIME: &[&str] = &["version", "server", "logs", "include", "envfile", "endure", "rpc"];
    let Some(map) = config.root().as_object() else { return };
    for key in map.keys() {
        let known = RUNTIME.contains(&key.as_str()) || build.plugins.iter().any(|p| p.name == key);
        if !known {
            tracing::warn!(section = %key, "config section `{key}` is not read by any plugin compiled into this binary; it is ignored");
        }
    }
}
