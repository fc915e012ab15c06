//! The embedded hub (`centrifuge.hub`) against real PHP workers (tests/php/workers/centrifuge.php)
//! and real clients: the official centrifuge-js client in Node (npm `centrifuge` + `ws`, JSON
//! and protobuf framing) and raw tokio-tungstenite sockets for bad input and slow readers.

// The helpers hub_redis.rs uses too; the rest of that module is for the Redis tests.
#[path = "support/hub.rs"]
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use rr_centrifuge::api_proto as api;
use rr_centrifuge::hub::{jwt, protocol as cp};
use rr_centrifuge::proxy_proto as pb;
use rr_runtime::testing::{TestServer, free_port};
use support::{Ws, centrifuge_js, decode, root, text};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn build() -> rr_runtime::Build {
    rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_centrifuge::Plugin>()
}

struct Hub {
    server: TestServer,
    port: u16,
    rpc: String,
}

/// A server with the hub on a free port; `hub` adds keys under `centrifuge.hub:`.
async fn serve(hub: &str) -> Hub {
    let (port, proxy, rpc) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{proxy}\n  pool:\n    num_workers: 2\n  hub:\n    address: 127.0.0.1:{port}\n{hub}\n",
        root().join("tests/php/workers/centrifuge.php").display()
    );
    let mut server = TestServer::start(&build(), &yaml);
    server.until("the hub listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    let rpc = format!("tcp://127.0.0.1:{rpc}");
    server.rpc(&rpc).await;
    Hub { server, port, rpc }
}

impl Hub {
    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    /// `centrifuge.<method>` from PHP (roadrunner-php/centrifugo's RPCCentrifugoApi way).
    async fn php(&self, calls: Value) -> Vec<Value> {
        let out = tokio::process::Command::new("php").arg(root().join("tests/php/centrifuge_api_client.php")).arg(calls.to_string()).env("RR_RPC", &self.rpc).output().await.unwrap();
        assert!(out.status.success(), "php failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    async fn publish(&self, channel: &str, data: &Value) -> api::PublishResponse {
        let req = api::PublishRequest { channel: channel.into(), data: data.to_string().into_bytes(), ..Default::default() };
        let r = self.php(json!([["centrifuge.Publish", STANDARD.encode(req.encode_to_vec())]])).await;
        api::PublishResponse::decode(STANDARD.decode(r[0]["ok"].as_str().unwrap_or_else(|| panic!("{r:?}"))).unwrap().as_slice()).unwrap()
    }
}

/// The centrifuge-python install: `$CENTRIFUGE_PYTHON`, else the cache tests/run.sh fills
/// (installed here when missing).
fn centrifuge_python() -> PathBuf {
    let dir = std::env::var_os("CENTRIFUGE_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/rr-tests/centrifuge-python"));
    if !dir.join("centrifuge/client.py").exists() {
        let ok = std::process::Command::new("pip").args(["install", "-q", "--target"]).arg(&dir).arg("centrifuge-python==0.7.0").status().unwrap();
        assert!(ok.success(), "pip install centrifuge-python into {}", dir.display());
    }
    dir
}

/// A running Node client; its events, one JSON line each.
struct Node {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Node {
    /// centrifuge-python instead of centrifuge-js (the `chat` scenario).
    fn python(url: &str, framing: &str) -> Node {
        let mut child = tokio::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hub_client.py"))
            .args([url, framing])
            .env("PYTHONPATH", centrifuge_python())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Node { child, lines }
    }

    fn start(url: &str, framing: &str, scenario: &str) -> Node {
        Node::start_env(url, framing, scenario, &[])
    }

    /// With more environment (e.g. `NODE_EXTRA_CA_CERTS` for a wss:// URL).
    fn start_env(url: &str, framing: &str, scenario: &str, env: &[(&str, &Path)]) -> Node {
        let mut child = tokio::process::Command::new("node")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hub_client.js"))
            .args([url, framing, scenario])
            .envs(env.iter().copied())
            .env("CENTRIFUGE_JS", centrifuge_js())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Node { child, lines }
    }

