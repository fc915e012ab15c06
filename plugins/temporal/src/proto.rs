//! The protobuf messages of the PHP protocol (TEMPORAL.md §3.1), as prost structs written after
//! `proto/**.proto` (the workspace has no protoc and compiles no .proto at build time: its
//! messages are hand-written prost structs). the `schema` test below compiles the .proto files
//! with protox and checks every field here against them.
//!
//! Maps are `BTreeMap`s so that encoding is deterministic (golden bytes in tests).

use std::collections::BTreeMap;

/// `temporal.v1.Frame`: one batch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Frame {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<Message>,
}

/// `temporal.v1.Message`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub command: String,
    #[prost(bytes = "vec", tag = "3")]
    pub options: Vec<u8>,
    #[prost(message, optional, tag = "4")]
    pub failure: Option<Failure>,
    #[prost(message, optional, tag = "5")]
    pub payloads: Option<Payloads>,
    #[prost(message, optional, tag = "6")]
    pub header: Option<Header>,
    #[prost(int64, tag = "7")]
    pub history_length: i64,
    #[prost(string, tag = "8")]
    pub run_id: String,
    #[prost(string, tag = "9")]
    pub task_queue: String,
    #[prost(string, tag = "10")]
    pub tick_time: String,
    #[prost(bool, tag = "11")]
    pub replay: bool,
    #[prost(bool, tag = "12")]
    pub continue_as_new_suggested: bool,
    #[prost(int64, tag = "13")]
    pub history_size: i64,
    #[prost(uint64, tag = "14")]
    pub wwpid: u64,
}

/// `temporal.v1.ReplayRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplayRequest {
    #[prost(message, optional, tag = "1")]
    pub workflow_execution: Option<WorkflowExecution>,
    #[prost(message, optional, tag = "2")]
    pub workflow_type: Option<WorkflowType>,
    #[prost(string, tag = "3")]
    pub save_path: String,
    #[prost(int64, tag = "4")]
    pub last_event_id: i64,
}

/// `temporal.v1.ReplayResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplayResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
}

/// `temporal.v1.History`: what `temporal.ReplayWorkflowHistory` takes. The history itself is
/// Temporal's own message (Core's prost struct), so this one is not in proto/ and the schema test.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplayHistory {
    #[prost(message, optional, tag = "1")]
    pub history: Option<temporalio_common::protos::temporal::api::history::v1::History>,
    #[prost(message, optional, tag = "2")]
    pub workflow_type: Option<WorkflowType>,
}

