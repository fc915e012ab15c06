//! The replay RPCs (TEMPORAL.md §5) that PHP's `Temporal\Testing\Replay\WorkflowReplayer`
//! calls: a history (from the server, a protojson file, or the request) replays on a Core replay
//! worker whose activations run on the PHP workflow process like live ones, and the outcome is
//! a `ReplayResponse` status (`FailedPrecondition` with Core's reason when the workflow code no
//! longer produces the history, e.g. nondeterminism). Request checks and the protojson are in
//! [`crate::codec::replay`].

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::stream;
use temporalio_client::tonic;
use temporalio_client::Connection;
use temporalio_common::protos::coresdk::workflow_activation::{remove_from_cache::EvictionReason, workflow_activation_job};
use temporalio_common::protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_common::protos::temporal::api::workflowservice::v1::GetWorkflowExecutionHistoryRequest;
use temporalio_common::worker::WorkerTaskTypes;
use temporalio_sdk_core::replay::{HistoryForReplay, HistoryInfo, ReplayWorkerInput};
use temporalio_sdk_core::{PollError, WorkerConfig, WorkerVersioningStrategy, init_replay_worker};

use super::workflows::{self, Runs};
use crate::codec::json::WorkerInfo;
use crate::codec::replay::{self as codec, code};
use crate::proto::{ReplayHistory, ReplayRequest, ReplayResponse};
use crate::workers::PhpWorkers;

/// How long a history fetch or one replay may take (RoadRunner gives its fetch a minute too).
const TIMEOUT: Duration = Duration::from_secs(60);

/// The four replay methods; they answer [`codec::NOT_READY`] until the driver is connected.
pub struct ReplayRpc {
    /// The last `GetWorkerInfo` answer: which task queue runs a workflow type.
    infos: Arc<RwLock<Vec<WorkerInfo>>>,
    connected: Mutex<Option<Arc<Replayer>>>,
}

/// What a replay needs of a connected driver.
struct Replayer {
    connection: Connection,
    namespace: String,
    php: Arc<PhpWorkers>,
}

/// Why a replay did not go through: a status code and its text.
type Failed = (i32, String);

impl ReplayRpc {
    pub fn new(infos: Arc<RwLock<Vec<WorkerInfo>>>) -> ReplayRpc {
        ReplayRpc { infos, connected: Mutex::new(None) }
    }

    /// The driver is connected (`Some`) or gone (`None`).
    pub fn connect(&self, connection: Option<(Connection, String, Arc<PhpWorkers>)>) {
        *self.connected.lock().unwrap() = connection.map(|(connection, namespace, php)| Arc::new(Replayer { connection, namespace, php }));
    }

    fn replayer(&self) -> Result<Arc<Replayer>, Failed> {
        self.connected.lock().unwrap().clone().ok_or((code::FAILED_PRECONDITION, codec::NOT_READY.to_string()))
    }

    /// `temporal.ReplayWorkflow`: the run's history from the server, replayed.
    pub async fn replay_workflow(&self, request: ReplayRequest) -> ReplayResponse {
        let outcome = async {
            let r = codec::run_request(&request, false).map_err(failed)?;
            let replayer = self.replayer()?;
            let history = replayer.fetch(&r.workflow_id, &r.run_id).await?;
            self.replay(&replayer, &r.workflow_type, &r.workflow_id, history).await
        };
        answer("ReplayWorkflow", outcome.await)
    }

    /// `temporal.DownloadWorkflowHistory`: the run's history as protojson at `save_path`.
    pub async fn download(&self, request: ReplayRequest) -> ReplayResponse {
        let outcome = async {
            let r = codec::run_request(&request, true).map_err(failed)?;
            let history = self.replayer()?.fetch(&r.workflow_id, &r.run_id).await?;
            let json = codec::history_to_json(&history).map_err(|e| (code::INTERNAL, e))?;
            tokio::fs::write(&r.save_path, json).await.map_err(|e| (code::INTERNAL, format!("cannot write the history to {}: {e}", r.save_path)))
        };
        answer("DownloadWorkflowHistory", outcome.await)
    }

    /// `temporal.ReplayFromJSON`: a protojson history file (up to `last_event_id`), replayed.
    pub async fn replay_from_json(&self, request: ReplayRequest) -> ReplayResponse {
        let outcome = async {
            let (workflow_type, path, last_event_id) = codec::json_request(&request).map_err(failed)?;
            let replayer = self.replayer()?;
            let json = tokio::fs::read(&path).await.map_err(|e| (code::FAILED_PRECONDITION, format!("cannot read the history file {path}: {e}")))?;
            let history = codec::history_from_json(&json).map_err(|e| (code::FAILED_PRECONDITION, format!("{path}: {e}")))?;
            let workflow_id = request.workflow_execution.as_ref().map(|e| e.workflow_id.clone()).unwrap_or_default();
            self.replay(&replayer, &workflow_type, &workflow_id, codec::truncate(history, last_event_id)).await
        };
        answer("ReplayFromJSON", outcome.await)
    }

    /// `temporal.ReplayWorkflowHistory`: the history in the request, replayed.
    pub async fn replay_history(&self, request: ReplayHistory) -> ReplayResponse {
        let outcome = async {
            let workflow_type = request.workflow_type.map(|t| t.name).unwrap_or_default();
            let Some(history) = request.history.filter(|_| !workflow_type.is_empty()) else {
                return Err((code::FAILED_PRECONDITION, "workflow_name and/or history should not be empty".to_string()));
            };
            let replayer = self.replayer()?;
            self.replay(&replayer, &workflow_type, "", history).await
        };
        answer("ReplayWorkflowHistory", outcome.await)
    }

