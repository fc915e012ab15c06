//! Services with real processes: copies restarted after they exit, a copy killed at
//! `exec_timeout`, and every copy stopped with the server; the `service.*` RPC methods through
//! our PHP client (spiral/roadrunner-services' Manager API), with their error texts.

use std::path::{Path, PathBuf};
use std::process::Command;

use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};

fn pids(log: &Path) -> Vec<i32> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(|l| l.parse().unwrap()).collect()
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purpose: it no longer runs.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_restart_time_out_and_stop_with_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/service.php");
    let log = |name: &str| dir.path().join(format!("{name}.log"));
    let service = |name: &str, sleep_ms: u64, extra: &str| {
        format!(
            "  {name}:\n    command: \"php {}\"\n    env:\n      SERVICE_LOG: {}\n      SLEEP_MS: \"{sleep_ms}\"\n{extra}",
            script.display(),
            log(name).display()
        )
    };
    let yaml = format!(
        "version: '3'\nservice:\n{}{}{}",
        service("ticker", 100, "    process_num: 2\n    remain_after_exit: true\n    restart_sec: 1\n"),
        service("sleeper", 60_000, "    exec_timeout: 1s\n"),
        service("stays", 60_000, "    timeout_stop_sec: 2\n"),
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_service::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("two ticker restarts per copy", || async { (pids(&log("ticker")).len() >= 4).then_some(()) }).await;
    let sleeper = server.until("the sleeper", || async { pids(&log("sleeper")).first().copied() }).await;
    server.until("exec_timeout to kill the sleeper", || async { (!alive(sleeper)).then_some(()) }).await;
    assert_eq!(pids(&log("sleeper")).len(), 1, "without remain_after_exit a copy is not started again");
    let stays = pids(&log("stays"))[0];
    assert!(alive(stays));
    server.stop().await.unwrap();
    assert!(!alive(stays), "the server's stop stops its services");
}

#[test]
fn config_errors_name_the_key() {
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_service::Plugin>();
    let err = |yaml: &str| rr_runtime::host::Host::init(&build, &rr_runtime::config::Config::from_str(yaml).unwrap()).err().unwrap().to_string();
    assert!(err("version: '3'\nservice:\n  x:\n    command: \"\"\n").contains("service.x.command"));
    let unknown = err("version: '3'\nservice:\n  x:\n    command: php\n    proces_num: 2\n");
    assert!(unknown.contains("proces_num"), "{unknown}");
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/service.php")
}

