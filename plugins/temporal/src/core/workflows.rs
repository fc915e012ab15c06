//! The workflow activation loop of one Core worker (TEMPORAL.md §7.3, §8): each activation's jobs
//! become one batch of messages on the PHP workflow process; the commands PHP answers with become
//! Core commands; answers that need no server (GetVersion, a cancelled timer) go back to PHP in
//! the next batch of the same activation, until PHP has nothing more to say.
//!
//! Not in this layer (the activation fails with a message naming it, so the workflow task is
//! retried and the gap is visible in the history): Nexus.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use temporalio_common::protos::coresdk::activity_result::activity_resolution;
use temporalio_common::protos::coresdk::child_workflow::ChildWorkflowCancellationType;
use temporalio_common::protos::coresdk::common::NamespacedWorkflowExecution;
use temporalio_common::protos::coresdk::workflow_activation::{InitializeWorkflow, WorkflowActivation, workflow_activation_job};
use temporalio_common::protos::coresdk::workflow_commands::{
    self as wc, ActivityCancellationType, QueryResult, QuerySuccess, query_result, workflow_command,
};
use temporalio_common::protos::coresdk::workflow_completion::WorkflowActivationCompletion;
use temporalio_common::protos::temporal::api::common::v1::{Memo, Payload as CorePayload, SearchAttributes};
use temporalio_common::protos::temporal::api::failure::v1::Failure as CoreFailure;
use temporalio_sdk_core::{PollError, Worker};

use super::convert::{self, duration, proto_duration, time};
use crate::codec::commands::{InvokeQuery, InvokeSignal, InvokeUpdate, RunRef, StartWorkflow};
use crate::codec::json::{Execution, TypeName, TypedUpsert, WorkflowInfo};
use crate::codec::{Batch, Context, Envelope, Kind, PhpCommand, Request, ServerCommand};
use crate::proto::{self, Failure, Payload, Payloads};
use crate::workers::{PhpWorkers, WorkersError};

/// The local activity type that runs a `SideEffect` (answered in process with its argument).
pub const SIDE_EFFECT: &str = "__rr_side_effect";

/// What a PHP command id waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pending {
    Timer(u32),
    Activity(u32),
    LocalActivity(u32),
    /// `ExecuteChildWorkflow`: the child's result.
    Child(u32),
    /// `GetChildWorkflowExecution`: the child's start.
    ChildStart(u32),
    SignalExternal(u32),
    CancelExternal(u32),
    /// A local activity waiting out its retry backoff on this timer (Core's `DoBackoff`).
    Backoff(u32),
}

/// One workflow run as this side knows it.
struct Run {
    rr_id: String,
    /// Temporal's run id.
    run_id: String,
    /// Child seq → its workflow id, and once started its run id.
    children: HashMap<u32, (String, Option<String>)>,
    /// Update id → Core's protocol instance id, until PHP completes or rejects it.
    updates: HashMap<String, String>,
    /// The handshake it started under ([`PhpWorkers::generation`]) and the Core worker it is on.
    generation: u64,
    worker: Arc<Worker>,
    task_queue: String,
    workflow_type: String,
    /// PHP command id → what it waits for, and back.
    waiting: HashMap<u64, Pending>,
    by_seq: HashMap<Pending, u64>,
    next_seq: HashMap<&'static str, u32>,
    /// Patch ids Core told us the history has (`NotifyHasPatch`), for GetVersion on replay.
    patches: Vec<String>,
    versions: HashMap<String, i32>,
    cancel_requested: bool,
    /// Local activity seq → its schedule command, until resolved: a `DoBackoff` schedules it
    /// again after a timer (backoff timer seq → the command for the next attempt).
    local_activities: HashMap<u32, wc::ScheduleLocalActivity>,
    backoffs: HashMap<u32, wc::ScheduleLocalActivity>,
    local_retry_threshold: Option<Duration>,
    /// When its last activation ended, and whether its eviction was asked for (a recycle).
    last_active: std::time::Instant,
    evicting: bool,
}

impl Run {
    /// No local activity in flight: an eviction now loses nothing (Core cancels in-flight ones).
    fn evictable(&self) -> bool {
        !self.waiting.values().any(|p| matches!(p, Pending::LocalActivity(_)))
    }

    fn seq(&mut self, kind: &'static str) -> u32 {
        let n = self.next_seq.entry(kind).or_insert(0);
        *n += 1;
        *n
    }

    fn wait(&mut self, id: u64, p: Pending) {
        self.waiting.insert(id, p);
        self.by_seq.insert(p, id);
    }

    fn resolve(&mut self, p: Pending) -> Option<u64> {
        let id = self.by_seq.remove(&p)?;
        self.waiting.remove(&id);
        Some(id)
    }
}

/// The runs of every task queue: they all live in the one PHP workflow process.
#[derive(Default)]
pub struct Runs {
    /// The namespace every worker polls (WorkflowInfo's `Namespace`).
    namespace: String,
    /// Task queues whose PHP options say `WorkflowPanicPolicy: 1` (FailWorkflow).
    fail_on_panic: Mutex<std::collections::HashSet<String>>,
    runs: Mutex<HashMap<String, Run>>,
    /// `temporal.local_retry_threshold`; None = Core's default.
    pub local_retry_threshold: Option<Duration>,
    /// The live workers' runs (not a replay's): only these count toward, and take part in, a
    /// recycle of the workflow process (`temporal.workflow_process`).
    pub live: bool,
    /// Runs with an activation polled and not yet completed (live workers only).
    inflight: Mutex<std::collections::HashSet<String>>,
}

