//! tcp echo round trips per second through the tcp plugin, beside the same PHP loop driven
//! straight over pipes (the ceiling) and HTTP/1.1 hello requests through the http plugin (the
//! peer), all in one run. Run: `bench/tcp.sh` (release mode).
//!
//! `cargo run --release -p rr-tcp --example tcp_bench -- [round trips per client] [runs] [connections]`
//!
//! 2 workers per path: (a) **pipes**: this process writes DATA frames (the plugin's context, body
//! `ping\r\n`) to each worker's stdin (`tests/php/workers/tcp.php`) and reads the reply, one client
//! per worker; (b) **tcp**: `connections` clients, each with its own TCP connection, send
//! `ping\r\n` and wait for the echo; (c) **http**: as many keep-alive HTTP/1.1 clients send `GET /`
//! to `examples/hello`. The servers run in a child process (`tcp_bench serve <tcp port> <http
//! port>`), so its CPU time per round trip is measured apart; the tcp and http clients are plain
//! blocking threads (one per connection, as cheap as wrk's), the same for both. Medians.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use rr_runtime::frame::Frame;
use rr_runtime::relay::{Relay, pid_handshake};
use rr_runtime::testing::{TestServer, free_port};
use rr_tcp::codec::{Contexts, Event};

// The allocator every `rr` that velox builds uses.
#[global_allocator]
static ALLOCATOR: rr_runtime::Allocator = rr_runtime::Allocator;

const WORKERS: usize = 2;
const MESSAGE: &[u8] = b"ping\r\n";

fn root() -> String {
    format!("{}/../..", env!("CARGO_MANIFEST_DIR"))
}

/// One path's round: round trips per second and every round trip's latency (µs).
struct Sample {
    rate: f64,
    latencies: Vec<f64>,
    server_cpu: f64,
}

/// Run `clients` threads of `round_trips` each; `one` does a round trip on the thread's state.
fn threads<S: Send + 'static>(states: Vec<S>, round_trips: usize, one: fn(&mut S)) -> (f64, Vec<f64>) {
    let started = Instant::now();
    let n = states.len();
    let handles: Vec<_> = states
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(round_trips);
                for _ in 0..round_trips {
                    let t = Instant::now();
                    one(&mut s);
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                }
                latencies
            })
        })
        .collect();
    let latencies: Vec<f64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    ((n * round_trips) as f64 / started.elapsed().as_secs_f64(), latencies)
}

