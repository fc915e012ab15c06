//! Unary gRPC calls per second against the same PHP work driven two other ways, side by side in
//! one run (run it with `bench/grpc.sh`):
//!
//! - **bare relay**: 2 PHP workers driven straight over their pipes with the exact payload the
//!   grpc plugin sends (the ceiling: the worker loop's own rate);
//! - **grpc**: the grpc plugin with 2 workers, `clients` concurrent calls over 2 HTTP/2
//!   connections;
//! - **http**: the http plugin with 2 workers doing the same work, over h2c (2 connections) and
//!   HTTP/1.1 (`clients` keep-alive connections).
//!
//! Each network path is loaded by our Rust clients (tonic, bare hyper) and by `h2load` (Debian
//! `nghttp2-client`, a C load generator that costs the shared cores much less) when installed.
//! Every round runs every path, and the CPU time per call of the load generator and of the
//! server process is measured beside the rates: on 2 cores they share with PHP, it decides.
//!
//! `cargo run --release -p rr-grpc --example grpc_bench -- [calls per client] [runs] [clients]`
//! (the servers run in a child process of the same binary: `grpc_bench serve <grpc port> <http port>`)

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use rr_runtime::frame::Frame;
use rr_runtime::relay::{Relay, pid_handshake};
use rr_runtime::testing::{TestServer, free_port};

#[path = "../tests/support/raw_codec.rs"]
mod raw_codec;
use raw_codec::Raw;

// The allocator every `rr` that velox builds uses (plugin-templates/server/src/main.rs.tera).
#[global_allocator]
static ALLOCATOR: rr_runtime::Allocator = rr_runtime::Allocator;

const MESSAGE: &[u8] = b"\x0a\x05hello";
const WORKERS: usize = 2;

/// One round of one path: calls/s and latencies in µs (h2load prints no percentiles), and the
/// CPU time per call of the load generator and of the server process (PHP not included).
struct Sample {
    rate: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    mean: f64,
    client_cpu: f64,
    server_cpu: f64,
}

/// CPU seconds from /proc/<pid>/stat: (own user+system, that of reaped children).
fn cpu_seconds(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat.rsplit(')').next().unwrap_or("").split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect();
    let tick = |i: usize| fields.get(i).copied().unwrap_or(0.0) / 100.0; // USER_HZ
    (tick(11) + tick(12), tick(13) + tick(14))
}

/// Run one round, charging the CPU time it took to the client (this process, and h2load when
/// `h2load`: the bare relay's PHP workers are reaped children too) and to the server process.
fn measured(server: u32, calls: usize, h2load: bool, round: impl FnOnce() -> Option<Sample>) -> Option<Sample> {
    let server = server.to_string();
    let ((own, children), (srv, _)) = (cpu_seconds("self"), cpu_seconds(&server));
    let mut sample = round()?;
    let ((own2, children2), (srv2, _)) = (cpu_seconds("self"), cpu_seconds(&server));
    let children = if h2load { children2 - children } else { 0.0 };
    sample.client_cpu = (own2 - own + children) * 1e6 / calls as f64;
    sample.server_cpu = (srv2 - srv) * 1e6 / calls as f64;
    Some(sample)
}

fn summarize(mut lat: Vec<Duration>, elapsed: Duration) -> Sample {
    lat.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = lat.iter().map(|d| us(*d)).sum::<f64>() / lat.len() as f64;
    Sample { rate: lat.len() as f64 / elapsed.as_secs_f64(), p50: Some(us(lat[lat.len() / 2])), p99: Some(us(lat[lat.len() * 99 / 100])), mean, client_cpu: 0.0, server_cpu: 0.0 }
}

fn worker() -> String {
    format!("php {}/../../bench/grpc/worker.php", env!("CARGO_MANIFEST_DIR"))
}

fn proto() -> String {
    format!("{}/tests/proto/service.proto", env!("CARGO_MANIFEST_DIR"))
}

/// `clients` tasks of `calls` each; the latencies of all and the wall time.
async fn load<F, Fut>(clients: usize, calls: usize, call: F) -> Sample
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Box<dyn FnMut() -> futures::future::BoxFuture<'static, ()> + Send>>,
{
    let mut callers = Vec::new();
    for i in 0..clients {
        callers.push(call(i).await);
    }
    let started = Instant::now();
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|mut one| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let t = Instant::now();
                    one().await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    summarize(all, started.elapsed())
}

