//! 10,000 idle WebSocket clients on the embedded hub: all connect, answer the server's pings and
//! stay connected, a publication from PHP reaches every one of them, and meanwhile a new client
//! is served at once.
//!
//! 10,000 client sockets and their 10,000 server sockets do not fit under one process's
//! descriptor limit where the hard limit is 20,000 and cannot be raised (containers without
//! CAP_SYS_RESOURCE), so the hub runs in a child process: this binary re-run as
//! `hub_idle serve <yaml>`. Hence `harness = false`: `main` is the test.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use rr_centrifuge::api_proto as api;
use rr_centrifuge::hub::jwt;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

// The allocator of every `rr` velox builds, so that the server's RSS is what users see.
#[global_allocator]
static ALLOCATOR: rr_runtime::Allocator = rr_runtime::Allocator;

const NAME: &str = "ten_thousand_idle_connections_answer_pings_and_all_receive_a_publication";
const CLIENTS: usize = 10_000;
const SECRET: &str = "idle-secret";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve(&args[1]);
    }
    // The parts of libtest's command line cargo and users pass: `--list` and name filters.
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip" => {
                if it.next().is_some_and(|s| NAME.contains(s.as_str())) {
                    return println!("running 0 tests");
                }
            }
            _ if a.starts_with('-') => {}
            _ => filters.push(a.as_str()),
        }
    }
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f)) {
        return println!("running 0 tests");
    }
    if args.iter().any(|a| a == "--ignored") {
        return println!("running 0 tests");
    }
    println!("running 1 test");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(ten_thousand_idle_connections());
    println!("test {NAME} ... ok");
}

/// The child: the hub until its stdin closes.
fn serve(yaml: &str) {
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_centrifuge::Plugin>();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let server = TestServer::start(&build, yaml);
        let _ = tokio::io::AsyncReadExt::read(&mut tokio::io::stdin(), &mut [0u8; 1]).await;
        server.stop().await.unwrap();
    });
}

/// Raise the soft descriptor limit to the hard one (the child inherits it).
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap()
}

/// Small buffers: the default 128 KiB read buffer each would be 1.3 GB of client memory here.
fn client_config() -> WebSocketConfig {
    let mut cfg = WebSocketConfig::default();
    cfg.read_buffer_size = 4096;
    cfg
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connected session (token with channel `idle`): the connect reply is read.
async fn connect(url: &str, token: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(client_config()), false).await.unwrap();
    ws.send(Message::text(json!({"id": 1, "connect": {"token": token}}).to_string())).await.unwrap();
    let reply = next_text(&mut ws).await;
    assert!(reply["connect"]["subs"]["idle"].is_object(), "{reply}");
    ws
}

async fn next_text(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a frame within 30 s").expect("open").unwrap() {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(f) => panic!("closed: {f:?}"),
            _ => {}
        }
    }
}

#[derive(Default)]
struct Counts {
    /// Clients that answered at least one server ping.
    pinged: AtomicUsize,
    /// Clients that received the publication.
    received: AtomicUsize,
    /// Clients whose connection ended.
    closed: AtomicUsize,
}

/// Answer pings with pongs, count the publication; until the connection ends.
async fn idle(mut ws: Ws, counts: Arc<Counts>) {
    let mut pinged = false;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        if t.as_str() == "{}" {
            if ws.send(Message::text("{}")).await.is_err() {
                break;
            }
            if !std::mem::replace(&mut pinged, true) {
                counts.pinged.fetch_add(1, Ordering::Relaxed);
            }
        } else if t.as_str().contains(r#""pub":{"data":{"n":1}"#) {
            counts.received.fetch_add(1, Ordering::Relaxed);
        }
    }
    counts.closed.fetch_add(1, Ordering::Relaxed);
}

