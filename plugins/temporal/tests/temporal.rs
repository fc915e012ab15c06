//! The temporal plugin's process layer against real PHP workers (tests/php/workers/temporal.php,
//! on our own tests/php/lib/Temporal.php): the activity pool and the workflow process start with
//! `RR_MODE=temporal` / `RR_CODEC=protobuf` (the PHP worker exits otherwise), `GetWorkerInfo`
//! on the workflow process, activity round trips through the codec, and the plugin's start
//! failing clearly without a Temporal server (tests/core.rs runs it against one).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rr_runtime::config::Config;
use rr_runtime::pool::PoolError;
use rr_runtime::{Build, Services};
use rr_temporal::codec::commands::{Empty, InvokeActivity, InvokeLocalActivity, RunRef, StartWorkflow};
use rr_temporal::codec::json::{ActivityInfo, Execution, TypeName, WorkflowInfo};
use rr_temporal::codec::{ActivityOutcome, Batch, Context, Envelope, Kind, PhpCommand, Request, ServerCommand};
use rr_temporal::proto::{FailureInfo, Payload, Payloads};
use rr_temporal::workers::{PhpWorkers, WorkersError};
use serde_json::{Value, json};

fn worker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/temporal.php")
}

fn yaml(temporal: &str) -> String {
    format!("version: '3'\nserver:\n  command: \"php {}\"\ntemporal:\n  address: 127.0.0.1:7233\n{temporal}", worker().display())
}

fn build() -> Build {
    Build::new("rr", "test-1.0").plugin::<rr_temporal::Plugin>()
}

async fn start(temporal: &str) -> (Arc<Services>, PhpWorkers) {
    let config = Config::from_str(&yaml(temporal)).unwrap();
    let services = rr_runtime::host::services(&build(), &config).unwrap();
    let cfg: rr_temporal::Config = config.section("temporal").unwrap().unwrap();
    cfg.validate().unwrap();
    let workers = PhpWorkers::start(&services, &cfg).await.unwrap_or_else(|e| panic!("start: {e}"));
    (services, workers)
}

fn invoke(activity: &str, token: &[u8]) -> InvokeActivity {
    InvokeActivity {
        name: activity.into(),
        info: ActivityInfo { task_token: token.to_vec(), activity_type: TypeName { name: activity.into() }, task_queue: "default".into(), attempt: 1, ..Default::default() },
        heartbeat_details: None,
    }
}

fn args(values: &[Value]) -> Payloads {
    Payloads::of(values.iter().map(Payload::json))
}

fn value(outcome: ActivityOutcome) -> Value {
    match outcome {
        ActivityOutcome::Completed(p) => {
            assert_eq!(p.payloads.len(), 1, "{p:?}");
            p.payloads[0].decode_json().unwrap()
        }
        other => panic!("expected a result, got {other:?}"),
    }
}

