//! tcp echo round trips per second through the tcp plugin versus the same PHP loop driven
//! straight over pipes. Run: `bench/tcp.sh` (release mode).
//!
//! `cargo run --release -p rr-tcp --example tcp_bench -- [round trips per client] [runs] [connections]`
//!
//! With 2 workers running `tests/php/workers/tcp.php`: (a) **pipes**: this process writes DATA
//! frames (the plugin's context, body `ping\r\n`) to each worker's stdin and reads the reply, one
//! client per worker, the ceiling the PHP loop allows; (b) **tcp**: `connections` clients, each
//! with its own TCP connection, send `ping\r\n` and wait for the echo. Medians over the runs.

use std::time::Instant;

use rr_runtime::frame::Frame;
use rr_runtime::relay::{Relay, pid_handshake};
use rr_runtime::testing::{TestServer, free_port};
use rr_tcp::codec::{Contexts, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WORKERS: usize = 2;
const MESSAGE: &[u8] = b"ping\r\n";

fn worker() -> String {
    format!("{}/../../tests/php/workers/tcp.php", env!("CARGO_MANIFEST_DIR"))
}

/// Round trips per second of one worker per client, straight over pipes.
async fn pipes(round_trips: usize) -> f64 {
    let started = Instant::now();
    let clients: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(async move {
                let mut child = tokio::process::Command::new("php")
                    .arg(worker())
                    .env("RR_RELAY", "pipes")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("spawn php");
                let mut relay = Relay::new(Box::new(child.stdout.take().unwrap()), Box::new(child.stdin.take().unwrap()));
                pid_handshake(&mut relay, std::process::id()).await.expect("handshake");
                let ctx = Contexts::new("127.0.0.1:40000", "echo", "0b6f5c3e-2a41-4d38-9c55-5a0c2f1e7d11").get(Event::Data);
                let request = Frame::data(0, &ctx, MESSAGE);
                for _ in 0..round_trips {
                    relay.send(&request).await.unwrap();
                    relay.receive().await.unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    (WORKERS * round_trips) as f64 / started.elapsed().as_secs_f64()
}

/// Round trips per second of `connections` TCP clients through the plugin.
async fn tcp(port: u16, connections: usize, round_trips: usize) -> f64 {
    let mut streams = Vec::new();
    for _ in 0..connections {
        streams.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let started = Instant::now();
    let clients: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut reply = [0u8; MESSAGE.len()];
                for _ in 0..round_trips {
                    s.write_all(MESSAGE).await.unwrap();
                    s.read_exact(&mut reply).await.unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    (connections * round_trips) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn main() {
    let argv: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let round_trips = argv.first().copied().unwrap_or(20_000);
    let runs = argv.get(1).copied().unwrap_or(5);
    let connections = argv.get(2).copied().unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let port = free_port();
        let yaml = format!(
            "version: '3'\nserver:\n  command: \"php {}\"\ntcp:\n  servers:\n    echo:\n      addr: 127.0.0.1:{port}\n  pool:\n    num_workers: {WORKERS}\n",
            worker()
        );
        let build = rr_runtime::Build::new("rr", "bench").plugin::<rr_tcp::Plugin>();
        let mut server = TestServer::start(&build, &yaml);
        server.until("the tcp listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
        let (mut bare, mut served) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            bare.push(pipes(round_trips).await);
            served.push(tcp(port, connections, round_trips * WORKERS / connections).await);
        }
        let (bare, served) = (median(bare), median(served));
        println!("{WORKERS} workers, {round_trips} round trips per worker, {connections} tcp connections, median of {runs} runs");
        println!("| path | round trips/s |\n|---|---|");
        println!("| PHP loop over pipes | {bare:.0} |\n| tcp plugin | {served:.0} |\n| tcp / pipes | {:.2}x |", served / bare);
        server.stop().await.unwrap();
    });
}
