//! Every kv.* RPC method on every driver through the PHP client speaking protobuf; TTL expiry;
//! the errors PHP matches on; a Redis Sentinel failover. Needs Redis on 127.0.0.1:6379 and
//! memcached on 127.0.0.1:11211; the Sentinel test starts its own redis-server processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rr_runtime::testing::{free_port, TestServer};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn calls(rpc: &str, calls: Value) -> Vec<Value> {
    let out = Command::new("php").arg(root().join("tests/php/kv_client.php")).arg(calls.to_string()).env("RR_RPC", rpc).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn rfc3339_in(secs: i64) -> String {
    let out = Command::new("date").args(["-u", "-d", &format!("+{secs} seconds"), "+%Y-%m-%dT%H:%M:%S+00:00"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn scenario(rpc: &str, storage: &str) {
    let later = rfc3339_in(3600);
    let soon = rfc3339_in(1);
    let r = calls(
        rpc,
        json!([
            ["Clear", storage, []],
            ["Set", storage, [["a", "value-a", ""], ["b", "value-b", later], ["gone", "x", soon]]],
            ["Has", storage, [["a"], ["b"], ["missing"]]],
            ["MGet", storage, [["a"], ["b"], ["missing"]]],
            ["TTL", storage, [["a"], ["b"], ["missing"]]],
            ["MExpire", storage, [["a", "", later]]],
            ["TTL", storage, [["a"]]],
            ["Delete", storage, [["a"]]],
            ["Has", storage, [["a"], ["b"]]],
        ]),
    );
    assert!(r.iter().all(|x| x.get("ok").is_some()), "{storage}: {r:?}");
    let keys = |v: &Value| v["ok"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(keys(&r[2]), ["a", "b"], "{storage}: Has");
    assert_eq!(r[3]["ok"], json!([{"key": "a", "value": "value-a", "timeout": ""}, {"key": "b", "value": "value-b", "timeout": ""}]), "{storage}: MGet");
    assert_eq!(r[4]["ok"], json!([{"key": "a", "value": "", "timeout": ""}, {"key": "b", "value": "", "timeout": later}]), "{storage}: TTL");
    assert_eq!(r[6]["ok"][0]["timeout"], later, "{storage}: MExpire");
    assert_eq!(keys(&r[8]), ["b"], "{storage}: Delete");
    std::thread::sleep(Duration::from_millis(2200));
    let r = calls(rpc, json!([["Has", storage, [["gone"], ["b"]]], ["Clear", storage, []], ["Has", storage, [["b"]]]]));
    assert_eq!(keys(&r[0]), ["b"], "{storage}: the key with a 1 s timeout expired");
    assert_eq!(keys(&r[2]), Vec::<String>::new(), "{storage}: Clear");
}

/// memcached cannot report TTLs: everything else, and the `_plugin_ttl` error PHP expects.
fn memcached_scenario(rpc: &str) {
    let r = calls(
        rpc,
        json!([
            ["Clear", "mc", []],
            ["Set", "mc", [["a", "value-a", ""], ["gone", "x", rfc3339_in(1)]]],
            ["Has", "mc", [["a"], ["gone"], ["missing"]]],
            ["MGet", "mc", [["a"], ["missing"]]],
            ["TTL", "mc", [["a"]]],
            ["Delete", "mc", [["a"]]],
            ["Has", "mc", [["a"]]],
        ]),
    );
    let keys = |v: &Value| v["ok"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(keys(&r[2]), ["a", "gone"]);
    assert_eq!(r[3]["ok"], json!([{"key": "a", "value": "value-a", "timeout": ""}]));
    assert!(r[4]["error"].as_str().unwrap().contains("_plugin_ttl"), "{}", r[4]);
    assert_eq!(keys(&r[6]), Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(2200));
    let r = calls(rpc, json!([["Has", "mc", [["gone"]]]]));
    assert_eq!(keys(&r[0]), Vec::<String>::new(), "memcached expired the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_redis_boltdb_and_memcached_drivers() {
    assert!(std::net::TcpStream::connect("127.0.0.1:6379").is_ok(), "Redis is not reachable on 127.0.0.1:6379 (tests/run.sh starts it)");
    assert!(std::net::TcpStream::connect("127.0.0.1:11211").is_ok(), "memcached is not reachable on 127.0.0.1:11211 (tests/run.sh installs and starts it)");
    let port = free_port();
    let rpc = format!("tcp://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kv.db").display().to_string();
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: {rpc}\nkv:\n  mem:\n    driver: memory\n    config: {{}}\n  red:\n    driver: redis\n    config:\n      addrs: [\"127.0.0.1:6379\"]\n      db: 5\n  bolt:\n    driver: boltdb\n    config:\n      file: {db}\n  mc:\n    driver: memcached\n    config:\n      addr: [\"127.0.0.1:11211\"]\n"
    );
    let build = rr_runtime::Build::new("rr", "test")
        .plugin::<rr_rpc::Plugin>()
        .plugin::<rr_kv_memory::Plugin>()
        .plugin::<rr_kv_redis::Plugin>()
        .plugin::<rr_kv_memcached::Plugin>()
        .plugin::<rr_kv_boltdb::Plugin>()
        .plugin::<rr_kv::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    // Ready when the storages answer (the PHP client blocks, so it runs off the runtime).
    let storages_answer = || {
        let rpc = rpc.clone();
        async move {
            let r = tokio::task::spawn_blocking(move || calls(&rpc, json!([["Has", "red", [["x"]]]]))).await.ok()?;
            r[0].get("ok").is_some().then_some(())
        }
    };
    server.until("the kv storages", storages_answer).await;

    let rpc2 = rpc.clone();
    tokio::task::spawn_blocking(move || {
        scenario(&rpc2, "mem");
        scenario(&rpc2, "red");
        scenario(&rpc2, "bolt");
        memcached_scenario(&rpc2);
        let r = calls(&rpc2, json!([["Has", "nope", [["x"]]], ["Has", "", [["x"]]]]));
        assert!(r[0]["error"].as_str().unwrap().contains("no such storage: nope"), "{r:?}");
        assert!(r[1]["error"].as_str().unwrap().contains("no storage provided"), "{r:?}");
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
}

/// A Redis process of this test, killed when dropped.
struct RedisProcess(std::process::Child);

impl RedisProcess {
    fn start(args: &[&str]) -> RedisProcess {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is needed for the Sentinel test (Debian package redis-server)");
        RedisProcess(child)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().expect("redis-cli (Debian package redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `master_name` makes `addrs` Sentinels: the storage writes to the master they name, and after
/// the master dies and the Sentinel promotes the replica, the next call goes to the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_through_sentinel_follows_a_failover() {
    let (master_port, replica_port, sentinel_port, rpc_port) = (free_port(), free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let base = |port: u16| vec!["--port".to_string(), port.to_string(), "--bind".into(), "127.0.0.1".into(), "--save".into(), String::new(), "--appendonly".into(), "no".into()];
    let master_args = base(master_port);
    let mut replica_args = base(replica_port);
    replica_args.extend(["--replicaof".into(), "127.0.0.1".into(), master_port.to_string()]);
    let mut master = Some(RedisProcess::start(&master_args.iter().map(String::as_str).collect::<Vec<_>>()));
    let _replica = RedisProcess::start(&replica_args.iter().map(String::as_str).collect::<Vec<_>>());
    let sentinel_conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &sentinel_conf,
        format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor rrtest 127.0.0.1 {master_port} 1\nsentinel down-after-milliseconds rrtest 500\nsentinel failover-timeout rrtest 5000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let _sentinel = RedisProcess::start(&[sentinel_conf.to_str().unwrap(), "--sentinel"]);
    wait_until("the replica to sync", || redis_cli(replica_port, &["info", "replication"]).contains("master_link_status:up"));
    wait_until("the Sentinel to see the replica", || redis_cli(sentinel_port, &["sentinel", "replicas", "rrtest"]).contains(&replica_port.to_string()));

    let rpc = format!("tcp://127.0.0.1:{rpc_port}");
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: {rpc}\nkv:\n  ha:\n    driver: redis\n    config:\n      addrs: [\"127.0.0.1:{sentinel_port}\"]\n      master_name: rrtest\n"
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_kv_redis::Plugin>().plugin::<rr_kv::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let storage_answers = || {
        let rpc = rpc.clone();
        async move {
            let r = tokio::task::spawn_blocking(move || calls(&rpc, json!([["Set", "ha", [["k", "before", ""]]]]))).await.ok()?;
            r[0].get("ok").is_some().then_some(())
        }
    };
    server.until("the Sentinel-backed storage", storage_answers).await;

    let rpc2 = rpc.clone();
    tokio::task::spawn_blocking(move || {
        assert_eq!(redis_cli(master_port, &["get", "k"]), "before", "written to the master the Sentinel named");
        wait_until("replication of k", || redis_cli(replica_port, &["get", "k"]) == "before");
        drop(master.take());
        wait_until("the failover", || redis_cli(sentinel_port, &["sentinel", "get-master-addr-by-name", "rrtest"]).ends_with(&replica_port.to_string()));
        // The first call after the failover already reaches the new master.
        let r = calls(&rpc2, json!([["MGet", "ha", [["k"]]], ["Set", "ha", [["after", "yes", ""]]]]));
        assert_eq!(r[0]["ok"], json!([{"key": "k", "value": "before", "timeout": ""}]), "{r:?}");
        assert!(r[1].get("ok").is_some(), "{r:?}");
        assert_eq!(redis_cli(replica_port, &["get", "after"]), "yes", "written to the promoted replica");
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
}
