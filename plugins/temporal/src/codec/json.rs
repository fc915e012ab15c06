//! The JSON shapes inside `Message.options` (TEMPORAL.md §4): Go `encoding/json` of the Go SDK's
//! structs, i.e. exported field names, `time.Duration` as integer nanoseconds, `time.Time` as
//! RFC3339Nano, `[]byte` as base64, nil pointers as `null`.
//!
//! What RoadRunner writes (WorkflowInfo, ActivityInfo) is written with exactly those names. What
//! PHP writes is read leniently, as Go reads it: durations also as `{"seconds","nanos"}` (proto
//! JSON) or `"1.5s"`, null where a value may be absent, and the WorkerInfo keys in any case.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// `time.Duration` as Go's JSON writes it: integer nanoseconds.
pub mod nanos {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = Value::deserialize(d)?;
        lenient(&v).map_err(serde::de::Error::custom)
    }
}

/// Read a duration: ns number, null (zero), `{"seconds","nanos"}`, or a `"1.5s"` string.
pub fn lenient(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => {
            let ns = n.as_f64().ok_or("duration: not a number")?;
            if ns < 0.0 {
                return Err(format!("duration {n}ns is negative"));
            }
            Ok(Duration::from_nanos(ns as u64))
        }
        Value::Object(o) => {
            let part = |k: &str| o.get(k).map_or(Ok(0), |v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).ok_or(format!("duration.{k}: not an integer")));
            let (secs, nanos) = (part("seconds")?, part("nanos")?);
            if secs < 0 || nanos < 0 {
                return Err("duration: negative seconds or nanos".into());
            }
            Ok(Duration::new(secs as u64, nanos as u32))
        }
        Value::String(s) => {
            let secs = s.strip_suffix('s').ok_or(format!("duration `{s}`: expected seconds like `1.5s`"))?;
            secs.parse::<f64>().ok().and_then(|f| Duration::try_from_secs_f64(f).ok()).ok_or(format!("duration `{s}`: expected seconds like `1.5s`"))
        }
        other => Err(format!("duration: unexpected {other}")),
    }
}

/// `time.Time` as Go's RFC3339Nano (fraction without trailing zeros, `Z` for UTC).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.into();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// The context's `tickTime`: RFC3339 with whole seconds.
pub fn rfc3339_seconds(t: SystemTime) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.into();
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `[]byte` as Go's JSON writes it.
pub mod base64_bytes {
    use base64::Engine;

    use super::*;

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Vec::new()),
            Some(s) => base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom),
        }
    }
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `{"ID","RunID"}` (Go `WorkflowExecution`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "RunID", default)]
    pub run_id: String,
}

/// `{"Name"}` (Go `WorkflowType`, `ActivityType`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeName {
    #[serde(rename = "Name", default)]
    pub name: String,
}

/// Go `temporal.RetryPolicy`; read from its Go form or the proto JSON form.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetryPolicy {
    #[serde(with = "nanos")]
    pub initial_interval: Duration,
    pub backoff_coefficient: f64,
    #[serde(with = "nanos")]
    pub maximum_interval: Duration,
    pub maximum_attempts: i32,
    pub non_retryable_error_types: Vec<String>,
}

impl<'de> Deserialize<'de> for RetryPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Map::deserialize(d)?;
        // `InitialInterval`, `initial_interval` and `initialInterval` are the same key.
        let get = |name: &str| v.iter().find(|(k, _)| k.replace('_', "").eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let dur = |name: &str| get(name).map_or(Ok(Duration::ZERO), lenient).map_err(serde::de::Error::custom);
        Ok(RetryPolicy {
            initial_interval: dur("InitialInterval")?,
            backoff_coefficient: get("BackoffCoefficient").and_then(Value::as_f64).unwrap_or(0.0),
            maximum_interval: dur("MaximumInterval")?,
            maximum_attempts: get("MaximumAttempts").and_then(Value::as_i64).unwrap_or(0) as i32,
            non_retryable_error_types: match get("NonRetryableErrorTypes") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => Vec::<String>::deserialize(v).map_err(serde::de::Error::custom)?,
            },
        })
    }
}

