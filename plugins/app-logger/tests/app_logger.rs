//! roadrunner-php/app-logger's calls through our PHP client, written by the server's logger as
//! `logs` configures it (production mode: JSON lines to a file; `channels.app.level` above the
//! base level). One test: a process has one logger.

use std::path::Path;
use std::process::Command;

use rr_runtime::config::Config;
use rr_runtime::rpc::Codec;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};

fn php_calls(rpc: &str, calls: Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/app_logger_client.php");
    let out = Command::new("php").arg(script).arg(calls.to_string()).env("RR_RPC", rpc).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_and_attributes_through_the_servers_logger() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rr.log");
    let rpc = format!("tcp://127.0.0.1:{}", free_port());
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: {rpc}\nlogs:\n  mode: production\n  level: debug\n  output: {}\n  channels:\n    app:\n      level: info\n",
        log.display()
    );
    let _guard = rr_runtime::logging::init(&Config::from_str(&yaml).unwrap()).unwrap();
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_app_logger::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let mut client = server.rpc(&rpc).await;

    let rpc2 = rpc.clone();
    let replies = tokio::task::spawn_blocking(move || {
        php_calls(
            &rpc2,
            json!([
                ["error", "boom / \u{e9}", []],
                ["info", "login", {"user": 42, "name": "ann", "tags": ["a", "b"]}],
                ["warning", "disk", {"0": "first", "free": "5%", "level": "spoofed", "msg": "spoofed"}],
                ["debug", "below the app channel's level", []],
                ["debug", "below the app channel's level", {"k": "v"}],
                ["info", "plain info", []],
            ]),
        )
    })
    .await
    .unwrap();
    // Plain calls answer JSON `false`; *WithContext calls an empty Response.
    assert_eq!(replies, [json!({"ok": false}), json!({"ok": ""}), json!({"ok": ""}), json!({"ok": false}), json!({"ok": ""}), json!({"ok": false})]);

    // Error paths: a plain level takes a JSON string, a WithContext level a protobuf LogEntry.
    let err = client.call("app.Error", Codec::Json, b"42").await.unwrap_err().to_string();
    assert!(err.starts_with("json decode: invalid type: integer `42`, expected a string"), "{err}");
    let err = client.call("app.InfoWithContext", Codec::Json, b"\"x\"").await.unwrap_err().to_string();
    assert_eq!(err, "message type is not a proto");
    let err = client.call("app.Notice", Codec::Json, b"\"x\"").await.unwrap_err().to_string();
    assert_eq!(err, "rpc: can't find method app.Notice");
    // app.Log writes the message to stderr as it is and answers false.
    assert_eq!(&client.call("app.Log", Codec::Json, b"\"raw line from PHP\\n\"").await.unwrap()[..], b"false");
    server.stop().await.unwrap();

    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["logger"] == "app")
        .map(|mut l| {
            l.as_object_mut().unwrap().remove("ts").expect("a timestamp");
            l
        })
        .collect();
    assert_eq!(
        lines,
        [
            json!({"level": "error", "logger": "app", "msg": "boom / \u{e9}"}),
            json!({"level": "info", "logger": "app", "msg": "login", "user": "42", "name": "ann", "tags": "[\"a\",\"b\"]"}),
            json!({"level": "warn", "logger": "app", "msg": "disk", "0": "first", "free": "5%"}),  // the line's own keys win
            json!({"level": "info", "logger": "app", "msg": "plain info"}),
        ]
    );
}