pub async fn run(worker: Arc<Worker>, task_queue: String, php: Arc<PhpWorkers>, runs: Arc<Runs>) -> Result<(), PollError> {
    loop {
        let activation = match worker.poll_workflow_activation().await {
            Ok(a) => a,
            Err(PollError::ShutDown) => return Ok(()),
            Err(e) => return Err(e),
        };
        let run_id = activation.run_id.clone();
        runs.inflight.lock().unwrap().insert(run_id.clone());
        let completion = handle(&worker, &php, &runs, &task_queue, activation).await;
        if let Err(e) = worker.complete_workflow_activation(completion).await {
            tracing::warn!(target: "temporal", run_id = %run_id, "completing a workflow activation failed: {e}");
        }
        runs.inflight.lock().unwrap().remove(&run_id);
    }
}

/// One activation on the workflow process (alone there: batches of two activations must not
/// interleave); every error becomes a failed activation, which Core turns into a failed
/// workflow task and an eviction.
pub async fn handle(worker: &Arc<Worker>, php: &PhpWorkers, runs: &Runs, task_queue: &str, activation: WorkflowActivation) -> WorkflowActivationCompletion {
    let run_id = activation.run_id.clone();
    let replaying = activation.is_replaying;
    let eviction = activation.jobs.iter().any(|j| matches!(j.variant, Some(workflow_activation_job::Variant::RemoveFromCache(_))));
    let _php = php.workflow_lock().await;
    let completion = activate_or_fail(worker, php, runs, task_queue, activation).await;
    if !runs.live {
        return completion;
    }
    if let Some(run) = runs.runs.lock().unwrap().get_mut(&run_id) {
        run.last_active = std::time::Instant::now();
    }
    if !eviction && let Some(reason) = php.count_activation() {
        // Each run is evicted after its next activation (below), or by [`recycle_idle`] when it has none.
        tracing::info!(target: "temporal", "recycling the workflow process: {reason}; evicting every cached run first");
    }
    if php.recycle_pending() {
        // This run (also one initialised meanwhile) goes once this completion is sent; not while a
        // local activity is in flight (Core would drop it, and the workflow task would time out),
        // nor during a replay (Core goes on replaying the task and may reach a new one).
        let evict = !replaying && runs.runs.lock().unwrap().get_mut(&run_id).is_some_and(|r| r.evictable() && !std::mem::replace(&mut r.evicting, true));
        if evict {
            worker.request_workflow_eviction(&run_id);
        }
        let empty = runs.runs.lock().unwrap().is_empty();
        if empty && let Err(e) = php.recycle_workflow_process().await {
            tracing::error!(target: "temporal", "recycling the workflow process failed (tried again after the next activation): {e}");
        }
    }
    completion
}

async fn activate_or_fail(worker: &Arc<Worker>, php: &PhpWorkers, runs: &Runs, task_queue: &str, activation: WorkflowActivation) -> WorkflowActivationCompletion {
    let run_id = activation.run_id.clone();
    match activate(worker, php, runs, task_queue, activation).await {
        Ok(completion) => completion,
        Err(ActivationError::Replaced(e)) => {
            // Every run the old process held is gone: a new handshake makes them all
            // stale, and [`evict_stale`] evicts them.
            tracing::warn!(target: "temporal", "{e}");
            if let Err(e) = php.worker_info().await {
                tracing::error!(target: "temporal", "GetWorkerInfo on the new workflow process failed: {e}");
            }
            WorkflowActivationCompletion::fail(run_id, failure(&e.to_string()), None)
        }
        Err(ActivationError::Other(message)) => {
            // Core evicts a run whose activation failed; the eviction destroys it in PHP.
            tracing::warn!(target: "temporal", run_id = %run_id, "workflow task failed: {message}");
            WorkflowActivationCompletion::fail(run_id, failure(&message), None)
        }
    }
}

impl Runs {
    pub fn new(namespace: &str) -> Runs {
        Runs { namespace: namespace.to_string(), ..Runs::default() }
    }

    /// Go's `WorkflowPanicPolicy` for a task queue: 0 blocks (the workflow task fails and is
    /// retried), 1 fails the workflow.
    pub fn set_panic_policy(&self, task_queue: &str, policy: i32) {
        if policy == 1 {
            self.fail_on_panic.lock().unwrap().insert(task_queue.to_string());
        }
    }
}

/// After every new handshake (`rr reset temporal`, a replaced workflow process), ask Core to
/// evict the runs of older ones: their PHP state is gone, and a replay rebuilds it.
pub async fn evict_stale(php: Arc<PhpWorkers>, runs: Arc<Runs>) {
    let mut handshakes = php.handshakes();
    while handshakes.changed().await.is_ok() {
        let current = *handshakes.borrow_and_update();
        let stale: Vec<(String, Arc<Worker>)> =
            runs.runs.lock().unwrap().iter().filter(|(_, r)| r.generation != current).map(|(id, r)| (id.clone(), r.worker.clone())).collect();
        for (run_id, worker) in stale {
            tracing::debug!(target: "temporal", run_id = %run_id, "evicting a run of a replaced workflow process");
            worker.request_workflow_eviction(&run_id);
        }
    }
}

/// How long a run has had no activation before a pending recycle evicts it from outside. Its own
/// activations are the safe moment (Core drops a local activity in flight when a run is evicted,
/// and cannot tell whether a workflow task is about to reach us); this bounds the wait for runs
/// that sleep on a long timer or a signal.
const IDLE_BEFORE_EVICTION: Duration = Duration::from_secs(2);

