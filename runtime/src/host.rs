//! The plugin host: init in registration order, serve concurrently, stop in reverse order
//! within the grace period.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
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
        pool_members: Registry::default(),
        resetters: Registry::default(),
        health: Registry::default(),
        rpc: Default::default(),
        metrics: Default::default(),
        http_middleware: Registry::default(),
        http_routes: Registry::default(),
        jobs_drivers: Registry::default(),
        jobs_informers: Registry::default(),
        kv_drivers: Registry::default(),
        lifecycle: Lifecycle::default(),
        tracing: Default::default(),
    }))
}

/// A running set of plugins.
pub struct Host {
    pub services: Arc<Services>,
    plugins: Vec<Running>,
    failures: (mpsc::UnboundedSender<anyhow::Error>, mpsc::UnboundedReceiver<anyhow::Error>),
}

struct Running {
    plugin: Arc<dyn DynPlugin>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
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
                plugins.push(Running { plugin, shutdown: CancellationToken::new(), task: None });
            }
        }
        Ok(Host { services, plugins, failures: mpsc::unbounded_channel() })
    }

    /// Start every plugin's `serve`; a serve that fails is reported to `run_until`.
    pub fn start(&mut self) {
        for running in &mut self.plugins {
            let (plugin, token, failures) = (running.plugin.clone(), running.shutdown.clone(), self.failures.0.clone());
            running.task = Some(tokio::spawn(async move {
                let name = plugin.name();
                if let Err(e) = plugin.serve(token).await {
                    let _ = failures.send(anyhow!("plugin `{name}`: {e}"));
                }
            }));
        }
    }

    /// Wait until a plugin fails or `shutdown` resolves; then stop everything gracefully.
    pub async fn run_until(mut self, shutdown: impl std::future::Future<Output = ()>, grace: Duration) -> anyhow::Result<()> {
        self.start();
        let failure = tokio::select! {
            _ = shutdown => None,
            failure = self.failures.1.recv() => failure,
        };
        let stopped = tokio::time::timeout(grace, self.stop()).await;
        match (failure, stopped) {
            (Some(err), _) => Err(err),
            (None, Err(_)) => Err(anyhow!("graceful stop did not finish within the grace period of {grace:?}")),
            (None, Ok(result)) => result,
        }
    }

    /// Stop plugins in reverse order: cancel one, wait for its serve to drain, then the next;
    /// then run the `stop` hooks in the same order.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.services.lifecycle.set_stopping();
        for running in self.plugins.iter_mut().rev() {
            running.shutdown.cancel();
            if let Some(task) = running.task.take()
                && let Err(join) = task.await
            {
                let _ = self.failures.0.send(anyhow!("plugin `{}` panicked: {join}", running.plugin.name()));
            }
        }
        let mut first_error = self.failures.1.try_recv().ok();
        for running in self.plugins.iter().rev() {
            if let Err(e) = running.plugin.clone().stop().await {
                first_error.get_or_insert_with(|| anyhow!("plugin `{}` failed to stop: {e}", running.plugin.name()));
            }
        }
        // Safety net: no worker outlives the server, even if a plugin forgot its pool.
        futures::future::join_all(self.services.pools.all().into_iter().map(|(_, pool)| async move { pool.destroy().await })).await;
        first_error.map_or(Ok(()), Err)
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
