//! The replay RPCs' bodies (TEMPORAL.md §5) apart from IO: which request is complete (with
//! RoadRunner's texts), the `ReplayResponse` statuses PHP's `WorkflowReplayer` maps to its
//! exceptions, and histories as protojson (the format of `temporal workflow show --output json`,
//! the Temporal UI's download and RoadRunner's `DownloadWorkflowHistory`).

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions};
use temporalio_common::protos::temporal::api::history::v1::{History, history_event};

use crate::proto::{ReplayRequest, ReplayResponse, Status};

/// gRPC status codes, as PHP's `WorkflowReplayer` reads them: 3 → InvalidArgumentException,
/// 9 → NonDeterministicWorkflowException, 13 → InternalServerException.
pub mod code {
    pub const OK: i32 = 0;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const INTERNAL: i32 = 13;
}

/// RoadRunner's answer while its workflow worker is not up.
pub const NOT_READY: &str = "workflow definition is not initialized, retry in a second";

pub fn response(code: i32, message: impl Into<String>) -> ReplayResponse {
    ReplayResponse { status: Some(Status { code, message: message.into(), details: Vec::new() }) }
}

pub fn ok() -> ReplayResponse {
    response(code::OK, "")
}

/// A run to fetch from the server: `ReplayWorkflow` (`save_path` = None) and
/// `DownloadWorkflowHistory` (`save_path` required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub workflow_id: String,
    pub run_id: String,
    pub workflow_type: String,
    pub save_path: String,
}

/// Check a `ReplayWorkflow` / `DownloadWorkflowHistory` request as RoadRunner does.
pub fn run_request(r: &ReplayRequest, download: bool) -> Result<RunRequest, ReplayResponse> {
    let execution = r.workflow_execution.clone().unwrap_or_default();
    let workflow_type = r.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    let incomplete = execution.workflow_id.is_empty() || execution.run_id.is_empty() || workflow_type.is_empty();
    match download {
        false if incomplete => Err(response(code::INVALID_ARGUMENT, "run_id, workflow_id or workflow_name should not be empty")),
        true if incomplete || r.save_path.is_empty() => Err(response(code::INVALID_ARGUMENT, "run_id, workflow_id or save_path should not be empty")),
        _ => Ok(RunRequest { workflow_id: execution.workflow_id, run_id: execution.run_id, workflow_type, save_path: r.save_path.clone() }),
    }
}

/// Check a `ReplayFromJSON` request: the workflow type and the file; `last_event_id` 0 = all.
pub fn json_request(r: &ReplayRequest) -> Result<(String, String, i64), ReplayResponse> {
    let Some(t) = &r.workflow_type else { return Err(response(code::INVALID_ARGUMENT, "workflow_name and save_path should not be empty")) };
    if r.save_path.is_empty() {
        return Err(response(code::INVALID_ARGUMENT, "workflow_name and save_path should not be empty"));
    }
    if t.name.is_empty() {
        return Err(response(code::INVALID_ARGUMENT, "workflow_name should not be empty"));
    }
    Ok((t.name.clone(), r.save_path.clone(), r.last_event_id))
}

/// The events up to and including `last_event_id` (0 keeps them all), as RoadRunner's partial replay.
pub fn truncate(mut history: History, last_event_id: i64) -> History {
    if last_event_id > 0 {
        history.events.retain(|e| e.event_id <= last_event_id);
    }
    history
}

/// What a replay needs to know of a history before Core sees it (Core's replayer panics on a
/// history without a start event or its run id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub workflow_type: String,
    pub task_queue: String,
    pub run_id: String,
}

pub fn started(history: &History) -> Result<Started, String> {
    let first = history.events.first().ok_or("the history has no events")?;
    let Some(history_event::Attributes::WorkflowExecutionStartedEventAttributes(a)) = &first.attributes else {
        return Err(format!("the history's first event ({}) is not WorkflowExecutionStarted", first.event_id));
    };
    if a.original_execution_run_id.is_empty() {
        return Err("the history's WorkflowExecutionStarted event has no originalExecutionRunId".into());
    }
    Ok(Started {
        workflow_type: a.workflow_type.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
        task_queue: a.task_queue.as_ref().map(|q| q.name.clone()).unwrap_or_default(),
        run_id: a.original_execution_run_id.clone(),
    })
}