/// While a recycle is pending, evict the runs that stay idle, and restart the workflow process
/// once none is cached (when no activation comes to do it).
pub async fn recycle_idle(php: Arc<PhpWorkers>, runs: Arc<Runs>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !php.recycle_pending() {
            continue;
        }
        let idle: Vec<(String, Arc<Worker>)> = {
            let inflight = runs.inflight.lock().unwrap();
            let mut guard = runs.runs.lock().unwrap();
            guard
                .iter_mut()
                .filter(|(id, r)| !inflight.contains(*id) && !r.evicting && r.evictable() && r.last_active.elapsed() >= IDLE_BEFORE_EVICTION)
                .map(|(id, r)| {
                    r.evicting = true;
                    (id.clone(), r.worker.clone())
                })
                .collect()
        };
        for (id, worker) in idle {
            tracing::debug!(target: "temporal", run_id = %id, "evicting an idle run: the workflow process is being recycled");
            worker.request_workflow_eviction(&id);
        }
        if !runs.runs.lock().unwrap().is_empty() {
            continue;
        }
        let _lock = php.workflow_lock().await;
        let empty = runs.runs.lock().unwrap().is_empty();
        if empty && php.recycle_pending() && let Err(e) = php.recycle_workflow_process().await {
            tracing::error!(target: "temporal", "recycling the workflow process failed (tried again shortly): {e}");
        }
    }
}

enum ActivationError {
    Replaced(WorkersError),
    Other(String),
}

impl From<WorkersError> for ActivationError {
    fn from(e: WorkersError) -> Self {
        match e {
            WorkersError::WorkflowProcessReplaced { .. } => ActivationError::Replaced(e),
            e => ActivationError::Other(e.to_string()),
        }
    }
}

fn failure(message: &str) -> CoreFailure {
    CoreFailure { message: message.to_string(), source: "rr-temporal".into(), ..Default::default() }
}

fn to_php_failure(f: &CoreFailure) -> Result<Failure, ActivationError> {
    convert::recode(f).map_err(ActivationError::Other)
}

fn to_core_failure(f: &Failure) -> Result<CoreFailure, ActivationError> {
    convert::recode(f).map_err(ActivationError::Other)
}

fn not_implemented(what: &str) -> ActivationError {
    ActivationError::Other(format!("{what} is not implemented in this build of the temporal plugin (docs/TEMPORAL.md)"))
}

async fn activate(worker: &Arc<Worker>, php: &PhpWorkers, runs: &Runs, task_queue: &str, a: WorkflowActivation) -> Result<WorkflowActivationCompletion, ActivationError> {
    let now = a.timestamp.as_ref().map_or_else(SystemTime::now, |t| time(t.seconds, t.nanos));
    let mut context = Context::workflow(task_queue, "", now);
    context.replay = a.is_replaying;
    context.history_length = i64::from(a.history_length);
    context.history_size = a.history_size_bytes as i64;
    context.continue_as_new_suggested = a.continue_as_new_suggested;

    // An eviction comes alone: PHP forgets the instance, Core gets an empty completion.
    if a.jobs.iter().any(|j| matches!(j.variant, Some(workflow_activation_job::Variant::RemoveFromCache(_)))) {
        let run = runs.runs.lock().unwrap().remove(&a.run_id);
        if let Some(run) = run {
            context.rr_id = run.rr_id.clone();
            context.task_queue = run.task_queue.clone();
            let destroy = Envelope::command(php.next_id(), Request::new(ServerCommand::DestroyWorkflow(RunRef { run_id: run.rr_id })));
            php.workflow_exec(Batch::new(context, vec![destroy])).await?;
        }
        return Ok(WorkflowActivationCompletion::empty(a.run_id));
    }

    let mut commands = Vec::new();
    let (mut queue, queries) = jobs(worker, php, runs, task_queue, &a, now, &mut context, &mut commands)?;
    let fail_on_panic = runs.fail_on_panic.lock().unwrap().contains(task_queue);
    while !queue.is_empty() {
        let batch = Batch::new(context.clone(), std::mem::take(&mut queue));
        let reply = php.workflow_exec(batch).await?;
        let mut guard = runs.runs.lock().unwrap();
        let run = guard.get_mut(&a.run_id).ok_or_else(|| ActivationError::Other("the run was evicted during its activation".into()))?;
        if run.generation != php.generation() {
            // `rr reset temporal` replaced the process mid-activation: what it answered belongs
            // to no run it knows. Fail the task; the run replays on the new process.
            return Err(ActivationError::Other(format!("the workflow process was replaced during an activation of run {}", a.run_id)));
        }
        for message in reply {
            let Kind::Command(request) = message.kind else { continue };
            command(run, task_queue, fail_on_panic, message.id, request, a.is_replaying, &mut commands, &mut queue)?;
        }
    }

    // Queries last, one exec each, on the state the jobs above left (Core orders them last too).
    for q in queries {
        let id = php.next_id();
        let request = Request::new(ServerCommand::InvokeQuery(InvokeQuery { run_id: a.run_id.clone(), name: q.query_type.clone() }))
            .with_payloads(convert::payloads_to_php(&q.arguments));
        let reply = php.workflow_exec(Batch::new(context.clone(), vec![Envelope::command(id, request)])).await?;
        let answer = reply.into_iter().find(|m| m.id == id || m.id == 0).map(|m| m.kind);
        let variant = match answer {
            Some(Kind::Response(p)) => query_result::Variant::Succeeded(QuerySuccess { response: p.and_then(|p| p.payloads.into_iter().next()).map(|p| convert::payload_to_core(&p)) }),
            Some(Kind::Failure(f)) => query_result::Variant::Failed(to_core_failure(&f)?),
            _ => query_result::Variant::Failed(failure(&format!("the workflow did not answer query `{}`", q.query_type))),
        };
        commands.push(workflow_command::Variant::RespondToQuery(QueryResult { query_id: q.query_id, variant: Some(variant) }));
    }
    Ok(WorkflowActivationCompletion::from_cmds(a.run_id, commands))
}

