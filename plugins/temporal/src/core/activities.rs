//! The activity task loop of one Core worker (TEMPORAL.md §7.2): each `Start` runs as
//! `InvokeActivity` / `InvokeLocalActivity` on a free PHP activity worker, and its outcome
//! completes the task. A `Cancel` is remembered for the heartbeat RPC (PHP cannot be
//! interrupted; it learns of the cancel from its next heartbeat, as with RoadRunner).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use temporalio_common::protos::coresdk::activity_result::{ActivityExecutionResult, Success};
use temporalio_common::protos::coresdk::activity_task::{ActivityCancelReason, ActivityTask, Start, activity_task};
use temporalio_common::protos::coresdk::{ActivityHeartbeat, ActivityTaskCompletion};
use temporalio_common::protos::temporal::api::failure::v1::{ApplicationFailureInfo, Failure, failure};
use temporalio_sdk_core::{PollError, Worker};

use super::convert::{self, duration, rfc3339, time};
use crate::codec::ActivityOutcome;
use crate::codec::commands::{InvokeActivity, InvokeLocalActivity};
use crate::codec::json::{ActivityInfo, Execution, TypeName};
use crate::codec::rpc::{HEARTBEAT_NOT_RUNNING, HeartbeatRequest, HeartbeatResponse};
use crate::workers::PhpWorkers;

/// The activities running now, by task token: where their heartbeats go and whether Temporal
/// asked to cancel them. Shared with the `temporal.RecordActivityHeartbeat` RPC.
#[derive(Default)]
pub struct Running {
    tasks: Mutex<HashMap<Vec<u8>, Task>>,
}

struct Task {
    worker: Arc<Worker>,
    cancel: Option<ActivityCancelReason>,
}

impl Running {
    fn insert(&self, token: Vec<u8>, worker: Arc<Worker>) {
        self.tasks.lock().unwrap().insert(token, Task { worker, cancel: None });
    }

    fn remove(&self, token: &[u8]) {
        self.tasks.lock().unwrap().remove(token);
    }

    fn cancel(&self, token: &[u8], reason: ActivityCancelReason) {
        if let Some(task) = self.tasks.lock().unwrap().get_mut(token) {
            task.cancel = Some(reason);
        }
    }

    /// `temporal.RecordActivityHeartbeat`: hand the details to Core (which throttles and
    /// sends them) and tell PHP whether the activity was cancelled, paused or reset.
    pub fn heartbeat(&self, request: &HeartbeatRequest) -> Result<HeartbeatResponse, String> {
        let details = request.details()?;
        let tasks = self.tasks.lock().unwrap();
        let task = tasks.get(&request.task_token).ok_or_else(|| HEARTBEAT_NOT_RUNNING.to_string())?;
        task.worker.record_activity_heartbeat(ActivityHeartbeat {
            task_token: request.task_token.clone(),
            details: details.payloads.iter().map(convert::payload_to_core).collect(),
        });
        Ok(match task.cancel {
            None => HeartbeatResponse::default(),
            Some(ActivityCancelReason::Paused) => HeartbeatResponse { paused: true, ..Default::default() },
            Some(ActivityCancelReason::Reset) => HeartbeatResponse { canceled: true, reset: true, ..Default::default() },
            Some(_) => HeartbeatResponse { canceled: true, ..Default::default() },
        })
    }
}

/// Poll until Core says it is shut down; every started task is completed before this returns.
pub async fn run(worker: Arc<Worker>, task_queue: String, php: Arc<PhpWorkers>, running: Arc<Running>) -> Result<(), PollError> {
    let mut tasks = tokio::task::JoinSet::new();
    let result = loop {
        let task = match worker.poll_activity_task().await {
            Ok(task) => task,
            Err(PollError::ShutDown) => break Ok(()),
            Err(e) => break Err(e),
        };
        let ActivityTask { task_token, variant } = task;
        match variant {
            Some(activity_task::Variant::Start(start)) => {
                running.insert(task_token.clone(), worker.clone());
                let (worker, php, running, tq) = (worker.clone(), php.clone(), running.clone(), task_queue.clone());
                tasks.spawn(async move {
                    let result = execute(&php, &tq, &task_token, start).await;
                    running.remove(&task_token);
                    if let Err(e) = worker.complete_activity_task(ActivityTaskCompletion { task_token, result: Some(result) }).await {
                        tracing::warn!(target: "temporal", task_queue = %tq, "completing an activity task failed: {e}");
                    }
                });
            }
            Some(activity_task::Variant::Cancel(cancel)) => {
                let reason = ActivityCancelReason::try_from(cancel.reason).unwrap_or(ActivityCancelReason::Cancelled);
                tracing::debug!(target: "temporal", task_queue = %task_queue, ?reason, "activity cancel requested");
                running.cancel(&task_token, reason);
            }
            None => {}
        }
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    };
    while tasks.join_next().await.is_some() {}
    result
}