/// The PHP loop over pipes: one client per worker.
async fn pipes(round_trips: usize) -> Sample {
    let started = Instant::now();
    let clients: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(async move {
                let mut child = tokio::process::Command::new("php")
                    .args(["-d", "opcache.enable_cli=1"])
                    .arg(format!("{}/tests/php/workers/tcp.php", root()))
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
                let mut latencies = Vec::with_capacity(round_trips);
                for _ in 0..round_trips {
                    let t = Instant::now();
                    relay.send(&request).await.unwrap();
                    relay.receive().await.unwrap();
                    latencies.push(t.elapsed().as_secs_f64() * 1e6);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for c in clients {
        latencies.extend(c.await.unwrap());
    }
    Sample { rate: (WORKERS * round_trips) as f64 / started.elapsed().as_secs_f64(), latencies, server_cpu: f64::NAN }
}

fn tcp_round_trip(s: &mut std::net::TcpStream) {
    let mut reply = [0u8; MESSAGE.len()];
    s.write_all(MESSAGE).unwrap();
    s.read_exact(&mut reply).unwrap();
}

fn http_round_trip(s: &mut BufReader<std::net::TcpStream>) {
    s.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n").unwrap();
    let (mut line, mut length) = (String::new(), 0usize);
    loop {
        line.clear();
        s.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
}

fn connect(port: u16, connections: usize) -> Vec<std::net::TcpStream> {
    (0..connections)
        .map(|_| {
            let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect()
}

/// CPU seconds (user + system) of process `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat.rsplit(')').next().unwrap_or("").split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    (fields.get(11).copied().unwrap_or(0.0) + fields.get(12).copied().unwrap_or(0.0)) / 100.0 // USER_HZ
}

fn measured(server: u32, round: impl FnOnce() -> (f64, Vec<f64>)) -> Sample {
    let before = cpu_seconds(server);
    let started = Instant::now();
    let (rate, latencies) = round();
    let trips = rate * started.elapsed().as_secs_f64();
    Sample { rate, latencies, server_cpu: (cpu_seconds(server) - before) / trips * 1e6 }
}

/// The servers: the tcp plugin (echo) and the http plugin (examples/hello), 2 workers each, until
/// stdin closes.
fn serve(tcp_port: u16, http_port: u16) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let yaml = format!(
            "version: '3'\nserver:\n  command: \"php -d opcache.enable_cli=1 {root}/tests/php/workers/tcp.php\"\ntcp:\n  servers:\n    echo:\n      addr: 127.0.0.1:{tcp_port}\n  pool:\n    num_workers: {WORKERS}\nhttp:\n  address: 127.0.0.1:{http_port}\n  pool:\n    command: \"php -d opcache.enable_cli=1 {root}/examples/hello/worker.php\"\n    num_workers: {WORKERS}\n",
            root = root()
        );
        let build = rr_runtime::Build::new("rr", "bench").plugin::<rr_tcp::Plugin>().plugin::<rr_http::Plugin>();
        let server = TestServer::start(&build, &yaml);
        tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await.unwrap().unwrap();
        server.stop().await.unwrap();
    });
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("serve") {
        return serve(argv[1].parse().unwrap(), argv[2].parse().unwrap());
    }
    let arg = |i: usize, default: usize| argv.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (round_trips, runs, connections) = (arg(0, 20_000), arg(1, 5), arg(2, 2));
    let (tcp_port, http_port) = (free_port(), free_port());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["serve", &tcp_port.to_string(), &http_port.to_string()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("start the server process");
    let server = child.id();
    for port in [tcp_port, http_port] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let per_client = round_trips * WORKERS / connections;
    let tcp = || threads(connect(tcp_port, connections), per_client, tcp_round_trip);
    let http = || threads(connect(http_port, connections).into_iter().map(BufReader::new).collect(), per_client, http_round_trip);
    // Warm up both servers' workers.
    threads(connect(tcp_port, connections), 200, tcp_round_trip);
    threads(connect(http_port, connections).into_iter().map(BufReader::new).collect(), 200, http_round_trip);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut samples: [Vec<Sample>; 3] = Default::default();
    for _ in 0..runs {
        samples[0].push(rt.block_on(pipes(round_trips)));
        samples[1].push(measured(server, tcp));
        samples[2].push(measured(server, http));
    }
    println!("{WORKERS} workers, {round_trips} round trips per worker, {connections} connections, median of {runs} runs");
    println!("| path | round trips/s | p50 µs | p99 µs | server CPU µs per round trip |\n|---|---|---|---|---|");
    let mut rates = Vec::new();
    for (path, samples) in ["PHP loop over pipes", "tcp plugin", "http plugin, HTTP/1.1 hello"].iter().zip(samples) {
        let rate = median(samples.iter().map(|s| s.rate).collect());
        let cpu = median(samples.iter().map(|s| s.server_cpu).collect());
        let mut latencies: Vec<f64> = samples.into_iter().flat_map(|s| s.latencies).collect();
        latencies.sort_by(f64::total_cmp);
        let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        let cpu = if cpu.is_nan() { "–".to_string() } else { format!("{cpu:.1}") };
        println!("| {path} | {rate:.0} | {:.0} | {:.0} | {cpu} |", at(0.5), at(0.99));
        rates.push(rate);
    }
    println!("| tcp / pipes | {:.2}x | | | |\n| tcp / http | {:.2}x | | | |", rates[1] / rates[0], rates[1] / rates[2]);
    drop(child.stdin.take());
    let _ = child.wait();
}