/// The activation's jobs as messages for PHP (and its queries, answered after them).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn jobs(
    worker: &Arc<Worker>,
    php: &PhpWorkers,
    runs: &Runs,
    task_queue: &str,
    a: &WorkflowActivation,
    now: SystemTime,
    context: &mut Context,
    commands: &mut Vec<workflow_command::Variant>,
) -> Result<(Vec<Envelope<ServerCommand>>, Vec<temporalio_common::protos::coresdk::workflow_activation::QueryWorkflow>), ActivationError> {
    let mut queue = Vec::new();
    let mut queries = Vec::new();
    let mut guard = runs.runs.lock().unwrap();
    for job in &a.jobs {
        let Some(variant) = &job.variant else { continue };
        use workflow_activation_job::Variant as J;
        if let J::InitializeWorkflow(init) = variant {
            let run = Run {
                rr_id: Context::new_rr_id(),
                run_id: a.run_id.clone(),
                children: HashMap::new(),
                updates: HashMap::new(),
                generation: php.generation(),
                worker: worker.clone(),
                task_queue: task_queue.to_string(),
                workflow_type: init.workflow_type.clone(),
                waiting: HashMap::new(),
                by_seq: HashMap::new(),
                next_seq: HashMap::new(),
                patches: Vec::new(),
                versions: HashMap::new(),
                cancel_requested: false,
                local_activities: HashMap::new(),
                backoffs: HashMap::new(),
                local_retry_threshold: runs.local_retry_threshold,
                last_active: std::time::Instant::now(),
                evicting: false,
            };
            guard.insert(a.run_id.clone(), run);
            queue.push(start_workflow(php, a, init, task_queue, &runs.namespace, now));
            continue;
        }
        let Some(run) = guard.get_mut(&a.run_id) else {
            return Err(ActivationError::Other(format!("run {} is not in the cache of this worker (no InitializeWorkflow seen)", a.run_id)));
        };
        if run.generation != php.generation() {
            return Err(ActivationError::Other(format!("run {} lived in a workflow process that was replaced; it is evicted and replays", a.run_id)));
        }
        match variant {
            J::InitializeWorkflow(_) | J::UpdateRandomSeed(_) => {}
            J::NotifyHasPatch(p) => run.patches.push(p.patch_id.clone()),
            J::FireTimer(t) => {
                if let Some(id) = run.resolve(Pending::Timer(t.seq)) {
                    queue.push(Envelope::response(id, None));
                } else if let Some(id) = run.resolve(Pending::Backoff(t.seq)) {
                    // The backoff is over: the next attempt, with the attempt number and first
                    // schedule time Core gave (PHP goes on waiting under the same id).
                    let Some(mut next) = run.backoffs.remove(&t.seq) else { continue };
                    next.seq = run.seq("local_activity");
                    run.wait(id, Pending::LocalActivity(next.seq));
                    run.local_activities.insert(next.seq, next.clone());
                    commands.push(workflow_command::Variant::ScheduleLocalActivity(next));
                }
            }
            J::ResolveActivity(r) => {
                let pending = if r.is_local { Pending::LocalActivity(r.seq) } else { Pending::Activity(r.seq) };
                let schedule = if r.is_local { run.local_activities.remove(&r.seq) } else { None };
                let Some(id) = run.resolve(pending) else { continue };
                match r.result.as_ref().and_then(|r| r.status.as_ref()) {
                    Some(activity_resolution::Status::Completed(s)) => {
                        queue.push(Envelope::response(id, Some(convert::payloads_to_php(s.result.as_ref()))));
                    }
                    Some(activity_resolution::Status::Failed(f)) => {
                        queue.push(Envelope::failure(id, to_php_failure(&f.failure.clone().unwrap_or_default())?));
                    }
                    Some(activity_resolution::Status::Cancelled(c)) => {
                        queue.push(Envelope::failure(id, to_php_failure(&c.failure.clone().unwrap_or_default())?));
                    }
                    Some(activity_resolution::Status::Backoff(b)) => {
                        // Further than the local retry threshold: lang waits on a timer (so the
                        // wait is in history) and schedules the attempt Core names.
                        let Some(mut next) = schedule else {
                            return Err(ActivationError::Other(format!("a retry backoff for local activity {} that this run did not schedule", r.seq)));
                        };
                        next.attempt = b.attempt;
                        next.original_schedule_time = b.original_schedule_time;
                        let timer = run.seq("timer");
                        run.wait(id, Pending::Backoff(timer));
                        run.backoffs.insert(timer, next);
                        commands.push(workflow_command::Variant::StartTimer(wc::StartTimer { seq: timer, start_to_fire_timeout: b.backoff_duration }));
                    }
                    None => return Err(ActivationError::Other("an activity resolution without a status".into())),
                }
            }
            J::SignalWorkflow(s) => {
                let request = Request::new(ServerCommand::InvokeSignal(InvokeSignal { run_id: a.run_id.clone(), name: s.signal_name.clone() }))
                    .with_payloads(convert::payloads_to_php(&s.input));
                let request = match convert::header_to_php(&s.headers) {
                    Some(h) => request.with_header(h),
                    None => request,
                };
                queue.push(Envelope::command(php.next_id(), request));
            }
            J::CancelWorkflow(_) => {
                run.cancel_requested = true;
                queue.push(Envelope::command(php.next_id(), Request::new(ServerCommand::CancelWorkflow(RunRef { run_id: a.run_id.clone() }))));
            }
            J::QueryWorkflow(q) => queries.push(q.clone()),
            J::ResolveChildWorkflowExecutionStart(r) => {
                use temporalio_common::protos::coresdk::workflow_activation::resolve_child_workflow_execution_start::Status;
                match &r.status {
                    Some(Status::Succeeded(ok)) => {
                        let workflow_id = run.children.get(&r.seq).map(|c| c.0.clone()).unwrap_or_default();
                        run.children.insert(r.seq, (workflow_id.clone(), Some(ok.run_id.clone())));
                        if let Some(id) = run.resolve(Pending::ChildStart(r.seq)) {
                            queue.push(Envelope::response(id, Some(Payloads::of([Payload::json(&Execution { id: workflow_id, run_id: ok.run_id.clone() })]))));
                        }
                    }
                    status => {
                        // Not started: both the result and the start wait fail.
                        let failure = match status {
                            Some(Status::Cancelled(c)) => to_php_failure(&c.failure.clone().unwrap_or_default())?,
                            Some(Status::Failed(f)) => Failure {
                                message: format!("child workflow `{}` ({}) could not start: {:?}", f.workflow_id, f.workflow_type, f.cause()),
                                ..Default::default()
                            },
                            _ => Failure { message: "child workflow could not start".into(), ..Default::default() },
                        };
                        for pending in [Pending::ChildStart(r.seq), Pending::Child(r.seq)] {
                            if let Some(id) = run.resolve(pending) {
                                queue.push(Envelope::failure(id, failure.clone()));
                            }
                        }
                    }
                }
            }
            J::ResolveChildWorkflowExecution(r) => {
                use temporalio_common::protos::coresdk::child_workflow::child_workflow_result::Status;
                let Some(id) = run.resolve(Pending::Child(r.seq)) else { continue };
                match r.result.as_ref().and_then(|r| r.status.as_ref()) {
                    Some(Status::Completed(ok)) => queue.push(Envelope::response(id, Some(convert::payloads_to_php(ok.result.as_ref())))),
                    Some(Status::Failed(f)) => queue.push(Envelope::failure(id, to_php_failure(&f.failure.clone().unwrap_or_default())?)),
                    Some(Status::Cancelled(c)) => queue.push(Envelope::failure(id, to_php_failure(&c.failure.clone().unwrap_or_default())?)),
                    None => return Err(ActivationError::Other("a child workflow resolution without a status".into())),
                }
            }
            J::ResolveSignalExternalWorkflow(r) => {
                if let Some(id) = run.resolve(Pending::SignalExternal(r.seq)) {
                    queue.push(match &r.failure {
                        None => Envelope::response(id, Some(Payloads::default())),
                        Some(f) => Envelope::failure(id, to_php_failure(f)?),
                    });
                }
            }
            J::ResolveRequestCancelExternalWorkflow(r) => {
                if let Some(id) = run.resolve(Pending::CancelExternal(r.seq)) {
                    queue.push(match &r.failure {
                        None => Envelope::response(id, Some(Payloads::default())),
                        Some(f) => Envelope::failure(id, to_php_failure(f)?),
                    });
                }
            }
            J::DoUpdate(u) => {
                run.updates.insert(u.id.clone(), u.protocol_instance_id.clone());
                let invoke = InvokeUpdate {
                    update_id: u.id.clone(),
                    run_id: a.run_id.clone(),
                    name: u.name.clone(),
                    kind: "validate_execute".into(),
                    // Replaying an accepted update: PHP skips its validator.
                    replay: (!u.run_validator).then_some(true),
                };
                let mut request = Request::new(ServerCommand::InvokeUpdate(invoke)).with_payloads(convert::payloads_to_php(&u.input));
                request.header = convert::header_to_php(&u.headers);
                queue.push(Envelope::command(php.next_id(), request));
            }
            J::ResolveNexusOperationStart(_) | J::ResolveNexusOperation(_) => return Err(not_implemented("Nexus operations")),
            J::RemoveFromCache(_) => {}
        }
    }
    let Some(run) = guard.get_mut(&a.run_id) else {
        return Err(ActivationError::Other(format!("run {} is not in the cache of this worker", a.run_id)));
    };
    context.rr_id = run.rr_id.clone();
    context.task_queue = run.task_queue.clone();
    Ok((queue, queries))

}

