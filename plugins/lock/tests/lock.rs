//! The `lock.*` RPC service through our PHP lock client (roadrunner-php/lock's API, protobuf on
//! the wire): every method and error, the wire bytes of PLUGINS-MORE.md §B, and contention from
//! many PHP processes (waits that time out, TTLs that expire while others wait) with no lock
//! granted twice and nothing left behind.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use rr_runtime::rpc::Codec;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};

fn php(script: &str) -> Command {
    let mut cmd = Command::new("php");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php").join(script));
    cmd
}

fn output(child: Child) -> Vec<Value> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Start a PHP process running `calls` (see tests/php/lock_client.php) without waiting for it.
fn spawn_calls(rpc: &str, calls: Value) -> Child {
    php("lock_client.php").arg(calls.to_string()).env("RR_RPC", rpc).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn calls(rpc: &str, calls: Value) -> Vec<Value> {
    output(spawn_calls(rpc, calls))
}

async fn server() -> (TestServer, String) {
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_lock::Plugin>();
    let mut server = TestServer::start(&build, &format!("version: '3'\nrpc:\n  listen: {rpc}\n"));
    server.rpc(&rpc).await;
    (server, rpc)
}

/// Run blocking PHP-driving code off the runtime the server runs on.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn oks(results: &[Value]) -> Vec<Value> {
    results.iter().map(|r| r.get("ok").cloned().unwrap_or_else(|| panic!("call failed: {r}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_and_error_through_php() {
    let (server, rpc) = server().await;
    blocking(move || {
        let r = calls(
            &rpc,
            json!([
                ["lock", ["r1", "a", 10, 0]],
                ["lock", ["r1", "a", 10, 0]],
                ["lock", ["r1", "b", 10, 0.05]],
                ["lockRead", ["r1", "c", 10, 0]],
                ["exists", ["r1"]],
                ["exists", ["r1", "a"]],
                ["exists", ["r1", "b"]],
                ["release", ["r1", "b"]],
                ["release", ["r1", "a"]],
                ["exists", ["r1"]],
                ["release", ["r1", "a"]],
            ]),
        );
        let expected = json!(["a", false, false, false, true, true, false, false, true, false, false]);
        assert_eq!(oks(&r), expected.as_array().unwrap().clone(), "exclusive lock, not re-entrant, owner-only release");

        let r = calls(
            &rpc,
            json!([
                ["lockRead", ["r2", "x", 10, 0]],
                ["lockRead", ["r2", "y", 10, 0]],
                ["lock", ["r2", "x", 10, 0.05]],
                ["release", ["r2", "y"]],
                ["lock", ["r2", "x", 10, 0]],
                ["exists", ["r2", "x"]],
                ["lockRead", ["r2", "z", 10, 0]],
                ["lockRead", ["r2", "x", 10, 0]],
                ["updateTTL", ["r2", "x", 20]],
                ["updateTTL", ["r2", "nope", 1]],
                ["updateTTL", ["unknown", "x", 1]],
                ["release", ["r2", "x"]],
                ["exists", ["r2"]],
            ]),
        );
        let expected = json!(["x", "y", false, true, "x", true, false, false, true, false, false, true, false]);
        assert_eq!(oks(&r), expected.as_array().unwrap().clone(), "shared locks; the only reader may take the write lock");

        let r = calls(
            &rpc,
            json!([
                ["forceRelease", ["r3"]],
                ["lockRead", ["r3", "p", 10, 0]],
                ["lockRead", ["r3", "q", 10, 0]],
                ["exists", ["r3", "p"]],
                ["forceRelease", ["r3"]],
                ["exists", ["r3"]],
                ["lock", ["r3", "w", 10, 0]],
                ["forceRelease", ["r3"]],
                ["exists", ["r3", "w"]],
            ]),
        );
        assert_eq!(oks(&r), json!([false, "p", "q", true, true, false, "w", true, false]).as_array().unwrap().clone(), "forceRelease");

        // A TTL that runs out while another caller waits hands the lock over.
        let r = calls(&rpc, json!([["lock", ["r5", "t", 0.2, 0]], ["lock", ["r5", "u", 10, 10]], ["exists", ["r5", "t"]], ["release", ["r5", "u"]]]));
        assert_eq!(oks(&r), json!(["t", "u", false, true]).as_array().unwrap().clone(), "TTL expiry");

        let r = calls(
            &rpc,
            json!([
                ["lock", ["r4", "", 1, 0]],
                ["lockRead", ["r4", "", 1, 0]],
                ["release", ["r4", ""]],
                ["exists", ["r4", ""]],
                ["updateTTL", ["r4", "", 1]],
                ["lock", ["r4", "n", -1, 0]],
                ["lockRead", ["r4", "n", 1, -0.5]],
                ["exists", ["r4"]],
            ]),
        );
        for e in &r[..5] {
            assert!(e["error"].as_str().unwrap().starts_with("Error 'empty ID is not allowed' on tcp://"), "{e}");
        }
        assert!(r[5]["error"].as_str().unwrap().contains("ttl must not be negative, got -1000000 microseconds"), "{}", r[5]);
        assert!(r[6]["error"].as_str().unwrap().contains("wait must not be negative, got -500000 microseconds"), "{}", r[6]);
        assert_eq!(r[7], json!({"ok": false}), "failed calls leave nothing behind");

        let r = calls(&rpc, json!([["lock", ["", "n", 1, 0]], ["lockRead", ["", "n", 1, 0]], ["exists", [""]]]));
        for e in &r[..2] {
            assert!(e["error"].as_str().unwrap().starts_with("Error 'empty resource is not allowed' on tcp://"), "{e}");
        }
        assert_eq!(r[2], json!({"ok": false}), "no lock on an empty resource");
    })
    .await;
    server.stop().await.unwrap();
}

/// The bytes of PLUGINS-MORE.md §B: `lock('pdf:create', 'ab', ttl: 10, waitTTL: 5)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_bytes_of_the_spec() {
    let (mut server, rpc) = server().await;
    let mut client = server.rpc(&rpc).await;
    let request = b"\x0a\x0apdf:create\x12\x02ab\x18\x80\xad\xe2\x04\x20\xc0\x96\xb1\x02";
    assert_eq!(&client.call("lock.Lock", Codec::Proto, request).await.unwrap()[..], b"\x08\x01");
    let other = b"\x0a\x0apdf:create\x12\x02cd\x18\x00\x20\x00";
    assert_eq!(&client.call("lock.Lock", Codec::Proto, other).await.unwrap()[..], b"", "ok=false is the empty message");
    assert_eq!(&client.call("lock.Exists", Codec::Proto, b"\x0a\x0apdf:create\x12\x01*").await.unwrap()[..], b"\x08\x01");
    assert_eq!(&client.call("lock.ForceRelease", Codec::Proto, b"\x0a\x0apdf:create").await.unwrap()[..], b"\x08\x01");
    let err = client.call("lock.Lock", Codec::Proto, b"\x0a\x0apdf:create").await.unwrap_err();
    assert_eq!(err.to_string(), "empty ID is not allowed");
    let err = client.call("lock.Lock", Codec::Json, b"{}").await.unwrap_err();
    assert_eq!(err.to_string(), "message type is not a proto");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_grants_no_lock_twice_and_leaves_nothing_behind() {
    let (server, rpc) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let marker_dir = dir.path().to_path_buf();
    blocking(move || {
        let contender = |role: &str, rounds: u32, wait: &str| {
            php("lock_contender.php")
                .args([marker_dir.to_str().unwrap(), "shared-resource", role, &rounds.to_string(), wait])
                .env("RR_RPC", &rpc)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        // Patient writers and readers always get the lock; impatient ones (1 ms) often do not.
        let patient: Vec<_> = (0..6).map(|_| contender("writer", 25, "30")).chain((0..4).map(|_| contender("reader", 25, "30"))).collect();
        let impatient: Vec<_> = (0..3).map(|_| contender("writer", 25, "0")).chain((0..2).map(|_| contender("reader", 25, "0"))).collect();
        for (child, patient) in patient.into_iter().map(|c| (c, true)).chain(impatient.into_iter().map(|c| (c, false))) {
            let report = &output(child)[0];
            assert_eq!(report["violations"], json!([]), "{report}");
            assert_eq!(report["granted"].as_u64().unwrap() + report["timeouts"].as_u64().unwrap(), 25, "{report}");
            if patient {
                assert_eq!(report["granted"], 25, "a 30 s wait is never too short here: {report}");
            }
        }
        assert_eq!(oks(&calls(&rpc, json!([["exists", ["shared-resource"]]]))), [json!(false)], "every lock was released");
    })
    .await;
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no marker left: every holder finished its critical section");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_time_out_and_expiring_ttls_hand_over_to_waiters() {
    let (server, rpc) = server().await;
    blocking(move || {
        // A holder with a long TTL: every other writer and reader gives up after its 0.1 s wait.
        assert_eq!(oks(&calls(&rpc, json!([["lock", ["held", "holder", 60, 0]]]))), [json!("holder")]);
        let waiters: Vec<_> =
            (0..8).map(|i| spawn_calls(&rpc, json!([[if i % 2 == 0 { "lock" } else { "lockRead" }, ["held", null, 10, 0.1]]]))).collect();
        for w in waiters {
            assert_eq!(oks(&output(w)), [json!(false)]);
        }
        assert_eq!(oks(&calls(&rpc, json!([["release", ["held", "holder"]], ["exists", ["held"]]]))), [json!(true), json!(false)]);

        // Holders that never release (their TTL is 0.2 s): each waiter gets the lock in turn.
        let abandoners: Vec<_> = (0..6).map(|_| spawn_calls(&rpc, json!([["lock", ["abandoned", null, 0.2, 30]]]))).collect();
        for a in abandoners {
            assert!(oks(&output(a))[0].is_string(), "every waiter got the lock once the previous TTL ran out");
        }
        // The last TTL runs out too: a lock with a long wait is granted, then nothing is held.
        let r = calls(&rpc, json!([["lock", ["abandoned", "last", 10, 30]], ["release", ["abandoned", "last"]], ["exists", ["abandoned"]]]));
        assert_eq!(oks(&r), [json!("last"), json!(true), json!(false)]);
    })
    .await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_killed_while_waiting_never_get_the_lock() {
    let (server, rpc) = server().await;
    blocking(move || {
        assert_eq!(oks(&calls(&rpc, json!([["lock", ["res", "holder", 100, 0]]]))), [json!("holder")]);
        // Writers and readers with a long TTL and a long wait, killed while they wait.
        let mut dead: Vec<_> = (0..10)
            .map(|i| spawn_calls(&rpc, json!([[if i % 2 == 0 { "lock" } else { "lockRead" }, ["res", format!("dead{i}"), 100, 1000]]])))
            .collect();
        // Long enough for PHP to start and call (no outcome depends on it: a process killed
        // before it called simply never waits).
        std::thread::sleep(std::time::Duration::from_millis(1500));
        for d in &mut dead {
            d.kill().unwrap();
            d.wait().unwrap();
        }
        let r = calls(&rpc, json!([["release", ["res", "holder"]], ["lock", ["res", "live", 10, 5]], ["exists", ["res", "live"]]]));
        assert_eq!(oks(&r), [json!(true), json!("live"), json!(true)], "a live client gets the lock");
        let probes: Vec<_> = (0..10).map(|i| json!(["exists", ["res", format!("dead{i}")]])).collect();
        assert!(oks(&calls(&rpc, json!(probes))).iter().all(|held| held == &json!(false)), "no killed waiter holds the lock");
        let r = calls(&rpc, json!([["release", ["res", "live"]], ["exists", ["res"]]]));
        assert_eq!(oks(&r), [json!(true), json!(false)]);
    })
    .await;
    server.stop().await.unwrap();
}
