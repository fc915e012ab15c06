//! Servers with the hub, PHP's API calls, raw WebSocket clients, centrifuge-js and redis-server
//! processes for the hub's tests over Redis.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use prost::Message as _;
use rr_centrifuge::api_proto as api;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn build() -> rr_runtime::Build {
    rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_metrics::Plugin>().plugin::<rr_centrifuge::Plugin>()
}

pub struct Hub {
    pub server: TestServer,
    pub port: u16,
    pub rpc: String,
    pub metrics: u16,
}

/// The `.rr.yaml` of a server with the hub on `port`; `hub` adds keys under `centrifuge.hub:`.
pub fn yaml(port: u16, rpc: u16, metrics: u16, hub: &str) -> String {
    format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nmetrics:\n  address: 127.0.0.1:{metrics}\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{}\n  pool:\n    num_workers: 1\n  hub:\n    address: 127.0.0.1:{port}\n{hub}\n",
        root().join("tests/php/workers/centrifuge.php").display(),
        free_port()
    )
}

/// A server with the hub on `port` (a free one when None).
pub async fn serve(hub: &str, port: Option<u16>) -> Hub {
    let (port, rpc, metrics) = (port.unwrap_or_else(free_port), free_port(), free_port());
    let mut server = TestServer::start(&build(), &yaml(port, rpc, metrics, hub));
    server.until("the hub listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    let rpc = format!("tcp://127.0.0.1:{rpc}");
    server.rpc(&rpc).await;
    Hub { server, port, rpc, metrics }
}

/// `centrifuge.<method>` calls from PHP (roadrunner-php/centrifugo's way) to the RPC server at
/// `rpc`; one JSON answer per call.
pub async fn php(rpc: &str, calls: Value) -> Vec<Value> {
    let out = tokio::process::Command::new("php").arg(root().join("tests/php/centrifuge_api_client.php")).arg(calls.to_string()).env("RR_RPC", rpc).output().await.unwrap();
    assert!(out.status.success(), "php failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

pub fn decode<M: prost::Message + Default>(r: &Value) -> M {
    M::decode(STANDARD.decode(r["ok"].as_str().unwrap_or_else(|| panic!("{r}"))).unwrap().as_slice()).unwrap()
}

impl Hub {
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    pub async fn publish(&self, channel: &str, data: &Value) -> api::PublishResponse {
        let req = api::PublishRequest { channel: channel.into(), data: data.to_string().into_bytes(), ..Default::default() };
        decode(&php(&self.rpc, json!([["centrifuge.Publish", STANDARD.encode(req.encode_to_vec())]])).await[0])
    }

    /// PHP's Presence: the client ids, sorted.
    pub async fn presence(&self, channel: &str) -> Vec<String> {
        let req = api::PresenceRequest { channel: channel.into() };
        let r: api::PresenceResponse = decode(&php(&self.rpc, json!([["centrifuge.Presence", STANDARD.encode(req.encode_to_vec())]])).await[0]);
        let mut clients: Vec<String> = r.result.unwrap_or_else(|| panic!("presence failed: {:?}", r.error)).presence.into_keys().collect();
        clients.sort();
        clients
    }

    pub async fn history(&self, channel: &str) -> api::HistoryResult {
        let req = api::HistoryRequest { channel: channel.into(), limit: -1, ..Default::default() };
        let r: api::HistoryResponse = decode(&php(&self.rpc, json!([["centrifuge.History", STANDARD.encode(req.encode_to_vec())]])).await[0]);
        r.result.unwrap_or_else(|| panic!("history failed: {:?}", r.error))
    }

    /// The metrics plugin's page.
    pub async fn metrics(&self) -> String {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics)).await.unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut body = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut body).await.unwrap();
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// Poll `probe` every 100 ms until it yields a value; panics naming `what` after `within`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, within: Duration, mut probe: impl FnMut() -> F) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < within, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw JSON client, connected and subscribed to `channel` (with join/leave pushes when
/// `join_leave`); its client id.
pub async fn subscriber(url: &str, channel: &str, join_leave: bool) -> (Ws, String) {
    use futures::SinkExt;
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    let cmds = json!({"id": 1, "connect": {}}).to_string() + "\n" + &json!({"id": 2, "subscribe": {"channel": channel, "join_leave": join_leave}}).to_string();
    ws.send(Message::text(cmds)).await.unwrap();
    let id = text(&mut ws).await["connect"]["client"].as_str().unwrap().to_string();
    assert_eq!(text(&mut ws).await["id"], 2);
    (ws, id)
}

pub async fn text(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a message within 30 s").unwrap().unwrap() {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Binary(_) => panic!("binary frame on a JSON session"),
            _ => {}
        }
    }
}

/// The centrifuge-js install: `$CENTRIFUGE_JS`, else the cache tests/run.sh fills (installed
/// here when missing).
pub fn centrifuge_js() -> PathBuf {
    let dir = std::env::var_os("CENTRIFUGE_JS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/rr-tests/centrifuge-js"));
    if !dir.join("node_modules/centrifuge/package.json").exists() {
        let ok = Command::new("npm").args(["install", "--prefix"]).arg(&dir).args(["--no-audit", "--no-fund", "--silent", "centrifuge@5.7.4", "ws@8.18.3"]).status().unwrap();
        assert!(ok.success(), "npm install centrifuge ws into {}", dir.display());
    }
    dir
}

/// centrifuge-js in Node (tests/hub_redis_client.js); its events, one JSON line each.
pub struct Node {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Node {
    pub fn start(url: &str, channel: &str) -> Node {
        let mut child = tokio::process::Command::new("node")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hub_redis_client.js"))
            .args([url, channel])
            .env("CENTRIFUGE_JS", centrifuge_js())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Node { child, lines }
    }

    /// The next event named `name` (earlier ones are returned too).
    pub async fn until(&mut self, name: &str) -> (Value, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line()).await.unwrap_or_else(|_| panic!("no `{name}` event; saw {seen:?}"));
            let line = line.unwrap().unwrap_or_else(|| panic!("node exited before `{name}`; saw {seen:?}"));
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["event"] == name {
                return (event, seen);
            }
            seen.push(event);
        }
    }

    pub async fn quit(mut self) {
        let _ = self.child.stdin.as_mut().unwrap().write_all(b"quit\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// A redis-server of the test, killed when dropped.
pub struct RedisProcess(std::process::Child);

impl RedisProcess {
    /// `redis-server <args> --dir <dir>` (a replica's sync would write its dump in the cwd).
    pub fn start(dir: &Path, args: &[&str]) -> RedisProcess {
        let child = Command::new("redis-server").args(args).arg("--dir").arg(dir).stdout(Stdio::null()).spawn().expect("redis-server (Debian package redis-server)");
        RedisProcess(child)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().expect("redis-cli (Debian package redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `broker:` keys for Redis with its own key prefix per test, so tests run in parallel.
pub fn broker(prefix: &str, config: &str) -> String {
    format!("    broker:\n      driver: redis\n      config:\n        prefix: rr-test-{}-{prefix}\n{config}", std::process::id())
}