fn start_workflow(php: &PhpWorkers, a: &WorkflowActivation, init: &InitializeWorkflow, task_queue: &str, namespace: &str, now: SystemTime) -> Envelope<ServerCommand> {
    let d = |d: &Option<prost_wkt_types::Duration>| d.as_ref().map_or(Duration::ZERO, |d| duration(d.seconds, d.nanos));
    let info = WorkflowInfo {
        workflow_execution: Execution { id: init.workflow_id.clone(), run_id: a.run_id.clone() },
        original_run_id: init.original_execution_run_id.clone(),
        first_run_id: init.first_execution_run_id.clone(),
        workflow_type: TypeName { name: init.workflow_type.clone() },
        task_queue_name: task_queue.to_string(),
        workflow_execution_timeout: d(&init.workflow_execution_timeout),
        workflow_run_timeout: d(&init.workflow_run_timeout),
        workflow_task_timeout: d(&init.workflow_task_timeout),
        namespace: namespace.to_string(),
        attempt: init.attempt,
        workflow_start_time: convert::rfc3339(Some(init.start_time.as_ref().map_or(now, |t| time(t.seconds, t.nanos)))),
        cron_schedule: init.cron_schedule.clone(),
        continued_execution_run_id: init.continued_from_execution_run_id.clone(),
        parent_workflow_namespace: init.parent_workflow_info.as_ref().map(|p| p.namespace.clone()).unwrap_or_default(),
        parent_workflow_execution: init.parent_workflow_info.as_ref().map(|p| Execution { id: p.workflow_id.clone(), run_id: p.run_id.clone() }),
        root_workflow_execution: init.root_workflow.as_ref().map(|r| Execution { id: r.workflow_id.clone(), run_id: r.run_id.clone() }),
        retry_policy: init.retry_policy.as_ref().map(convert::retry_policy_to_php),
        ..Default::default()
    };
    let mut args = convert::payloads_to_php(&init.arguments);
    let last = init.last_completion_result.as_ref().map_or(0, |p| p.payloads.len());
    if let Some(p) = &init.last_completion_result {
        args.payloads.extend(p.payloads.iter().map(convert::payload_to_php));
    }
    let start = StartWorkflow { info, last_completion: (last > 0).then_some(last), search_attributes: None };
    let mut request = Request::new(ServerCommand::StartWorkflow(start)).with_payloads(args);
    request.header = convert::header_to_php(&init.headers);
    Envelope::command(php.next_id(), request)
}