/// Temporal's descriptors as compiled by `temporalio-protos` (build.rs copies them).
fn history_descriptor() -> Result<MessageDescriptor, String> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    let pool = POOL
        .get_or_init(|| DescriptorPool::decode(&include_bytes!(concat!(env!("OUT_DIR"), "/temporal_descriptors.bin"))[..]).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| format!("Temporal's protobuf descriptors: {e}"))?;
    pool.get_message_by_name("temporal.api.history.v1.History").ok_or_else(|| "no temporal.api.history.v1.History descriptor".to_string())
}

/// A protojson history (`{"events": [...]}`). Unknown fields (a newer server's) are skipped;
/// enum values may also be in the short form older exports use (`"WorkflowExecutionStarted"`
/// for `EVENT_TYPE_WORKFLOW_EXECUTION_STARTED`).
pub fn history_from_json(json: &[u8]) -> Result<History, String> {
    let descriptor = history_descriptor()?;
    let mut value: serde_json::Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    long_enum_names(&mut value, &descriptor);
    let message = DynamicMessage::deserialize_with_options(descriptor, value, &DeserializeOptions::new().deny_unknown_fields(false))
        .map_err(|e| format!("not a Temporal history: {e}"))?;
    History::decode(message.encode_to_vec().as_slice()).map_err(|e| format!("not a Temporal history: {e}"))
}

