//! Proxy mode against real PHP workers (tests/php/workers/centrifuge.php): a tonic client plays
//! Centrifugo and calls every `CentrifugoProxy` method on `proxy_address`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use rr_centrifuge::proxy_proto as pb;
use rr_centrifuge::raw::Raw;
use rr_runtime::testing::{TestServer, free_port, rr_bare};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build() -> rr_runtime::Build {
    rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_metrics::Plugin>().plugin::<rr_status::Plugin>().plugin::<rr_centrifuge::Plugin>()
}

struct Server {
    port: u16,
    server: TestServer,
    dir: tempfile::TempDir,
    rpc: u16,
    metrics: u16,
    status: u16,
}

/// A server with `workers` PHP workers; `extra` goes under `centrifuge:`.
async fn serve(workers: usize, extra: &str) -> Server {
    let (port, rpc, metrics, status) = (free_port(), free_port(), free_port(), free_port());
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nmetrics:\n  address: 127.0.0.1:{metrics}\nstatus:\n  address: 127.0.0.1:{status}\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{port}\n  pool:\n    num_workers: {workers}\n{extra}\n",
        root().join("tests/php/workers/centrifuge.php").display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".rr.yaml"), &yaml).unwrap();
    let mut server = TestServer::start(&build(), &yaml);
    server.until("the proxy listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    Server { port, server, dir, rpc, metrics, status }
}

impl Server {
    async fn client(&self) -> tonic::client::Grpc<Channel> {
        tonic::client::Grpc::new(Channel::from_shared(format!("http://127.0.0.1:{}", self.port)).unwrap().connect().await.unwrap())
    }
}

async fn unary(c: &mut tonic::client::Grpc<Channel>, method: &str, req: Request<Bytes>) -> Result<Bytes, Status> {
    c.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(format!("/centrifugal.centrifugo.proxy.CentrifugoProxy/{method}")).unwrap();
    c.unary(req, path, Raw).await.map(|r| r.into_inner())
}