fn upsert(fields: HashMap<String, CorePayload>) -> workflow_command::Variant {
    workflow_command::Variant::UpsertWorkflowSearchAttributes(wc::UpsertWorkflowSearchAttributes {
        search_attributes: Some(SearchAttributes { indexed_fields: fields }),
    })
}

/// A typed search attribute as Temporal stores it: JSON with its type in the metadata; an unset
/// one is a null payload.
fn typed_payload(key: &str, typed: &TypedUpsert) -> Result<Payload, ActivationError> {
    if typed.operation == "unset" {
        return Ok(Payload { metadata: [("encoding".to_string(), b"binary/null".to_vec())].into(), data: Vec::new() });
    }
    let kind = match typed.kind.as_str() {
        "bool" => "Bool",
        "float64" => "Double",
        "int64" => "Int",
        "keyword" => "Keyword",
        "keyword_list" => "KeywordList",
        "string" => "Text",
        "datetime" => "Datetime",
        other => return Err(ActivationError::Other(format!("search attribute `{key}`: unknown type `{other}`"))),
    };
    let mut payload = Payload::json(&typed.value);
    payload.metadata.insert("type".to_string(), kind.as_bytes().to_vec());
    Ok(payload)
}

fn first_payload(p: &Option<Payloads>) -> Option<temporalio_common::protos::temporal::api::common::v1::Payload> {
    p.as_ref().and_then(|p| p.payloads.first()).map(convert::payload_to_core)
}

fn core_payloads(p: &Option<Payloads>) -> Vec<temporalio_common::protos::temporal::api::common::v1::Payload> {
    p.as_ref().map(|p| p.payloads.iter().map(convert::payload_to_core).collect()).unwrap_or_default()
}

fn opt_duration(d: Duration) -> Option<prost_wkt_types::Duration> {
    (!d.is_zero()).then(|| proto_duration(d))
}

