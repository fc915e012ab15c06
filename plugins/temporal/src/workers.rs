//! The PHP processes (TEMPORAL.md §1 "Other behaviour", §3.3): a pool of activity workers and
//! one workflow process, both `RR_MODE=temporal`, `RR_CODEC=protobuf` (the PHP SDK picks its
//! JSON codec for anything else), started through the runtime's pool service.
//!
//! This is what the Temporal driver talks through: the handshake, one workflow exec per batch,
//! one activity exec per task. It knows the protocol's framing, not Temporal's state machines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rr_runtime::Services;
use rr_runtime::pool::{Pool, PoolError};

use crate::codec::commands::{GetWorkerInfo, InvokeActivity, InvokeLocalActivity};
use crate::codec::json::WorkerInfo;
use crate::codec::{self, ActivityOutcome, Batch, CodecError, Context, Envelope, Ids, PhpCommand, Request, ServerCommand};
use crate::config::{Config, WorkflowProcess};
use crate::proto::{Header, Payloads};

/// The owner name the pools are registered under (`rr workers temporal`, `rr reset temporal`).
pub const OWNER: &str = "temporal";

#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("temporal: {0}")]
    Pool(#[from] PoolError),
    #[error("temporal: {0}")]
    Codec(#[from] CodecError),
    #[error("temporal: activity workers are disabled (`temporal.disable_activity_workers: true`)")]
    NoActivityWorkers,
    /// The workflow process is not the one that answered `GetWorkerInfo`: every workflow
    /// instance it held is gone, and an answer from the new one belongs to no request of ours.
    #[error("temporal: the workflow process was replaced (pid {old} -> {new}); every cached workflow run must be evicted and GetWorkerInfo asked again")]
    WorkflowProcessReplaced { old: u32, new: u32 },
}

/// The activity pool and the workflow process.
pub struct PhpWorkers {
    /// `None` with `disable_activity_workers`.
    activities: Option<Pool>,
    workflow: Pool,
    ids: Ids,
    rr_version: String,
    /// The workflow process that answered the last `GetWorkerInfo` (0: none yet).
    handshaken: AtomicU32,
    /// Counts handshakes: a workflow run started under an older one lived in a process that is
    /// gone, so the driver evicts it (watch it with [`PhpWorkers::handshakes`]).
    generation: tokio::sync::watch::Sender<u64>,
    /// Held by one workflow activation at a time (live workers and replays alike).
    workflow_lock: tokio::sync::Mutex<()>,
    /// `temporal.workflow_process`: when the workflow process is recycled.
    limits: WorkflowProcess,
    /// Activations the current workflow process handled (evictions not counted).
    activations: AtomicU64,
    /// Why a recycle is pending: every cached run is being evicted, then the process restarts.
    recycle: Mutex<Option<String>>,
    recycles: AtomicU64,
}

impl PhpWorkers {
    /// Start the activity pool (unless disabled), then the workflow process, as RoadRunner does.
    /// The pool registry's `temporal` entry is the activity pool (the workflow process when
    /// activities are disabled): the status plugin reports ready while one of its workers is free.
    /// The workflow process is listed beside it (`rr workers temporal`, `rr_temporal_*`).
    pub async fn start(services: &Arc<Services>, cfg: &Config) -> Result<PhpWorkers, WorkersError> {
        let env = BTreeMap::from([("RR_CODEC".to_string(), "protobuf".to_string())]);
        let activities = match cfg.disable_activity_workers {
            true => None,
            false => Some(services.new_pool_env(OWNER, "temporal", cfg.activities.clone(), &env, Vec::new()).await?),
        };
        let workflow = match services.new_pool_env(OWNER, "temporal", cfg.workflow_pool(), &env, Vec::new()).await {
            Ok(pool) => pool,
            Err(e) => {
                if let Some(a) = &activities {
                    a.destroy().await;
                }
                return Err(e.into());
            }
        };
        services.pools.register(OWNER, activities.clone().unwrap_or_else(|| workflow.clone()));
        if activities.is_some() {
            // `rr workers temporal` and `rr_temporal_*` list the workflow process too (RoadRunner does).
            services.pool_members.register(OWNER, vec![workflow.clone()]);
        }
        Ok(PhpWorkers { activities, workflow, ids: Ids::default(), rr_version: services.version.to_string(), handshaken: AtomicU32::new(0), generation: tokio::sync::watch::Sender::new(0),
            workflow_lock: Default::default(),
            limits: cfg.workflow_process,
            activations: AtomicU64::new(0),
            recycle: Mutex::new(None),
            recycles: AtomicU64::new(0),
        })
    }

    pub fn activities(&self) -> Option<&Pool> {
        self.activities.as_ref()
    }

    pub fn workflow(&self) -> &Pool {
        &self.workflow
    }

    /// The workflow process's pid (0 while it is being replaced).
    pub fn workflow_pid(&self) -> u32 {
        self.workflow.workers().first().map_or(0, |w| w.pid)
    }

    /// How many handshakes there were: workflow runs of an older one are gone from PHP.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Changes with every handshake (after `rr reset temporal` or a replaced workflow process).
    pub fn handshakes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// One workflow activation's turn on the workflow process: its batches must not interleave
    /// with another activation's.
    pub async fn workflow_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.workflow_lock.lock().await
    }

    /// Counts one activation of the workflow process; `Some(reason)` when it reached a
    /// `temporal.workflow_process` limit just now (a recycle is pending from then on).
    pub fn count_activation(&self) -> Option<String> {
        let n = self.activations.fetch_add(1, Ordering::SeqCst) + 1;
        let mut pending = self.recycle.lock().unwrap();
        if pending.is_some() {
            return None;
        }
        let WorkflowProcess { max_jobs, max_worker_memory } = self.limits;
        let reason = if max_jobs > 0 && n >= max_jobs {
            format!("it handled {n} activations (temporal.workflow_process.max_jobs: {max_jobs})")
        } else if max_worker_memory > 0 {
            let rss = self.workflow.workers().first().map_or(0, |w| w.memory);
            if rss < max_worker_memory * 1024 * 1024 {
                return None;
            }
            format!("it uses {} MB (temporal.workflow_process.max_worker_memory: {max_worker_memory})", rss / (1024 * 1024))
        } else {
            return None;
        };
        *pending = Some(reason.clone());
        Some(reason)
    }

    /// A recycle is pending: cached runs are evicted, and the process restarts once none is left.
    pub fn recycle_pending(&self) -> bool {
        self.recycle.lock().unwrap().is_some()
    }

    /// How many times the workflow process was recycled.
    pub fn recycles(&self) -> u64 {
        self.recycles.load(Ordering::SeqCst)
    }

    /// Restart the workflow process and shake hands with the new one. The caller holds the
    /// workflow lock and has no run cached: nothing the old process held is still needed.
    pub async fn recycle_workflow_process(&self) -> Result<(), WorkersError> {
        let reason = self.recycle.lock().unwrap().clone().unwrap_or_default();
        let old = self.workflow_pid();
        self.workflow.reset().await?;
        self.worker_info().await?;
        self.activations.store(0, Ordering::SeqCst);
        *self.recycle.lock().unwrap() = None;
        self.recycles.fetch_add(1, Ordering::SeqCst);
        tracing::info!(target: "temporal", old_pid = old, new_pid = self.workflow_pid(), "workflow process recycled: {reason}");
        Ok(())
    }

    /// A fresh command id.
    pub fn next_id(&self) -> u64 {
        self.ids.next()
    }

    /// `GetWorkerInfo` on the workflow process: the task queues with their workflows and activities.
    pub async fn worker_info(&self) -> Result<Vec<WorkerInfo>, WorkersError> {
        let ww_pid = u64::from(self.workflow_pid());
        let request = Request::new(ServerCommand::GetWorkerInfo(GetWorkerInfo { rr_version: self.rr_version.clone(), ww_pid }));
        let mut batch = Batch::new(Context::handshake(), vec![Envelope::command(self.next_id(), request)]);
        batch.wwpid = ww_pid;
        let reply = self.workflow.exec(batch.encode()).await?;
        let infos = codec::worker_infos(&reply.payload.body)?;
        self.handshaken.store(self.workflow_pid(), Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
        Ok(infos)
    }

    /// One batch on the workflow process; the messages it answers with, in order.
    ///
    /// Only on the process that answered `GetWorkerInfo`: if it died and the pool replaced it
    /// (before or during this exec), the answer is dropped and [`WorkersError::WorkflowProcessReplaced`]
    /// tells the driver to evict every run and shake hands again (RoadRunner resets the plugin).
    pub async fn workflow_exec(&self, mut batch: Batch<ServerCommand>) -> Result<Vec<Envelope<PhpCommand>>, WorkersError> {
        let known = self.handshaken.load(Ordering::SeqCst);
        batch.wwpid = u64::from(known);
        let reply = self.workflow.exec(batch.encode()).await;
        let now = self.workflow_pid();
        if known == 0 || now != known {
            return Err(WorkersError::WorkflowProcessReplaced { old: known, new: now });
        }
        Ok(codec::decode_frame(&reply?.payload.body)?)
    }

    /// `InvokeActivity` on a free activity worker (`args` ‖ last heartbeat details).
    pub async fn invoke_activity(&self, task_queue: &str, invoke: InvokeActivity, args: Payloads, header: Option<Header>) -> Result<ActivityOutcome, WorkersError> {
        self.activity_exec(task_queue, ServerCommand::InvokeActivity(invoke), args, header).await
    }

    /// `InvokeLocalActivity`: also on the activity pool (roadrunner#1940).
    pub async fn invoke_local_activity(&self, task_queue: &str, invoke: InvokeLocalActivity, args: Payloads, header: Option<Header>) -> Result<ActivityOutcome, WorkersError> {
        self.activity_exec(task_queue, ServerCommand::InvokeLocalActivity(invoke), args, header).await
    }

    async fn activity_exec(&self, task_queue: &str, command: ServerCommand, args: Payloads, header: Option<Header>) -> Result<ActivityOutcome, WorkersError> {
        let pool = self.activities.as_ref().ok_or(WorkersError::NoActivityWorkers)?;
        let mut request = Request::new(command).with_payloads(args);
        request.header = header;
        let batch = Batch::new(Context::activity(task_queue), vec![Envelope::command(self.next_id(), request)]);
        let reply = pool.exec(batch.encode()).await?;
        Ok(ActivityOutcome::from_reply(&reply.payload.body)?)
    }

    /// Replace every process (activities first), as `rr reset temporal` does before asking
    /// `GetWorkerInfo` again.
    pub async fn reset(&self) -> Result<(), WorkersError> {
        if let Some(a) = &self.activities {
            a.reset().await?;
        }
        self.workflow.reset().await?;
        Ok(())
    }

    pub async fn destroy(&self) {
        self.workflow.destroy().await;
        if let Some(a) = &self.activities {
            a.destroy().await;
        }
    }
}
