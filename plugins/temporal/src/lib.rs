//! The `temporal` plugin, first layers (TEMPORAL.md, docs/TEMPORAL.md): the `temporal` config
//! section, the PHP-facing protocol codec ([`codec`], [`proto`]), and the PHP processes
//! ([`workers`]: the activity pool and the workflow process, `GetWorkerInfo`, activity and
//! workflow execs).
//!
//! The connection to the Temporal server is a [`driver::Driver`]: [`core::CoreDriver`], on
//! Temporal's Rust core, runs activities and workflows (the workflow commands it does not
//! support yet fail the workflow task with a message naming them).

pub mod codec;
pub mod config;
pub mod core;
pub mod driver;
pub mod proto;
pub mod workers;

use std::sync::{Arc, Mutex, RwLock};

use rr_runtime::rpc::RpcError;
use rr_runtime::services::Resettable;
use rr_runtime::{BoxError, InitContext, Services};
use tokio_util::sync::CancellationToken;

use codec::json::WorkerInfo;
pub use config::Config;
use driver::{Driver, Handshake};
use workers::PhpWorkers;

pub struct Plugin {
    cfg: Arc<Config>,
    services: Arc<Services>,
    driver: Arc<dyn Driver>,
    workers: tokio::sync::OnceCell<Arc<PhpWorkers>>,
    /// The last `GetWorkerInfo` answer (RPC `GetWorkflowNames` / `GetActivityNames`).
    infos: Arc<RwLock<Vec<WorkerInfo>>>,
    api_key: Arc<Mutex<Option<String>>>,
    on_api_key: Arc<Mutex<Option<driver::ApiKeyHook>>>,
    running: Arc<core::activities::Running>,
    replay: Arc<core::replay::ReplayRpc>,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "temporal";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(cfg) = ctx.section::<Config>("temporal")? else { return Ok(None) };
        cfg.validate()?;
        let driver = driver::default_driver();
        let infos: Arc<RwLock<Vec<WorkerInfo>>> = Arc::default();
        let api_key: Arc<Mutex<Option<String>>> = Arc::default();
        let rpc = &ctx.services.rpc;
        let names = infos.clone();
        rpc.register_json("temporal.GetWorkflowNames", move |_: bool| {
            let list: Vec<String> = names.read().unwrap().iter().flat_map(|i| i.workflows.iter().map(|w| w.name.clone())).collect();
            async move { Ok::<_, RpcError>(list) }
        });
        let names = infos.clone();
        rpc.register_json("temporal.GetActivityNames", move |_: bool| {
            let list: Vec<String> = names.read().unwrap().iter().flat_map(|i| i.activities.iter().map(|a| a.name.clone())).collect();
            async move { Ok::<_, RpcError>(list) }
        });
        let on_api_key: Arc<Mutex<Option<driver::ApiKeyHook>>> = Arc::default();
        let (key, hook) = (api_key.clone(), on_api_key.clone());
        rpc.register_json("temporal.UpdateAPIKey", move |new: String| {
            if let Some(hook) = hook.lock().unwrap().as_ref() {
                hook(&new);
            }
            *key.lock().unwrap() = Some(new);
            async { Ok::<_, RpcError>(true) }
        });
        let running: Arc<core::activities::Running> = Arc::default();
        let activities = running.clone();
        rpc.register_json("temporal.RecordActivityHeartbeat", move |request: codec::rpc::HeartbeatRequest| {
            let reply = activities.heartbeat(&request).map_err(RpcError::new);
            async move { reply }
        });
        // The replay methods of PHP's WorkflowReplayer (protobuf codec).
        let replay = Arc::new(core::replay::ReplayRpc::new(infos.clone()));
        let r = replay.clone();
        rpc.register_proto("temporal.ReplayWorkflow", move |request: proto::ReplayRequest| {
            let r = r.clone();
            async move { Ok::<_, RpcError>(r.replay_workflow(request).await) }
        });
        let r = replay.clone();
        rpc.register_proto("temporal.DownloadWorkflowHistory", move |request: proto::ReplayRequest| {
            let r = r.clone();
            async move { Ok::<_, RpcError>(r.download(request).await) }
        });
        let r = replay.clone();
        rpc.register_proto("temporal.ReplayFromJSON", move |request: proto::ReplayRequest| {
            let r = r.clone();
            async move { Ok::<_, RpcError>(r.replay_from_json(request).await) }
        });
        let r = replay.clone();
        rpc.register_proto("temporal.ReplayWorkflowHistory", move |request: proto::ReplayHistory| {
            let r = r.clone();
            async move { Ok::<_, RpcError>(r.replay_history(request).await) }
        });
        Ok(Some(Plugin { cfg: Arc::new(cfg), services: ctx.services.clone(), driver, workers: Default::default(), infos, api_key, on_api_key, running, replay }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let workers = Arc::new(PhpWorkers::start(&self.services, &self.cfg).await?);
        let _ = self.workers.set(workers.clone());
        let infos = workers.worker_info().await?;
        for info in &infos {
            tracing::info!(
                target: "temporal",
                task_queue = %info.task_queue(),
                workflows = ?info.workflows.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
                activities = ?info.activities.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                php_sdk = %info.php_sdk_version,
                "PHP worker registered a task queue"
            );
        }
        // PHP's key is used until `temporal.UpdateAPIKey` sets another.
        if let Some(key) = infos.iter().map(|i| i.flags.api_key.clone()).find(|k| !k.is_empty()) {
            self.api_key.lock().unwrap().get_or_insert(key);
        }
        *self.infos.write().unwrap() = infos.clone();
        self.services
            .resetters
            .register(workers::OWNER, Arc::new(Reset { workers: workers.clone(), infos: self.infos.clone() }) as Arc<dyn Resettable>);
        let handshake = Handshake {
            config: self.cfg.clone(),
            infos,
            workers,
            api_key: self.api_key.clone(),
            on_api_key: self.on_api_key.clone(),
            running: self.running.clone(),
            replay: self.replay.clone(),
        };
        self.driver.run(handshake, shutdown).await
    }

    async fn stop(&self) -> Result<(), BoxError> {
        if let Some(workers) = self.workers.get() {
            workers.destroy().await;
        }
        Ok(())
    }
}

/// `rr reset temporal`: every PHP process replaced, then `GetWorkerInfo` again (the driver, once
/// there, also purges its sticky cache and re-creates its workers).
struct Reset {
    workers: Arc<PhpWorkers>,
    infos: Arc<RwLock<Vec<WorkerInfo>>>,
}

impl Resettable for Reset {
    fn reset(&self) -> futures::future::BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            self.workers.reset().await?;
            let infos = self.workers.worker_info().await?;
            *self.infos.write().unwrap() = infos;
            Ok(())
        })
    }
}