/// A history as protojson (camelCase names, enum names, 64-bit integers as strings), as Go's
/// `protojson.Marshal` writes it for RoadRunner's `DownloadWorkflowHistory`.
pub fn history_to_json(history: &History) -> Result<Vec<u8>, String> {
    let descriptor = history_descriptor()?;
    let message = DynamicMessage::decode(descriptor, history.encode_to_vec().as_slice()).map_err(|e| e.to_string())?;
    let mut out = serde_json::Serializer::new(Vec::new());
    message.serialize_with_options(&mut out, &SerializeOptions::new()).map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

/// Rewrites short enum names (`WorkflowExecutionStarted`, `Normal`) into the protojson names
/// (`EVENT_TYPE_WORKFLOW_EXECUTION_STARTED`, `TASK_QUEUE_KIND_NORMAL`) along the schema.
fn long_enum_names(value: &mut serde_json::Value, message: &MessageDescriptor) {
    let serde_json::Value::Object(fields) = value else { return };
    for (name, v) in fields.iter_mut() {
        let Some(field) = message.get_field_by_json_name(name).or_else(|| message.get_field_by_name(name)) else { continue };
        let items: Vec<&mut serde_json::Value> = match v {
            serde_json::Value::Array(a) if field.is_list() => a.iter_mut().collect(),
            serde_json::Value::Object(m) if field.is_map() => m.values_mut().collect(),
            v => vec![v],
        };
        let kind = match field.kind() {
            Kind::Message(m) if field.is_map() => m.map_entry_value_field().kind(),
            k => k,
        };
        for item in items {
            match &kind {
                Kind::Message(m) => long_enum_names(item, m),
                Kind::Enum(e) => {
                    if let serde_json::Value::String(s) = item
                        && e.get_value_by_name(s).is_none()
                    {
                        // The values share a prefix: that of the zero value `<PREFIX>UNSPECIFIED`.
                        let zero = e.default_value();
                        let prefix = zero.name().strip_suffix("UNSPECIFIED").unwrap_or("");
                        let norm = |n: &str| n.replace('_', "").to_ascii_lowercase();
                        if let Some(long) = e.values().find(|v| v.name().strip_prefix(prefix).is_some_and(|rest| norm(rest) == norm(s))) {
                            *s = long.name().to_string();
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{WorkflowExecution, WorkflowType};

    const SHOWN: &str = r#"{"events":[{"eventId":"1","eventTime":"2026-12-08T01:04:56.803702037Z","eventType":"EVENT_TYPE_WORKFLOW_EXECUTION_STARTED","taskId":"1048587",
      "workflowExecutionStartedEventAttributes":{"workflowType":{"name":"W"},"taskQueue":{"name":"q1","kind":"TASK_QUEUE_KIND_NORMAL"},
      "input":{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"ImhlbGxvIg=="}]},"workflowExecutionTimeout":"0s","workflowTaskTimeout":"10s",
      "originalExecutionRunId":"01a2","identity":"temporal-cli","firstExecutionRunId":"01a2","attempt":1,"header":{},"workflowId":"fmt-1","someFutureField":{"x":1}}},
      {"eventId":"2","eventTime":"2026-12-08T01:04:56.803815506Z","eventType":"WorkflowTaskScheduled","taskId":"1048588",
      "workflowTaskScheduledEventAttributes":{"taskQueue":{"name":"q1","kind":"Normal"},"startToCloseTimeout":"10s","attempt":1}}]}"#;

    #[test]
    fn protojson_histories_both_ways() {
        use temporalio_common::protos::temporal::api::enums::v1::{EventType, TaskQueueKind};
        let history = history_from_json(SHOWN.as_bytes()).unwrap();
        assert_eq!(history.events.len(), 2);
        assert_eq!(history.events[1].event_type, EventType::WorkflowTaskScheduled as i32, "a short enum name");
        let Some(history_event::Attributes::WorkflowTaskScheduledEventAttributes(a)) = &history.events[1].attributes else { panic!() };
        assert_eq!(a.task_queue.as_ref().unwrap().kind, TaskQueueKind::Normal as i32);
        assert_eq!(a.start_to_close_timeout.as_ref().unwrap().seconds, 10);
        let s = started(&history).unwrap();
        assert_eq!(s, Started { workflow_type: "W".into(), task_queue: "q1".into(), run_id: "01a2".into() });
        // And back: the names Go's protojson writes, read again to the same history.
        let json = history_to_json(&history).unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains(r#""eventType":"EVENT_TYPE_WORKFLOW_TASK_SCHEDULED""#) && text.contains(r#""eventId":"2""#), "{text}");
        assert_eq!(history_from_json(&json).unwrap(), history);
        assert_eq!(truncate(history.clone(), 1).events.len(), 1);
        assert_eq!(truncate(history, 0).events.len(), 2);
    }

    #[test]
    fn bad_histories_are_one_clear_error() {
        assert!(history_from_json(b"nope").unwrap_err().starts_with("not JSON"));
        assert!(history_from_json(br#"{"events":[{"eventId":"x"}]}"#).unwrap_err().starts_with("not a Temporal history"));
        assert_eq!(started(&History::default()).unwrap_err(), "the history has no events");
        let only_scheduled = history_from_json(br#"{"events":[{"eventId":"2","eventType":"EVENT_TYPE_WORKFLOW_TASK_SCHEDULED","workflowTaskScheduledEventAttributes":{}}]}"#).unwrap();
        assert!(started(&only_scheduled).unwrap_err().contains("is not WorkflowExecutionStarted"));
    }

    #[test]
    fn requests_are_checked_with_roadrunners_texts() {
        let execution = Some(WorkflowExecution { workflow_id: "w".into(), run_id: "r".into() });
        let t = Some(WorkflowType { name: "W".into() });
        let full = ReplayRequest { workflow_execution: execution.clone(), workflow_type: t.clone(), save_path: "/tmp/h.json".into(), last_event_id: 0 };
        assert_eq!(run_request(&full, false).unwrap().run_id, "r");
        assert_eq!(run_request(&full, true).unwrap().save_path, "/tmp/h.json");
        fn status<T>(r: Result<T, ReplayResponse>) -> Status {
            r.err().unwrap().status.unwrap()
        }
        let no_path = ReplayRequest { save_path: String::new(), ..full.clone() };
        assert_eq!(status(run_request(&no_path, true)), Status { code: 3, message: "run_id, workflow_id or save_path should not be empty".into(), details: vec![] });
        let no_type = ReplayRequest { workflow_type: None, ..full.clone() };
        assert_eq!(status(run_request(&no_type, false)).message, "run_id, workflow_id or workflow_name should not be empty");
        assert_eq!(json_request(&full).unwrap(), ("W".into(), "/tmp/h.json".into(), 0));
        assert_eq!(status(json_request(&no_type)).message, "workflow_name and save_path should not be empty");
        let empty_name = ReplayRequest { workflow_type: Some(WorkflowType::default()), ..full };
        assert_eq!(status(json_request(&empty_name)).message, "workflow_name should not be empty");
    }
}