/// One activity on PHP; every error becomes the task's failure (the worker lives on).
async fn execute(php: &PhpWorkers, task_queue: &str, token: &[u8], start: Start) -> ActivityExecutionResult {
    if start.is_local && start.activity_type == super::workflows::SIDE_EFFECT {
        // A workflow's SideEffect: its value was computed in PHP and is recorded as is.
        return ActivityExecutionResult {
            status: Some(temporalio_common::protos::coresdk::activity_result::activity_execution_result::Status::Completed(Success {
                result: start.input.first().cloned(),
            })),
        };
    }
    let heartbeats = start.heartbeat_details.len();
    let mut args = convert::payloads_to_php(&start.input);
    args.payloads.extend(start.heartbeat_details.iter().map(convert::payload_to_php));
    let header = convert::header_to_php(&start.header_fields);
    let info = activity_info(task_queue, token, &start);
    let outcome = match start.is_local {
        false => {
            let invoke = InvokeActivity { name: start.activity_type.clone(), info, heartbeat_details: (heartbeats > 0).then_some(heartbeats) };
            php.invoke_activity(task_queue, invoke, args, header).await
        }
        true => php.invoke_local_activity(task_queue, InvokeLocalActivity { name: start.activity_type.clone(), info }, args, header).await,
    };
    match outcome {
        Ok(ActivityOutcome::Completed(p)) => {
            if p.payloads.len() > 1 {
                tracing::warn!(target: "temporal", activity = %start.activity_type, "the activity returned {} payloads; Temporal's core keeps only the first", p.payloads.len());
            }
            ActivityExecutionResult {
                status: Some(temporalio_common::protos::coresdk::activity_result::activity_execution_result::Status::Completed(Success {
                    result: p.payloads.first().map(convert::payload_to_core),
                })),
            }
        }
        Ok(ActivityOutcome::Pending) => ActivityExecutionResult::will_complete_async(),
        Ok(ActivityOutcome::Failed(f)) => match convert::recode::<_, Failure>(f.as_ref()) {
            Ok(f) => ActivityExecutionResult::fail(f),
            Err(e) => ActivityExecutionResult::fail(application_failure(&e)),
        },
        Err(e) => ActivityExecutionResult::fail(application_failure(&e.to_string())),
    }
}

/// A failure raised here rather than by PHP (a dead worker, a protocol error): retryable.
fn application_failure(message: &str) -> Failure {
    Failure {
        message: message.to_string(),
        source: "rr-temporal".into(),
        failure_info: Some(failure::FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo { r#type: "RoadRunnerError".into(), ..Default::default() })),
        ..Default::default()
    }
}

/// Go's `ActivityInfo` as PHP reads it (TEMPORAL.md §4.2).
pub fn activity_info(task_queue: &str, token: &[u8], s: &Start) -> ActivityInfo {
    let ts = |t: &Option<prost_wkt_types::Timestamp>| t.as_ref().map(|t| time(t.seconds, t.nanos));
    let dur = |d: &Option<prost_wkt_types::Duration>| d.as_ref().map_or(std::time::Duration::ZERO, |d| duration(d.seconds, d.nanos));
    let (scheduled, started) = (ts(&s.scheduled_time), ts(&s.started_time));
    let (schedule_to_close, start_to_close) = (dur(&s.schedule_to_close_timeout), dur(&s.start_to_close_timeout));
    // The deadline is the earlier of the two timeouts that are set (Go computes the same).
    let deadline = [
        scheduled.filter(|_| !schedule_to_close.is_zero()).map(|t| t + schedule_to_close),
        started.or(Some(SystemTime::now())).filter(|_| !start_to_close.is_zero()).map(|t| t + start_to_close),
    ]
    .into_iter()
    .flatten()
    .min();
    ActivityInfo {
        task_token: token.to_vec(),
        workflow_type: Some(TypeName { name: s.workflow_type.clone() }),
        workflow_namespace: s.workflow_namespace.clone(),
        workflow_execution: s
            .workflow_execution
            .as_ref()
            .map(|e| Execution { id: e.workflow_id.clone(), run_id: e.run_id.clone() })
            .unwrap_or_default(),
        activity_id: s.activity_id.clone(),
        activity_type: TypeName { name: s.activity_type.clone() },
        task_queue: task_queue.to_string(),
        heartbeat_timeout: dur(&s.heartbeat_timeout),
        schedule_to_close_timeout: schedule_to_close,
        start_to_close_timeout: start_to_close,
        scheduled_time: rfc3339(scheduled),
        started_time: rfc3339(started),
        deadline: rfc3339(deadline),
        attempt: s.attempt as i32,
        is_local_activity: s.is_local,
        priority: Default::default(),
        retry_policy: s.retry_policy.as_ref().map(convert::retry_policy_to_php),
    }
}
