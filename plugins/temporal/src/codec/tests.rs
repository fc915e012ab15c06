//! Codec tests without PHP: golden bytes and JSON, a round trip for every command, lenient reads.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use prost::Message as _;
use serde_json::json;

use super::commands::*;
use super::json::*;
use super::*;
use crate::proto::{self, FailureInfo, Payload};

/// A length-delimited field with a one-byte tag and length.
fn ld(tag: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut v = vec![tag, body.len() as u8];
    v.extend_from_slice(body);
    v
}

fn json_payload_bytes(data: &[u8]) -> Vec<u8> {
    let entry = [ld(0x0a, b"encoding"), ld(0x12, b"json/plain")].concat();
    [ld(0x0a, &entry), ld(0x12, data)].concat()
}

#[test]
fn handshake_context_is_roadrunners() {
    assert_eq!(Context::handshake().to_json(), br#"{"rr_id":"","continue_as_new_suggested":false}"#);
    assert_eq!(Context::activity("default").to_json(), br#"{"taskQueue":"default","rr_id":"","continue_as_new_suggested":false}"#);
    let full = Context {
        task_queue: "tq".into(),
        tick_time: "2026-05-15T10:00:00Z".into(),
        replay: true,
        history_length: 3,
        history_size: 512,
        rr_id: "r-1".into(),
        continue_as_new_suggested: true,
    };
    assert_eq!(
        String::from_utf8(full.to_json()).unwrap(),
        r#"{"taskQueue":"tq","tickTime":"2026-05-15T10:00:00Z","replay":true,"history_length":3,"history_size":512,"rr_id":"r-1","continue_as_new_suggested":true}"#
    );
    assert_eq!(serde_json::from_slice::<Context>(&full.to_json()).unwrap(), full);
}

#[test]
fn get_worker_info_frame_bytes() {
    let request = Request::new(ServerCommand::GetWorkerInfo(GetWorkerInfo { rr_version: "2025.1.15".into(), ww_pid: 42 }));
    let mut batch = Batch::new(Context::handshake(), vec![Envelope::command(1, request)]);
    batch.wwpid = 42;
    let options = br#"{"rr_version":"2025.1.15","ww_pid":42}"#;
    // id=1, command, options, wwpid=42 (field 14, varint): the empty context adds nothing else.
    let message = [vec![0x08, 0x01], ld(0x12, b"GetWorkerInfo"), ld(0x1a, options), vec![0x70, 42]].concat();
    assert_eq!(batch.frame(), ld(0x0a, &message));
    let payload = batch.encode();
    assert_eq!(payload.codec, 0);
    assert_eq!(&payload.context[..], br#"{"rr_id":"","continue_as_new_suggested":false}"#);
    assert_eq!(decode_frame::<ServerCommand>(&payload.body).unwrap(), batch.messages);
}

#[test]
fn context_fields_are_repeated_on_every_message() {
    let context = Context { task_queue: "q".into(), tick_time: "t".into(), replay: true, history_length: 5, history_size: 7, rr_id: "id".into(), continue_as_new_suggested: true };
    let messages = vec![Envelope::response(3, None), Envelope::command(4, Request::new(ServerCommand::CancelWorkflow(RunRef { run_id: "run".into() })))];
    let mut batch = Batch::new(context, messages);
    batch.wwpid = 9;
    let frame = proto::Frame::decode(&batch.frame()[..]).unwrap();
    assert_eq!(frame.messages.len(), 2);
    for m in &frame.messages {
        assert_eq!((m.history_length, m.run_id.as_str(), m.task_queue.as_str(), m.tick_time.as_str()), (5, "id", "q", "t"));
        assert!(m.replay && m.continue_as_new_suggested);
        assert_eq!((m.history_size, m.wwpid), (7, 9));
    }
    assert_eq!(frame.messages[1].options, br#"{"runId":"run"}"#);
}

#[test]
fn php_result_bytes_decode() {
    // What the PHP SDK sends for `return "HELLO"` from an activity: id 0, one json/plain payload.
    let body = ld(0x0a, &ld(0x2a, &ld(0x0a, &json_payload_bytes(br#""HELLO""#))));
    let messages = decode_frame::<PhpCommand>(&body).unwrap();
    assert_eq!(messages, vec![Envelope::response(0, Some(Payloads::of([Payload::json("HELLO")])))]);
    assert_eq!(ActivityOutcome::from_reply(&body).unwrap(), ActivityOutcome::Completed(Payloads::of([Payload::json("HELLO")])));
    // A timer fired: a response with no payloads at all.
    assert_eq!(decode_frame::<PhpCommand>(&ld(0x0a, &[0x08, 0x07])).unwrap(), vec![Envelope::response(7, None)]);
}

#[test]
fn php_command_bytes_decode() {
    // A NewTimer command as PHP encodes it: id 5, name, options.
    let message = [vec![0x08, 0x05], ld(0x12, b"NewTimer"), ld(0x1a, br#"{"ms":1000}"#)].concat();
    let decoded = decode_frame::<PhpCommand>(&ld(0x0a, &message)).unwrap();
    assert_eq!(decoded, vec![Envelope::command(5, Request::new(PhpCommand::NewTimer(NewTimer { ms: 1000, summary: None })))]);
}

#[test]
fn failure_bytes() {
    let failure = proto::Failure::application("boom", "RuntimeException", true);
    let info = [ld(0x0a, b"RuntimeException"), vec![0x10, 0x01]].concat();
    let expected = [ld(0x0a, b"boom"), ld(0x12, b"GoSDK"), ld(0x2a, &info)].concat();
    assert_eq!(failure.encode_to_vec(), expected);
    let body = ld(0x0a, &ld(0x22, &expected));
    assert_eq!(ActivityOutcome::from_reply(&body).unwrap(), ActivityOutcome::Failed(Box::new(failure)));
    let pending = ld(0x0a, &ld(0x22, &ld(0x0a, DO_NOT_COMPLETE.as_bytes())));
    assert_eq!(ActivityOutcome::from_reply(&pending).unwrap(), ActivityOutcome::Pending);
}

#[test]
fn nested_failures_round_trip() {
    let mut f = proto::Failure::canceled("canceled");
    f.cause = Some(Box::new(proto::Failure {
        message: "activity error".into(),
        failure_info: Some(FailureInfo::ActivityFailureInfo(proto::ActivityFailureInfo {
            scheduled_event_id: 5,
            started_event_id: 6,
            identity: "id".into(),
            activity_type: Some(proto::ActivityType { name: "Echo".into() }),
            activity_id: "1".into(),
            retry_state: 4,
        })),
        cause: Some(Box::new(proto::Failure {
            message: "timeout".into(),
            failure_info: Some(FailureInfo::TimeoutFailureInfo(proto::TimeoutFailureInfo { timeout_type: 2, last_heartbeat_details: Some(Payloads::of([Payload::json(&1)])) })),
            ..Default::default()
        })),
        ..Default::default()
    }));
    assert_eq!(proto::Failure::decode(&f.encode_to_vec()[..]).unwrap(), f);
}

fn info() -> ActivityInfo {
    ActivityInfo {
        task_token: vec![1, 2, 255],
        workflow_type: Some(TypeName { name: "Wf".into() }),
        workflow_namespace: "default".into(),
        workflow_execution: Execution { id: "wf-1".into(), run_id: "run-1".into() },
        activity_id: "7".into(),
        activity_type: TypeName { name: "Echo".into() },
        task_queue: "default".into(),
        heartbeat_timeout: Duration::from_secs(1),
        schedule_to_close_timeout: Duration::from_secs(60),
        start_to_close_timeout: Duration::from_millis(1500),
        scheduled_time: "2026-05-15T10:00:00.5Z".into(),
        started_time: "2026-05-15T10:00:01Z".into(),
        deadline: "2026-05-15T10:00:02.5Z".into(),
        attempt: 1,
        is_local_activity: false,
        priority: Priority::default(),
        retry_policy: Some(RetryPolicy { initial_interval: Duration::from_secs(1), backoff_coefficient: 2.0, maximum_interval: Duration::from_secs(100), maximum_attempts: 0, non_retryable_error_types: vec!["X".into()] }),
    }
}

fn workflow_info() -> WorkflowInfo {
    WorkflowInfo {
        workflow_execution: Execution { id: "wf-1".into(), run_id: "run-1".into() },
        workflow_type: TypeName { name: "SimpleWorkflow".into() },
        task_queue_name: "default".into(),
        workflow_task_timeout: Duration::from_secs(10),
        namespace: "default".into(),
        attempt: 1,
        workflow_start_time: "2026-05-15T10:00:00Z".into(),
        memo: Some(json!({"fields": {}})),
        parent_workflow_execution: Some(Execution { id: "p".into(), run_id: "pr".into() }),
        ..Default::default()
    }
}

#[test]
fn activity_info_json_has_go_names() {
    let v = serde_json::to_value(info()).unwrap();
    assert_eq!(v["TaskToken"], "AQL/");
    assert_eq!(v["WorkflowExecution"], json!({"ID": "wf-1", "RunID": "run-1"}));
    assert_eq!(v["ActivityID"], "7");
    assert_eq!(v["ActivityType"], json!({"Name": "Echo"}));
    assert_eq!(v["StartToCloseTimeout"], 1_500_000_000u64);
    assert_eq!(v["RetryPolicy"]["InitialInterval"], 1_000_000_000u64);
    assert_eq!(v["RetryPolicy"]["NonRetryableErrorTypes"], json!(["X"]));
    assert_eq!(v["IsLocalActivity"], false);
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let expected = [
        "TaskToken", "WorkflowType", "WorkflowNamespace", "WorkflowExecution", "ActivityID", "ActivityType", "TaskQueue", "HeartbeatTimeout",
        "ScheduleToCloseTimeout", "StartToCloseTimeout", "ScheduledTime", "StartedTime", "Deadline", "Attempt", "IsLocalActivity", "Priority", "RetryPolicy",
    ];
    assert_eq!(keys, expected.into_iter().collect());
}

#[test]
fn workflow_info_json_has_go_names() {
    let v = serde_json::to_value(workflow_info()).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let expected = [
        "WorkflowExecution", "OriginalRunID", "FirstRunID", "WorkflowType", "TaskQueueName", "WorkflowExecutionTimeout", "WorkflowRunTimeout",
        "WorkflowTaskTimeout", "Namespace", "Attempt", "WorkflowStartTime", "CronSchedule", "ContinuedExecutionRunID", "ParentWorkflowNamespace",
        "ParentWorkflowExecution", "RootWorkflowExecution", "Memo", "SearchAttributes", "RetryPolicy", "Priority", "BinaryChecksum",
    ];
    assert_eq!(keys, expected.into_iter().collect());
    assert_eq!(v["WorkflowTaskTimeout"], 10_000_000_000u64);
    assert_eq!(v["RootWorkflowExecution"], serde_json::Value::Null, "nil pointers are null, as Go writes them");
    assert_eq!(v["Priority"], json!({"PriorityKey": 0, "FairnessKey": "", "FairnessWeight": 0.0}));
}

#[test]
fn times_are_go_rfc3339() {
    let t = SystemTime::UNIX_EPOCH + Duration::new(1_778_839_200, 500_000_000);
    assert_eq!(rfc3339_nano(t), "2026-05-15T10:00:00.5Z");
    assert_eq!(rfc3339_nano(SystemTime::UNIX_EPOCH + Duration::new(1_778_839_200, 0)), "2026-05-15T10:00:00Z");
    assert_eq!(rfc3339_nano(SystemTime::UNIX_EPOCH + Duration::new(1, 1)), "1970-01-01T00:00:01.000000001Z");
    assert_eq!(rfc3339_seconds(t), "2026-05-15T10:00:00Z");
}

#[test]
fn durations_and_retry_policies_read_leniently() {
    for (input, expected) in [
        (json!(1_500_000_000u64), Duration::from_millis(1500)),
        (json!(null), Duration::ZERO),
        (json!({"seconds": 2, "nanos": 5}), Duration::new(2, 5)),
        (json!({"seconds": "3"}), Duration::from_secs(3)),
        (json!("1.5s"), Duration::from_millis(1500)),
    ] {
        assert_eq!(lenient(&input).unwrap(), expected, "{input}");
    }
    assert!(lenient(&json!(-1)).is_err());
    assert!(lenient(&json!("soon")).is_err());
    let go: RetryPolicy = serde_json::from_value(json!({"InitialInterval": 1_000_000_000u64, "BackoffCoefficient": 2.0, "MaximumAttempts": 3, "NonRetryableErrorTypes": null})).unwrap();
    let proto_json: RetryPolicy = serde_json::from_value(json!({"initial_interval": {"seconds": 1}, "backoff_coefficient": 2.0, "maximum_attempts": 3})).unwrap();
    let camel: RetryPolicy = serde_json::from_value(json!({"initialInterval": "1s", "backoffCoefficient": 2, "maximumAttempts": 3})).unwrap();
    assert_eq!(go, proto_json);
    assert_eq!(go, camel);
    assert_eq!(go.maximum_attempts, 3);
    let opts: ActivityOptions = serde_json::from_value(json!({"ActivityID": null, "TaskQueueName": null, "StartToCloseTimeout": 5_000_000_000u64, "RetryPolicy": null, "WaitForCancellation": true})).unwrap();
    assert_eq!((opts.activity_id.as_str(), opts.start_to_close_timeout, opts.wait_for_cancellation), ("", Duration::from_secs(5), true));
    assert_eq!(LocalActivityOptions::default().timeouts(), (Duration::from_secs(60), Duration::from_secs(60)));
}

#[test]
fn worker_info_reads_any_key_case_and_nulls() {
    let data = json!({
        "taskqueue": "orders",
        "OPTIONS": {"maxConcurrentActivityExecutionSize": 5, "Identity": null, "WorkflowPanicPolicy": 1, "StickyScheduleToStartTimeout": 5_000_000_000u64, "DeploymentOptions": {"Version": "x"}},
        "Workflows": [{"Name": "Order", "Queries": ["status"], "Signals": null}, {"name": "Dyn", "dynamic": true}],
        "Activities": [{"name": "charge"}],
        "PhpSdkVersion": "2.8.3",
        "Flags": {"ApiKey": "k"},
    });
    let info = WorkerInfo::from_json(data.to_string().as_bytes()).unwrap();
    assert_eq!(info.task_queue(), "orders");
    assert_eq!(info.options.max_concurrent_activity_execution_size, 5);
    assert_eq!(info.options.workflow_panic_policy, 1);
    assert_eq!(info.options.sticky_schedule_to_start_timeout, Duration::from_secs(5));
    assert_eq!(info.options.deployment_options, Some(json!({"Version": "x"})));
    assert_eq!(info.workflows[0], WorkflowRegistration { name: "Order".into(), queries: vec!["status".into()], ..Default::default() });
    assert!(info.workflows[1].dynamic);
    assert_eq!(info.activities[0].name, "charge");
    assert_eq!(info.flags.api_key, "k");
    assert_eq!(WorkerInfo::from_json(b"{}").unwrap().task_queue(), "default");
    assert!(WorkerInfo::from_json(b"[1]").is_err());
}

#[test]
fn worker_infos_reply() {
    let reply = |payloads: Vec<Payload>| proto::Frame { messages: vec![proto::Message { payloads: Some(Payloads::of(payloads)), ..Default::default() }] }.encode_to_vec();
    let infos = worker_infos(&reply(vec![Payload::json(&json!({"TaskQueue": "a"})), Payload::json(&json!({"TaskQueue": "b"}))])).unwrap();
    assert_eq!(infos.iter().map(|i| i.task_queue()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(worker_infos(&reply(vec![])).unwrap_err().to_string().contains("worker info should contain at least 1 worker"));
    let failed = proto::Frame { messages: vec![proto::Message { failure: Some(proto::Failure { message: "no".into(), ..Default::default() }), ..Default::default() }] }.encode_to_vec();
    assert!(worker_infos(&failed).unwrap_err().to_string().contains("GetWorkerInfo failed in PHP: no"));
}

#[test]
fn protocol_errors_are_clear() {
    let err = decode_frame::<PhpCommand>(br#"[{"id":1}]"#).unwrap_err().to_string();
    assert!(err.contains("not a temporal.v1.Frame") && err.contains("looks like JSON") && err.contains("RR_CODEC=protobuf"), "{err}");
    let unknown = proto::Frame { messages: vec![proto::Message { id: 1, command: "Teleport".into(), ..Default::default() }] }.encode_to_vec();
    assert_eq!(decode_frame::<PhpCommand>(&unknown).unwrap_err(), CodecError::UnknownCommand("Teleport".into()));
    let bad = proto::Frame { messages: vec![proto::Message { id: 1, command: "NewTimer".into(), options: br#"{"ms":"soon"}"#.to_vec(), ..Default::default() }] }.encode_to_vec();
    assert!(matches!(decode_frame::<PhpCommand>(&bad).unwrap_err(), CodecError::Options { command, .. } if command == "NewTimer"));
    let two = proto::Frame { messages: vec![proto::Message::default(), proto::Message::default()] }.encode_to_vec();
    assert!(ActivityOutcome::from_reply(&two).unwrap_err().to_string().contains("exactly one message, got 2"));
    assert!(ActivityOutcome::from_reply(&[]).unwrap_err().to_string().contains("got 0"));
    // Empty options read as `{}`.
    assert_eq!(PhpCommand::parse("CompleteWorkflow", b"").unwrap(), PhpCommand::CompleteWorkflow(Empty {}));
}

#[test]
fn ids_are_never_reused() {
    let ids = Ids::default();
    let taken: BTreeSet<u64> = (0..100).map(|_| ids.next()).collect();
    assert_eq!(taken.len(), 100);
    assert!(!taken.contains(&0), "0 is PHP's id for answers to RoadRunner");
}

fn header() -> proto::Header {
    proto::Header { fields: BTreeMap::from([("tracing".to_string(), Payload::json(&json!({"k": "v"})))]) }
}

fn server_samples() -> Vec<ServerCommand> {
    vec![
        ServerCommand::GetWorkerInfo(GetWorkerInfo { rr_version: "1".into(), ww_pid: 3 }),
        ServerCommand::StartWorkflow(StartWorkflow {
            info: workflow_info(),
            last_completion: Some(1),
            search_attributes: Some(BTreeMap::from([("CustomKeywordField".into(), TypedValue { kind: "keyword".into(), value: json!("v") })])),
        }),
        ServerCommand::InvokeSignal(InvokeSignal { run_id: "run".into(), name: "add".into() }),
        ServerCommand::InvokeQuery(InvokeQuery { run_id: "run".into(), name: "get".into() }),
        ServerCommand::InvokeUpdate(InvokeUpdate { update_id: "u1".into(), run_id: "run".into(), name: "set".into(), kind: "validate_execute".into(), replay: Some(true) }),
        ServerCommand::CancelWorkflow(RunRef { run_id: "run".into() }),
        ServerCommand::DestroyWorkflow(RunRef { run_id: "run".into() }),
        ServerCommand::StackTrace(RunRef { run_id: "run".into() }),
        ServerCommand::InvokeActivity(InvokeActivity { name: "Echo".into(), info: info(), heartbeat_details: Some(1) }),
        ServerCommand::InvokeLocalActivity(InvokeLocalActivity { name: "Echo".into(), info: ActivityInfo { is_local_activity: true, ..info() } }),
    ]
}

fn php_samples() -> Vec<PhpCommand> {
    vec![
        PhpCommand::ExecuteActivity(ExecuteActivity {
            name: "Echo".into(),
            options: ActivityOptions { task_queue_name: "default".into(), start_to_close_timeout: Duration::from_secs(5), retry_policy: Some(RetryPolicy::default()), ..Default::default() },
        }),
        PhpCommand::ExecuteLocalActivity(ExecuteLocalActivity { name: "Echo".into(), options: LocalActivityOptions { start_to_close_timeout: Duration::from_secs(2), ..Default::default() } }),
        PhpCommand::ExecuteChildWorkflow(ExecuteChildWorkflow {
            name: "Child".into(),
            options: ChildWorkflowOptions {
                workflow_id: "c1".into(),
                parent_close_policy: 2,
                memo: Some(serde_json::Map::from_iter([("m".to_string(), json!(1))])),
                ..Default::default()
            },
        }),
        PhpCommand::GetChildWorkflowExecution(GetChildWorkflowExecution { id: 9 }),
        PhpCommand::NewTimer(NewTimer { ms: 1000, summary: Some("wait".into()) }),
        PhpCommand::GetVersion(GetVersion { change_id: "chg".into(), min_supported: -1, max_supported: 2 }),
        PhpCommand::SideEffect(SideEffect::default()),
        PhpCommand::CompleteWorkflow(Empty {}),
        PhpCommand::ContinueAsNew(ContinueAsNew { name: "Wf".into(), options: ContinueAsNewOptions { task_queue_name: "q".into(), ..Default::default() } }),
        PhpCommand::UpsertWorkflowSearchAttributes(UpsertSearchAttributes { search_attributes: BTreeMap::from([("k".into(), json!("v"))]) }),
        PhpCommand::UpsertWorkflowTypedSearchAttributes(UpsertTypedSearchAttributes {
            search_attributes: BTreeMap::from([("k".into(), TypedUpsert { kind: "int64".into(), operation: "set".into(), value: json!(5) })]),
        }),
        PhpCommand::UpsertMemo(UpsertMemo { memo: BTreeMap::from([("k".into(), json!({"a": 1}))]) }),
        PhpCommand::SignalExternalWorkflow(SignalExternalWorkflow { namespace: "default".into(), workflow_id: "w".into(), run_id: String::new(), signal: "s".into(), child_workflow_only: true }),
        PhpCommand::CancelExternalWorkflow(CancelExternalWorkflow { namespace: "default".into(), workflow_id: "w".into(), run_id: "r".into() }),
        PhpCommand::Cancel(Cancel { ids: vec![3, 4] }),
        PhpCommand::UpdateValidated(UpdateRef { id: "u1".into() }),
        PhpCommand::UpdateCompleted(UpdateRef { id: "u1".into() }),
        PhpCommand::Panic(Empty {}),
        PhpCommand::UndefinedResponse(UndefinedResponse { message: "undefined".into() }),
    ]
}

fn round_trip<C: Commands + Clone + PartialEq + std::fmt::Debug>(samples: Vec<C>, names: &[&str]) {
    let seen: BTreeSet<&str> = samples.iter().map(|c| c.name()).collect();
    assert_eq!(seen, names.iter().copied().collect(), "one sample per command");
    let messages: Vec<Envelope<C>> = samples
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let request = Request::new(c).with_payloads(Payloads::of([Payload::json(&i)])).with_header(header());
            let request = if i % 3 == 0 { request.with_failure(proto::Failure::application("e", "T", false)) } else { request };
            Envelope::command(i as u64 + 1, request)
        })
        .collect();
    let batch = Batch::new(Context::activity("q"), messages.clone());
    assert_eq!(decode_frame::<C>(&batch.frame()).unwrap(), messages);
    // Options alone: every command's JSON reads back to the same value.
    for m in &messages {
        let Kind::Command(r) = &m.kind else { unreachable!() };
        assert_eq!(&C::parse(r.command.name(), &r.command.options()).unwrap(), &r.command, "{}", r.command.name());
    }
}

#[test]
fn every_server_command_round_trips() {
    round_trip(server_samples(), ServerCommand::NAMES);
}

#[test]
fn every_php_command_round_trips() {
    round_trip(php_samples(), PhpCommand::NAMES);
}

#[test]
fn command_options_json_names() {
    let opts = |c: &PhpCommand| serde_json::from_slice::<serde_json::Value>(&c.options()).unwrap();
    let samples = php_samples();
    assert_eq!(opts(&samples[5]), json!({"changeID": "chg", "minSupported": -1, "maxSupported": 2}));
    assert_eq!(opts(&samples[12]), json!({"namespace": "default", "workflowID": "w", "runID": "", "signal": "s", "childWorkflowOnly": true}));
    assert_eq!(opts(&samples[3]), json!({"id": 9}));
    assert_eq!(opts(&samples[14]), json!({"ids": [3, 4]}));
    assert_eq!(opts(&samples[7]), json!({}));
    let server = server_samples();
    let sopts = |c: &ServerCommand| serde_json::from_slice::<serde_json::Value>(&c.options()).unwrap();
    assert_eq!(sopts(&server[4]), json!({"updateId": "u1", "runId": "run", "name": "set", "type": "validate_execute", "replay": true}));
    assert_eq!(sopts(&server[1])["lastCompletion"], 1);
    assert_eq!(sopts(&server[1])["search_attributes"], json!({"CustomKeywordField": {"type": "keyword", "value": "v"}}));
    assert_eq!(sopts(&server[8])["heartbeatDetails"], 1);
    let activity = sopts(&server[8]);
    assert_eq!(activity["name"], "Echo");
    assert_eq!(activity["info"]["ActivityType"]["Name"], "Echo");
    // Optional counts are left out when absent, as Go's omitempty does.
    let plain = ServerCommand::InvokeActivity(InvokeActivity { name: "E".into(), info: info(), heartbeat_details: None });
    assert!(sopts(&plain).get("heartbeatDetails").is_none());
    // What PHP writes for ExecuteActivity (its ActivityOptions marshalling) reads.
    let php = br#"{"name":"Echo","options":{"TaskQueueName":null,"ScheduleToCloseTimeout":0,"ScheduleToStartTimeout":0,"StartToCloseTimeout":5000000000,"HeartbeatTimeout":0,"WaitForCancellation":false,"ActivityID":"","RetryPolicy":{"initial_interval":null,"backoff_coefficient":2,"maximum_interval":null,"maximum_attempts":0,"non_retryable_error_types":[]},"Summary":""}}"#;
    let PhpCommand::ExecuteActivity(e) = PhpCommand::parse("ExecuteActivity", php).unwrap() else { panic!() };
    assert_eq!(e.options.start_to_close_timeout, Duration::from_secs(5));
    assert_eq!(e.options.retry_policy.unwrap().backoff_coefficient, 2.0);
}

#[test]
fn payload_json_helpers() {
    let p = Payload::json(&json!({"a": 1}));
    assert_eq!(p.encoding(), Some(&b"json/plain"[..]));
    assert_eq!(p.decode_json::<serde_json::Value>().unwrap(), json!({"a": 1}));
    let null = Payload { metadata: BTreeMap::from([("encoding".into(), b"binary/null".to_vec())]), data: vec![] };
    assert_eq!(null.decode_json::<Option<i32>>().unwrap(), None);
    let raw = Payload { metadata: BTreeMap::from([("encoding".into(), b"binary/plain".to_vec())]), data: vec![1] };
    assert!(raw.decode_json::<serde_json::Value>().unwrap_err().contains("binary/plain"));
}