/// Go `Priority` (task priority and fairness).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Priority {
    pub priority_key: i64,
    pub fairness_key: String,
    pub fairness_weight: f64,
}

/// Go `internal.WorkflowInfo` (§4.1), the `info` of `StartWorkflow`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WorkflowInfo {
    pub workflow_execution: Execution,
    #[serde(rename = "OriginalRunID")]
    pub original_run_id: String,
    #[serde(rename = "FirstRunID")]
    pub first_run_id: String,
    pub workflow_type: TypeName,
    pub task_queue_name: String,
    #[serde(with = "nanos")]
    pub workflow_execution_timeout: Duration,
    #[serde(with = "nanos")]
    pub workflow_run_timeout: Duration,
    #[serde(with = "nanos")]
    pub workflow_task_timeout: Duration,
    pub namespace: String,
    pub attempt: i32,
    /// RFC3339Nano.
    pub workflow_start_time: String,
    pub cron_schedule: String,
    #[serde(rename = "ContinuedExecutionRunID")]
    pub continued_execution_run_id: String,
    pub parent_workflow_namespace: String,
    pub parent_workflow_execution: Option<Execution>,
    pub root_workflow_execution: Option<Execution>,
    /// Proto JSON of `commonpb.Memo`: `{"fields":{k:{"metadata":{..b64},"data":b64}}}`.
    pub memo: Option<Value>,
    /// Proto JSON of `commonpb.SearchAttributes`: `{"indexed_fields":{...}}`.
    pub search_attributes: Option<Value>,
    pub retry_policy: Option<RetryPolicy>,
    pub priority: Priority,
    pub binary_checksum: String,
}

/// Go `internal.ActivityInfo` (§4.2), the `info` of `InvokeActivity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ActivityInfo {
    /// Base64 in JSON; PHP sends it back in heartbeats.
    #[serde(with = "base64_bytes")]
    pub task_token: Vec<u8>,
    pub workflow_type: Option<TypeName>,
    pub workflow_namespace: String,
    pub workflow_execution: Execution,
    #[serde(rename = "ActivityID")]
    pub activity_id: String,
    pub activity_type: TypeName,
    pub task_queue: String,
    #[serde(with = "nanos")]
    pub heartbeat_timeout: Duration,
    #[serde(with = "nanos")]
    pub schedule_to_close_timeout: Duration,
    #[serde(with = "nanos")]
    pub start_to_close_timeout: Duration,
    pub scheduled_time: String,
    pub started_time: String,
    pub deadline: String,
    pub attempt: i32,
    pub is_local_activity: bool,
    pub priority: Priority,
    pub retry_policy: Option<RetryPolicy>,
}

/// Go `internal.ExecuteActivityOptions` (§4.3) as PHP's `ActivityOptions` writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ActivityOptions {
    #[serde(rename = "ActivityID", deserialize_with = "null_as_default")]
    pub activity_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub task_queue_name: String,
    #[serde(with = "nanos")]
    pub schedule_to_close_timeout: Duration,
    #[serde(with = "nanos")]
    pub schedule_to_start_timeout: Duration,
    #[serde(with = "nanos")]
    pub start_to_close_timeout: Duration,
    #[serde(with = "nanos")]
    pub heartbeat_timeout: Duration,
    /// true = WAIT_CANCELLATION_COMPLETED, false = TRY_CANCEL.
    #[serde(deserialize_with = "null_as_default")]
    pub wait_for_cancellation: bool,
    pub retry_policy: Option<RetryPolicy>,
    #[serde(deserialize_with = "null_as_default")]
    pub disable_eager_execution: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub versioning_intent: i32,
    #[serde(deserialize_with = "null_as_default")]
    pub summary: String,
    pub priority: Option<Priority>,
}

/// The options of `ExecuteLocalActivity` (PHP `LocalActivityOptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LocalActivityOptions {
    /// 0 = RoadRunner's default of one minute.
    #[serde(with = "nanos")]
    pub schedule_to_close_timeout: Duration,
    /// 0 = RoadRunner's default of one minute.
    #[serde(with = "nanos")]
    pub start_to_close_timeout: Duration,
    pub retry_policy: Option<RetryPolicy>,
    #[serde(deserialize_with = "null_as_default")]
    pub summary: String,
}