fn calls(rpc: &str, calls: Value) -> Vec<Value> {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/services_client.php");
    let out = Command::new("php").arg(client).arg(calls.to_string()).env("RR_RPC", rpc).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn call(rpc: &str, method: &str, args: Value) -> Value {
    calls(rpc, json!([[method, args]])).remove(0)
}

fn error(reply: &Value) -> &str {
    reply["error"].as_str().unwrap_or_else(|| panic!("expected an error: {reply}"))
}

/// The pids of a service's processes, once every one of them runs.
fn running_pids(rpc: &str, name: &str) -> Option<Vec<i32>> {
    let statuses = call(rpc, "statuses", json!([name]))["ok"].as_array()?.clone();
    let running = statuses.iter().all(|s| s["error"].is_null() && s["memory_usage"].as_u64() > Some(0));
    running.then(|| statuses.iter().map(|s| s["pid"].as_i64().unwrap() as i32).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_creates_probes_restarts_and_terminates_services() {
    let dir = tempfile::tempdir().unwrap();
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    let command = format!("php {}", script().display());
    let log = dir.path().join("created.log").display().to_string();
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: {rpc}\nservice:\n  configured:\n    command: \"{command}\"\n    service_name_in_log: true\n    env:\n      SERVICE_LOG: {}\n      SLEEP_MS: \"60000\"\n",
        dir.path().join("configured.log").display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_service::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.rpc(&rpc).await;

    let (rpc2, dir2) = (rpc.clone(), dir.path().to_path_buf());
    let (created, restarted) = tokio::task::spawn_blocking(move || {
        let rpc = rpc2.as_str();
        let env = json!({"SERVICE_LOG": log, "sleep_ms": "60000"});
        let r = calls(
            rpc,
            json!([
                ["list", []],
                ["create", ["worker", command, 2, 0, false, env]],
                ["create", ["worker", command, 1, 0, false, env]],
                ["create", ["none", command, 0]],
                ["create", ["bad", "/nonexistent/binary --flag", 2]],
                ["list", []],
            ]),
        );
        assert_eq!(r[0], json!({"ok": ["configured"]}));
        assert_eq!(r[1], json!({"ok": true}));
        assert_eq!(error(&r[2]), format!("Error 'the service with worker name already exists' on {rpc}"));
        assert_eq!(error(&r[3]), format!("Error 'the service with none name should have at least 1 process' on {rpc}"));
        assert!(error(&r[4]).contains("cannot start `/nonexistent/binary --flag`: No such file or directory"), "{}", r[4]);
        assert_eq!(r[5], json!({"ok": ["configured", "worker"]}), "a service that could not start is not kept");
        let r = calls(rpc, json!([["create", ["", command, 1]], ["create", ["a/b", command, 1]], ["create", ["..", command, 1]], ["list", []]]));
        assert_eq!(error(&r[0]), format!("Error 'the service name is empty; give the service a name' on {rpc}"));
        assert_eq!(error(&r[1]), format!("Error 'the service name `a/b` must not contain `/` or `..`' on {rpc}"));
        assert_eq!(error(&r[2]), format!("Error 'the service name `..` must not contain `/` or `..`' on {rpc}"));
        assert_eq!(r[3], json!({"ok": ["configured", "worker"]}), "no service with a bad name is created");

        let created = poll(|| running_pids(rpc, "worker"));
        assert_eq!(created.len(), 2);
        let statuses = call(rpc, "statuses", json!(["worker"]))["ok"].clone();
        assert_eq!(statuses[0]["command"], json!(command));
        assert_eq!(statuses[0]["error"], Value::Null);
        assert!(statuses[0]["cpu_percent"].as_f64().is_some_and(|cpu| cpu >= 0.0), "{statuses}");
        let status = call(rpc, "status", json!(["worker"]))["ok"].clone();
        assert_eq!(status["pid"], json!(created[1]), "Status reports the last process");

        assert_eq!(call(rpc, "restart", json!(["worker"])), json!({"ok": true}));
        let restarted = poll(|| running_pids(rpc, "worker"));
        assert!(created.iter().all(|p| !restarted.contains(p)), "{created:?} -> {restarted:?}");

        let r = calls(
            rpc,
            json!([
                ["terminate", ["worker"]],
                ["list", []],
                ["terminate", ["worker"]],
                ["restart", ["worker"]],
                ["statuses", ["worker"]],
                ["status", ["worker"]],
            ]),
        );
        assert_eq!(r[..2], [json!({"ok": true}), json!({"ok": ["configured"]})]);
        for e in &r[2..] {
            assert_eq!(error(e), format!("Error 'the service with worker name doesn't exist' on {rpc}"));
        }

        // A process that exits: Statuses keeps its pid and command and reports the error.
        let brief = json!({"SERVICE_LOG": dir2.join("brief.log"), "SLEEP_MS": "0"});
        assert_eq!(call(rpc, "create", json!(["brief", command, 1, 0, false, brief])), json!({"ok": true}));
        let gone = poll(|| {
            let s = call(rpc, "statuses", json!(["brief"]))["ok"][0].clone();
            s["error"].as_str().map(|e| (s["pid"].as_i64().unwrap(), e.to_string()))
        });
        assert_eq!(gone.1, format!("process {} is not running", gone.0));
        assert!(error(&call(rpc, "status", json!(["brief"]))).contains("is not running"));
        (created, restarted)
    })
    .await
    .unwrap();
    for pid in created.iter().chain(&restarted) {
        assert!(!alive(*pid), "terminated and restarted processes are gone: {pid}");
    }
    server.stop().await.unwrap();
}

/// Retry `probe` until it yields a value (bounded: a broken server fails the test, not hangs it).
fn poll<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = probe() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("gave up waiting");
}