/// Wait until `done()`, at most `secs`; panics naming `what` with the counts.
async fn until(what: &str, secs: u64, counts: &Counts, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: pinged {}, received {}, closed {}", counts.pinged.load(Ordering::Relaxed), counts.received.load(Ordering::Relaxed), counts.closed.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn php(rpc: &str, calls: Value) -> Vec<Value> {
    let out = tokio::process::Command::new("php").arg(root().join("tests/php/centrifuge_api_client.php")).arg(calls.to_string()).env("RR_RPC", rpc).output().await.unwrap();
    assert!(out.status.success(), "php failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn ten_thousand_idle_connections() {
    let limit = raise_fd_limit();
    assert!(limit > CLIENTS as u64 + 200, "RLIMIT_NOFILE's hard limit is {limit}: too low for {CLIENTS} clients");
    let (port, proxy, rpc) = (free_port(), free_port(), free_port());
    // Pings every 3 s, each answered within 2 s or the client is closed (3012).
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{proxy}\n  pool:\n    num_workers: 1\n  hub:\n    address: 127.0.0.1:{port}\n    token_hmac_secret_key: {SECRET}\n    ping_interval: 3s\n    pong_timeout: 2s\n",
        root().join("tests/php/workers/centrifuge.php").display()
    );
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap()).args(["serve", &yaml]).stdin(std::process::Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the hub never listened");
        assert!(child.try_wait().unwrap().is_none(), "the hub's process exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rpc = format!("tcp://127.0.0.1:{rpc}");
    let url = format!("ws://127.0.0.1:{port}/connection/websocket");
    let token = jwt::sign(&json!({"sub": "idle", "channels": ["idle"]}), SECRET.as_bytes());
    let server = child.id().unwrap();
    let before = rss_kib(server);

    let counts = Arc::new(Counts::default());
    let connected = futures::stream::iter(0..CLIENTS).map(|_| connect(&url, &token)).buffer_unordered(100);
    connected.for_each(|ws| async { drop(tokio::spawn(idle(ws, counts.clone()))) }).await;
    let setup = started.elapsed();
    // Every client answered a ping, and none was closed for a missing pong a pong_timeout later.
    until("every client pinged", 30, &counts, || counts.pinged.load(Ordering::Relaxed) == CLIENTS).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(counts.closed.load(Ordering::Relaxed), 0, "clients closed while idle");
    let per_client = (rss_kib(server).saturating_sub(before)) * 1024 / CLIENTS as u64;

    // Meanwhile a new client connects and is answered.
    let mut fresh = connect(&url, &token).await;
    fresh.send(Message::text(json!({"id": 2, "ping": {}}).to_string())).await.unwrap();
    assert_eq!(next_text(&mut fresh).await, json!({"id": 2, "ping": {}}));
    // PHP publishes once: every idle client receives it; the hub counts them all.
    let publish = api::PublishRequest { channel: "idle".into(), data: br#"{"n":1}"#.to_vec(), ..Default::default() };
    let r = php(&rpc, json!([["centrifuge.Publish", STANDARD.encode(publish.encode_to_vec())], ["centrifuge.Info", ""]])).await;
    assert!(r[0]["ok"].is_string(), "{r:?}");
    until("every client received the publication", 30, &counts, || counts.received.load(Ordering::Relaxed) == CLIENTS).await;
    let info = rr_centrifuge::hub::api::InfoResponse::decode(STANDARD.decode(r[1]["ok"].as_str().unwrap()).unwrap().as_slice()).unwrap().result.unwrap();
    assert_eq!(info.nodes[0].num_clients as usize, CLIENTS + 1);
    assert!(next_text(&mut fresh).await["push"]["pub"].is_object(), "the new client too");
    assert_eq!(counts.closed.load(Ordering::Relaxed), 0);
    // An idle connection costs the server little memory: the 128 KiB read buffer tungstenite
    // would zero-fill per connection by default stays out (see hub/conn.rs).
    println!("{CLIENTS} clients connected in {setup:?}; server RSS {before} KiB before, {per_client} B per idle connection");
    assert!(per_client < 48 * 1024, "{per_client} bytes of server RSS per idle connection");

    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
}