impl LocalActivityOptions {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// Timeouts with RoadRunner's one-minute defaults applied.
    pub fn timeouts(&self) -> (Duration, Duration) {
        let or_default = |d: Duration| if d.is_zero() { Self::DEFAULT_TIMEOUT } else { d };
        (or_default(self.schedule_to_close_timeout), or_default(self.start_to_close_timeout))
    }
}

/// Go `internal.WorkflowOptions` for children (§4.4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChildWorkflowOptions {
    #[serde(deserialize_with = "null_as_default")]
    pub namespace: String,
    /// Empty = `<parent RunID>_<n>`.
    #[serde(rename = "WorkflowID", deserialize_with = "null_as_default")]
    pub workflow_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub task_queue_name: String,
    #[serde(with = "nanos")]
    pub workflow_execution_timeout: Duration,
    #[serde(with = "nanos")]
    pub workflow_run_timeout: Duration,
    #[serde(with = "nanos")]
    pub workflow_task_timeout: Duration,
    #[serde(deserialize_with = "null_as_default")]
    pub wait_for_cancellation: bool,
    #[serde(rename = "WorkflowIDReusePolicy", deserialize_with = "null_as_default")]
    pub workflow_id_reuse_policy: i32,
    pub retry_policy: Option<RetryPolicy>,
    #[serde(deserialize_with = "null_as_default")]
    pub cron_schedule: String,
    #[serde(deserialize_with = "null_as_default")]
    pub parent_close_policy: i32,
    pub memo: Option<Map<String, Value>>,
    pub search_attributes: Option<Map<String, Value>>,
    #[serde(deserialize_with = "null_as_default")]
    pub static_summary: String,
    #[serde(deserialize_with = "null_as_default")]
    pub static_details: String,
    pub priority: Option<Priority>,
}

/// The options of `ContinueAsNew`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContinueAsNewOptions {
    #[serde(deserialize_with = "null_as_default")]
    pub task_queue_name: String,
    #[serde(with = "nanos")]
    pub workflow_run_timeout: Duration,
    #[serde(with = "nanos")]
    pub workflow_task_timeout: Duration,
}

/// A typed search attribute of `StartWorkflow.search_attributes`: `{"type","value"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypedValue {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: Value,
}

/// One entry of `UpsertWorkflowTypedSearchAttributes.search_attributes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypedUpsert {
    /// `bool`, `float64`, `int64`, `keyword`, `keyword_list`, `string`, `datetime`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `set` or `unset`.
    pub operation: String,
    #[serde(default)]
    pub value: Value,
}