/// A request of `method` whose `client` field (NotifyChannelState: first channel) is `cmd`.
fn request(method: &str, cmd: &str) -> Bytes {
    let common = |client: &str| (client.to_string(), "websocket".to_string(), "json".to_string(), "json".to_string());
    let (client, transport, protocol, encoding) = common(cmd);
    let body = match method {
        "Connect" => pb::ConnectRequest { client, transport, protocol, encoding, data: br#"{"token":"t"}"#.to_vec(), name: "js".into(), channels: vec!["news".into()], ..Default::default() }.encode_to_vec(),
        "Refresh" => pb::RefreshRequest { client, transport, protocol, encoding, user: "42".into(), meta: b"{}".to_vec() }.encode_to_vec(),
        "Subscribe" => pb::SubscribeRequest { client, transport, protocol, encoding, user: "42".into(), channel: "chat".into(), token: "tk".into(), data: b"{}".to_vec(), ..Default::default() }.encode_to_vec(),
        "Publish" => pb::PublishRequest { client, transport, protocol, encoding, user: "42".into(), channel: "chat".into(), data: br#"{"text":"hi"}"#.to_vec(), ..Default::default() }.encode_to_vec(),
        "RPC" => pb::RpcRequest { client, transport, protocol, encoding, user: "42".into(), method: "echo".into(), data: br#"{"n":1}"#.to_vec(), ..Default::default() }.encode_to_vec(),
        "SubRefresh" => pb::SubRefreshRequest { client, transport, protocol, encoding, user: "42".into(), channel: "chat".into(), meta: b"{}".to_vec() }.encode_to_vec(),
        "NotifyChannelState" => pb::NotifyChannelStateRequest { events: vec![pb::ChannelEvent { time_ms: 1, channel: cmd.into(), r#type: "occupied".into() }] }.encode_to_vec(),
        other => panic!("no request for {other}"),
    };
    body.into()
}

const METHODS: [(&str, &str); 7] = [
    ("Connect", "connect"),
    ("Refresh", "refresh"),
    ("Subscribe", "subscribe"),
    ("Publish", "publish"),
    ("RPC", "rpc"),
    ("SubRefresh", "subrefresh"),
    ("NotifyChannelState", "notifychannelstate"),
];

/// The worker's JSON echo out of a reply (where the test worker puts it for each method).
fn echo(method: &str, reply: &Bytes) -> Value {
    let text = match method {
        "Connect" => {
            let r = pb::ConnectResponse::decode(reply.clone()).unwrap().result.unwrap();
            assert_eq!(r.user, "42");
            r.data
        }
        "Refresh" => pb::RefreshResponse::decode(reply.clone()).unwrap().result.unwrap().info,
        "Subscribe" => pb::SubscribeResponse::decode(reply.clone()).unwrap().result.unwrap().data,
        "Publish" => pb::PublishResponse::decode(reply.clone()).unwrap().result.unwrap().data,
        "RPC" => pb::RpcResponse::decode(reply.clone()).unwrap().result.unwrap().data,
        "SubRefresh" => pb::SubRefreshResponse::decode(reply.clone()).unwrap().result.unwrap().info,
        "NotifyChannelState" => pb::NotifyChannelStateResponse::decode(reply.clone()).unwrap().error.unwrap().message.into_bytes(),
        other => panic!("{other}"),
    };
    serde_json::from_slice(&text).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proxy_method_reaches_php_with_roadrunners_payload() {
    let server = serve(2, "").await;
    let mut c = server.client().await;
    for (method, kind) in METHODS {
        let body = request(method, "echo");
        let mut req = Request::new(body.clone());
        req.metadata_mut().insert("x-test", "1".parse().unwrap());
        req.metadata_mut().append("x-multi", "a<b".parse().unwrap());
        req.metadata_mut().append("x-multi", "2".parse().unwrap());
        req.set_timeout(Duration::from_secs(30));
        let reply = unary(&mut c, method, req).await.unwrap_or_else(|e| panic!("{method}: {e:?}"));
        let e = echo(method, &reply);
        assert_eq!(e["type"], kind, "{method}: {e}");
        assert_eq!(e["mode"], "centrifuge");
        assert_eq!(e["body"], b64(&body), "{method}: the request message reaches PHP as Centrifugo sent it");
        let context = e["context"].as_str().unwrap();
        let prefix = format!(r#"{{":authority":["127.0.0.1:{}"],"content-type":["application/grpc"],"type":["{kind}"],"user-agent":["#, server.port);
        assert!(context.starts_with(&prefix), "{method}: {context}");
        assert!(context.ends_with(r#""x-multi":["a\u003cb","2"],"x-test":["1"]}"#), "{method}: sorted keys, Go's escaping: {context}");
        assert!(!context.contains("grpc-timeout") && !context.contains("\"te\""), "{context}");
        assert_eq!(e["headers"]["x-test"], serde_json::json!(["1"]));
    }
    // An incoming `type` key gets RoadRunner's appended value after it (PHP reads `[0]`).
    let mut req = Request::new(request("Connect", "echo"));
    req.metadata_mut().insert("type", "mine".parse().unwrap());
    let err = unary(&mut c, "Connect", req).await.unwrap_err();
    assert!(err.message().starts_with("unknown request type mine: "), "PHP reads the first value: {err:?}");
    assert!(err.message().contains(r#""type":["mine","connect"]"#), "{err:?}");
    // NotifyChannelState's usual answer: an empty result.
    let reply = unary(&mut c, "NotifyChannelState", Request::new(request("NotifyChannelState", "chat"))).await.unwrap();
    assert_eq!(pb::NotifyChannelStateResponse::decode(reply).unwrap(), pb::NotifyChannelStateResponse { result: Some(pb::NotifyChannelStateResult {}), error: None });
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_errors_and_disconnects_reach_the_client_with_their_codes() {
    let server = serve(2, "").await;
    let mut c = server.client().await;
    let error = pb::Error { code: 4001, message: "nope".into(), temporary: true };
    let disconnect = pb::Disconnect { code: 4500, reason: "bye".into() };
    for (method, _) in METHODS {
        let reply = unary(&mut c, method, Request::new(request(method, "error"))).await.unwrap();
        let (got_error, got_disconnect) = match method {
            "Connect" => pb::ConnectResponse::decode(reply).map(|r| (r.error, r.disconnect)),
            "Refresh" => pb::RefreshResponse::decode(reply).map(|r| (r.error, r.disconnect)),
            "Subscribe" => pb::SubscribeResponse::decode(reply).map(|r| (r.error, r.disconnect)),
            "Publish" => pb::PublishResponse::decode(reply).map(|r| (r.error, r.disconnect)),
            "RPC" => pb::RpcResponse::decode(reply).map(|r| (r.error, r.disconnect)),
            "SubRefresh" => pb::SubRefreshResponse::decode(reply).map(|r| (r.error, r.disconnect)),
            _ => pb::NotifyChannelStateResponse::decode(reply).map(|r| (r.error, None)),
        }
        .unwrap();
        assert_eq!((got_error.as_ref(), got_disconnect), (Some(&error), None), "{method}");
        if method == "NotifyChannelState" {
            continue;
        }
        let reply = unary(&mut c, method, Request::new(request(method, "disconnect"))).await.unwrap();
        let got = match method {
            "Connect" => pb::ConnectResponse::decode(reply).unwrap().disconnect,
            "Refresh" => pb::RefreshResponse::decode(reply).unwrap().disconnect,
            "Subscribe" => pb::SubscribeResponse::decode(reply).unwrap().disconnect,
            "Publish" => pb::PublishResponse::decode(reply).unwrap().disconnect,
            "RPC" => pb::RpcResponse::decode(reply).unwrap().disconnect,
            _ => pb::SubRefreshResponse::decode(reply).unwrap().disconnect,
        };
        assert_eq!(got.as_ref(), Some(&disconnect), "{method}");
    }
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_grpc_errors_as_roadrunner_returns_them() {
    let server = serve(1, "").await;
    let mut c = server.client().await;
    let call = |cmd: &'static str| Request::new(request("RPC", cmd));
    let err = unary(&mut c, "RPC", call("throw")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unknown, "boom"));
    let err = unary(&mut c, "RPC", call("garbage")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert!(err.message().starts_with("proto: cannot parse invalid wire-format data"), "{err:?}");
    assert!(unary(&mut c, "RPC", call("empty")).await.unwrap().is_empty(), "an empty body is an empty response");
    let err = unary(&mut c, "RPC", call("stream")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unknown, "streaming response not supported"));
    let err = unary(&mut c, "RPC", call("crash")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown, "{err:?}");
    for method in ["SubscribeUnidirectional", "SubscribeBidirectional"] {
        let err = unary(&mut c, method, Request::new(Bytes::new())).await.unwrap_err();
        assert_eq!((err.code(), err.message()), (Code::Unknown, "not supported"), "{method}");
    }
    assert_eq!(unary(&mut c, "MapPublish", Request::new(Bytes::new())).await.unwrap_err().code(), Code::Unimplemented);
    c.ready().await.unwrap();
    let other = c.unary(Request::new(Bytes::new()), http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check"), Raw).await.unwrap_err();
    assert_eq!(other.code(), Code::Unimplemented, "no other service is served: {other:?}");
    // The crashed worker was replaced; the server still answers.
    let e = echo("RPC", &unary(&mut c, "RPC", call("echo")).await.unwrap());
    assert_eq!(e["type"], "rpc");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_answers_is_killed_at_the_calls_deadline_and_replaced() {
    let server = serve(1, "").await;
    let mut c = server.client().await;
    let pid = |reply: &Bytes| echo("Publish", reply)["pid"].as_i64().unwrap();
    let before = pid(&unary(&mut c, "Publish", Request::new(request("Publish", "echo"))).await.unwrap());
    let mut req = Request::new(request("Publish", "hang"));
    req.set_timeout(Duration::from_millis(300));
    let err = unary(&mut c, "Publish", req).await.unwrap_err();
    // tonic's server and ours race to end the call at its deadline.
    assert!(matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled), "{err:?}");
    // The only worker was stuck in sleep(3600): an answer now means it was replaced.
    let mut req = Request::new(request("Publish", "echo"));
    req.set_timeout(Duration::from_secs(30));
    let after = pid(&unary(&mut c, "Publish", req).await.unwrap());
    assert_ne!(before, after, "the silent worker was replaced");
    server.server.stop().await.unwrap();
}

async fn http_get(port: u16, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_status_rr_workers_and_rr_reset_know_centrifuge() {
    let rr = rr_bare();
    let server = serve(2, "").await;
    let config = server.dir.path().join(".rr.yaml");
    let _ = server.rpc;
    let metrics = http_get(server.metrics, "/metrics").await;
    for name in ["rr_centrifugo_total_workers 2", "rr_centrifugo_workers_ready 2", "rr_centrifugo_workers_memory_bytes", "rr_centrifugo_worker_state{", "rr_centrifugo_worker_memory_bytes{"] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    for path in ["/health?plugin=centrifuge", "/ready?plugin=centrifuge"] {
        let resp = http_get(server.status, path).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{path}: {resp}");
        assert!(resp.contains(r#""plugin_name":"centrifuge""#), "{resp}");
    }
    let workers = || {
        let out = Command::new(&rr).args(["workers", "centrifuge", "-c"]).arg(&config).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(table.contains("Workers of [centrifuge]:"), "{table}");
        table.lines().skip(2).map(|l| l.split_whitespace().next().unwrap().to_string()).collect::<Vec<_>>()
    };
    let before = workers();
    assert_eq!(before.len(), 2);
    let out = Command::new(&rr).args(["reset", "centrifuge", "-c"]).arg(&config).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "resetting plugin: [centrifuge]\nplugin reset: [centrifuge]\n");
    let after = workers();
    assert!(after.len() == 2 && after.iter().all(|p| !before.contains(p)), "{before:?} -> {after:?}");
    let mut c = server.client().await;
    assert_eq!(echo("RPC", &unary(&mut c, "RPC", Request::new(request("RPC", "echo"))).await.unwrap())["type"], "rpc");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_proxy_address() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let yaml = format!(
        "version: '3'\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: unix://{}\n  pool: {{num_workers: 1}}\n",
        root().join("tests/php/workers/centrifuge.php").display(),
        socket.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_centrifuge::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("the unix listener", || async { tokio::net::UnixStream::connect(&socket).await.ok() }).await;
    let path = socket.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower_service_fn(path))
        .await
        .unwrap();
    let mut c = tonic::client::Grpc::new(channel);
    let e = echo("Subscribe", &unary(&mut c, "Subscribe", Request::new(request("Subscribe", "echo"))).await.unwrap());
    assert_eq!(e["type"], "subscribe");
    server.stop().await.unwrap();
}

/// A connector that dials the unix socket at `path`.
fn tower_service_fn(path: PathBuf) -> impl tonic::codegen::Service<http::Uri, Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>, Error = std::io::Error, Future = futures::future::BoxFuture<'static, std::io::Result<hyper_util::rt::TokioIo<tokio::net::UnixStream>>>> + Clone {
    #[derive(Clone)]
    struct Dial(PathBuf);
    impl tonic::codegen::Service<http::Uri> for Dial {
        type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
        type Error = std::io::Error;
        type Future = futures::future::BoxFuture<'static, std::io::Result<Self::Response>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Uri) -> Self::Future {
            let path = self.0.clone();
            Box::pin(async move { Ok(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?)) })
        }
    }
    Dial(path)
}

#[test]
fn config_errors_name_the_key() {
    let err = |section: &str| {
        let yaml = format!("version: '3'\nserver:\n  command: php\ncentrifuge:\n{section}");
        rr_runtime::host::Host::init(&build(), &rr_runtime::config::Config::from_str(&yaml).unwrap()).err().unwrap().to_string()
    };
    assert!(err("  proxy_address: 127.0.0.1:30000\n").contains("invalid DSN (tcp://:6001, unix://file.sock)"));
    assert!(err("  tls: {key: /nope.key, cert: /nope.crt}\n").contains("key file '/nope.key' does not exists"));
    assert!(err("  proxy_adress: tcp://127.0.0.1:1\n").contains("proxy_adress"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_fails_the_start_with_its_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let yaml = format!("version: '3'\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{port}\n  pool: {{num_workers: 1}}\n", root().join("tests/php/workers/centrifuge.php").display());
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_centrifuge::Plugin>();
    let err = TestServer::start(&build, &yaml).stop().await.unwrap_err().to_string();
    assert!(err.contains("`centrifuge.proxy_address`: cannot listen on `127.0.0.1"), "{err}");
}

/// grpcio (C core) as a second Centrifugo stand-in; skipped where tests/run.sh has not
/// installed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_gets_the_same_answers() {
    if !Command::new("python3").args(["-c", "import grpc"]).status().is_ok_and(|s| s.success()) {
        eprintln!("skipped: python3 grpcio is not installed (tests/run.sh installs it)");
        return;
    }
    let server = serve(1, "").await;
    let calls = serde_json::json!([
        ["Connect", b64(&request("Connect", "echo")), {"x-test": "py"}],
        ["Subscribe", b64(&request("Subscribe", "error")), {}],
        ["RPC", b64(&request("RPC", "throw")), {}],
        ["SubscribeUnidirectional", "", {}],
        ["Publish", b64(&request("Publish", "echo")), {}, true],
    ]);
    let address = format!("127.0.0.1:{}", server.port);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpcio_client.py");
    let out = tokio::process::Command::new("python3").arg(script).arg(&address).arg(calls.to_string()).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let reply = |v: &Value| {
        use base64::Engine;
        Bytes::from(base64::engine::general_purpose::STANDARD.decode(v["ok"].as_str().unwrap_or_else(|| panic!("{v}"))).unwrap())
    };
    let e = echo("Connect", &reply(&lines[0]));
    assert_eq!(e["headers"]["x-test"], serde_json::json!(["py"]));
    assert_eq!(e["headers"]["type"], serde_json::json!(["connect"]));
    assert!(e["headers"]["user-agent"][0].as_str().unwrap().contains("grpc-python"), "{e}");
    let sub = pb::SubscribeResponse::decode(reply(&lines[1])).unwrap();
    assert_eq!(sub.error, Some(pb::Error { code: 4001, message: "nope".into(), temporary: true }));
    assert_eq!((lines[2]["code"].as_str(), lines[2]["details"].as_str()), (Some("UNKNOWN"), Some("boom")));
    assert_eq!((lines[3]["code"].as_str(), lines[3]["details"].as_str()), (Some("UNKNOWN"), Some("not supported")));
    let e = echo("Publish", &reply(&lines[4]));
    assert_eq!(e["body"], b64(&request("Publish", "echo")), "a gzip-compressed request reaches PHP decompressed");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_a_running_call_finish_and_then_refuses_calls() {
    let server = serve(1, "").await;
    let mut c = server.client().await;
    let running = tokio::spawn(async move { unary(&mut c, "RPC", Request::new(request("RPC", "slow"))).await });
    let metrics = server.metrics;
    loop {
        if http_get(metrics, "/metrics").await.contains("rr_centrifugo_workers_working 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let port = server.port;
    server.server.stop().await.unwrap();
    let reply = running.await.unwrap().expect("the running call finished");
    assert_eq!(echo("RPC", &reply)["type"], "rpc");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(), "the proxy listener is closed");
}
