//! The `rpc` plugin: serves the runtime's RPC registry over goridge on `rpc.listen`
//! (`tcp://127.0.0.1:6001` by default) and registers the `rpc`, `informer` and `resetter`
//! services. Other plugins add their own services to `services.rpc` at init.

mod server;
pub mod services;

use std::sync::Arc;

use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    pub listen: String,
    /// The largest request frame payload in MB. A connection announcing more is closed before
    /// any of it is buffered: a client cannot make the server hold gigabytes.
    pub max_request_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { listen: "tcp://127.0.0.1:6001".into(), max_request_size: 100 }
    }
}

pub struct Plugin {
    config: Config,
    services: Arc<rr_runtime::Services>,
    /// Said once its listeners are bound (systemd `READY=1` waits for it).
    serving: rr_runtime::services::Starting,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "rpc";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(config) = ctx.section::<Config>("rpc")? else { return Ok(None) };
        if !(config.listen.starts_with("tcp://") || config.listen.starts_with("unix://")) {
            return Err(format!("config key `rpc.listen`: `{}` must start with tcp:// or unix://", config.listen).into());
        }
        if !(1..4096).contains(&config.max_request_size) {
            return Err(format!(
                "config key `rpc.max_request_size`: {} MB is out of range; use 1 to 4095 (MB, default 100)",
                config.max_request_size
            )
            .into());
        }
        let json = serde_json::to_vec(ctx.config.root()).unwrap_or_default();
        services::register(ctx.services, json.into());
        Ok(Some(Plugin { config, services: ctx.services.clone(), serving: ctx.services.lifecycle.starting() }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let listener = server::Listener::bind(&self.config.listen).await?;
        tracing::info!(target: "rpc", listen = %self.config.listen, "rpc server listening");
        self.serving.serving();
        let max_payload = (self.config.max_request_size << 20) as usize;
        server::run(listener, self.services.clone(), max_payload, shutdown).await;
        Ok(())
    }
}