/// The ceiling: each worker driven over its pipes by one client, with the grpc plugin's payload.
async fn bare(calls: usize) -> Sample {
    let payload = rr_grpc::call::payload("service.Echo", "Ping", Some("127.0.0.1:9001"), &{
        let mut h = http::HeaderMap::new();
        h.insert("content-type", "application/grpc".parse().unwrap());
        h.insert("user-agent", "tonic/0.14".parse().unwrap());
        h
    }, "127.0.0.1:50000", false, Bytes::from_static(MESSAGE));
    let request = Frame::data(payload.codec, &payload.context, &payload.body);
    let spawned = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sample = load(WORKERS, calls, |_| {
        let (request, spawned) = (request.clone(), spawned.clone());
        async move {
            let args: Vec<String> = worker().split_whitespace().map(str::to_string).collect();
            let mut child = tokio::process::Command::new(&args[0])
                .args(&args[1..])
                .env("RR_RELAY", "pipes")
                .env("RR_MODE", "grpc")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn worker");
            let mut relay = Relay::new(Box::new(child.stdout.take().unwrap()), Box::new(child.stdin.take().unwrap()));
            pid_handshake(&mut relay, std::process::id()).await.expect("handshake");
            let relay = std::sync::Arc::new(tokio::sync::Mutex::new((relay, child)));
            spawned.lock().unwrap().push(relay.clone());
            Box::new(move || {
                let (relay, request) = (relay.clone(), request.clone());
                Box::pin(async move {
                    let mut guard = relay.lock().await;
                    guard.0.send(&request).await.unwrap();
                    let reply = guard.0.receive().await.unwrap();
                    assert!(reply.payload.ends_with(b"HELLO"), "unexpected reply: {reply:?}");
                }) as futures::future::BoxFuture<'static, ()>
            }) as Box<dyn FnMut() -> futures::future::BoxFuture<'static, ()> + Send>
        }
    })
    .await;
    // Reaped now, so that their CPU time is not charged to the round that happens to reap them.
    let workers = std::mem::take(&mut *spawned.lock().unwrap());
    for worker in workers {
        let _ = worker.lock().await.1.kill().await;
    }
    sample
}

async fn grpc(port: u16, clients: usize, calls: usize) -> Sample {
    let channels: Vec<tonic::transport::Channel> = futures::future::join_all(
        (0..2).map(|_| async { tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap() }),
    )
    .await;
    load(clients, calls, |i| {
        let channel = channels[i % channels.len()].clone();
        async move {
            Box::new(move || {
                let mut c = tonic::client::Grpc::new(channel.clone());
                Box::pin(async move {
                    c.ready().await.unwrap();
                    let path = http::uri::PathAndQuery::from_static("/service.Echo/Ping");
                    let reply = c.unary(tonic::Request::new(Bytes::from_static(MESSAGE)), path, Raw).await.unwrap();
                    assert_eq!(&reply.get_ref()[2..], b"HELLO");
                }) as futures::future::BoxFuture<'static, ()>
            }) as Box<dyn FnMut() -> futures::future::BoxFuture<'static, ()> + Send>
        }
    })
    .await
}

/// Calls from a bare hyper HTTP/2 client (no tonic) over 2 connections: gRPC calls to the grpc
/// plugin (`grpc`), or plain POSTs to the http plugin over h2c: how much of the gap between the
/// gRPC and HTTP/1.1 rows is HTTP/2 itself.
async fn h2(port: u16, clients: usize, calls: usize, grpc: bool) -> Sample {
    let mut senders = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        senders.push(send);
    }
    let body = if grpc {
        let mut framed = vec![0u8, 0, 0, 0, MESSAGE.len() as u8];
        framed.extend_from_slice(MESSAGE);
        Bytes::from(framed)
    } else {
        Bytes::from_static(b"hello")
    };
    load(clients, calls, |i| {
        let (send, body) = (senders[i % senders.len()].clone(), body.clone());
        async move {
            Box::new(move || {
                let (mut send, body) = (send.clone(), body.clone());
                Box::pin(async move {
                    let req = match grpc {
                        true => http::Request::post(format!("http://127.0.0.1:{port}/service.Echo/Ping")).header("content-type", "application/grpc").header("te", "trailers"),
                        false => http::Request::post(format!("http://127.0.0.1:{port}/")),
                    };
                    let resp = send.send_request(req.body(http_body_util::Full::new(body)).unwrap()).await.unwrap();
                    let body = resp.into_body().collect().await.unwrap();
                    match grpc {
                        true => assert_eq!(body.trailers().and_then(|t| t.get("grpc-status")).unwrap(), "0"),
                        false => assert_eq!(&body.to_bytes()[..], b"HELLO"),
                    }
                }) as futures::future::BoxFuture<'static, ()>
            }) as Box<dyn FnMut() -> futures::future::BoxFuture<'static, ()> + Send>
        }
    })
    .await
}

