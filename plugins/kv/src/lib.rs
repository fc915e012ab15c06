//! The `kv` plugin: storages declared under `kv.<name>` (`driver` + `config`; without `config`
//! the driver's root section, e.g. `redis:`, is used), reached over RPC with the `kv.v1`
//! protobuf messages (PROTOCOL.md §4.6.5) and the error texts PHP matches on.

pub mod proto;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use rr_runtime::kv::{Item, Storage};
use rr_runtime::rpc::RpcError;
use rr_runtime::trace::{self, TraceContextExt};
use rr_runtime::{BoxError, InitContext, Services};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
pub struct StorageConfig {
    pub driver: String,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// Storage name -> (driver name, storage).
type Storages = Arc<RwLock<HashMap<String, (String, Arc<dyn Storage>)>>>;

pub struct Plugin {
    declared: BTreeMap<String, StorageConfig>,
    root: serde_json::Value,
    storages: Storages,
    services: Arc<Services>,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "kv";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(declared) = ctx.section::<BTreeMap<String, StorageConfig>>("kv")? else { return Ok(None) };
        let storages: Storages = Arc::default();
        register_rpc(ctx.services, &storages);
        Ok(Some(Plugin { declared, root: ctx.config.root().clone(), storages, services: ctx.services.clone() }))
    }

    /// Storages are created here, after every driver plugin registered itself at init.
    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        for (name, cfg) in &self.declared {
            let factory = self.services.kv_drivers.get(&cfg.driver).ok_or_else(|| {
                format!("config key `kv.{name}.driver`: no `{}` driver is compiled into this server; add its plugin (e.g. rr-kv-{}) to velox.toml", cfg.driver, cfg.driver)
            })?;
            let config = cfg.config.clone().or_else(|| self.root.get(&cfg.driver).cloned()).unwrap_or(serde_json::Value::Null);
            let storage = factory.create(name, &config).await.map_err(|e| format!("kv storage `{name}` ({}): {e}", cfg.driver))?;
            self.storages.write().unwrap().insert(name.clone(), (cfg.driver.clone(), storage));
            tracing::info!(target: "kv", storage = %name, driver = %cfg.driver, "kv storage ready");
        }
        shutdown.cancelled().await;
        Ok(())
    }
}

fn storage(storages: &Storages, name: &str, op: &str) -> Result<(String, Arc<dyn Storage>), RpcError> {
    if name.is_empty() {
        return Err(RpcError::new(format!("kv_{op}: no storage provided")));
    }
    storages.read().unwrap().get(name).cloned().ok_or_else(|| RpcError::new(format!("kv_{op}: no such storage: {name}")))
}

fn keys(req: &proto::Request) -> Vec<String> {
    req.items.iter().map(|i| i.key.clone()).collect()
}

fn items(req: proto::Request) -> Vec<Item> {
    req.items.into_iter().map(|i| Item { key: i.key, value: i.value.into(), timeout: i.timeout }).collect()
}

fn response(items: Vec<Item>) -> proto::Response {
    proto::Response { items: items.into_iter().map(|i| proto::Item { key: i.key, value: i.value.to_vec(), timeout: i.timeout }).collect() }
}

/// A span per call (`redis:set`, ...) when spans are exported; KV calls carry no trace to continue.
fn traced(services: &Services, driver: &str, op: &str) -> Option<trace::Context> {
    services.tracing.is_exporting().then(|| services.tracing.start("kv", format!("{driver}:{op}"), trace::SpanKind::Internal, &trace::Context::new()))
}

fn end(span: trace::Context, error: Option<&BoxError>) {
    if let Some(e) = error {
        span.span().set_status(trace::Status::error(e.to_string()));
    }
    span.span().end();
}

fn register_rpc(services: &Arc<Services>, storages: &Storages) {
    let rpc = &services.rpc;
    macro_rules! method {
        ($name:literal, $op:literal, |$s:ident, $req:ident| $body:expr) => {{
            let (storages, services) = (storages.clone(), services.clone());
            rpc.register_proto($name, move |$req: proto::Request| {
                let found = storage(&storages, &$req.storage, $op);
                let services = services.clone();
                async move {
                    let (driver, $s) = found?;
                    let span = traced(&services, &driver, $op);
                    let result: Result<proto::Response, BoxError> = $body;
                    if let Some(span) = span {
                        end(span, result.as_ref().err());
                    }
                    result.map_err(|e| RpcError::new(format!("kv_{}: {e}", $op)))
                }
            });
        }};
    }
    method!("kv.Has", "has", |s, req| s.has(keys(&req)).await.map(|ks| response(ks.into_iter().map(|key| Item { key, ..Default::default() }).collect())));
    method!("kv.Set", "set", |s, req| s.set(items(req)).await.map(|()| proto::Response::default()));
    method!("kv.MGet", "mget", |s, req| s.mget(keys(&req)).await.map(response));
    method!("kv.MExpire", "mexpire", |s, req| s.mexpire(items(req)).await.map(|()| proto::Response::default()));
    method!("kv.TTL", "ttl", |s, req| s.ttl(keys(&req)).await.map(response));
    method!("kv.Delete", "delete", |s, req| s.delete(keys(&req)).await.map(|()| proto::Response::default()));
    method!("kv.Clear", "clear", |s, req| s.clear().await.map(|()| proto::Response::default()));
}
