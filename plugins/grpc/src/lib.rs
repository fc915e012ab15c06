//! The `grpc` plugin: gRPC services from the configured .proto files served by PHP workers
//! (`RR_MODE=grpc`), RoadRunner-compatible (shared/GRPC.md), plus server reflection and
//! server-streaming RPCs.
//!
//! Call flow: `server` (HTTP/2 listener) → `handler` (routing, framing via `wire`) → `call`
//! (worker payload, reply metadata) → pool exec → `status` (errors as grpc-go sends them).

pub mod call;
pub mod config;
mod handler;
pub mod health;
mod metrics;
pub mod protos;
mod reflection;
mod server;
pub mod status;
pub mod wire;

use std::sync::Arc;

use rr_runtime::pool::Pool;
use rr_runtime::services::Resettable;
use rr_runtime::shards;
use rr_runtime::{BoxError, InitContext, Services};
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// What every call reads.
pub(crate) struct Shared {
    cfg: Arc<Config>,
    protos: protos::Services,
    pool: Pool,
    health: Arc<health::Health>,
    metrics: metrics::Metrics,
    reflection: Option<reflection::Reflection>,
    shutdown: CancellationToken,
    /// For the call spans (`Services::tracing`).
    services: Arc<Services>,
}

pub struct Plugin {
    cfg: Arc<Config>,
    protos: protos::Services,
    services: Arc<Services>,
    health: Arc<health::Health>,
    metrics: metrics::Metrics,
    tls: Option<tokio_rustls::TlsAcceptor>,
    pool: tokio::sync::OnceCell<Pool>,
    /// The I/O threads, kept until the workers whose pipes they serve are gone.
    shards: std::sync::Mutex<Option<shards::Shards>>,
    /// Said once its listeners are bound (systemd `READY=1` waits for it).
    serving: rr_runtime::services::Starting,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "grpc";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(cfg) = ctx.section::<Config>("grpc")? else { return Ok(None) };
        cfg.validate()?;
        let protos = protos::Services::load(protos::expand(&cfg.proto)?)?;
        if protos.services.is_empty() {
            tracing::warn!(target: "grpc", "no services found in `grpc.proto`; only grpc.health.v1.Health is served");
        }
        let tls = cfg.tls.as_ref().filter(|t| t.enabled()).map(server::tls_acceptor).transpose()?;
        let metrics = metrics::Metrics::register(ctx.services);
        Ok(Some(Plugin {
            cfg: Arc::new(cfg),
            protos,
            services: ctx.services.clone(),
            health: Arc::default(),
            metrics,
            tls,
            pool: Default::default(),
            shards: Default::default(),
            serving: ctx.services.lifecycle.starting(),
        }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let listener = server::Listener::bind(&self.cfg).await?;
        // Thread per core, as the http plugin: connections and workers shared out over them.
        let shards = shards::Shards::start("grpc", shards::count(self.cfg.pool.effective_workers()))?;
        let homes = shards.handles();
        *self.shards.lock().unwrap() = Some(shards);
        let mut pool_cfg = self.cfg.pool.clone();
        // RoadRunner's grpc plugin does not pass `max_queue_size` to its pool.
        pool_cfg.max_queue_size = 0;
        let pool = self.services.new_pool_env("grpc", "grpc", pool_cfg, &self.cfg.env, homes.clone()).await?;
        let _ = self.pool.set(pool.clone());
        // `rr reset grpc` reports NOT_SERVING while the workers are replaced.
        self.services.resetters.register("grpc", Arc::new(Reset { pool: pool.clone(), health: self.health.clone() }) as Arc<dyn Resettable>);
        let reflection = match self.cfg.reflection {
            false => None,
            true => match self.protos.descriptors() {
                Ok(set) => Some(reflection::Reflection::new(set, &self.protos.services.keys().cloned().collect::<Vec<_>>())),
                Err(e) => {
                    tracing::warn!(target: "grpc", error = %e, "server reflection is off: the protos do not compile with their imports");
                    None
                }
            },
        };
        let shared = Arc::new(Shared {
            cfg: self.cfg.clone(),
            protos: self.protos.clone(),
            pool,
            health: self.health.clone(),
            metrics: self.metrics.clone(),
            reflection,
            shutdown: shutdown.clone(),
            services: self.services.clone(),
        });
        tracing::info!(target: "grpc", address = %listener.address(), threads = homes.len().max(1), services = self.protos.services.len(), tls = self.tls.is_some(), "grpc server listening");
        self.health.set(health::SERVING);
        self.serving.serving();
        let (health, stop) = (self.health.clone(), shutdown.clone());
        tokio::spawn(async move {
            stop.cancelled().await;
            health.set(health::NOT_SERVING);
        });
        server::run(listener, homes, self.tls.clone(), shared, shutdown, self.cfg.pool.destroy_timeout).await;
        Ok(())
    }

    async fn stop(&self) -> Result<(), BoxError> {
        self.health.set(health::NOT_SERVING);
        if let Some(pool) = self.pool.get() {
            pool.destroy().await;
        }
        // The workers are gone: their I/O threads may end now.
        self.shards.lock().unwrap().take();
        Ok(())
    }
}

struct Reset {
    pool: Pool,
    health: Arc<health::Health>,
}

impl Resettable for Reset {
    fn reset(&self) -> futures::future::BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            self.health.set(health::NOT_SERVING);
            let result = self.pool.reset().await;
            self.health.set(health::SERVING);
            result.map_err(Into::into)
        })
    }
}