async fn http1(port: u16, clients: usize, calls: usize) -> Sample {
    load(clients, calls, |_| async move {
        let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let send = std::sync::Arc::new(tokio::sync::Mutex::new(send));
        Box::new(move || {
            let send = send.clone();
            Box::pin(async move {
                let req = http::Request::post("/").header("host", "bench").body(http_body_util::Full::new(Bytes::from_static(b"hello"))).unwrap();
                let mut send = send.lock().await;
                let resp = send.send_request(req).await.unwrap();
                assert_eq!(&resp.into_body().collect().await.unwrap().to_bytes()[..], b"HELLO");
            }) as futures::future::BoxFuture<'static, ()>
        }) as Box<dyn FnMut() -> futures::future::BoxFuture<'static, ()> + Send>
    })
    .await
}

/// One `h2load` run of `total` requests with `clients` in flight; `None` without h2load. A
/// failed request fails the benchmark (h2load counts 2xx as success; the gRPC status is checked
/// by the tonic warm-up against the same server).
fn h2load(url: &str, h1: bool, clients: usize, total: usize, body: &[u8], grpc: bool) -> Option<Sample> {
    let file = std::env::temp_dir().join(format!("grpc_bench_body_{}", std::process::id()));
    std::fs::write(&file, body).unwrap();
    let mut cmd = std::process::Command::new("h2load");
    cmd.args(["-n", &total.to_string(), "-d"]).arg(&file);
    match h1 {
        true => cmd.args(["--h1", "-c", &clients.to_string()]),
        false => cmd.args(["-c", "2", "-m", &(clients / 2).max(1).to_string()]),
    };
    if grpc {
        cmd.args(["-H", "content-type: application/grpc", "-H", "te: trailers"]);
    }
    let out = cmd.arg(url).output();
    let _ = std::fs::remove_file(&file);
    let out = out.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let micros = |word: &str| -> Option<f64> {
        let (n, unit) = word.split_at(word.find(|c: char| c.is_alphabetic())?);
        Some(n.parse::<f64>().ok()? * [("us", 1.0), ("ms", 1e3), ("s", 1e6)].iter().find(|u| u.0 == unit)?.1)
    };
    let line = |start: &str| text.lines().find(|l| l.trim_start().starts_with(start)).unwrap_or_else(|| panic!("h2load printed no `{start}`:\n{text}"));
    assert!(line("requests:").contains(&format!("{total} succeeded")), "h2load: not every request succeeded:\n{text}");
    let rate = line("finished in").split(", ").nth(1).and_then(|w| w.trim_end_matches(" req/s").parse().ok()).expect("h2load rate");
    let mean = line("time for request:").split_whitespace().nth(5).and_then(micros).expect("h2load mean latency");
    Some(Sample { rate, p50: None, p99: None, mean, client_cpu: 0.0, server_cpu: 0.0 })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// The servers run in a child process (this binary with `serve`), so the load generator and
/// the server do not share a tokio runtime; the http plugin has threads of its own anyway.
fn serve(gport: u16, hport: u16) {
    let yaml = format!(
        "version: '3'\nlogs:\n  mode: off\nserver:\n  command: \"{}\"\ngrpc:\n  listen: tcp://127.0.0.1:{gport}\n  proto: \"{}\"\n  max_concurrent_streams: 100\n  pool:\n    num_workers: {WORKERS}\nhttp:\n  address: 127.0.0.1:{hport}\n  codec: json\n  http2:\n    h2c: true\n  pool:\n    num_workers: {WORKERS}\n",
        worker(),
        proto()
    );
    let build = rr_runtime::Build::new("rr", "bench").plugin::<rr_http::Plugin>().plugin::<rr_grpc::Plugin>();
    let rt = match std::env::var("BENCH_SERVER_THREADS").ok().and_then(|n| n.parse::<usize>().ok()) {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build().unwrap(),
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap(),
    };
    rt.block_on(async {
        let server = TestServer::start(&build, &yaml);
        // Until the parent closes our stdin.
        let _ = tokio::io::AsyncReadExt::read(&mut tokio::io::stdin(), &mut [0u8; 1]).await;
        server.stop().await.unwrap();
    });
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("serve") {
        return serve(argv[1].parse().unwrap(), argv[2].parse().unwrap());
    }
    let calls: usize = argv.first().and_then(|s| s.parse().ok()).unwrap_or(5_000);
    let runs: usize = argv.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let clients: usize = argv.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (gport, hport) = (free_port(), free_port());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["serve", &gport.to_string(), &hport.to_string()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("start the server process");
    rt.block_on(async {
        for port in [gport, hport] {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // Warm up every worker on both paths.
        grpc(gport, clients, 200).await;
        http1(hport, clients, 200).await;
    });
    println!("{WORKERS} PHP workers (bench/grpc/worker.php), {calls} calls per client, {clients} concurrent clients (bare relay: one per worker), median of {runs} rounds");
    let grpc_body = [&[0u8, 0, 0, 0, MESSAGE.len() as u8][..], MESSAGE].concat();
    let (grpc_url, http_url) = (format!("http://127.0.0.1:{gport}/service.Echo/Ping"), format!("http://127.0.0.1:{hport}/"));
    let total = calls * clients;
    let have_h2load = std::process::Command::new("h2load").arg("--version").output().is_ok();
    if !have_h2load {
        println!("(h2load not installed: `apt-get install nghttp2-client` for the h2load rows)");
    }
    let paths = [
        "bare relay (ceiling)",
        "grpc plugin, tonic client (2 connections)",
        "grpc plugin, hyper h2 client (2 connections)",
        "grpc plugin, h2load (2 connections)",
        "http plugin, h2c, hyper h2 client (2 connections)",
        "http plugin, h2c, h2load (2 connections)",
        "http plugin, HTTP/1.1, hyper client",
        "http plugin, HTTP/1.1, h2load",
    ];
    let mut results: Vec<Vec<Sample>> = paths.iter().map(|_| Vec::new()).collect();
    // Rounds of every path, so that a change in the machine's load falls on all of them.
    for _ in 0..runs {
        for (i, samples) in results.iter_mut().enumerate() {
            let sample = measured(child.id(), total, matches!(i, 3 | 5 | 7), || match i {
                0 => Some(rt.block_on(bare(calls * clients / WORKERS))),
                1 => Some(rt.block_on(grpc(gport, clients, calls))),
                2 => Some(rt.block_on(h2(gport, clients, calls, true))),
                3 => have_h2load.then(|| h2load(&grpc_url, false, clients, total, &grpc_body, true)).flatten(),
                4 => Some(rt.block_on(h2(hport, clients, calls, false))),
                5 => have_h2load.then(|| h2load(&http_url, false, clients, total, b"hello", false)).flatten(),
                6 => Some(rt.block_on(http1(hport, clients, calls))),
                _ => have_h2load.then(|| h2load(&http_url, true, clients, total, b"hello", false)).flatten(),
            });
            samples.extend(sample);
        }
    }
    println!("| path | calls/s | p50 µs | p99 µs | mean µs | client CPU µs/call | rr CPU µs/call |");
    println!("|---|---|---|---|---|---|---|");
    let mut rates = Vec::new();
    for (path, samples) in paths.iter().zip(&results) {
        let rate = (!samples.is_empty()).then(|| median(samples.iter().map(|s| s.rate).collect()));
        rates.push(rate.unwrap_or(f64::NAN));
        let Some(rate) = rate else { continue };
        let cell = |f: fn(&Sample) -> Option<f64>| samples.iter().map(f).collect::<Option<Vec<f64>>>().map_or("–".into(), |v| format!("{:.0}", median(v)));
        let (client, server) = (cell(|s| Some(s.client_cpu)), cell(|s| Some(s.server_cpu)));
        println!("| {path} | {rate:.0} | {} | {} | {} | {client} | {server} |", cell(|s| s.p50), cell(|s| s.p99), cell(|s| Some(s.mean)));
    }
    let pct = |a: usize, b: usize| rates[a] / rates[b] * 100.0;
    println!("\ngrpc / ceiling: {:.0} % (tonic), {:.0} % (h2load)", pct(1, 0), pct(3, 0));
    println!("grpc / http h2c: {:.0} % (hyper h2 clients), {:.0} % (h2load)", pct(2, 4), pct(3, 5));
    println!("grpc / http HTTP/1.1: {:.0} % (tonic vs hyper), {:.0} % (h2load)", pct(1, 6), pct(3, 7));
    drop(child.stdin.take());
    let _ = child.wait();
}
