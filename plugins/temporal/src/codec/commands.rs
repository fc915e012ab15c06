//! Every command of the protocol as a typed value (TEMPORAL.md §3.4, §3.5): the name goes to
//! `Message.command`, the struct to `Message.options` as JSON with the names PHP reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CodecError;
use super::json::{ActivityInfo, ActivityOptions, ChildWorkflowOptions, ContinueAsNewOptions, LocalActivityOptions, TypedUpsert, TypedValue, WorkflowInfo};

/// Declares a command enum whose variants each wrap their options struct.
macro_rules! commands {
    ($(#[$doc:meta])* $name:ident { $($variant:ident($options:ty)),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $($variant($options)),*
        }

        impl $name {
            /// The names, as `Message.command` carries them.
            pub const NAMES: &[&str] = &[$(stringify!($variant)),*];

            pub fn name(&self) -> &'static str {
                match self {
                    $($name::$variant(_) => stringify!($variant)),*
                }
            }

            /// The options as JSON.
            pub fn options(&self) -> Vec<u8> {
                match self {
                    $($name::$variant(o) => serde_json::to_vec(o).expect("command options always serialize")),*
                }
            }

            /// From `Message.command` and `Message.options` (empty options read as `{}`).
            pub fn parse(command: &str, options: &[u8]) -> Result<Self, CodecError> {
                let options: &[u8] = if options.iter().all(u8::is_ascii_whitespace) { b"{}" } else { options };
                match command {
                    $(stringify!($variant) => serde_json::from_slice(options)
                        .map($name::$variant)
                        .map_err(|e| CodecError::Options { command: command.to_string(), message: e.to_string() }),)*
                    other => Err(CodecError::UnknownCommand(other.to_string())),
                }
            }
        }
    };
}

commands! {
    /// RoadRunner → PHP (§3.4).
    ServerCommand {
        GetWorkerInfo(GetWorkerInfo),
        StartWorkflow(StartWorkflow),
        InvokeSignal(InvokeSignal),
        InvokeQuery(InvokeQuery),
        InvokeUpdate(InvokeUpdate),
        CancelWorkflow(RunRef),
        DestroyWorkflow(RunRef),
        StackTrace(RunRef),
        InvokeActivity(InvokeActivity),
        InvokeLocalActivity(InvokeLocalActivity),
    }
}

commands! {
    /// PHP → RoadRunner, inside workflow batches (§3.5).
    PhpCommand {
        ExecuteActivity(ExecuteActivity),
        ExecuteLocalActivity(ExecuteLocalActivity),
        ExecuteChildWorkflow(ExecuteChildWorkflow),
        GetChildWorkflowExecution(GetChildWorkflowExecution),
        NewTimer(NewTimer),
        GetVersion(GetVersion),
        SideEffect(SideEffect),
        CompleteWorkflow(Empty),
        ContinueAsNew(ContinueAsNew),
        UpsertWorkflowSearchAttributes(UpsertSearchAttributes),
        UpsertWorkflowTypedSearchAttributes(UpsertTypedSearchAttributes),
        UpsertMemo(UpsertMemo),
        SignalExternalWorkflow(SignalExternalWorkflow),
        CancelExternalWorkflow(CancelExternalWorkflow),
        Cancel(Cancel),
        UpdateValidated(UpdateRef),
        UpdateCompleted(UpdateRef),
        Panic(Empty),
        UndefinedResponse(UndefinedResponse),
    }
}

/// `{}`: commands whose data is all in payloads or failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetWorkerInfo {
    pub rr_version: String,
    /// The workflow worker's pid.
    #[serde(default)]
    pub ww_pid: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartWorkflow {
    pub info: WorkflowInfo,
    /// How many of the payloads at the end are the last completion result (cron, continue-as-new).
    #[serde(rename = "lastCompletion", default, skip_serializing_if = "Option::is_none")]
    pub last_completion: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_attributes: Option<BTreeMap<String, TypedValue>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeSignal {
    /// Temporal's run id (not the rr_id).
    #[serde(rename = "runId")]
    pub run_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeQuery {
    #[serde(rename = "runId")]
    pub run_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeUpdate {
    #[serde(rename = "updateId")]
    pub update_id: String,
    #[serde(rename = "runId")]
    pub run_id: String,
    pub name: String,
    /// Always `validate_execute`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Replaying: PHP skips the validator (read by PHP SDK 2.18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<bool>,
}

/// `{"runId"}`: CancelWorkflow, DestroyWorkflow, StackTrace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    #[serde(rename = "runId")]
    pub run_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvokeActivity {
    /// The activity type.
    pub name: String,
    pub info: ActivityInfo,
    /// How many of the payloads at the end are the last heartbeat details.
    #[serde(rename = "heartbeatDetails", default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_details: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvokeLocalActivity {
    pub name: String,
    pub info: ActivityInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecuteActivity {
    pub name: String,
    #[serde(default)]
    pub options: ActivityOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecuteLocalActivity {
    pub name: String,
    #[serde(default)]
    pub options: LocalActivityOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecuteChildWorkflow {
    pub name: String,
    #[serde(default)]
    pub options: ChildWorkflowOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetChildWorkflowExecution {
    /// The id of the `ExecuteChildWorkflow` message.
    pub id: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewTimer {
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetVersion {
    #[serde(rename = "changeID")]
    pub change_id: String,
    #[serde(rename = "minSupported")]
    pub min_supported: i32,
    #[serde(rename = "maxSupported")]
    pub max_supported: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideEffect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContinueAsNew {
    /// The workflow type to continue as.
    pub name: String,
    #[serde(default)]
    pub options: ContinueAsNewOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpsertSearchAttributes {
    #[serde(rename = "searchAttributes", default)]
    pub search_attributes: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpsertTypedSearchAttributes {
    #[serde(default)]
    pub search_attributes: BTreeMap<String, TypedUpsert>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpsertMemo {
    #[serde(default)]
    pub memo: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalExternalWorkflow {
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "workflowID", default)]
    pub workflow_id: String,
    #[serde(rename = "runID", default)]
    pub run_id: String,
    pub signal: String,
    #[serde(rename = "childWorkflowOnly", default)]
    pub child_workflow_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelExternalWorkflow {
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "workflowID", default)]
    pub workflow_id: String,
    #[serde(rename = "runID", default)]
    pub run_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// Ids of the commands to cancel (activities, local activities, timers, children, signals).
    #[serde(default)]
    pub ids: Vec<u64>,
}

/// `{"id": updateId}`: UpdateValidated, UpdateCompleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRef {
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndefinedResponse {
    #[serde(default)]
    pub message: String,
}
