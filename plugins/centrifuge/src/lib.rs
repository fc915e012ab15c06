//! The `centrifuge` plugin in proxy mode, RoadRunner-compatible (shared/CENTRIFUGE.md,
//! docs/CENTRIFUGE.md): Centrifugo calls `centrifugal.centrifugo.proxy.CentrifugoProxy` on
//! `proxy_address` and PHP workers (`RR_MODE=centrifuge`) answer each connect, refresh,
//! subscribe, publish, rpc, sub-refresh and channel-state event; PHP's `centrifuge.*` RPC calls
//! go on to Centrifugo's gRPC API at `grpc_api_address`.
//!
//! With `centrifuge.hub`, `rr` also serves the Centrifuge client protocol itself (`hub`): the
//! official clients connect to it, their events reach PHP as the same proxy requests, and the
//! RPC methods act on the hub instead of Centrifugo.
//!
//! `config` reads the section; `codec` is the pure event ↔ worker-payload mapping (shared by
//! proxy mode and the hub); `proxy` serves the gRPC service; `api` forwards the RPC methods;
//! `proxy_proto` / `api_proto` are the protobuf messages.

pub mod api;
pub mod api_proto;
pub mod codec;
pub mod config;
pub mod hub;
pub mod proxy;
pub mod proxy_proto;
pub mod raw;
mod server;

use std::sync::{Arc, OnceLock};

use rr_runtime::pool::Pool;
use rr_runtime::{BoxError, InitContext, Services};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub struct Plugin {
    cfg: Config,
    services: Arc<Services>,
    pool: tokio::sync::OnceCell<Pool>,
    /// Set once serving; the RPC methods answer "not ready" until then.
    api: Arc<OnceLock<api::Backend>>,
    /// Said once the proxy listener is bound (systemd `READY=1` waits for it).
    serving: rr_runtime::services::Starting,
    /// The hub, for its routes on the http plugin's listeners (`hub.http_path`).
    hub: hub::route::Slot,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "centrifuge";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(cfg) = ctx.section::<Config>("centrifuge")? else { return Ok(None) };
        let cfg = cfg.resolve()?;
        let api = Arc::new(OnceLock::new());
        api::register(ctx.services, api.clone());
        let slot = hub::route::Slot::default();
        if let Some(path) = cfg.hub.as_ref().and_then(|h| h.http_path.as_deref()) {
            let http = ctx.services.compiled.contains(&"http") && ctx.config.section::<serde_json::Value>("http")?.is_some();
            if !http {
                return Err("config key `centrifuge.hub.http_path` serves the hub on the http plugin's listeners, but the http plugin is not enabled (no `http` section, or not in this build); add the section with `address`, or remove the key and use `centrifuge.hub.address`".into());
            }
            for (name, route) in hub::route::routes(path, slot.clone()) {
                ctx.services.http_routes.register(name, route);
            }
        }
        Ok(Some(Plugin { cfg, services: ctx.services.clone(), pool: Default::default(), api, serving: ctx.services.lifecycle.starting(), hub: slot }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        // RoadRunner's order: workers, listener, service, then the API client.
        let pool = self.services.new_pool("centrifuge", "centrifuge", self.cfg.pool.clone()).await?;
        let _ = self.pool.set(pool.clone());
        let listener = server::Listener::bind(&self.cfg).await?;
        tracing::info!(target: "centrifuge", address = %listener.address(), api = %self.cfg.api_target()?, "centrifugo proxy server listening");
        let hub = match &self.cfg.hub {
            Some(cfg) => {
                let hub = hub::Hub::new(cfg.clone(), pool.clone());
                if cfg.broker.driver == hub::config::Driver::Redis {
                    let remote = hub::redis::Remote::start(&hub, &cfg.broker.redis()?).await?;
                    let _ = hub.remote.set(remote);
                }
                self.services.metrics.register(hub.clone());
                if let Some(path) = &cfg.http_path {
                    tracing::info!(target: "centrifuge", "centrifuge hub on the http listeners (websocket at {path}{})", hub::config::WEBSOCKET);
                }
                let listener = match cfg.address.is_empty() {
                    true => None,
                    false => Some(hub::server::bind(&hub).await?),
                };
                if let Some(listener) = &listener {
                    tracing::info!(target: "centrifuge", address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "centrifuge hub listening (websocket at {})", hub::config::WEBSOCKET_PATH);
                }
                let _ = self.hub.set(hub.clone());
                let _ = self.api.set(api::Backend::Hub(hub.clone()));
                Some(tokio::spawn(hub::server::run(hub, listener, shutdown.clone())))
            }
            None => {
                let _ = self.api.set(api::Backend::Centrifugo(api::Api::connect(&self.cfg)?));
                None
            }
        };
        self.serving.serving();
        let served = server::run(listener, proxy::ProxyService { pool: pool.clone() }, shutdown, pool.config().destroy_timeout).await;
        if let Some(hub) = hub {
            hub.await.map_err(|e| format!("centrifuge hub: {e}"))??;
        }
        served
    }

    async fn stop(&self) -> Result<(), BoxError> {
        if let Some(pool) = self.pool.get() {
            pool.destroy().await;
        }
        Ok(())
    }
}
