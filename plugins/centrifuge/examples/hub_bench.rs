//! Fan-out of the embedded Centrifuge hub against its ceiling, side by side in one run (run it
//! with `bench/centrifuge.sh`):
//!
//! - **hub**: `rr` with `centrifuge.hub`; N WebSocket clients (JSON framing, connected with a
//!   token whose `channels` subscribes them to `bench`); PHP publishes through RPC
//!   (bench/centrifuge_publish.php: `centrifuge.Publish`, as roadrunner-php/centrifugo does);
//! - **ceiling**: a minimal broadcast server written here with the same WebSocket library
//!   (tokio-tungstenite): every frame one client sends goes to all other clients. The publisher
//!   is a WebSocket client of this binary sending the very frames the hub would push, so that
//!   the N receivers do the same work for both.
//!
//! Each round connects N clients to a server, measures its RSS before and after (per idle
//! connection), then a burst of publications back to back (deliveries per second: N × burst
//! over the time from the first send to the last receipt) and paced publications 20 ms apart
//! (publish-to-receive latency p50 / p99: the send time travels in the data), and the server's
//! CPU time per delivery (/proc; less sensitive to the shared machine's load than rates).
//! Rounds alternate between the two servers, so that a change of load falls on both.
//!
//! `hub_bench [clients,clients...] [runs] [burst]` (servers run in child processes of this
//! binary: `hub_bench serve-hub <yaml>`, `hub_bench serve-ceiling <port>`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use rr_runtime::testing::{TestServer, free_port};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

// The allocator of every `rr` velox builds (plugin-templates/server/src/main.rs.tera).
#[global_allocator]
static ALLOCATOR: rr_runtime::Allocator = rr_runtime::Allocator;

const CHANNEL: &str = "bench";
const SECRET: &str = "bench-secret";
const PACED: usize = 20;
const PACE: Duration = Duration::from_millis(20);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Small read buffers for both servers and the clients: tungstenite zero-fills the whole read
/// buffer, 128 KiB by default (the hub uses 4 KiB, hub/conn.rs).
fn ws_config() -> WebSocketConfig {
    let mut cfg = WebSocketConfig::default();
    cfg.read_buffer_size = 4096;
    cfg
}

// ---- servers -------------------------------------------------------------------------------

fn serve_hub(yaml: &str) {
    let build = rr_runtime::Build::new("rr", "bench").plugin::<rr_rpc::Plugin>().plugin::<rr_centrifuge::Plugin>();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let server = TestServer::start(&build, yaml);
        let _ = tokio::io::AsyncReadExt::read(&mut tokio::io::stdin(), &mut [0u8; 1]).await;
        server.stop().await.unwrap();
    });
}

type Peers = Arc<std::sync::Mutex<std::collections::HashMap<u64, tokio::sync::mpsc::UnboundedSender<Message>>>>;

/// The ceiling: accept, and send every text frame a client sends to every other client through
/// its own unbounded queue (the frame's bytes shared, not copied).
fn serve_ceiling(port: u16) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let peers: Peers = Default::default();
        let mut next = 0u64;
        tokio::spawn(async {
            let _ = tokio::io::AsyncReadExt::read(&mut tokio::io::stdin(), &mut [0u8; 1]).await;
            std::process::exit(0);
        });
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.set_nodelay(true);
            next += 1;
            tokio::spawn(ceiling_conn(tcp, next, peers.clone()));
        }
    });
}

async fn ceiling_conn(tcp: tokio::net::TcpStream, id: u64, peers: Peers) {
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config())).await else { return };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    peers.lock().unwrap().insert(id, tx);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(msg @ Message::Text(_))) => {
                    for (_, peer) in peers.lock().unwrap().iter().filter(|(p, _)| **p != id) {
                        let _ = peer.send(msg.clone());
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            Some(out) = rx.recv() => if sink.send(out).await.is_err() { break },
        }
    }
    peers.lock().unwrap().remove(&id);
}

