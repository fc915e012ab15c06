//! Services with real processes: copies restarted after they exit, a copy killed at
//! `exec_timeout`, and every copy stopped with the server.

use std::path::Path;

use rr_runtime::testing::TestServer;

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