/// One task queue's registration, the reply of `GetWorkerInfo` (§4.5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WorkerInfo {
    /// Empty = `default`.
    pub task_queue: String,
    pub options: WorkerOptions,
    pub workflows: Vec<WorkflowRegistration>,
    pub activities: Vec<ActivityRegistration>,
    pub php_sdk_version: String,
    pub plugins: Vec<SdkPlugin>,
    pub flags: Flags,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Flags {
    pub api_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SdkPlugin {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowRegistration {
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub queries: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub signals: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub versioning_behavior: i32,
    #[serde(skip_serializing_if = "std::ops::Not::not", deserialize_with = "null_as_default")]
    pub dynamic: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ActivityRegistration {
    pub name: String,
}

/// Go `worker.Options` as PHP's `WorkerOptions` sends it; 0 = the SDK default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WorkerOptions {
    pub max_concurrent_activity_execution_size: i64,
    pub worker_activities_per_second: f64,
    pub max_concurrent_local_activity_execution_size: i64,
    pub worker_local_activities_per_second: f64,
    pub task_queue_activities_per_second: f64,
    pub max_concurrent_activity_task_pollers: i64,
    pub max_concurrent_workflow_task_execution_size: i64,
    pub max_concurrent_workflow_task_pollers: i64,
    pub max_concurrent_nexus_task_execution_size: i64,
    pub max_concurrent_nexus_task_pollers: i64,
    pub enable_logging_in_replay: bool,
    #[serde(with = "nanos")]
    pub sticky_schedule_to_start_timeout: Duration,
    /// 0 block (fail the task), 1 fail the workflow.
    pub workflow_panic_policy: i32,
    #[serde(with = "nanos")]
    pub worker_stop_timeout: Duration,
    pub enable_session_worker: bool,
    #[serde(rename = "SessionResourceID")]
    pub session_resource_id: String,
    pub max_concurrent_session_execution_size: i64,
    pub disable_workflow_worker: bool,
    pub local_activity_worker_only: bool,
    pub identity: String,
    #[serde(with = "nanos")]
    pub deadlock_detection_timeout: Duration,
    #[serde(with = "nanos")]
    pub max_heartbeat_throttle_interval: Duration,
    pub disable_eager_activities: bool,
    pub max_concurrent_eager_activity_execution_size: i64,
    pub disable_registration_aliasing: bool,
    #[serde(rename = "BuildID")]
    pub build_id: String,
    #[serde(rename = "UseBuildIDForVersioning")]
    pub use_build_id_for_versioning: bool,
    pub deployment_options: Option<Value>,
}

impl WorkerInfo {
    /// Read one `GetWorkerInfo` payload as Go does: keys in any case, nulls as zero values.
    pub fn from_json(data: &[u8]) -> Result<WorkerInfo, String> {
        let mut v: Value = serde_json::from_slice(data).map_err(|e| format!("worker info is not JSON: {e}"))?;
        canonical_keys(&mut v);
        strip_nulls(&mut v);
        serde_json::from_value(v).map_err(|e| format!("worker info: {e}"))
    }

    pub fn task_queue(&self) -> &str {
        if self.task_queue.is_empty() { "default" } else { &self.task_queue }
    }
}

/// The keys of [`WorkerInfo`] and what it nests (but `Workflows[]`), for case-insensitive matching.
const WORKER_INFO_KEYS: &[&str] = &[
    "TaskQueue", "Options", "Workflows", "Activities", "PhpSdkVersion", "Plugins", "Flags", "ApiKey", "Name", "Version",
    "MaxConcurrentActivityExecutionSize", "WorkerActivitiesPerSecond", "MaxConcurrentLocalActivityExecutionSize",
    "WorkerLocalActivitiesPerSecond", "TaskQueueActivitiesPerSecond", "MaxConcurrentActivityTaskPollers",
    "MaxConcurrentWorkflowTaskExecutionSize", "MaxConcurrentWorkflowTaskPollers", "MaxConcurrentNexusTaskExecutionSize",
    "MaxConcurrentNexusTaskPollers", "EnableLoggingInReplay", "StickyScheduleToStartTimeout", "WorkflowPanicPolicy",
    "WorkerStopTimeout", "EnableSessionWorker", "SessionResourceID", "MaxConcurrentSessionExecutionSize",
    "DisableWorkflowWorker", "LocalActivityWorkerOnly", "Identity", "DeadlockDetectionTimeout",
    "MaxHeartbeatThrottleInterval", "DisableEagerActivities", "MaxConcurrentEagerActivityExecutionSize",
    "DisableRegistrationAliasing", "BuildID", "UseBuildIDForVersioning", "DeploymentOptions",
];

/// The keys of one `Workflows[]` entry (lower case in Go's json tags).
const WORKFLOW_KEYS: &[&str] = &["name", "queries", "signals", "versioning_behavior", "dynamic"];

/// Rename keys to the spelling the structs use (Go's JSON matches names case-insensitively).
/// `DeploymentOptions` is kept as written.
fn canonical_keys(v: &mut Value) {
    fn walk(v: &mut Value, known: &'static [&'static str]) {
        match v {
            Value::Object(map) => {
                for (k, mut child) in std::mem::take(map) {
                    let key = known.iter().find(|n| n.eq_ignore_ascii_case(&k)).map_or(k, |n| n.to_string());
                    match key.as_str() {
                        "DeploymentOptions" => {}
                        "Workflows" => walk(&mut child, WORKFLOW_KEYS),
                        _ => walk(&mut child, WORKER_INFO_KEYS),
                    }
                    map.insert(key, child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, known)),
            _ => {}
        }
    }
    walk(v, WORKER_INFO_KEYS)
}

/// Go reads `null` as the zero value; serde would reject it for a non-Option field.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, v| !v.is_null() || k == "DeploymentOptions");
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
