//! PHP → rr → Centrifugo: the `centrifuge.*` RPC methods, called by PHP over goridge RPC with
//! protobuf bodies (tests/php/centrifuge_api_client.php), reach a fake Centrifugo API served
//! here with tonic, and its replies come back to PHP.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use prost::Message;
use rr_centrifuge::api_proto as api;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};

#[path = "support/fake_centrifugo.rs"]
mod fake;
use fake::fake_centrifugo;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn serve(api_port: u16, extra: &str) -> (TestServer, String) {
    serve_api(&format!("tcp://127.0.0.1:{api_port}"), extra).await
}

async fn serve_api(api_address: &str, extra: &str) -> (TestServer, String) {
    let (rpc, proxy) = (free_port(), free_port());
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{proxy}\n  grpc_api_address: {api_address}\n  pool: {{num_workers: 1}}\n{extra}\n",
        root().join("tests/php/workers/centrifuge.php").display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_centrifuge::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("the proxy listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", proxy)).await.ok() }).await;
    let address = format!("tcp://127.0.0.1:{rpc}");
    server.rpc(&address).await;
    (server, address)
}

/// Run RPC calls from PHP; one `{"ok": base64}` or `{"error": text}` per call.
fn php(rpc: &str, calls: Value) -> Vec<Value> {
    let out = Command::new("php").arg(root().join("tests/php/centrifuge_api_client.php")).arg(calls.to_string()).env("RR_RPC", rpc).output().unwrap();
    assert!(out.status.success(), "php failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn b64(m: &impl Message) -> String {
    STANDARD.encode(m.encode_to_vec())
}

fn ok(v: &Value) -> Bytes {
    Bytes::from(STANDARD.decode(v["ok"].as_str().unwrap_or_else(|| panic!("not ok: {v}"))).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_api_calls_reach_centrifugo_and_its_replies_come_back() {
    let (port, received, fake) = fake_centrifugo(None).await;
    let (server, rpc) = serve(port, "").await;
    let publish = api::PublishRequest { channel: "chat".into(), data: br#"{"text":"hi"}"#.to_vec(), skip_history: true, ..Default::default() };
    let broadcast = api::BroadcastRequest { channels: vec!["a".into(), "b".into()], data: b"{}".to_vec(), ..Default::default() };
    let presence = api::PresenceRequest { channel: "missing".into() };
    let history = api::HistoryRequest { channel: "chat".into(), limit: 10, ..Default::default() };
    let disconnect = api::DisconnectRequest { user: "42".into(), disconnect: Some(api::Disconnect { code: 4000, reason: "bye".into() }), ..Default::default() };
    let r = php(
        &rpc,
        json!([
            ["centrifuge.Publish", b64(&publish)],
            ["centrifuge.Broadcast", b64(&broadcast)],
            ["centrifuge.Presence", b64(&presence)],
            ["centrifuge.History", b64(&history)],
            ["centrifuge.Disconnect", b64(&disconnect)],
            ["centrifuge.Publish", STANDARD.encode(b"\x0a\x05ch")],
            ["centrifuge.Publish", b64(&publish), "json"],
            ["centrifuge.Nope", ""],
        ]),
    );
    let published = api::PublishResponse::decode(ok(&r[0])).unwrap();
    assert_eq!(published.result, Some(api::PublishResult { offset: 7, epoch: "ep".into() }));
    assert_eq!(ok(&r[1]), {
        let mut echo = vec![0x12, broadcast.encoded_len() as u8];
        echo.extend(broadcast.encode_to_vec());
        Bytes::from(echo)
    });
    let missing = api::PresenceResponse::decode(ok(&r[2])).unwrap();
    assert_eq!(missing.error, Some(api::Error { code: 102, message: "unknown channel".into() }), "API errors come back inside the response");
    let history_err = r[3]["error"].as_str().unwrap();
    assert!(history_err.contains("rpc error: code = PermissionDenied desc = no history for you"), "{history_err}");
    assert!(r[4]["ok"].is_string(), "{}", r[4]);
    assert!(r[5]["error"].as_str().unwrap().contains("proto: cannot parse invalid wire-format data"), "{}", r[5]);
    assert!(r[6]["error"].as_str().unwrap().contains("message type is not a proto"), "{}", r[6]);
    assert!(r[7]["error"].as_str().unwrap().contains("rpc: can't find method centrifuge.Nope"), "{}", r[7]);
    let got = received.lock().unwrap().clone();
    let names: Vec<&str> = got.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(names, ["Publish", "Broadcast", "Presence", "History", "Disconnect"], "bad requests never leave rr");
    assert_eq!(got[0].1, Bytes::from(publish.encode_to_vec()), "the request reaches Centrifugo as PHP encoded it");
    assert_eq!(got[4].1, Bytes::from(disconnect.encode_to_vec()));
    assert!(got.iter().all(|(_, _, enc)| enc.is_none()), "no compression unless use_compressor");
    server.stop().await.unwrap();
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_34_methods_are_forwarded_with_gzip_when_use_compressor() {
    let (port, received, fake) = fake_centrifugo(None).await;
    let (server, rpc) = serve(port, "  use_compressor: true").await;
    let calls: Vec<Value> = rr_centrifuge::api::METHODS
        .iter()
        .enumerate()
        .filter(|(_, m)| **m != "History" && **m != "Publish" && **m != "Presence")
        .map(|(i, m)| json!([format!("centrifuge.{m}"), STANDARD.encode(api::UnblockUserRequest { user: format!("u{i}") }.encode_to_vec())]))
        .collect();
    let replies = php(&rpc, Value::Array(calls.clone()));
    for (call, reply) in calls.iter().zip(&replies) {
        let sent = STANDARD.decode(call[1].as_str().unwrap()).unwrap();
        let mut echo = vec![0x12, sent.len() as u8];
        echo.extend(&sent);
        assert_eq!(ok(reply), Bytes::from(echo), "{call}");
    }
    let got = received.lock().unwrap().clone();
    let expected: Vec<&str> = rr_centrifuge::api::METHODS.iter().copied().filter(|m| *m != "History" && *m != "Publish" && *m != "Presence").collect();
    assert_eq!(got.iter().map(|(m, _, _)| m.as_str()).collect::<Vec<_>>(), expected);
    assert_eq!(expected.len(), 31);
    assert!(got.iter().all(|(_, _, enc)| enc.as_deref() == Some("gzip")), "{got:?}");
    server.stop().await.unwrap();
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifugo_down_is_an_rpc_error_with_grpc_gos_text() {
    let down = free_port();
    let (server, rpc) = serve(down, "").await;
    let r = php(&rpc, json!([["centrifuge.Publish", b64(&api::PublishRequest { channel: "chat".into(), ..Default::default() })]]));
    let err = r[0]["error"].as_str().unwrap();
    assert!(err.contains("rpc error: code = Unavailable desc = "), "{err}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifugo_api_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let (received, fake) = fake::fake_centrifugo_unix(&socket).await;
    let (server, rpc) = serve_api(&format!("unix://{}", socket.display()), "").await;
    let r = php(&rpc, json!([["centrifuge.Publish", b64(&api::PublishRequest { channel: "chat".into(), ..Default::default() })]]));
    assert_eq!(api::PublishResponse::decode(ok(&r[0])).unwrap().result.unwrap().offset, 7);
    assert_eq!(received.lock().unwrap().len(), 1);
    server.stop().await.unwrap();
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_plugin_serves_the_methods_say_not_ready() {
    let config = rr_runtime::config::Config::from_str("version: '3'\n").unwrap();
    let services = rr_runtime::host::services(&rr_runtime::Build::new("rr", "test"), &config).unwrap();
    rr_centrifuge::api::register(&services, std::sync::Arc::new(std::sync::OnceLock::new()));
    let err = services.rpc.call("centrifuge.Broadcast", rr_runtime::rpc::Codec::Proto, Bytes::new()).await.unwrap_err();
    assert_eq!(err.0, "RoadRunner is not ready yet, try in a few seconds");
    assert_eq!(services.rpc.methods().iter().filter(|m| m.starts_with("centrifuge.")).count(), 34);
}