    /// The next event named `name` (earlier ones are collected and returned too), within 30 s
    /// (a client that keeps failing to connect prints events all along).
    async fn until(&mut self, name: &str) -> (Value, Vec<Value>) {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line()).await.unwrap_or_else(|_| panic!("no `{name}` event; saw {seen:?}"));
            let line = line.unwrap().unwrap_or_else(|| panic!("node exited before `{name}`; saw {seen:?}"));
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["event"] == name {
                return (event, seen);
            }
            seen.push(event);
        }
    }

    async fn quit(mut self) {
        let _ = self.child.stdin.as_mut().unwrap().write_all(b"quit\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifuge_js_talks_to_php_and_receives_what_php_publishes() {
    // Pings every second: the client's pongs keep it connected across several.
    let hub = serve("    ping_interval: 1s\n    pong_timeout: 900ms").await;
    for framing in ["json", "protobuf"] {
        let mut node = Node::start(&hub.url(), framing, "chat");
        let (connected, _) = node.until("connected").await;
        // Connect reached PHP as proxy mode's request: the context names the type and carries
        // the upgrade request's headers; the body is a proxy ConnectRequest.
        let echo = &connected["data"];
        assert_eq!((echo["type"].as_str(), echo["mode"].as_str()), (Some("connect"), Some("centrifuge")), "{framing}: {connected}");
        let context = echo["context"].as_str().unwrap();
        assert!(context.contains(r#""sec-websocket-key":["#) && context.contains(r#""type":["connect"]"#), "{context}");
        let body = pb::ConnectRequest::decode(STANDARD.decode(echo["body"].as_str().unwrap()).unwrap().as_slice()).unwrap();
        assert_eq!((body.client.as_str(), body.transport.as_str(), body.protocol.as_str(), body.encoding.as_str()), (connected["client"].as_str().unwrap(), "websocket", framing, "json"));
        assert_eq!((body.data.as_slice(), body.name.as_str()), (&br#"{"token":"t"}"#[..], "node"));

        let (subscribed, _) = node.until("subscribed").await;
        assert_eq!(subscribed["data"]["type"], "subscribe", "{subscribed}");
        let sub = pb::SubscribeRequest::decode(STANDARD.decode(subscribed["data"]["body"].as_str().unwrap()).unwrap().as_slice()).unwrap();
        assert_eq!((sub.user.as_str(), sub.channel.as_str()), ("42", "chat"), "the user PHP's connect result named");
        let (rpc, _) = node.until("rpc").await;
        assert_eq!(rpc["data"]["type"], "rpc");
        let rpc_body = pb::RpcRequest::decode(STANDARD.decode(rpc["data"]["body"].as_str().unwrap()).unwrap().as_slice()).unwrap();
        assert_eq!((rpc_body.method.as_str(), rpc_body.data.as_slice()), ("echo", &br#"{"n":1}"#[..]));
        let (error, _) = node.until("rpc_error").await;
        assert_eq!(error, json!({"event": "rpc_error", "code": 4001, "message": "nope", "temporary": true}), "PHP's error reaches the client");
        // The client's own publish went through PHP (whose result data replaced it) and came back.
        let (_, seen) = node.until("ready").await;
        let (own, _) = if seen.iter().any(|e| e["event"] == "publication") { (seen.into_iter().find(|e| e["event"] == "publication").unwrap(), vec![]) } else { node.until("publication").await };
        assert_eq!((own["data"]["type"].as_str(), own["user"].as_str()), (Some("publish"), Some("42")), "{own}");

        tokio::time::sleep(Duration::from_millis(2500)).await;
        let reply = hub.publish("chat", &json!({"from": "php", "framing": framing})).await;
        assert_eq!(reply.error, None);
        let (publication, seen) = node.until("publication").await;
        assert_eq!(publication["data"], json!({"from": "php", "framing": framing}));
        assert!(seen.is_empty(), "still connected after the pings: {seen:?}");
        node.quit().await;
    }
    // A connection PHP lets expire: its refresh says `expired`, the client is closed with 3005.
    let mut ws = raw(&hub.url(), None).await;
    ws.send(Message::text(json!({"id": 1, "connect": {"data": {"cmd": "expire"}}}).to_string())).await.unwrap();
    let connected = text(&mut ws).await;
    assert_eq!(connected["connect"]["expires"], Value::Null, "server-side expiry is not the client's business: {connected}");
    assert_eq!(close_code(&mut ws).await, 3005);
    // PHP's disconnect on connect closes the socket with its code; 4500 is terminal for the client.
    let mut node = Node::start(&hub.url(), "json", "cmd:disconnect");
    let (gone, _) = node.until("disconnected").await;
    assert_eq!((gone["code"].as_u64(), gone["reason"].as_str()), (Some(4500), Some("bye")));
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_jwt_skips_php_and_subscribes_its_channels() {
    let hub = serve("    token_hmac_secret_key: s3cret\n    presence: true").await;
    let token = jwt::sign(&json!({"sub": "7", "channels": ["news"], "info": {"name": "ann"}}), b"s3cret");
    let mut node = Node::start(&hub.url(), "json", &format!("token:{token}"));
    let (connected, _) = node.until("connected").await;
    assert_eq!(connected["data"], Value::Null, "no connect call to PHP, so no data: {connected}");
    node.until("server_subscribed").await;
    hub.publish("news", &json!({"n": 1})).await;
    let (publication, _) = node.until("server_publication").await;
    assert_eq!((publication["channel"].as_str(), &publication["data"]), (Some("news"), &json!({"n": 1})));

    // The API sees the hub: presence with the token's user and info, channels, info.
    let presence = api::PresenceRequest { channel: "news".into() };
    let channels = api::ChannelsRequest { pattern: "n*".into() };
    let r = hub.php(json!([["centrifuge.Presence", STANDARD.encode(presence.encode_to_vec())], ["centrifuge.Channels", STANDARD.encode(channels.encode_to_vec())], ["centrifuge.History", STANDARD.encode(api::HistoryRequest { channel: "news".into(), ..Default::default() }.encode_to_vec())]])).await;
    let presence = api::PresenceResponse::decode(STANDARD.decode(r[0]["ok"].as_str().unwrap()).unwrap().as_slice()).unwrap().result.unwrap().presence;
    let me = presence.values().next().unwrap();
    assert_eq!((presence.len(), me.user.as_str(), me.conn_info.as_slice()), (1, "7", &br#"{"name":"ann"}"#[..]));
    let channels = api::ChannelsResponse::decode(STANDARD.decode(r[1]["ok"].as_str().unwrap()).unwrap().as_slice()).unwrap().result.unwrap().channels;
    assert_eq!(channels.get("news").map(|c| c.num_clients), Some(1));
    let history = api::HistoryResponse::decode(STANDARD.decode(r[2]["ok"].as_str().unwrap()).unwrap().as_slice()).unwrap();
    assert_eq!(history.error, Some(api::Error { code: 108, message: "not available".into() }), "history_size is 0");
    let r = hub.php(json!([["centrifuge.Info", ""], ["centrifuge.RevokeToken", ""]])).await;
    let info = rr_centrifuge::hub::api::InfoResponse::decode(STANDARD.decode(r[0]["ok"].as_str().unwrap()).unwrap().as_slice()).unwrap().result.unwrap();
    let n = &info.nodes[0];
    assert_eq!((info.nodes.len(), n.num_clients, n.num_users, n.num_channels), (1, 1, 1, 1), "{n:?}");
    assert_eq!(decode::<api::EmptyResponse>(&r[1]).error.map(|e| e.code), Some(108), "PRO methods are not available");

    // Disconnect from PHP reaches the client with its code.
    let disconnect = api::DisconnectRequest { user: "7".into(), disconnect: Some(api::Disconnect { code: 4501, reason: "go away".into() }), ..Default::default() };
    hub.php(json!([["centrifuge.Disconnect", STANDARD.encode(disconnect.encode_to_vec())]])).await;
    let (gone, _) = node.until("disconnected").await;
    assert_eq!((gone["code"].as_u64(), gone["reason"].as_str()), (Some(4501), Some("go away")));
    // A token signed with another key is refused with 3500.
    let bad = jwt::sign(&json!({"sub": "7"}), b"other");
    let mut node = Node::start(&hub.url(), "json", &format!("token:{bad}"));
    let (gone, _) = node.until("disconnected").await;
    assert_eq!(gone["code"].as_u64(), Some(3500), "{gone}");
    hub.server.stop().await.unwrap();
}


async fn raw(url: &str, protocol: Option<&str>) -> Ws {
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut().insert("sec-websocket-protocol", p.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Read until the close frame; its code.
async fn close_code(ws: &mut Ws) -> u16 {
    let read = async {
        while let Some(msg) = ws.next().await {
            if let Message::Close(Some(frame)) = msg.unwrap() {
                return u16::from(frame.code);
            }
        }
        panic!("closed without a close frame");
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("a close frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_closed_with_centrifuges_codes() {
    let hub = serve("    allowed_origins: [http://app.test]\n    max_message_size: 1000\n    ping_interval: 2s\n    pong_timeout: 1s").await;
    // A command before connect, a frame that is not JSON, a command without id, a second
    // connect: 3501.
    for frame in [r#"{"id":1,"subscribe":{"channel":"chat"}}"#, "{nope", r#"{"publish":{"channel":"a"}}"#, "{\"id\":1,\"connect\":{}}\n{\"id\":2,\"connect\":{}}"] {
        let mut ws = raw(&hub.url(), None).await;
        ws.send(Message::text(frame)).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 3501, "{frame}");
    }
    let mut ws = raw(&hub.url(), Some("centrifuge-protobuf")).await;
    ws.send(Message::binary(b"\x05\x08".to_vec())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 3501, "a truncated protobuf frame");
    // Over max_message_size: WebSocket's 1009.
    let mut ws = raw(&hub.url(), None).await;
    ws.send(Message::text(format!(r#"{{"id":1,"connect":{{"data":"{}"}}}}"#, "x".repeat(2000)))).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1009);
    // An origin not allowed: the upgrade is refused.
    let mut req = hub.url().into_client_request().unwrap();
    req.headers_mut().insert("origin", "http://evil.test".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 403), "{err:?}");
    // The protobuf subprotocol is echoed; the connect reply carries the client id and ping.
    let (mut ws, resp) = {
        let mut req = hub.url().into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "centrifuge-protobuf".parse().unwrap());
        req.headers_mut().insert("origin", "http://app.test".parse().unwrap());
        tokio_tungstenite::connect_async(req).await.unwrap()
    };
    assert_eq!(resp.headers()["sec-websocket-protocol"], "centrifuge-protobuf");
    let connect = cp::Command { id: 1, connect: Some(cp::ConnectRequest { data: b"{}".to_vec(), ..Default::default() }), ..Default::default() };
    ws.send(Message::binary(connect.encode_length_delimited_to_vec())).await.unwrap();
    let reply = loop {
        if let Message::Binary(b) = ws.next().await.unwrap().unwrap() {
            break cp::Reply::decode_length_delimited(b).unwrap();
        }
    };
    let result = reply.connect.unwrap();
    assert_eq!((reply.id, result.ping, result.pong, result.client.len()), (1, 2, true, 36));
    // The server pings (a single 0 byte); a client that never answers is closed with 3012.
    let ping = loop {
        if let Message::Binary(b) = ws.next().await.unwrap().unwrap() {
            break b;
        }
    };
    assert_eq!(&ping[..], b"\x00");
    assert_eq!(close_code(&mut ws).await, 3012);
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_disconnected_with_3008() {
    let hub = serve("    client_queue_max_size: 200000\n    max_message_size: 1000000").await;
    let connect = |id: u32| json!({"id": id, "connect": {"data": {}}}).to_string();
    let mut slow = raw(&hub.url(), None).await;
    slow.send(Message::text(format!("{}\n{}", connect(1), json!({"id": 2, "subscribe": {"channel": "big"}})))).await.unwrap();
    assert!(text(&mut slow).await["connect"]["client"].is_string());
    assert_eq!(text(&mut slow).await["id"], 2, "subscribed");
    // The slow client stops reading; another publishes far more than socket buffers and the
    // queue hold.
    let mut publisher = raw(&hub.url(), None).await;
    publisher.send(Message::text(connect(1))).await.unwrap();
    text(&mut publisher).await;
    let payload = json!({"text": "x".repeat(50_000)});
    for id in 2..300u32 {
        publisher.send(Message::text(json!({"id": id, "publish": {"channel": "big", "data": payload}}).to_string())).await.unwrap();
        let reply = text(&mut publisher).await;
        assert_eq!(reply["id"], id, "{reply}");
    }
    assert_eq!(close_code(&mut slow).await, 3008);
    // The publisher is unaffected.
    publisher.send(Message::text(json!({"id": 999, "ping": {}}).to_string())).await.unwrap();
    assert_eq!(text(&mut publisher).await, json!({"id": 999, "ping": {}}));
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_recovery_and_the_api_on_the_hub() {
    let hub = serve("    history_size: 3\n    history_ttl: 60s\n    presence: true").await;
    let b64 = |m: &dyn Fn() -> Vec<u8>| STANDARD.encode(m());
    let mut calls = Vec::new();
    for n in 1..=5 {
        calls.push(json!(["centrifuge.Publish", b64(&|| api::PublishRequest { channel: "h".into(), data: json!({"n": n}).to_string().into_bytes(), ..Default::default() }.encode_to_vec())]));
    }
    calls.push(json!(["centrifuge.History", b64(&|| api::HistoryRequest { channel: "h".into(), limit: -1, ..Default::default() }.encode_to_vec())]));
    calls.push(json!(["centrifuge.Publish", b64(&|| api::PublishRequest::default().encode_to_vec())]));
    let r = hub.php(Value::Array(calls)).await;
    let last: api::PublishResponse = decode(&r[4]);
    let position = last.result.unwrap();
    assert_eq!(position.offset, 5);
    let history: api::HistoryResponse = decode(&r[5]);
    let history = history.result.unwrap();
    assert_eq!(history.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), [3, 4, 5], "history_size keeps the newest 3");
    assert_eq!((history.offset, &history.epoch), (5, &position.epoch));
    assert_eq!(decode::<api::PublishResponse>(&r[6]).error, Some(api::Error { code: 107, message: "bad request".into() }), "no channel");

    // A client that saw offset 3 recovers 4 and 5; one that saw 1 cannot (2 fell out of history).
    let mut ws = raw(&hub.url(), None).await;
    let subscribe = |id: u32, channel: &str, offset: u64| json!({"id": id, "subscribe": {"channel": channel, "recover": true, "offset": offset, "epoch": position.epoch}}).to_string();
    ws.send(Message::text(format!("{}\n{}", json!({"id": 1, "connect": {}}), subscribe(2, "h", 3)))).await.unwrap();
    assert_eq!(text(&mut ws).await["id"], 1);
    let sub = text(&mut ws).await;
    let result = &sub["subscribe"];
    assert_eq!((result["recovered"].as_bool(), result["was_recovering"].as_bool(), result["offset"].as_u64()), (Some(true), Some(true), Some(5)), "{sub}");
    assert_eq!(result["publications"].as_array().unwrap().iter().map(|p| p["data"]["n"].as_u64().unwrap()).collect::<Vec<_>>(), [4, 5]);
    ws.send(Message::text(subscribe(3, "h2", 0))).await.unwrap();
    text(&mut ws).await;
    let mut other = raw(&hub.url(), None).await;
    other.send(Message::text(format!("{}\n{}", json!({"id": 1, "connect": {}}), subscribe(2, "h", 1)))).await.unwrap();
    text(&mut other).await;
    assert_eq!(text(&mut other).await["subscribe"]["recovered"], Value::Null, "not recovered (false is left out)");
    // Client-side history and presence.
    ws.send(Message::text(json!({"id": 4, "history": {"channel": "h", "limit": 1, "reverse": true}}).to_string())).await.unwrap();
    let h = text(&mut ws).await;
    assert_eq!((h["history"]["publications"][0]["offset"].as_u64(), h["history"]["offset"].as_u64()), (Some(5), Some(5)), "{h}");
    ws.send(Message::text(json!({"id": 5, "presence_stats": {"channel": "h"}}).to_string())).await.unwrap();
    assert_eq!(text(&mut ws).await["presence_stats"], json!({"num_clients": 2, "num_users": 1}));

    // Broadcast, then Unsubscribe and Subscribe of user 42's connections from PHP.
    let calls = json!([
        ["centrifuge.Broadcast", b64(&|| api::BroadcastRequest { channels: vec!["h".into(), "nobody".into()], data: br#"{"b":1}"#.to_vec(), ..Default::default() }.encode_to_vec())],
        ["centrifuge.Unsubscribe", b64(&|| api::UnsubscribeRequest { channel: "h2".into(), user: "42".into(), ..Default::default() }.encode_to_vec())],
        ["centrifuge.History", b64(&|| api::HistoryRequest { channel: "h".into(), since: Some(api::StreamPosition { offset: 1, epoch: "other".into() }), ..Default::default() }.encode_to_vec())],
        ["centrifuge.Channels", b64(&|| api::ChannelsRequest::default().encode_to_vec())],
    ]);
    let r = hub.php(calls).await;
    let broadcast: api::BroadcastResponse = decode(&r[0]);
    assert_eq!(broadcast.result.unwrap().responses.iter().map(|p| p.result.as_ref().unwrap().offset).collect::<Vec<_>>(), [6, 1]);
    let publication = text(&mut ws).await;
    assert_eq!((publication["push"]["channel"].as_str(), &publication["push"]["pub"]["data"]), (Some("h"), &json!({"b": 1})), "{publication}");
    let unsubscribed = text(&mut ws).await;
    assert_eq!(unsubscribed["push"], json!({"channel": "h2", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}));
    assert_eq!(decode::<api::HistoryResponse>(&r[2]).error.map(|e| e.code), Some(112), "a position from another epoch");
    let channels = decode::<api::ChannelsResponse>(&r[3]).result.unwrap().channels;
    assert_eq!((channels.len(), channels["h"].num_clients), (1, 2), "{channels:?}");
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_reach_subscribers_that_asked() {
    let hub = serve("    join_leave: true").await;
    let join = |channel: &str, join_leave: bool| format!("{}\n{}", json!({"id": 1, "connect": {}}), json!({"id": 2, "subscribe": {"channel": channel, "join_leave": join_leave}}));
    let mut a = raw(&hub.url(), None).await;
    a.send(Message::text(join("room", true))).await.unwrap();
    text(&mut a).await;
    text(&mut a).await;
    let mut quiet = raw(&hub.url(), None).await;
    quiet.send(Message::text(join("room", false))).await.unwrap();
    let quiet_id = text(&mut quiet).await["connect"]["client"].as_str().unwrap().to_string();
    text(&mut quiet).await;
    let joined = text(&mut a).await;
    assert_eq!(joined["push"]["channel"], "room");
    assert_eq!((joined["push"]["join"]["info"]["user"].as_str(), joined["push"]["join"]["info"]["client"].as_str()), (Some("42"), Some(quiet_id.as_str())), "{joined}");
    quiet.close(None).await.unwrap();
    let left = text(&mut a).await;
    assert_eq!(left["push"]["leave"]["info"]["client"].as_str(), Some(quiet_id.as_str()), "{left}");
    // The quiet one asked for none: a publication is the next thing it would see, so check with
    // a third subscriber that did not ask, then publish.
    let mut b = raw(&hub.url(), None).await;
    b.send(Message::text(join("room", false))).await.unwrap();
    text(&mut b).await;
    text(&mut b).await;
    a.close(None).await.unwrap();
    hub.publish("room", &json!({"after": "leave"})).await;
    let next = text(&mut b).await;
    assert_eq!(next["push"]["pub"]["data"], json!({"after": "leave"}), "no join/leave for a subscriber that did not ask: {next}");
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_is_bounded_by_proxy_timeout_and_limits_hold() {
    let hub = serve("    proxy_timeout: 1s\n    client_channel_limit: 1").await;
    let mut ws = raw(&hub.url(), None).await;
    ws.send(Message::text(json!({"id": 1, "connect": {}}).to_string())).await.unwrap();
    text(&mut ws).await;
    ws.send(Message::text(json!({"id": 2, "rpc": {"method": "m", "data": {"cmd": "hang"}}}).to_string())).await.unwrap();
    assert_eq!(text(&mut ws).await, json!({"id": 2, "error": {"code": 100, "message": "internal server error", "temporary": true}}));
    // Still served: the next calls reach a worker.
    for id in 3..6 {
        ws.send(Message::text(json!({"id": id, "rpc": {"method": "m", "data": {"n": id}}}).to_string())).await.unwrap();
        let reply = text(&mut ws).await;
        assert_eq!((reply["id"].as_u64(), reply["rpc"]["data"]["type"].as_str()), (Some(id), Some("rpc")), "{reply}");
    }
    let subscribe = |id: u32, channel: &str| Message::text(json!({"id": id, "subscribe": {"channel": channel}}).to_string());
    ws.send(subscribe(6, &"x".repeat(256))).await.unwrap();
    assert_eq!(text(&mut ws).await["error"]["code"], 106, "channel_max_length");
    ws.send(subscribe(7, "a")).await.unwrap();
    assert!(text(&mut ws).await["subscribe"].is_object());
    ws.send(subscribe(8, "a")).await.unwrap();
    assert_eq!(text(&mut ws).await["error"]["code"], 105, "already subscribed");
    ws.send(subscribe(9, "b")).await.unwrap();
    assert_eq!(text(&mut ws).await["error"], json!({"code": 106, "message": "limit exceeded"}), "client_channel_limit");
    hub.server.stop().await.unwrap();
}

/// `curl -N` reading a unidirectional endpoint: the JSON of each SSE `data:` line, or of each
/// line of an HTTP stream.
struct Sse {
    _child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    sse: bool,
}

impl Sse {
    fn start(hub: &Hub, connect: &Value) -> Sse {
        Sse::get(&format!("http://127.0.0.1:{}", hub.port), connect)
    }

    /// SSE at `base`/connection/uni_sse.
    fn get(base: &str, connect: &Value) -> Sse {
        let query: String = url_encode(&connect.to_string());
        Sse::curl(&["-sN", &format!("{base}/connection/uni_sse?cf_connect={query}")], true)
    }

    /// HTTP streaming: `connect` POSTed to `url`.
    fn stream(url: &str, connect: &Value) -> Sse {
        Sse::curl(&["-sN", "-X", "POST", "--data-binary", &connect.to_string(), url], false)
    }

    fn curl(args: &[&str], sse: bool) -> Sse {
        let mut child = tokio::process::Command::new("curl").args(args).stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Sse { _child: child, lines, sse }
    }

    /// The next event that is not a ping; None when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line()).await.expect("an SSE event").unwrap()?;
            if let Some(json) = if self.sse { line.strip_prefix("data: ") } else { Some(line.as_str()) } {
                let v: Value = serde_json::from_str(json).unwrap();
                if v != json!({}) {
                    return Some(v);
                }
            }
        }
    }
}

fn url_encode(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uni_sse_streams_connect_publications_and_disconnect_to_curl() {
    let hub = serve("    token_hmac_secret_key: k").await;
    // Connect through PHP: transport "uni_sse" in its request.
    let mut sse = Sse::start(&hub, &json!({"data": {"token": "t"}}));
    let connected = sse.next().await.unwrap();
    let echo = &connected["connect"]["data"];
    let body = pb::ConnectRequest::decode(STANDARD.decode(echo["body"].as_str().unwrap()).unwrap().as_slice()).unwrap();
    assert_eq!((body.transport.as_str(), body.protocol.as_str(), body.data.as_slice()), ("uni_sse", "json", &br#"{"token":"t"}"#[..]), "{connected}");
    assert_eq!(connected["connect"]["client"].as_str(), Some(body.client.as_str()));
    // A token with channels: publications on them arrive as events; PHP's disconnect ends it.
    let token = jwt::sign(&json!({"sub": "9", "channels": ["feed"]}), b"k");
    let mut sse = Sse::start(&hub, &json!({"token": token}));
    assert!(sse.next().await.unwrap()["connect"]["subs"]["feed"].is_object());
    hub.publish("feed", &json!({"n": 1})).await;
    let publication = sse.next().await.unwrap();
    assert_eq!((&publication["channel"], &publication["pub"]["data"]), (&json!("feed"), &json!({"n": 1})), "{publication}");
    let disconnect = api::DisconnectRequest { user: "9".into(), ..Default::default() };
    hub.php(json!([["centrifuge.Disconnect", STANDARD.encode(disconnect.encode_to_vec())]])).await;
    assert_eq!(sse.next().await.unwrap(), json!({"disconnect": {"code": 3503, "reason": "force disconnect"}}));
    // A bad token: the disconnect event at once.
    let mut sse = Sse::start(&hub, &json!({"token": "x.y.z"}));
    assert_eq!(sse.next().await.unwrap()["disconnect"]["code"], 3500);
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_publications_over_redis() {
    let prefix = format!("rr-test-{}", std::process::id());
    let broker = format!("    broker:\n      driver: redis\n      config:\n        addrs: [127.0.0.1:6379]\n        prefix: {prefix}");
    let (a, b) = (serve(&broker).await, serve(&broker).await);
    let join = json!({"id": 1, "connect": {}}).to_string() + "\n" + &json!({"id": 2, "subscribe": {"channel": "x"}}).to_string();
    let mut on_a = raw(&a.url(), None).await;
    let mut on_b = raw(&b.url(), None).await;
    for ws in [&mut on_a, &mut on_b] {
        ws.send(Message::text(join.clone())).await.unwrap();
        text(ws).await;
        assert_eq!(text(ws).await["id"], 2);
    }
    // PHP publishes on server A: the client on B receives it too.
    a.publish("x", &json!({"from": "a"})).await;
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(text(ws).await["push"]["pub"]["data"], json!({"from": "a"}));
    }
    // A client publishes on B (through B's PHP): the client on A receives it with its info.
    on_b.send(Message::text(json!({"id": 3, "publish": {"channel": "x", "data": {"from": "b"}}}).to_string())).await.unwrap();
    let on_a_pub = text(&mut on_a).await;
    assert_eq!((on_a_pub["push"]["pub"]["data"]["type"].as_str(), on_a_pub["push"]["pub"]["info"]["user"].as_str()), (Some("publish"), Some("42")), "{on_a_pub}");
    a.server.stop().await.unwrap();
    b.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifuge_python_talks_to_php_and_receives_what_php_publishes() {
    let hub = serve("").await;
    for framing in ["json", "protobuf"] {
        let mut py = Node::python(&hub.url(), framing);
        let (connected, _) = py.until("connected").await;
        let body = pb::ConnectRequest::decode(STANDARD.decode(connected["data"]["body"].as_str().unwrap()).unwrap().as_slice()).unwrap();
        assert_eq!((body.protocol.as_str(), body.name.as_str()), (framing, "python"), "{connected}");
        // Protobuf data comes as the client sent it; JSON data as compact JSON (see docs).
        let sent: &[u8] = if framing == "json" { br#"{"token":"t"}"# } else { br#"{"token": "t"}"# };
        assert_eq!(body.data, sent);
        assert_eq!(py.until("subscribed").await.0["data"]["type"], "subscribe");
        assert_eq!(py.until("rpc").await.0["data"]["type"], "rpc");
        py.until("ready").await;
        hub.publish("chat", &json!({"from": "php"})).await;
        assert_eq!(py.until("publication").await.0["data"], json!({"from": "php"}));
        py.quit().await;
    }
    hub.server.stop().await.unwrap();
}

/// Read a raw connection to its end (the server closed it); what it sent.
async fn until_closed(mut tcp: tokio::net::TcpStream, what: &str) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut seen);
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await.unwrap_or_else(|_| panic!("{what}: the server kept a half-sent request open"));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_headers_never_end_is_dropped_and_others_are_served() {
    let hub = serve("").await;
    // Request line and one header, then silence: neither the upgrade nor SSE may wait forever.
    let mut held = Vec::new();
    for path in ["/connection/websocket", "/connection/uni_sse"] {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n").as_bytes()).await.unwrap();
        held.push((tcp, path));
    }
    // Meanwhile another client is served.
    let mut ws = raw(&hub.url(), None).await;
    ws.send(Message::text(format!("{}\n{}", json!({"id": 1, "connect": {}}), json!({"id": 2, "ping": {}})))).await.unwrap();
    assert!(text(&mut ws).await["connect"].is_object());
    assert_eq!(text(&mut ws).await, json!({"id": 2, "ping": {}}));
    for (tcp, path) in held {
        let answer = until_closed(tcp, path).await;
        assert!(!String::from_utf8_lossy(&answer).contains(" 101 "), "{path}: upgraded a request that never ended");
    }
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_only_their_own_connection() {
    let hub = serve("    max_message_size: 4096\n    client_channel_limit: 2").await;
    let mut bystander = raw(&hub.url(), None).await;
    bystander.send(Message::text(json!({"id": 1, "connect": {}}).to_string())).await.unwrap();
    assert!(text(&mut bystander).await["connect"].is_object());
    // Protobuf varint prefixes: over 64 bits, 11 continuation bytes, 2^63, more than the frame.
    let mut two63 = vec![0x80u8; 9];
    two63.extend([0x01, 0x08, 0x01]);
    for frame in [vec![0xffu8; 10].into_iter().chain([0x01]).collect(), vec![0x80u8; 11], two63, vec![0xc0, 0x84, 0x3d, 0x08, 0x01]] {
        let mut ws = raw(&hub.url(), Some("centrifuge-protobuf")).await;
        ws.send(Message::binary(frame.clone())).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 3501, "{frame:x?}");
    }
    // JSON: nesting past serde's depth limit, bytes that are not UTF-8 in a binary frame, an id
    // over 32 bits (it must not wrap to 1).
    let nested = format!("{{\"id\":1,\"connect\":{{\"data\":{}{}}}}}", "[".repeat(1500), "]".repeat(1500));
    for frame in [Message::text(nested), Message::binary(b"{\"id\":1,\"connect\":{\"name\":\"\xff\xfe\"}}".to_vec()), Message::text(json!({"id": (1u64 << 32) + 1, "connect": {}}).to_string())] {
        let mut ws = raw(&hub.url(), None).await;
        ws.send(frame.clone()).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 3501, "{frame:?}");
    }
    // One frame of many commands: past client_channel_limit each subscribe is refused, a
    // channel with control characters is just a name, an unknown method is an error.
    let mut ws = raw(&hub.url(), None).await;
    let mut batch = vec![json!({"id": 1, "connect": {}})];
    batch.extend((2..8).map(|id| json!({"id": id, "subscribe": {"channel": format!("c\u{1}\u{0}{id}")}})));
    batch.push(json!({"id": 8, "no_such_method": {}}));
    ws.send(Message::text(batch.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"))).await.unwrap();
    assert!(text(&mut ws).await["connect"].is_object());
    let mut codes = Vec::new();
    for _ in 2..9 {
        let r = text(&mut ws).await;
        codes.push((r["id"].as_u64().unwrap(), r["error"]["code"].as_u64()));
    }
    assert_eq!(codes, [(2, None), (3, None), (4, Some(106)), (5, Some(106)), (6, Some(106)), (7, Some(106)), (8, Some(108))]);
    // A ping flood the client never reads the pongs of: the session still answers.
    for _ in 0..2000 {
        ws.feed(Message::Ping(vec![7u8; 100].into())).await.unwrap();
    }
    ws.send(Message::text(json!({"id": 9, "ping": {}}).to_string())).await.unwrap();
    assert_eq!(text(&mut ws).await, json!({"id": 9, "ping": {}}));
    // The bystander never noticed.
    bystander.send(Message::text(json!({"id": 2, "ping": {}}).to_string())).await.unwrap();
    assert_eq!(text(&mut bystander).await, json!({"id": 2, "ping": {}}));
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pong_queued_behind_slow_php_calls_is_not_a_missing_pong() {
    let hub = serve("    ping_interval: 2s\n    pong_timeout: 1s\n    proxy_timeout: 5s").await;
    let mut ws = raw(&hub.url(), None).await;
    ws.send(Message::text(json!({"id": 1, "connect": {}}).to_string())).await.unwrap();
    assert!(text(&mut ws).await["connect"].is_object());
    // Five RPCs PHP answers a second each: the reader is busy well past a ping's pong_timeout.
    let slow: Vec<String> = (2..7).map(|id| json!({"id": id, "rpc": {"method": "m", "data": {"cmd": "slow"}}}).to_string()).collect();
    ws.send(Message::text(slow.join("\n"))).await.unwrap();
    let mut answered = Vec::new();
    while answered.len() < 5 {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a frame").expect("open").unwrap();
        match msg {
            // The server's ping: answered at once, as clients do.
            Message::Text(t) if t.as_str() == "{}" => ws.send(Message::text("{}")).await.unwrap(),
            Message::Text(t) => answered.push(serde_json::from_str::<Value>(t.as_str()).unwrap()["id"].as_u64().unwrap()),
            Message::Close(frame) => panic!("closed while PHP was answering: {frame:?}; answered {answered:?}"),
            _ => {}
        }
    }
    assert_eq!(answered, [2, 3, 4, 5, 6]);
    hub.server.stop().await.unwrap();
}

/// `curl` once: the status and the body.
async fn curl(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or_else(|| panic!("curl {args:?}: {text}"));
    (status.parse().unwrap_or_else(|_| panic!("curl {args:?}: {text}")), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_on_the_http_listener_serves_sockets_beside_php() {
    let (http, https, proxy, rpc) = (free_port(), free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nserver:\n  command: \"php {}\"\nhttp:\n  address: 127.0.0.1:{http}\n  ssl:\n    address: 127.0.0.1:{https}\n    cert: {}\n    key: {}\n  pool:\n    num_workers: 1\n    command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{proxy}\n  pool:\n    num_workers: 2\n  hub:\n    http_path: /connection\n",
        root().join("tests/php/workers/centrifuge.php").display(),
        cert_file.display(),
        key_file.display(),
        root().join("tests/php/workers/http.php").display(),
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_http::Plugin>().plugin::<rr_centrifuge::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("the http listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", http)).await.ok() }).await;
    let rpc = format!("tcp://127.0.0.1:{rpc}");
    server.rpc(&rpc).await;
    let hub = Hub { server, port: http, rpc };
    let base = format!("http://127.0.0.1:{http}");

    // centrifuge-js through the http listener: connect, subscribe, RPC and publish reach PHP.
    let mut node = Node::start(&format!("ws://127.0.0.1:{http}/connection/websocket"), "json", "chat");
    let (connected, _) = node.until("connected").await;
    assert!(connected["data"]["context"].as_str().unwrap().contains(r#""sec-websocket-key":["#), "the upgrade request's headers reach PHP: {connected}");
    node.until("ready").await;
    // Meanwhile the app is PHP on the same port, paths below http_path included.
    assert_eq!(curl(&[&format!("{base}/status?code=201")]).await, (201, "status 201".to_string()));
    assert_eq!(curl(&[&format!("{base}/connection/other")]).await, (200, "Hello, World!".to_string()));
    assert_eq!(curl(&[&format!("{base}/connection/websocket")]).await.0, 400, "a plain GET of the endpoint is no upgrade");
    hub.publish("chat", &json!({"over": "http"})).await;
    let (publication, _) = node.until("publication").await;
    let publication = if publication["data"]["type"] == "publish" { node.until("publication").await.0 } else { publication };
    assert_eq!(publication["data"], json!({"over": "http"}));
    assert_eq!(curl(&[&format!("{base}/status?code=202")]).await.0, 202, "PHP still serves while a socket is open");

    // Over TLS (http.ssl), with the protobuf framing.
    let wss = format!("wss://127.0.0.1:{https}/connection/websocket");
    let mut tls = Node::start_env(&wss, "protobuf", "chat", &[("NODE_EXTRA_CA_CERTS", cert_file.as_path())]);
    let (connected, _) = tls.until("connected").await;
    let body = pb::ConnectRequest::decode(STANDARD.decode(connected["data"]["body"].as_str().unwrap()).unwrap().as_slice()).unwrap();
    assert_eq!((body.transport.as_str(), body.protocol.as_str()), ("websocket", "protobuf"));
    tls.until("ready").await;
    assert_eq!(curl(&["--cacert", cert_file.to_str().unwrap(), &format!("https://127.0.0.1:{https}/status?code=203")]).await.0, 203);

    // The unidirectional endpoints are there too.
    let mut sse = Sse::get(&base, &json!({}));
    assert_eq!(sse.next().await.unwrap()["connect"]["data"]["type"], "connect");
    let mut stream = Sse::stream(&format!("{base}/connection/uni_http_stream"), &json!({"data": {"n": 1}}));
    let connected = stream.next().await.unwrap();
    let body = pb::ConnectRequest::decode(STANDARD.decode(connected["connect"]["data"]["body"].as_str().unwrap()).unwrap().as_slice()).unwrap();
    assert_eq!((body.transport.as_str(), body.data.as_slice()), ("uni_http_stream", &br#"{"n":1}"#[..]));
    node.quit().await;
    tls.quit().await;
    hub.server.stop().await.unwrap();
}

#[test]
fn http_path_without_the_http_plugin_is_refused_at_start() {
    let yaml = "version: '3'\nserver:\n  command: php x.php\ncentrifuge:\n  hub:\n    http_path: /connection\n";
    let config = rr_runtime::config::Config::from_str(yaml).unwrap();
    let err = rr_runtime::host::Host::init(&build(), &config).err().expect("refused");
    assert!(format!("{err:#}").contains("config key `centrifuge.hub.http_path` serves the hub on the http plugin's listeners, but the http plugin is not enabled"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uni_http_stream_streams_connect_publications_and_disconnect_as_lines() {
    let hub = serve("    token_hmac_secret_key: k\n    max_message_size: 1000").await;
    let url = format!("http://127.0.0.1:{}/connection/uni_http_stream", hub.port);
    // Connect through PHP: transport "uni_http_stream" in its request.
    let mut stream = Sse::stream(&url, &json!({"data": {"token": "t"}}));
    let connected = stream.next().await.unwrap();
    let body = pb::ConnectRequest::decode(STANDARD.decode(connected["connect"]["data"]["body"].as_str().unwrap()).unwrap().as_slice()).unwrap();
    assert_eq!((body.transport.as_str(), body.protocol.as_str(), body.data.as_slice()), ("uni_http_stream", "json", &br#"{"token":"t"}"#[..]), "{connected}");
    // A token with channels: publications arrive as lines; PHP's disconnect is the last line.
    let token = jwt::sign(&json!({"sub": "9", "channels": ["feed"]}), b"k");
    let mut stream = Sse::stream(&url, &json!({"token": token}));
    assert!(stream.next().await.unwrap()["connect"]["subs"]["feed"].is_object());
    hub.publish("feed", &json!({"n": 1})).await;
    let publication = stream.next().await.unwrap();
    assert_eq!((&publication["channel"], &publication["pub"]["data"]), (&json!("feed"), &json!({"n": 1})), "{publication}");
    let disconnect = api::DisconnectRequest { user: "9".into(), ..Default::default() };
    hub.php(json!([["centrifuge.Disconnect", STANDARD.encode(disconnect.encode_to_vec())]])).await;
    assert_eq!(stream.next().await.unwrap(), json!({"disconnect": {"code": 3503, "reason": "force disconnect"}}));
    assert_eq!(stream.next().await, None, "the response ends after the disconnect");
    // Centrifugo's answers to what is not a connect request.
    let (status, _) = curl(&["-X", "OPTIONS", "-D", "-", &url]).await;
    assert_eq!(status, 204);
    assert_eq!(curl(&[&url]).await.0, 405, "GET");
    assert_eq!(curl(&["-X", "POST", "--data", "{nope", &url]).await.0, 400);
    assert_eq!(curl(&["-X", "POST", "--data", &"x".repeat(2000), &url]).await.0, 413, "over max_message_size");
    hub.server.stop().await.unwrap();
}

/// A WebSocket upgrade the hub refused: its HTTP status.
async fn refused(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        other => panic!("expected a refused upgrade, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_command_and_channel_limits_answer_with_centrifugos_codes() {
    let limits = "    token_hmac_secret_key: k\n    client_connection_rate_limit: 1\n    client_connection_limit: 2\n    client_user_connection_limit: 1\n    client_command_rate_limit: 5\n    client_channel_limit: 2";
    let hub = serve(limits).await;
    let connect = |sub: &str, channels: &[&str]| Message::text(json!({"id": 1, "connect": {"token": jwt::sign(&json!({"sub": sub, "channels": channels}), b"k")}}).to_string());
    let pace = || tokio::time::sleep(Duration::from_millis(1100));
    // One new connection a second: the next at once is refused with 503.
    let mut a = raw(&hub.url(), None).await;
    a.send(connect("a", &[])).await.unwrap();
    assert!(text(&mut a).await["connect"].is_object());
    assert_eq!(refused(&hub.url()).await, 503, "client_connection_rate_limit");
    let sse = curl(&[&format!("http://127.0.0.1:{}/connection/uni_sse", hub.port)]).await;
    assert_eq!(sse.0, 503, "the rate counts the unidirectional endpoints too");
    // A second connection of user a: 3504.
    pace().await;
    let mut again = raw(&hub.url(), None).await;
    again.send(connect("a", &[])).await.unwrap();
    assert_eq!(close_code(&mut again).await, 3504, "client_user_connection_limit");
    // More server-side channels than client_channel_limit: 3505.
    pace().await;
    let mut many = raw(&hub.url(), None).await;
    many.send(connect("b", &["x", "y", "z"])).await.unwrap();
    assert_eq!(close_code(&mut many).await, 3505, "client_channel_limit at connect");
    // A second connected client fills client_connection_limit: the next upgrade gets 503.
    pace().await;
    let mut c = raw(&hub.url(), None).await;
    c.send(connect("c", &[])).await.unwrap();
    assert!(text(&mut c).await["connect"].is_object());
    pace().await;
    assert_eq!(refused(&hub.url()).await, 503, "client_connection_limit");
    // Eight commands in one frame: five are served, three get 111 (temporary); a second later
    // commands are served again.
    let pings: Vec<String> = (2..10).map(|id| json!({"id": id, "ping": {}}).to_string()).collect();
    a.send(Message::text(pings.join("\n"))).await.unwrap();
    let mut replies = Vec::new();
    for _ in 2..10 {
        let r = text(&mut a).await;
        replies.push((r["id"].as_u64().unwrap(), r["error"].clone()));
    }
    let too_many = json!({"code": 111, "message": "too many requests", "temporary": true});
    assert_eq!(replies.iter().filter(|(_, e)| e.is_null()).count(), 5, "{replies:?}");
    assert_eq!(replies[5..].iter().map(|(id, e)| (*id, e.clone())).collect::<Vec<_>>(), [(7, too_many.clone()), (8, too_many.clone()), (9, too_many)]);
    pace().await;
    a.send(Message::text(json!({"id": 10, "ping": {}}).to_string())).await.unwrap();
    assert_eq!(text(&mut a).await, json!({"id": 10, "ping": {}}));
    // PHP subscribing user c past client_channel_limit: closed with 3505, as Centrifuge does.
    let sub = |channel: &str| json!(["centrifuge.Subscribe", STANDARD.encode(rr_centrifuge::hub::api::SubscribeRequest { channel: channel.into(), user: "c".into(), ..Default::default() }.encode_to_vec())]);
    hub.php(json!([sub("p"), sub("q"), sub("r")])).await;
    assert_eq!(text(&mut c).await["push"]["channel"], "p");
    assert_eq!(text(&mut c).await["push"]["channel"], "q");
    assert_eq!(close_code(&mut c).await, 3505, "client_channel_limit on a server-side subscribe");
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_with_expire_at_are_refreshed_through_php_sub_refresh() {
    let hub = serve("").await;
    let mut ws = raw(&hub.url(), None).await;
    let subscribe = |id: u32, channel: &str, cmd: &str| json!({"id": id, "subscribe": {"channel": channel, "data": {"cmd": cmd}}}).to_string();
    let batch = [json!({"id": 1, "connect": {}}).to_string(), subscribe(2, "expired-a", "expire"), subscribe(3, "kept", "expire"), subscribe(4, "late", "expired")];
    ws.send(Message::text(batch.join("\n"))).await.unwrap();
    assert!(text(&mut ws).await["connect"].is_object());
    for id in [2, 3] {
        let reply = text(&mut ws).await;
        assert_eq!((reply["id"].as_u64(), reply["subscribe"]["expires"].as_bool()), (Some(id), None), "server-side refresh: the client is not told: {reply}");
    }
    assert_eq!(text(&mut ws).await, json!({"id": 4, "error": {"code": 110, "message": "expired"}}), "expire_at in the past");
    // At expire_at PHP's sub_refresh says `expired` for one: it is unsubscribed with 2501 (the
    // client subscribes again); the other PHP lets live on.
    let push = text(&mut ws).await;
    assert_eq!(push["push"], json!({"channel": "expired-a", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}), "{push}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    hub.publish("kept", &json!({"still": "here"})).await;
    hub.publish("expired-a", &json!({"not": "delivered"})).await;
    let publication = text(&mut ws).await;
    assert_eq!((&publication["push"]["channel"], &publication["push"]["pub"]["data"]), (&json!("kept"), &json!({"still": "here"})), "{publication}");
    // PHP's sub_refresh request names the user and channel; its disconnect closes the socket.
    ws.send(Message::text(subscribe(5, "gone-b", "expire"))).await.unwrap();
    assert!(text(&mut ws).await["subscribe"].is_object());
    let (code, reason) = close_frame(&mut ws).await;
    assert_eq!((code, reason.as_str()), (4501, "subrefresh 42 gone-b"));
    // A server-side subscription (from connect) that expires closes the connection with 3006.
    let mut srv = raw(&hub.url(), None).await;
    srv.send(Message::text(json!({"id": 1, "connect": {"data": {"cmd": "expire-subs"}}}).to_string())).await.unwrap();
    assert!(text(&mut srv).await["connect"]["subs"]["expired-srv"].is_object());
    assert_eq!(close_code(&mut srv).await, 3006);
    hub.server.stop().await.unwrap();
}

/// Read until the close frame; its code and reason.
async fn close_frame(ws: &mut Ws) -> (u16, String) {
    let read = async {
        while let Some(msg) = ws.next().await {
            if let Message::Close(Some(frame)) = msg.unwrap() {
                return (u16::from(frame.code), frame.reason.to_string());
            }
        }
        panic!("closed without a close frame");
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("a close frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifuge_js_refreshes_its_connection_token_and_stays_connected() {
    // centrifuge-js refreshes when `ttl` runs out: the delay is its margin on a busy machine.
    let hub = serve("    token_hmac_secret_key: k\n    client_expired_close_delay: 3s").await;
    // Tokens valid for 2 s, signed by the client's getToken: connect, then two refreshes.
    let mut node = Node::start(&hub.url(), "json", "refresh:k:42");
    let (connected, _) = node.until("connected").await;
    assert_eq!(connected["transport"], "websocket", "{connected}");
    for _ in 0..2 {
        let (_, seen) = node.until("token").await;
        assert!(seen.iter().all(|e| e["event"] != "disconnected" && e["event"] != "connected"), "one connection throughout: {seen:?}");
    }
    // Past the first token's exp plus the close delay (~5 s), the connection still receives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    hub.publish("clock", &json!({"t": 1})).await;
    let (publication, seen) = node.until("server_publication").await;
    assert_eq!(publication["data"], json!({"t": 1}));
    assert!(seen.iter().all(|e| e["event"] != "disconnected" && e["event"] != "connected"), "no reconnect: {seen:?}");
    node.quit().await;
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_token_not_refreshed_in_time_is_closed_with_3005() {
    let hub = serve("    token_hmac_secret_key: k\n    client_expired_close_delay: 1s").await;
    let now = || rr_centrifuge::hub::broker::now_ms() / 1000;
    let token = |sub: &str, exp: i64| jwt::sign(&json!({"sub": sub, "exp": exp}), b"k");
    let command = |id: u32, mut body: Value| {
        body["id"] = json!(id);
        Message::text(body.to_string())
    };
    let mut ws = raw(&hub.url(), None).await;
    ws.send(command(1, json!({"connect": {"token": token("5", now() + 2)}}))).await.unwrap();
    let connect = text(&mut ws).await;
    assert_eq!(connect["connect"]["expires"], true, "{connect}");
    assert!((1..=2).contains(&connect["connect"]["ttl"].as_u64().unwrap()), "{connect}");
    // An expired token is error 109; a new one gives a new ttl; no expiry ends it... then one
    // more that the client lets run out.
    ws.send(command(2, json!({"refresh": {"token": token("5", now() - 1)}}))).await.unwrap();
    assert_eq!(text(&mut ws).await["error"]["code"], 109);
    ws.send(command(3, json!({"refresh": {"token": token("5", now() + 4)}}))).await.unwrap();
    let refreshed = text(&mut ws).await;
    assert_eq!((refreshed["id"].as_u64(), &refreshed["refresh"]["expires"]), (Some(3), &json!(true)), "{refreshed}");
    assert!((3..=4).contains(&refreshed["refresh"]["ttl"].as_u64().unwrap()), "{refreshed}");
    let started = std::time::Instant::now();
    assert_eq!(close_frame(&mut ws).await.0, 3005);
    // Not at the first token's exp plus the delay (~3 s) but after the refreshed one's (~4 s + 1 s).
    assert!(started.elapsed() >= Duration::from_millis(3900), "closed after {:?}", started.elapsed());

    // A token of another user: 3500. Sub-refresh with a token: 108 (subscriptions expire
    // server-side, through PHP).
    let mut ws = raw(&hub.url(), None).await;
    ws.send(command(1, json!({"connect": {"token": token("5", now() + 30)}}))).await.unwrap();
    text(&mut ws).await;
    ws.send(command(2, json!({"sub_refresh": {"channel": "a", "token": "t"}}))).await.unwrap();
    assert_eq!(text(&mut ws).await["error"]["code"], 108);
    ws.send(command(3, json!({"refresh": {"token": token("6", now() + 30)}}))).await.unwrap();
    assert_eq!(close_frame(&mut ws).await.0, 3500);
    // A connection without exp that sends a refresh: 3501.
    let mut ws = raw(&hub.url(), None).await;
    ws.send(command(1, json!({"connect": {"token": jwt::sign(&json!({"sub": "5"}), b"k")}}))).await.unwrap();
    assert_eq!(text(&mut ws).await["connect"]["expires"], Value::Null, "no expiry: `expires` omitted");
    ws.send(command(2, json!({"refresh": {"token": token("5", now() + 30)}}))).await.unwrap();
    assert_eq!(close_frame(&mut ws).await.0, 3501);
    hub.server.stop().await.unwrap();
}