/// The workflows tests/php/workers/temporal.php registers on its `default` queue, in order.
const DEFAULT_QUEUE_WORKFLOWS: [&str; 19] = [
    "SimpleWorkflow", "FailingWorkflow", "ActivityWorkflow", "E2EWorkflow", "ActivityFailureWorkflow", "LocalActivityWorkflow", "LocalBackoffWorkflow",
    "LocalBackoffCancelWorkflow", "PidWorkflow", "StepsWorkflow", "ContinuingWorkflow", "SideEffectWorkflow", "UpsertWorkflow", "ParentWorkflow",
    "ExternalWorkflow", "PanicWorkflow", "TimerWorkflow", "CancelActivityWorkflow", "HeartbeatWorkflow",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_worker_info_lists_the_task_queues() {
    let (services, workers) = start("  activities:\n    num_workers: 2\n").await;
    let infos = workers.worker_info().await.unwrap();
    assert_eq!(infos.iter().map(|i| i.task_queue()).collect::<Vec<_>>(), ["default", "orders"]);
    let default = &infos[0];
    assert_eq!(default.workflows.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), DEFAULT_QUEUE_WORKFLOWS);
    assert_eq!((default.workflows[0].signals.clone(), default.workflows[0].queries.clone()), (vec!["add".to_string()], vec!["get".to_string()]));
    assert_eq!(default.activities.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["echo", "fail", "async", "env", "sum", "heartbeat", "until_cancelled", "flaky"]);
    assert_eq!(default.options.max_concurrent_activity_execution_size, 4);
    assert_eq!(default.php_sdk_version, "2.8.3-rrtest");
    // The handshake's options reached PHP: our version and the workflow process's pid.
    let told = |name: &str| default.plugins.iter().find(|p| p.name == name).map(|p| p.version.clone()).unwrap();
    assert_eq!(told("rr_version"), "test-1.0");
    let wf_pid = workers.workflow_pid();
    assert!(wf_pid > 0);
    assert_eq!(told("ww_pid"), wf_pid.to_string());
    assert_eq!(infos[1].activities[0].name, "charge");

    // `temporal` in the pool registry is the activity pool; the workflow process is apart from it.
    let activity_pids: Vec<u32> = services.pools.get("temporal").unwrap().workers().iter().map(|w| w.pid).collect();
    assert_eq!(activity_pids.len(), 2);
    assert!(!activity_pids.contains(&wf_pid));
    assert_eq!(workers.workflow().workers().len(), 1);
    assert!(workers.workflow().config().supervisor.is_none());
    // `rr workers temporal` (informer.Workers) lists both, as RoadRunner does.
    let listed: Vec<u32> = services.plugin_workers("temporal").unwrap().iter().map(|w| w.pid).collect();
    assert_eq!(listed, [activity_pids.clone(), vec![wf_pid]].concat());
    workers.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_round_trip_through_the_codec() {
    let (_services, workers) = start("  activities:\n    num_workers: 2\n").await;
    let out = workers.invoke_activity("default", invoke("echo", b"t1"), args(&[json!("hello")]), None).await.unwrap();
    assert_eq!(value(out), json!("HELLO"));
    let out = workers.invoke_activity("default", invoke("sum", b"t2"), args(&[json!(1), json!(2), json!(39)]), None).await.unwrap();
    assert_eq!(value(out), json!(42));
    let out = workers.invoke_activity("orders", invoke("charge", b"t3"), args(&[json!(250)]), None).await.unwrap();
    assert_eq!(value(out), json!("charged 250"));

    // The process environment and the ActivityInfo as PHP read it.
    let env = value(workers.invoke_activity("default", invoke("env", &[0, 1, 254]), Payloads::default(), None).await.unwrap());
    assert_eq!((env["RR_MODE"].as_str(), env["RR_CODEC"].as_str()), (Some("temporal"), Some("protobuf")));
    assert_eq!(env["activity"], "env");
    assert_eq!(env["token"], base64::engine::general_purpose::STANDARD.encode([0u8, 1, 254]));
    assert_eq!(env["local"], false);
    assert_ne!(env["pid"].as_u64().unwrap(), u64::from(workers.workflow_pid()), "activities run on the activity pool");
    let local = InvokeLocalActivity { name: "env".into(), info: ActivityInfo { is_local_activity: true, ..invoke("env", b"la").info } };
    let env = value(workers.invoke_local_activity("default", local, Payloads::default(), None).await.unwrap());
    assert_eq!(env["local"], true);
    assert_ne!(env["pid"].as_u64().unwrap(), u64::from(workers.workflow_pid()), "local activities run on the activity pool (roadrunner#1940)");

    // An exception is an ApplicationFailure; DoNotComplete asks for async completion.
    match workers.invoke_activity("default", invoke("fail", b"t4"), Payloads::default(), None).await.unwrap() {
        ActivityOutcome::Failed(f) => {
            assert_eq!(f.message, "failed on purpose");
            let Some(FailureInfo::ApplicationFailureInfo(info)) = f.failure_info else { panic!("{f:?}") };
            assert_eq!(info.r#type, "DomainException");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let out = workers.invoke_activity("default", invoke("async", b"t5"), Payloads::default(), None).await.unwrap();
    assert_eq!(out, ActivityOutcome::Pending);
    match workers.invoke_activity("default", invoke("missing", b"t6"), Payloads::default(), None).await.unwrap() {
        ActivityOutcome::Failed(f) => assert!(f.message.contains("`missing` is not registered"), "{f:?}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    // A task queue PHP does not know: PHP's error frame, the worker lives on.
    match workers.invoke_activity("nope", invoke("echo", b"t7"), args(&[json!("x")]), None).await {
        Err(WorkersError::Pool(PoolError::SoftError(message))) => assert!(message.contains("no worker for task queue `nope`"), "{message}"),
        other => panic!("expected PHP's error, got {other:?}"),
    }
    let out = workers.invoke_activity("default", invoke("echo", b"t8"), args(&[json!("again")]), None).await.unwrap();
    assert_eq!(value(out), json!("AGAIN"));
    workers.destroy().await;
}

fn start_workflow(workers: &PhpWorkers, workflow_type: &str, rr_id: &str, args: Payloads) -> Batch<ServerCommand> {
    let info = WorkflowInfo {
        workflow_execution: Execution { id: "wf-1".into(), run_id: "run-1".into() },
        workflow_type: TypeName { name: workflow_type.into() },
        task_queue_name: "default".into(),
        namespace: "default".into(),
        attempt: 1,
        ..Default::default()
    };
    let start = StartWorkflow { info, last_completion: None, search_attributes: None };
    let request = Request::new(ServerCommand::StartWorkflow(start)).with_payloads(args);
    Batch::new(Context::workflow("default", rr_id, std::time::SystemTime::now()), vec![Envelope::command(workers.next_id(), request)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_batch_round_trips_on_the_workflow_process() {
    let (_services, workers) = start("  activities:\n    num_workers: 1\n").await;
    workers.worker_info().await.unwrap();
    let rr_id = Context::new_rr_id();
    let reply = workers.workflow_exec(start_workflow(&workers, "SimpleWorkflow", &rr_id, args(&[json!("hello")]))).await.unwrap();
    assert_eq!(reply.len(), 1, "{reply:?}");
    let Kind::Command(request) = &reply[0].kind else { panic!("expected a command, got {reply:?}") };
    assert_eq!(request.command, PhpCommand::CompleteWorkflow(Empty {}));
    assert!(reply[0].id > 0, "PHP numbers its own commands");
    let result: Value = request.payloads.as_ref().unwrap().payloads[0].decode_json().unwrap();
    // PHP found the instance id on the message and the WorkflowInfo in the options.
    assert_eq!(result, json!({"result": "HELLO", "rr_id": rr_id, "workflow_id": "wf-1"}));

    let failing = workers.workflow_exec(start_workflow(&workers, "FailingWorkflow", &Context::new_rr_id(), Payloads::default())).await.unwrap();
    let Kind::Command(request) = &failing[0].kind else { panic!("{failing:?}") };
    assert_eq!(request.failure.as_ref().map(|f| f.message.as_str()), Some("workflow failed on purpose"));

    // DestroyWorkflow is answered with id 0; the PHP side forgot the instance (one left running).
    let destroy = Envelope::command(workers.next_id(), Request::new(ServerCommand::DestroyWorkflow(RunRef { run_id: rr_id.clone() })));
    let mut batch = Batch::new(Context::workflow("default", rr_id.clone(), std::time::SystemTime::now()), vec![destroy]);
    batch.context.replay = true;
    let reply = workers.workflow_exec(batch).await.unwrap();
    assert_eq!(reply, vec![Envelope::response(0, Some(args(&[json!(1)])))]);
    workers.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_workflow_process_is_reported_not_used_silently() {
    let (_services, workers) = start("  activities:\n    num_workers: 1\n").await;
    let batch = || start_workflow(&workers, "SimpleWorkflow", "rr-1", args(&[json!("x")]));
    // No handshake yet: no process is known to hold anything.
    assert!(matches!(workers.workflow_exec(batch()).await, Err(WorkersError::WorkflowProcessReplaced { old: 0, .. })));
    workers.worker_info().await.unwrap();
    workers.workflow_exec(batch()).await.unwrap();

    let old = workers.workflow_pid();
    let killed = std::process::Command::new("kill").args(["-9", &old.to_string()]).status().unwrap();
    assert!(killed.success());
    // The pool replaces it (no supervisor, but a dead worker is always replaced).
    let started = std::time::Instant::now();
    while workers.workflow_pid() == old || workers.workflow_pid() == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the workflow process was not replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new = workers.workflow_pid();
    match workers.workflow_exec(batch()).await {
        Err(WorkersError::WorkflowProcessReplaced { old: o, new: n }) => assert_eq!((o, n), (old, new)),
        other => panic!("expected the replacement to be reported, got {other:?}"),
    }
    // A new handshake adopts the new process.
    workers.worker_info().await.unwrap();
    workers.workflow_exec(batch()).await.unwrap();
    workers.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_activity_workers_leave_only_the_workflow_process() {
    let (services, workers) = start("  disable_activity_workers: true\n").await;
    assert!(workers.activities().is_none());
    assert_eq!(workers.worker_info().await.unwrap().len(), 2);
    let registered: Vec<u32> = services.pools.get("temporal").unwrap().workers().iter().map(|w| w.pid).collect();
    assert_eq!(registered, [workers.workflow_pid()], "status reads the workflow process then");
    assert_eq!(services.plugin_workers("temporal").unwrap().len(), 1, "listed once");
    let err = workers.invoke_activity("default", invoke("echo", b"t"), args(&[json!("x")]), None).await.unwrap_err();
    assert!(matches!(err, WorkersError::NoActivityWorkers), "{err}");
    workers.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_replaces_every_process() {
    let (_services, workers) = start("  activities:\n    num_workers: 1\n").await;
    let before = (workers.workflow_pid(), workers.activities().unwrap().workers()[0].pid);
    workers.reset().await.unwrap();
    let after = (workers.workflow_pid(), workers.activities().unwrap().workers()[0].pid);
    assert!(before.0 != after.0 && before.1 != after.1, "{before:?} -> {after:?}");
    assert_eq!(workers.worker_info().await.unwrap()[0].task_queue(), "default");
    workers.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_temporal_server_the_plugin_stops_naming_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let yaml = yaml("  activities:\n    num_workers: 1\n").replace("127.0.0.1:7233", &format!("127.0.0.1:{port}"));
    let config = Config::from_str(&yaml).unwrap();
    let host = rr_runtime::host::Host::init(&build(), &config).unwrap();
    let services = host.services.clone();
    let result = tokio::time::timeout(Duration::from_secs(120), host.run_until(std::future::pending(), Duration::from_secs(10))).await.expect("the server stops by itself");
    let message = result.expect_err("the plugin must not pretend to serve").to_string();
    assert!(message.contains(&format!("cannot connect to the Temporal server at 127.0.0.1:{port} (`temporal.address`)")), "{message}");

    // The RPC names come from that handshake.
    let call = |method: &'static str, arg: &'static str| {
        let services = services.clone();
        async move {
            let reply = services.rpc.call(method, rr_runtime::rpc::Codec::Json, bytes::Bytes::from(arg)).await.unwrap();
            serde_json::from_slice::<Value>(&reply).unwrap()
        }
    };
    assert_eq!(call("temporal.GetWorkflowNames", "true").await, json!([DEFAULT_QUEUE_WORKFLOWS.as_slice(), &["PanicWorkflow", "OrderWorkflow"]].concat()));
    assert_eq!(call("temporal.GetActivityNames", "true").await, json!(["echo", "fail", "async", "env", "sum", "heartbeat", "until_cancelled", "flaky", "charge"]));
    assert_eq!(call("temporal.UpdateAPIKey", r#""key-1""#).await, json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_section_fails_init_with_the_key() {
    let config = Config::from_str(&yaml("  metrics:\n    driver: influx\n")).unwrap();
    let err = rr_runtime::host::Host::init(&build(), &config).err().expect("init fails").to_string();
    assert!(err.contains("`temporal.metrics.driver`: unknown metrics driver `influx`"), "{err}");
}