    /// The task queue whose PHP worker runs `workflow_type`: the history's own if it has it.
    fn task_queue(&self, workflow_type: &str, preferred: &str) -> Result<String, Failed> {
        let infos = self.infos.read().unwrap();
        let runs = |i: &&WorkerInfo| i.workflows.iter().any(|w| w.name == workflow_type);
        infos
            .iter()
            .filter(runs)
            .find(|i| i.task_queue() == preferred)
            .or_else(|| infos.iter().find(runs))
            .map(|i| i.task_queue().to_string())
            .ok_or_else(|| (code::FAILED_PRECONDITION, format!("workflow type `{workflow_type}` is not registered by the PHP worker (no task queue of its GetWorkerInfo has it)")))
    }

    async fn replay(&self, replayer: &Replayer, workflow_type: &str, workflow_id: &str, history: History) -> Result<(), Failed> {
        let started = codec::started(&history).map_err(|e| (code::FAILED_PRECONDITION, e))?;
        // Core's replayer unwraps this; a broken history must be an answer, not a panic.
        HistoryInfo::new_from_history(&history, None).map_err(|e| (code::FAILED_PRECONDITION, format!("the history cannot be replayed: {e}")))?;
        if started.workflow_type != workflow_type {
            return Err((code::FAILED_PRECONDITION, format!("the history is of workflow type `{}`, not `{workflow_type}`", started.workflow_type)));
        }
        let task_queue = self.task_queue(workflow_type, &started.task_queue)?;
        let workflow_id = if workflow_id.is_empty() { "replay" } else { workflow_id };
        tokio::time::timeout(TIMEOUT, replayer.replay(&task_queue, HistoryForReplay::new(history, workflow_id)))
            .await
            .unwrap_or_else(|_| Err((code::INTERNAL, format!("the replay did not finish within {}s", TIMEOUT.as_secs()))))
    }
}

impl Replayer {
    /// Every event of a run, page by page.
    async fn fetch(&self, workflow_id: &str, run_id: &str) -> Result<History, Failed> {
        let mut service = self.connection.workflow_service();
        let mut history = History::default();
        let mut page = Vec::new();
        loop {
            let request = GetWorkflowExecutionHistoryRequest {
                namespace: self.namespace.clone(),
                execution: Some(WorkflowExecution { workflow_id: workflow_id.to_string(), run_id: run_id.to_string() }),
                next_page_token: std::mem::take(&mut page),
                ..Default::default()
            };
            let response = tokio::time::timeout(TIMEOUT, service.get_workflow_execution_history(tonic::Request::new(request)))
                .await
                .map_err(|_| (code::INTERNAL, format!("fetching the history of {workflow_id} ({run_id}) timed out")))?
                .map_err(|s| (code::INTERNAL, format!("fetching the history of {workflow_id} ({run_id}): {}", s.message())))?
                .into_inner();
            history.events.extend(response.history.map(|h| h.events).unwrap_or_default());
            if response.next_page_token.is_empty() {
                return Ok(history);
            }
            page = response.next_page_token;
        }
    }

    /// One history on a Core replay worker, its activations on the PHP workflow process. Core
    /// ends every replay with an eviction whose reason says how it went.
    async fn replay(&self, task_queue: &str, history: HistoryForReplay) -> Result<(), Failed> {
        let internal = |e: String| (code::INTERNAL, e);
        let config = WorkerConfig::builder()
            .namespace(self.namespace.clone())
            .task_queue(task_queue)
            .versioning_strategy(WorkerVersioningStrategy::None { build_id: String::new() })
            .task_types(WorkerTaskTypes::workflow_only())
            .max_cached_workflows(1_usize)
            .build()
            .map_err(|e| internal(format!("replay worker options: {e}")))?;
        let worker = Arc::new(init_replay_worker(ReplayWorkerInput::new(config, stream::iter([history]))).map_err(|e| internal(format!("cannot create the replay worker: {e}")))?);
        let runs = Runs::new(&self.namespace);
        let mut outcome = None;
        let polled = loop {
            let activation = match worker.poll_workflow_activation().await {
                Ok(a) => a,
                Err(PollError::ShutDown) => break Ok(()),
                Err(e) => break Err(internal(format!("replay worker: {e}"))),
            };
            for job in &activation.jobs {
                if let Some(workflow_activation_job::Variant::RemoveFromCache(r)) = &job.variant {
                    outcome.get_or_insert(match r.reason() {
                        EvictionReason::LangRequested => Ok(()),
                        EvictionReason::Nondeterminism => Err((code::FAILED_PRECONDITION, format!("nondeterministic workflow: {}", r.message))),
                        reason => Err((code::FAILED_PRECONDITION, format!("the replay failed ({}): {}", reason.as_str_name(), r.message))),
                    });
                }
            }
            let completion = workflows::handle(&worker, &self.php, &runs, task_queue, activation).await;
            if let Err(e) = worker.complete_workflow_activation(completion).await {
                break Err(internal(format!("replay worker: {e}")));
            }
        };
        worker.initiate_shutdown();
        worker.shutdown().await;
        if let Ok(worker) = Arc::try_unwrap(worker) {
            worker.finalize_shutdown().await;
        }
        polled?;
        outcome.unwrap_or_else(|| Err(internal("the replay worker stopped before the workflow was replayed".into())))
    }
}

fn failed(response: ReplayResponse) -> Failed {
    let status = response.status.unwrap_or_default();
    (status.code, status.message)
}

/// The response, logged as RoadRunner logs it.
fn answer(method: &str, outcome: Result<(), Failed>) -> ReplayResponse {
    match outcome {
        Ok(()) => {
            tracing::debug!(target: "temporal", "{method} finished successfully");
            codec::ok()
        }
        Err((code, message)) => {
            tracing::error!(target: "temporal", code, "{method}: {message}");
            codec::response(code, message)
        }
    }
}
