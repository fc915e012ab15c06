//! Typed services the runtime owns and every plugin reaches through [`Services`].
//!
//! All registries exist before any plugin initialises, so init order never decides whether a
//! service is there: the rpc plugin serves the RPC registry others filled, the metrics plugin
//! exposes the metrics registry, the status plugin reads the pools and health checks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::error::BoxError;
use crate::pool::Pool;

/// A name-keyed registry of one kind of service.
pub struct Registry<T> {
    entries: Mutex<BTreeMap<String, T>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry { entries: Mutex::new(BTreeMap::new()) }
    }
}

impl<T: Clone> Registry<T> {
    pub fn register(&self, name: impl Into<String>, value: T) {
        self.entries.lock().unwrap().insert(name.into(), value);
    }
    pub fn remove(&self, name: &str) -> Option<T> {
        self.entries.lock().unwrap().remove(name)
    }
    pub fn get(&self, name: &str) -> Option<T> {
        self.entries.lock().unwrap().get(name).cloned()
    }
    pub fn names(&self) -> Vec<String> {
        self.entries.lock().unwrap().keys().cloned().collect()
    }
    pub fn all(&self) -> Vec<(String, T)> {
        self.entries.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl Services {
    /// Every worker listed under `plugin`: its pool's, then those of its [`Services::pool_members`].
    pub fn plugin_workers(&self, plugin: &str) -> Option<Vec<crate::pool::WorkerInfo>> {
        let mut workers = self.pools.get(plugin)?.workers();
        for pool in self.pool_members.get(plugin).unwrap_or_default() {
            workers.extend(pool.workers());
        }
        Some(workers)
    }
}

/// Something `rr reset <name>` can reset (every worker pool is one).
pub trait Resettable: Send + Sync {
    fn reset(&self) -> BoxFuture<'_, Result<(), BoxError>>;
}

/// One plugin's health as the status plugin reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The plugin works at all (liveness).
    pub healthy: bool,
    /// The plugin can take work now (readiness): for a pool, at least one worker is free.
    pub ready: bool,
    pub message: String,
}

pub trait HealthCheck: Send + Sync {
    fn health(&self) -> Health;
}

/// Process-wide lifecycle facts plugins may read, and the plugins still starting: `rr serve`
/// tells systemd `READY=1` only once none is left.
#[derive(Clone, Default)]
pub struct Lifecycle {
    stopping: Arc<std::sync::atomic::AtomicBool>,
    starting: Arc<Pending>,
}

#[derive(Default)]
struct Pending {
    count: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

impl Lifecycle {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// Taken at init by a plugin that serves a socket; it says [`Starting::serving`] once its
    /// listeners are bound (or is dropped, e.g. when its serve fails).
    pub fn starting(&self) -> Starting {
        self.starting.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Starting(Mutex::new(Some(self.starting.clone())))
    }

    /// Resolves once every [`Starting`] has said it serves.
    pub async fn all_serving(&self) {
        loop {
            let done = self.starting.done.notified();
            if self.starting.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

/// One plugin's pending start (see [`Lifecycle::starting`]).
pub struct Starting(Mutex<Option<Arc<Pending>>>);

impl Starting {
    pub fn serving(&self) {
        if let Some(pending) = self.0.lock().unwrap().take()
            && pending.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1
        {
            pending.done.notify_waiters();
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.serving();
    }
}

/// Everything the runtime provides to plugins.
pub struct Services {
    /// The binary's version string (`RR_VERSION`, `rpc.Version`).
    pub version: &'static str,
    /// Names of the plugins compiled into this binary.
    pub compiled: Vec<&'static str>,
    /// Names of the plugins enabled by the config (filled during init).
    pub enabled: Registry<()>,
    /// The worker-pool factory (`server` section).
    pub server: crate::server::Server,
    /// Every worker pool, by owning plugin name (informer, metrics, status read these).
    pub pools: Registry<Pool>,
    /// More pools listed under a plugin's name beside its `pools` entry, by `informer.Workers`
    /// (`rr workers`) and the `rr_<plugin>_*` metrics, but not used for readiness (temporal: its
    /// workflow process beside the activity pool, as RoadRunner lists both).
    pub pool_members: Registry<Vec<Pool>>,
    pub resetters: Registry<Arc<dyn Resettable>>,
    pub health: Registry<Arc<dyn HealthCheck>>,
    /// goridge RPC services; served by the rpc plugin.
    pub rpc: crate::rpc::RpcRegistry,
    /// Metric collectors; served by the metrics plugin.
    pub metrics: crate::metrics::Registry,
    /// HTTP middleware by name, as `http.middleware` lists them.
    pub http_middleware: Registry<Arc<dyn crate::http::Middleware>>,
    /// Endpoints other plugins serve on the http plugin's listeners, by owning plugin name
    /// (the centrifuge hub's WebSocket at `hub.http_path`); registered at init.
    pub http_routes: Registry<crate::http::Route>,
    /// Job drivers by name (`memory`, `amqp`, ...).
    pub jobs_drivers: Registry<Arc<dyn crate::jobs::DriverFactory>>,
    /// Pipeline states by owning plugin (`jobs`), for `informer.Jobs`.
    pub jobs_informers: Registry<Arc<dyn crate::jobs::JobsInformer>>,
    /// KV drivers by name (`memory`, `redis`, ...).
    pub kv_drivers: Registry<Arc<dyn crate::kv::DriverFactory>>,
    pub lifecycle: Lifecycle,
    /// Trace propagation and span creation; exporting once the otel plugin installed a provider.
    pub tracing: crate::trace::Tracing,
}