// ---- clients -------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Hub,
    Ceiling,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: Server, port: u16, token: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{port}/connection/websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true).await.unwrap();
    if server == Server::Hub {
        ws.send(Message::text(format!(r#"{{"id":1,"connect":{{"token":"{token}"}}}}"#))).await.unwrap();
        loop {
            match ws.next().await.expect("the connect reply").unwrap() {
                Message::Text(t) if t.as_str().contains(r#""connect""#) => break,
                Message::Text(t) => panic!("connect failed: {t}"),
                _ => {}
            }
        }
    }
    ws
}

/// The number after `"<key>":` in a frame.
fn number(frame: &str, key: &str) -> u64 {
    let at = frame.find(key).map(|i| i + key.len()).unwrap_or_else(|| panic!("no {key} in {frame}"));
    frame[at..].bytes().take_while(u8::is_ascii_digit).fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}

/// Shared by the receivers of a round: deliveries so far, the last receipt of the burst.
#[derive(Default)]
struct Progress {
    delivered: AtomicUsize,
    last_burst_us: AtomicU64,
}

/// Receive `burst` then `PACED` publications (answering the hub's pings); the latencies in µs
/// of the paced ones.
async fn receive(mut ws: Ws, burst: usize, progress: Arc<Progress>) -> Vec<u32> {
    let mut latencies = Vec::with_capacity(PACED);
    let mut seen = 0;
    while seen < burst + PACED {
        let msg = match ws.next().await {
            Some(Ok(msg)) => msg,
            other => panic!("a receiver's connection ended: {other:?}"),
        };
        let Message::Text(t) = msg else { continue };
        if t.as_str() == "{}" {
            ws.send(Message::text("{}")).await.unwrap();
            continue;
        }
        let now = now_us();
        seen += 1;
        let n = number(t.as_str(), "\"n\":") as usize;
        if n > burst {
            latencies.push(now.saturating_sub(number(t.as_str(), "\"t\":")) as u32);
        } else {
            progress.last_burst_us.fetch_max(now, Ordering::Relaxed);
        }
        progress.delivered.fetch_add(1, Ordering::Relaxed);
    }
    latencies
}

/// What the hub pushes for a publication of `data` on the channel.
fn push_frame(data: &str) -> String {
    format!(r#"{{"push":{{"channel":"{CHANNEL}","pub":{{"data":{data}}}}}}}"#)
}

/// Publish `count` publications numbered from `first`, `gap` apart; the first send time (µs).
async fn publish(server: Server, rpc: &str, ceiling: Option<&mut Ws>, first: usize, count: usize, gap: Duration) -> u64 {
    match server {
        Server::Hub => {
            let out = tokio::process::Command::new("php")
                .arg(root().join("bench/centrifuge_publish.php"))
                .args([CHANNEL, &count.to_string(), &gap.as_micros().to_string()])
                .env("RR_RPC", rpc)
                .env("BENCH_FIRST", first.to_string())
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "php: {}", String::from_utf8_lossy(&out.stderr));
            number(&String::from_utf8_lossy(&out.stdout), "first:")
        }
        Server::Ceiling => {
            let ws = ceiling.unwrap();
            let mut start = 0;
            for n in first..first + count {
                let t = now_us();
                start = if start == 0 { t } else { start };
                ws.send(Message::text(push_frame(&format!(r#"{{"t":{t},"n":{n}}}"#)))).await.unwrap();
                if !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
            }
            start
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat.rsplit(')').next().unwrap_or("").split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

struct Sample {
    deliveries_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    rss_per_conn: f64,
    cpu_us_per_delivery: f64,
}

struct Target {
    server: Server,
    port: u16,
    pid: u32,
    rpc: String,
}

async fn round(target: &Target, clients: usize, burst: usize, token: &str) -> Sample {
    let before = rss_kib(target.pid);
    let conns: Vec<Ws> = futures::stream::iter(0..clients).map(|_| connect(target.server, target.port, token)).buffer_unordered(200).collect().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_per_conn = (rss_kib(target.pid) as f64 - before as f64) * 1024.0 / clients as f64;
    let mut publisher = match target.server {
        Server::Ceiling => Some(connect(Server::Ceiling, target.port, token).await),
        Server::Hub => None,
    };
    // The ceiling's publisher is a peer too: wait until the server has it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let progress = Arc::new(Progress::default());
    let receivers: Vec<_> = conns.into_iter().map(|ws| tokio::spawn(receive(ws, burst, progress.clone()))).collect();
    let cpu = cpu_seconds(target.pid);
    let start = publish(target.server, &target.rpc, publisher.as_mut(), 1, burst, Duration::ZERO).await;
    while progress.delivered.load(Ordering::Relaxed) < clients * burst {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cpu = cpu_seconds(target.pid) - cpu;
    let elapsed = progress.last_burst_us.load(Ordering::Relaxed).saturating_sub(start).max(1);
    publish(target.server, &target.rpc, publisher.as_mut(), burst + 1, PACED, PACE).await;
    let mut latencies = Vec::with_capacity(clients * PACED);
    for r in receivers {
        latencies.extend(r.await.unwrap());
    }
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)] as f64;
    Sample {
        deliveries_per_s: (clients * burst) as f64 / (elapsed as f64 / 1e6),
        p50_us: pct(50),
        p99_us: pct(99),
        rss_per_conn,
        cpu_us_per_delivery: cpu * 1e6 / (clients * burst) as f64,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("serve-hub") => return serve_hub(&argv[1]),
        Some("serve-ceiling") => return serve_ceiling(argv[1].parse().unwrap()),
        _ => {}
    }
    let sizes: Vec<usize> = argv.first().map_or("1000,10000", String::as_str).split(',').map(|n| n.parse().expect("clients: a comma-separated list of numbers")).collect();
    let runs: usize = argv.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let burst: usize = argv.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let limit = raise_fd_limit();
    assert!(limit as usize > sizes.iter().max().unwrap() + 100, "RLIMIT_NOFILE {limit} is too low for the clients");
    let (hub_port, rpc_port, proxy_port, ceiling_port) = (free_port(), free_port(), free_port(), free_port());
    let yaml = format!(
        "version: '3'\nlogs:\n  mode: off\nrpc:\n  listen: tcp://127.0.0.1:{rpc_port}\nserver:\n  command: \"php {}\"\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{proxy_port}\n  pool:\n    num_workers: 1\n  hub:\n    address: 127.0.0.1:{hub_port}\n    token_hmac_secret_key: {SECRET}\n",
        root().join("tests/php/workers/centrifuge.php").display()
    );
    let exe = std::env::current_exe().unwrap();
    let spawn = |args: &[&str]| std::process::Command::new(&exe).args(args).stdin(std::process::Stdio::piped()).spawn().expect("start a server process");
    let mut hub = spawn(&["serve-hub", &yaml]);
    let mut ceiling = spawn(&["serve-ceiling", &ceiling_port.to_string()]);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let token = rr_centrifuge::hub::jwt::sign(&serde_json::json!({"sub": "bench", "channels": [CHANNEL]}), SECRET.as_bytes());
    let targets = [
        Target { server: Server::Ceiling, port: ceiling_port, pid: ceiling.id(), rpc: String::new() },
        Target { server: Server::Hub, port: hub_port, pid: hub.id(), rpc: format!("tcp://127.0.0.1:{rpc_port}") },
    ];
    rt.block_on(async {
        for port in [hub_port, ceiling_port, rpc_port] {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Warm up both servers (and PHP's opcache of the publisher).
        for t in &targets {
            round(t, 100, 10, &token).await;
        }
    });
    println!("JSON framing, one channel, burst of {burst} publications back to back then {PACED} paced {PACE:?} apart; median of {runs} rounds; hub publisher: PHP through RPC");
    println!("| clients | server | deliveries/s | p50 µs | p99 µs | server CPU µs/delivery | RSS per idle connection (largest) |");
    println!("|---|---|---|---|---|---|---|");
    for &clients in &sizes {
        let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (i, t) in targets.iter().enumerate() {
                samples[i].push(rt.block_on(round(t, clients, burst, &token)));
            }
        }
        let mut rates = [0.0; 2];
        for (i, name) in ["ceiling (tokio-tungstenite broadcast)", "hub (rr, PHP publishing through RPC)"].iter().enumerate() {
            let m = |f: fn(&Sample) -> f64| median(samples[i].iter().map(f).collect());
            rates[i] = m(|s| s.deliveries_per_s);
            // RSS: the largest of the rounds (a later round may reuse memory an earlier one freed).
            let rss = samples[i].iter().map(|s| s.rss_per_conn).fold(0.0, f64::max);
            println!("| {clients} | {name} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} KiB |", rates[i], m(|s| s.p50_us), m(|s| s.p99_us), m(|s| s.cpu_us_per_delivery), rss / 1024.0);
        }
        println!("| {clients} | hub / ceiling | {:.0} % | | | | |", rates[1] / rates[0] * 100.0);
    }
    for child in [&mut hub, &mut ceiling] {
        drop(child.stdin.take());
        let _ = child.wait();
    }
}