/// One PHP command: a Core command, or an answer queued for PHP's next batch.
#[allow(clippy::too_many_arguments)]
fn command(
    run: &mut Run,
    task_queue: &str,
    fail_on_panic: bool,
    id: u64,
    request: Request<PhpCommand>,
    replaying: bool,
    commands: &mut Vec<workflow_command::Variant>,
    queue: &mut Vec<Envelope<ServerCommand>>,
) -> Result<(), ActivationError> {
    use workflow_command::Variant as C;
    match request.command {
        PhpCommand::ExecuteActivity(e) => {
            let seq = run.seq("activity");
            run.wait(id, Pending::Activity(seq));
            let o = e.options;
            commands.push(C::ScheduleActivity(wc::ScheduleActivity {
                seq,
                activity_id: if o.activity_id.is_empty() { seq.to_string() } else { o.activity_id.clone() },
                activity_type: e.name,
                task_queue: if o.task_queue_name.is_empty() { task_queue.to_string() } else { o.task_queue_name.clone() },
                headers: convert::header_to_core(request.header.as_ref()),
                arguments: core_payloads(&request.payloads),
                schedule_to_close_timeout: opt_duration(o.schedule_to_close_timeout),
                schedule_to_start_timeout: opt_duration(o.schedule_to_start_timeout),
                start_to_close_timeout: opt_duration(o.start_to_close_timeout),
                heartbeat_timeout: opt_duration(o.heartbeat_timeout),
                retry_policy: o.retry_policy.as_ref().map(convert::retry_policy_to_core),
                cancellation_type: if o.wait_for_cancellation { ActivityCancellationType::WaitCancellationCompleted } else { ActivityCancellationType::TryCancel } as i32,
                do_not_eagerly_execute: o.disable_eager_execution,
                ..Default::default()
            }));
        }
        PhpCommand::ExecuteLocalActivity(e) => {
            let (schedule_to_close, start_to_close) = e.options.timeouts();
            let seq = run.seq("local_activity");
            run.wait(id, Pending::LocalActivity(seq));
            let schedule = wc::ScheduleLocalActivity {
                seq,
                activity_id: seq.to_string(),
                activity_type: e.name,
                attempt: 1,
                original_schedule_time: Some(convert::proto_timestamp(SystemTime::now())),
                headers: convert::header_to_core(request.header.as_ref()),
                arguments: core_payloads(&request.payloads),
                schedule_to_close_timeout: Some(proto_duration(schedule_to_close)),
                start_to_close_timeout: Some(proto_duration(start_to_close)),
                retry_policy: e.options.retry_policy.as_ref().map(convert::retry_policy_to_core),
                local_retry_threshold: run.local_retry_threshold.map(proto_duration),
                ..Default::default()
            };
            run.local_activities.insert(seq, schedule.clone());
            commands.push(C::ScheduleLocalActivity(schedule));
        }
        PhpCommand::SideEffect(_) => {
            // Core has no side-effect marker: a local activity that returns its argument records
            // the value in history and hands it back on replay (TEMPORAL.md §8.4).
            let seq = run.seq("local_activity");
            run.wait(id, Pending::LocalActivity(seq));
            commands.push(C::ScheduleLocalActivity(wc::ScheduleLocalActivity {
                seq,
                activity_id: seq.to_string(),
                activity_type: SIDE_EFFECT.into(),
                attempt: 1,
                original_schedule_time: Some(convert::proto_timestamp(SystemTime::now())),
                arguments: core_payloads(&request.payloads),
                start_to_close_timeout: Some(proto_duration(Duration::from_secs(10))),
                ..Default::default()
            }));
        }
        PhpCommand::ExecuteChildWorkflow(e) => {
            let seq = run.seq("child");
            run.wait(id, Pending::Child(seq));
            let o = e.options;
            let workflow_id = if o.workflow_id.is_empty() { format!("{}_{}", run.run_id, seq) } else { o.workflow_id.clone() };
            run.children.insert(seq, (workflow_id.clone(), None));
            let json_fields = |m: &Option<serde_json::Map<String, serde_json::Value>>| -> HashMap<String, CorePayload> {
                m.iter().flatten().map(|(k, v)| (k.clone(), convert::payload_to_core(&Payload::json(v)))).collect()
            };
            let search_attributes = o.search_attributes.as_ref().map(|_| SearchAttributes { indexed_fields: json_fields(&o.search_attributes) });
            commands.push(C::StartChildWorkflowExecution(wc::StartChildWorkflowExecution {
                seq,
                namespace: o.namespace.clone(),
                workflow_id,
                workflow_type: e.name,
                task_queue: if o.task_queue_name.is_empty() { task_queue.to_string() } else { o.task_queue_name.clone() },
                input: core_payloads(&request.payloads),
                workflow_execution_timeout: opt_duration(o.workflow_execution_timeout),
                workflow_run_timeout: opt_duration(o.workflow_run_timeout),
                workflow_task_timeout: opt_duration(o.workflow_task_timeout),
                parent_close_policy: o.parent_close_policy,
                workflow_id_reuse_policy: o.workflow_id_reuse_policy,
                retry_policy: o.retry_policy.as_ref().map(convert::retry_policy_to_core),
                cron_schedule: o.cron_schedule.clone(),
                headers: convert::header_to_core(request.header.as_ref()),
                memo: json_fields(&o.memo),
                search_attributes,
                cancellation_type: if o.wait_for_cancellation { ChildWorkflowCancellationType::WaitCancellationCompleted } else { ChildWorkflowCancellationType::TryCancel } as i32,
                ..Default::default()
            }));
        }
        PhpCommand::GetChildWorkflowExecution(g) => {
            let Some(Pending::Child(seq)) = run.waiting.get(&g.id).copied() else {
                return Err(ActivationError::Other(format!("GetChildWorkflowExecution: command {} is not a running child workflow", g.id)));
            };
            match run.children.get(&seq) {
                Some((workflow_id, Some(child_run))) => {
                    queue.push(Envelope::response(id, Some(Payloads::of([Payload::json(&Execution { id: workflow_id.clone(), run_id: child_run.clone() })]))));
                }
                _ => run.wait(id, Pending::ChildStart(seq)),
            }
        }
        PhpCommand::SignalExternalWorkflow(sx) => {
            use wc::signal_external_workflow_execution::Target;
            let seq = run.seq("signal_external");
            run.wait(id, Pending::SignalExternal(seq));
            let target = match sx.child_workflow_only {
                true => Target::ChildWorkflowId(sx.workflow_id.clone()),
                false => Target::WorkflowExecution(NamespacedWorkflowExecution { namespace: sx.namespace.clone(), workflow_id: sx.workflow_id.clone(), run_id: sx.run_id.clone() }),
            };
            commands.push(C::SignalExternalWorkflowExecution(wc::SignalExternalWorkflowExecution {
                seq,
                target: Some(target),
                signal_name: sx.signal.clone(),
                args: core_payloads(&request.payloads),
                headers: convert::header_to_core(request.header.as_ref()),
            }));
        }
        PhpCommand::CancelExternalWorkflow(cx) => {
            let seq = run.seq("cancel_external");
            run.wait(id, Pending::CancelExternal(seq));
            commands.push(C::RequestCancelExternalWorkflowExecution(wc::RequestCancelExternalWorkflowExecution {
                seq,
                workflow_execution: Some(NamespacedWorkflowExecution { namespace: cx.namespace.clone(), workflow_id: cx.workflow_id.clone(), run_id: cx.run_id.clone() }),
                reason: String::new(),
            }));
        }
        PhpCommand::NewTimer(t) => {
            let seq = run.seq("timer");
            run.wait(id, Pending::Timer(seq));
            commands.push(C::StartTimer(wc::StartTimer { seq, start_to_fire_timeout: Some(proto_duration(Duration::from_millis(t.ms.max(1)))) }));
        }
        PhpCommand::GetVersion(v) => {
            let version = match run.versions.get(&v.change_id) {
                Some(v) => *v,
                None => {
                    let prefix = format!("{}-", v.change_id);
                    let seen = run.patches.iter().find_map(|p| p.strip_prefix(&prefix).and_then(|n| n.parse::<i32>().ok()));
                    let version = match (replaying, seen) {
                        (_, Some(n)) => n,
                        (true, None) => -1,
                        (false, None) => v.max_supported,
                    };
                    if version != -1 {
                        commands.push(C::SetPatchMarker(wc::SetPatchMarker { patch_id: format!("{}{}", prefix, version), deprecated: false }));
                    }
                    run.versions.insert(v.change_id.clone(), version);
                    version
                }
            };
            if version < v.min_supported || version > v.max_supported {
                return Err(ActivationError::Other(format!(
                    "GetVersion `{}`: version {version} is not in the supported range {}..={}",
                    v.change_id, v.min_supported, v.max_supported
                )));
            }
            queue.push(Envelope::response(id, Some(Payloads::of([Payload::json(&version)]))));
        }
        PhpCommand::CompleteWorkflow(_) => match &request.failure {
            None => commands.push(C::CompleteWorkflowExecution(wc::CompleteWorkflowExecution { result: first_payload(&request.payloads) })),
            Some(f) if run.cancel_requested && matches!(f.failure_info, Some(proto::FailureInfo::CanceledFailureInfo(_))) => {
                commands.push(C::CancelWorkflowExecution(wc::CancelWorkflowExecution::default()));
            }
            Some(f) => commands.push(C::FailWorkflowExecution(wc::FailWorkflowExecution { failure: Some(to_core_failure(f)?) })),
        },
        PhpCommand::ContinueAsNew(c) => {
            let o = c.options;
            commands.push(C::ContinueAsNewWorkflowExecution(wc::ContinueAsNewWorkflowExecution {
                workflow_type: if c.name.is_empty() { run.workflow_type.clone() } else { c.name },
                task_queue: if o.task_queue_name.is_empty() { task_queue.to_string() } else { o.task_queue_name.clone() },
                arguments: core_payloads(&request.payloads),
                workflow_run_timeout: opt_duration(o.workflow_run_timeout),
                workflow_task_timeout: opt_duration(o.workflow_task_timeout),
                headers: convert::header_to_core(request.header.as_ref()),
                ..Default::default()
            }));
        }
        PhpCommand::Cancel(c) => {
            for target in c.ids {
                match run.waiting.get(&target).copied() {
                    Some(Pending::Activity(seq)) => commands.push(C::RequestCancelActivity(wc::RequestCancelActivity { seq })),
                    Some(Pending::LocalActivity(seq)) => commands.push(C::RequestCancelLocalActivity(wc::RequestCancelLocalActivity { seq })),
                    Some(Pending::Child(seq)) => {
                        commands.push(C::CancelChildWorkflowExecution(wc::CancelChildWorkflowExecution { child_workflow_seq: seq, reason: String::new() }))
                    }
                    Some(Pending::Timer(seq)) => {
                        // A cancelled timer produces no job: PHP hears of it now, as from the Go SDK.
                        run.resolve(Pending::Timer(seq));
                        commands.push(C::CancelTimer(wc::CancelTimer { seq }));
                        let canceled = Failure {
                            message: "canceled".into(),
                            failure_info: Some(proto::FailureInfo::CanceledFailureInfo(Default::default())),
                            ..Default::default()
                        };
                        queue.push(Envelope::failure(target, canceled));
                    }
                    Some(Pending::Backoff(seq)) => {
                        // Between attempts nothing runs: the backoff timer goes, PHP hears now.
                        run.resolve(Pending::Backoff(seq));
                        run.backoffs.remove(&seq);
                        commands.push(C::CancelTimer(wc::CancelTimer { seq }));
                        let canceled = Failure {
                            message: "canceled".into(),
                            failure_info: Some(proto::FailureInfo::CanceledFailureInfo(Default::default())),
                            ..Default::default()
                        };
                        queue.push(Envelope::failure(target, canceled));
                    }
                    Some(Pending::SignalExternal(seq)) => commands.push(C::CancelSignalWorkflow(wc::CancelSignalWorkflow { seq })),
                    Some(Pending::ChildStart(_) | Pending::CancelExternal(_)) | None => {}
                }
            }
            queue.push(Envelope::response(id, Some(Payloads::of([Payload::json("completed")]))));
        }
        PhpCommand::UpsertWorkflowSearchAttributes(u) => {
            let fields = u.search_attributes.iter().map(|(k, v)| (k.clone(), convert::payload_to_core(&Payload::json(v)))).collect();
            commands.push(upsert(fields));
        }
        PhpCommand::UpsertWorkflowTypedSearchAttributes(u) => {
            let mut fields = HashMap::new();
            for (key, typed) in &u.search_attributes {
                fields.insert(key.clone(), convert::payload_to_core(&typed_payload(key, typed)?));
            }
            commands.push(upsert(fields));
        }
        PhpCommand::UpsertMemo(m) => {
            let fields = m.memo.iter().map(|(k, v)| (k.clone(), convert::payload_to_core(&Payload::json(v)))).collect();
            commands.push(C::ModifyWorkflowProperties(wc::ModifyWorkflowProperties { upserted_memo: Some(Memo { fields }) }));
        }
        PhpCommand::UpdateValidated(ref u) | PhpCommand::UpdateCompleted(ref u) => {
            use wc::update_response::Response;
            let completed = matches!(request.command, PhpCommand::UpdateCompleted(_));
            let Some(instance) = run.updates.get(&u.id).cloned() else {
                return Err(ActivationError::Other(format!("update `{}` is not running in this workflow", u.id)));
            };
            let response = match (&request.failure, completed) {
                (Some(f), _) => Response::Rejected(to_core_failure(f)?),
                (None, false) => Response::Accepted(()),
                (None, true) => Response::Completed(first_payload(&request.payloads).unwrap_or_default()),
            };
            if completed || request.failure.is_some() {
                run.updates.remove(&u.id);
            }
            commands.push(C::UpdateResponse(wc::UpdateResponse { protocol_instance_id: instance, response: Some(response) }));
        }
        PhpCommand::Panic(_) | PhpCommand::UndefinedResponse(_) => {
            let message = request.failure.as_ref().map_or_else(|| "the PHP workflow panicked".to_string(), |f| f.message.clone());
            if fail_on_panic {
                let failure = match &request.failure {
                    Some(f) => to_core_failure(f)?,
                    None => failure(&message),
                };
                commands.push(C::FailWorkflowExecution(wc::FailWorkflowExecution { failure: Some(failure) }));
            } else {
                return Err(ActivationError::Other(message));
            }
        }
    }
    Ok(())
}