/// `common.v1.Status` (google.rpc.Status).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// `temporal.api.common.v1.Payload`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Payload {
    #[prost(btree_map = "string, bytes", tag = "1")]
    pub metadata: BTreeMap<String, Vec<u8>>,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Payloads {
    #[prost(message, repeated, tag = "1")]
    pub payloads: Vec<Payload>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Header {
    #[prost(btree_map = "string, message", tag = "1")]
    pub fields: BTreeMap<String, Payload>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WorkflowExecution {
    #[prost(string, tag = "1")]
    pub workflow_id: String,
    #[prost(string, tag = "2")]
    pub run_id: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WorkflowType {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ActivityType {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `temporal.api.failure.v1.Failure`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Failure {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(string, tag = "2")]
    pub source: String,
    #[prost(string, tag = "3")]
    pub stack_trace: String,
    #[prost(message, optional, tag = "20")]
    pub encoded_attributes: Option<Payload>,
    #[prost(message, optional, boxed, tag = "4")]
    pub cause: Option<Box<Failure>>,
    #[prost(oneof = "FailureInfo", tags = "5, 6, 7, 8, 9, 10, 11, 12")]
    pub failure_info: Option<FailureInfo>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FailureInfo {
    #[prost(message, tag = "5")]
    ApplicationFailureInfo(ApplicationFailureInfo),
    #[prost(message, tag = "6")]
    TimeoutFailureInfo(TimeoutFailureInfo),
    #[prost(message, tag = "7")]
    CanceledFailureInfo(CanceledFailureInfo),
    #[prost(message, tag = "8")]
    TerminatedFailureInfo(TerminatedFailureInfo),
    #[prost(message, tag = "9")]
    ServerFailureInfo(ServerFailureInfo),
    #[prost(message, tag = "10")]
    ResetWorkflowFailureInfo(ResetWorkflowFailureInfo),
    #[prost(message, tag = "11")]
    ActivityFailureInfo(ActivityFailureInfo),
    #[prost(message, tag = "12")]
    ChildWorkflowExecutionFailureInfo(ChildWorkflowExecutionFailureInfo),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ApplicationFailureInfo {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(bool, tag = "2")]
    pub non_retryable: bool,
    #[prost(message, optional, tag = "3")]
    pub details: Option<Payloads>,
    #[prost(message, optional, tag = "4")]
    pub next_retry_delay: Option<prost_types::Duration>,
    #[prost(int32, tag = "5")]
    pub category: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeoutFailureInfo {
    #[prost(int32, tag = "1")]
    pub timeout_type: i32,
    #[prost(message, optional, tag = "2")]
    pub last_heartbeat_details: Option<Payloads>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CanceledFailureInfo {
    #[prost(message, optional, tag = "1")]
    pub details: Option<Payloads>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TerminatedFailureInfo {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServerFailureInfo {
    #[prost(bool, tag = "1")]
    pub non_retryable: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResetWorkflowFailureInfo {
    #[prost(message, optional, tag = "1")]
    pub last_heartbeat_details: Option<Payloads>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ActivityFailureInfo {
    #[prost(int64, tag = "1")]
    pub scheduled_event_id: i64,
    #[prost(int64, tag = "2")]
    pub started_event_id: i64,
    #[prost(string, tag = "3")]
    pub identity: String,
    #[prost(message, optional, tag = "4")]
    pub activity_type: Option<ActivityType>,
    #[prost(string, tag = "5")]
    pub activity_id: String,
    #[prost(int32, tag = "6")]
    pub retry_state: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChildWorkflowExecutionFailureInfo {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(message, optional, tag = "2")]
    pub workflow_execution: Option<WorkflowExecution>,
    #[prost(message, optional, tag = "3")]
    pub workflow_type: Option<WorkflowType>,
    #[prost(int64, tag = "4")]
    pub initiated_event_id: i64,
    #[prost(int64, tag = "5")]
    pub started_event_id: i64,
    #[prost(int32, tag = "6")]
    pub retry_state: i32,
}

/// The `encoding` metadata of JSON payloads (the PHP and Go default converters).
pub const ENCODING_JSON: &[u8] = b"json/plain";
/// The `encoding` of a null value.
pub const ENCODING_NULL: &[u8] = b"binary/null";

impl Payload {
    /// A `json/plain` payload of `value`.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Payload {
        Payload {
            metadata: BTreeMap::from([("encoding".to_string(), ENCODING_JSON.to_vec())]),
            data: serde_json::to_vec(value).expect("a serde value always serializes to JSON"),
        }
    }

    pub fn encoding(&self) -> Option<&[u8]> {
        self.metadata.get("encoding").map(Vec::as_slice)
    }

    /// The value of a `json/plain` payload (a `binary/null` one reads as JSON null).
    pub fn decode_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        match self.encoding() {
            Some(ENCODING_JSON) => serde_json::from_slice(&self.data).map_err(|e| format!("json/plain payload: {e}")),
            Some(ENCODING_NULL) => serde_json::from_value(serde_json::Value::Null).map_err(|e| format!("binary/null payload: {e}")),
            other => Err(format!("payload encoding `{}` is not json/plain", String::from_utf8_lossy(other.unwrap_or(b"")))),
        }
    }
}

impl Payloads {
    pub fn of(payloads: impl IntoIterator<Item = Payload>) -> Payloads {
        Payloads { payloads: payloads.into_iter().collect() }
    }
}

impl Failure {
    /// An application failure as the Go SDK makes it from an error (`source` GoSDK).
    pub fn application(message: impl Into<String>, error_type: impl Into<String>, non_retryable: bool) -> Failure {
        Failure {
            message: message.into(),
            source: "GoSDK".into(),
            failure_info: Some(FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
                r#type: error_type.into(),
                non_retryable,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// A cancellation (a cancelled timer, activity or workflow).
    pub fn canceled(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            source: "GoSDK".into(),
            failure_info: Some(FailureInfo::CanceledFailureInfo(CanceledFailureInfo::default())),
            ..Default::default()
        }
    }
}

/// The prost structs against `proto/**.proto` compiled with protox: every field of every message
/// set, encoded by prost, must decode under the .proto with no unknown field, and read back.
#[cfg(test)]
mod schema {
    use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};

    use super::*;

    fn pool() -> DescriptorPool {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
        let set = protox::compile(["temporal/v1/temporal.proto"], [&dir]).expect("the .proto files compile");
        DescriptorPool::from_file_descriptor_set(set).expect("descriptor pool")
    }

    /// Every field outside a oneof is present (so the sample covers the schema) and nothing is unknown.
    fn assert_covered(m: &DynamicMessage, path: &str) {
        assert_eq!(m.unknown_fields().count(), 0, "{path}: fields the .proto does not have");
        for field in m.descriptor().fields() {
            let name = format!("{path}.{}", field.name());
            // A recursive field (Failure.cause) ends somewhere.
            let recursive = field.kind().as_message() == Some(&m.descriptor());
            if field.containing_oneof().is_none() && !recursive {
                assert!(m.has_field(&field), "{name}: not set by the sample or not in the prost struct");
            }
            match &*m.get_field(&field) {
                Value::Message(inner) if m.has_field(&field) => assert_covered(inner, &name),
                Value::List(items) => items.iter().filter_map(Value::as_message).for_each(|i| assert_covered(i, &name)),
                Value::Map(map) => map.values().filter_map(Value::as_message).for_each(|i| assert_covered(i, &name)),
                _ => {}
            }
        }
    }

    fn check<T: prost::Message + Default + PartialEq + std::fmt::Debug>(pool: &DescriptorPool, name: &str, sample: &T) {
        let desc = pool.get_message_by_name(name).unwrap_or_else(|| panic!("{name} is not in the .proto files"));
        let dynamic = DynamicMessage::decode(desc, &sample.encode_to_vec()[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_covered(&dynamic, name);
        let back = T::decode(&prost::Message::encode_to_vec(&dynamic)[..]).unwrap();
        assert_eq!(&back, sample, "{name} reads back");
    }

    fn payload(s: &str) -> Payload {
        Payload { metadata: BTreeMap::from([("encoding".into(), b"json/plain".to_vec())]), data: s.as_bytes().to_vec() }
    }

    fn payloads() -> Payloads {
        Payloads::of([payload("1")])
    }

    fn failure(info: FailureInfo) -> Failure {
        Failure {
            message: "m".into(),
            source: "PHP_SDK".into(),
            stack_trace: "#0".into(),
            encoded_attributes: Some(payload("{}")),
            cause: Some(Box::new(Failure { message: "cause".into(), source: "s".into(), stack_trace: "t".into(), encoded_attributes: Some(payload("2")), cause: None, failure_info: None })),
            failure_info: Some(info),
        }
    }

    fn infos() -> Vec<FailureInfo> {
        let execution = WorkflowExecution { workflow_id: "w".into(), run_id: "r".into() };
        vec![
            FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
                r#type: "T".into(),
                non_retryable: true,
                details: Some(payloads()),
                next_retry_delay: Some(prost_types::Duration { seconds: 1, nanos: 2 }),
                category: 1,
            }),
            FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo { timeout_type: 2, last_heartbeat_details: Some(payloads()) }),
            FailureInfo::CanceledFailureInfo(CanceledFailureInfo { details: Some(payloads()) }),
            FailureInfo::TerminatedFailureInfo(TerminatedFailureInfo {}),
            FailureInfo::ServerFailureInfo(ServerFailureInfo { non_retryable: true }),
            FailureInfo::ResetWorkflowFailureInfo(ResetWorkflowFailureInfo { last_heartbeat_details: Some(payloads()) }),
            FailureInfo::ActivityFailureInfo(ActivityFailureInfo {
                scheduled_event_id: 1,
                started_event_id: 2,
                identity: "i".into(),
                activity_type: Some(ActivityType { name: "A".into() }),
                activity_id: "1".into(),
                retry_state: 3,
            }),
            FailureInfo::ChildWorkflowExecutionFailureInfo(ChildWorkflowExecutionFailureInfo {
                namespace: "default".into(),
                workflow_execution: Some(execution),
                workflow_type: Some(WorkflowType { name: "W".into() }),
                initiated_event_id: 1,
                started_event_id: 2,
                retry_state: 3,
            }),
        ]
    }

    #[test]
    fn prost_structs_match_the_proto_files() {
        let pool = pool();
        let message = Message {
            id: 1,
            command: "ExecuteActivity".into(),
            options: b"{}".to_vec(),
            failure: Some(failure(infos().remove(0))),
            payloads: Some(payloads()),
            header: Some(Header { fields: BTreeMap::from([("k".into(), payload("3"))]) }),
            history_length: 2,
            run_id: "rr".into(),
            task_queue: "q".into(),
            tick_time: "t".into(),
            replay: true,
            continue_as_new_suggested: true,
            history_size: 3,
            wwpid: 4,
        };
        check(&pool, "temporal.v1.Frame", &Frame { messages: vec![message] });
        for info in infos() {
            check(&pool, "temporal.api.failure.v1.Failure", &failure(info));
        }
        let execution = WorkflowExecution { workflow_id: "w".into(), run_id: "r".into() };
        check(
            &pool,
            "temporal.v1.ReplayRequest",
            &ReplayRequest { workflow_execution: Some(execution), workflow_type: Some(WorkflowType { name: "W".into() }), save_path: "/tmp/h.json".into(), last_event_id: 9 },
        );
        let any = prost_types::Any { type_url: "type.googleapis.com/x".into(), value: vec![1] };
        check(&pool, "temporal.v1.ReplayResponse", &ReplayResponse { status: Some(Status { code: 3, message: "bad".into(), details: vec![any] }) });
    }
}
