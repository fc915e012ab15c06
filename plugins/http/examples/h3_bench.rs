//! Hello-world requests per second over HTTP/3 beside HTTP/2 over TLS, side by side in one run:
//! the same server process, the same PHP workers, the same certificate, the same load shape
//! (`connections` connections, `streams` requests in flight on each, for `seconds` a round).
//! Run it with `bench/h3.sh`:
//!
//! `cargo run --release -p rr-http --example h3_bench -- [seconds] [rounds] [connections] [streams]`
//!
//! The server runs in a child process of this binary (`h3_bench serve <tls port> <h3 port> <dir>`),
//! so the load generator does not share its tokio runtime.

#[path = "../tests/support/h3_client.rs"]
mod h3_client;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use rr_runtime::testing::{TestServer, free_port};

const WORKERS: usize = 2;
const HELLO: &[u8] = b"Hello, World!";

fn serve(tls: u16, h3: u16, dir: &str) {
    let yaml = format!(
        "version: '3'\nlogs:\n  mode: off\nserver:\n  command: \"php {}/../../tests/php/workers/http.php\"\nhttp:\n  codec: json\n  ssl:\n    address: 127.0.0.1:{tls}\n    cert: {dir}/cert.pem\n    key: {dir}/key.pem\n  http3:\n    address: 127.0.0.1:{h3}\n    cert: {dir}/cert.pem\n    key: {dir}/key.pem\n  pool:\n    num_workers: {WORKERS}\n",
        env!("CARGO_MANIFEST_DIR")
    );
    let build = rr_runtime::Build::new("rr", "bench").plugin::<rr_http::Plugin>();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
        let server = TestServer::start(&build, &yaml);
        // Until the parent closes our stdin.
        let _ = tokio::io::AsyncReadExt::read(&mut tokio::io::stdin(), &mut [0u8; 1]).await;
        server.stop().await.unwrap();
    });
}

/// Requests per second of `clients` tasks, each sending `one()` requests back to back for `secs`.
async fn load<F, Fut>(secs: u64, tasks: Vec<F>) -> f64
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let running: Vec<_> = tasks
        .into_iter()
        .map(|mut one| {
            let done = done.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    one().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in running {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn http3(port: u16, pem: &str, secs: u64, connections: usize, streams: usize) -> f64 {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = h3_client::H3Client::connect(port, pem).await.unwrap();
        for _ in 0..streams {
            let client = client.clone();
            tasks.push(move || {
                let client = client.clone();
                async move {
                    let (status, body) = client.get("/").await.unwrap();
                    assert!(status == 200 && body == HELLO, "{status} {body:?}");
                }
            });
        }
    }
    load(secs, tasks).await
}

async fn http2(port: u16, pem: &str, secs: u64, connections: usize, streams: usize) -> f64 {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let stream = connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        for _ in 0..streams {
            let send = send.clone();
            tasks.push(move || {
                let mut send = send.clone();
                async move {
                    let req = http::Request::get(format!("https://localhost:{port}/")).body(http_body_util::Empty::<Bytes>::new()).unwrap();
                    let resp = send.send_request(req).await.unwrap();
                    let status = resp.status();
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    assert!(status == 200 && body == HELLO, "{status} {body:?}");
                }
            });
        }
    }
    load(secs, tasks).await
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("serve") {
        return serve(argv[1].parse().unwrap(), argv[2].parse().unwrap(), &argv[3]);
    }
    let arg = |i: usize, default: usize| argv.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (secs, rounds, connections, streams) = (arg(0, 5) as u64, arg(1, 5), arg(2, 4), arg(3, 8));
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let pem = cert.cert.pem();
    let (tls, h3) = (free_port(), free_port());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["serve", &tls.to_string(), &h3.to_string(), &dir.path().display().to_string()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("start the server process");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        while tokio::net::TcpStream::connect(("127.0.0.1", tls)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Warm up both paths and every worker.
        http2(tls, &pem, 1, connections, streams).await;
        http3(h3, &pem, 1, connections, streams).await;
        let (mut h2_rates, mut h3_rates) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            // Alternating which goes first, so a drift of the machine's load hits both.
            let (a, b) = if round % 2 == 1 {
                let a = http2(tls, &pem, secs, connections, streams).await;
                (a, http3(h3, &pem, secs, connections, streams).await)
            } else {
                let b = http3(h3, &pem, secs, connections, streams).await;
                (http2(tls, &pem, secs, connections, streams).await, b)
            };
            eprintln!("round {round}: HTTP/2+TLS {a:.0} req/s, HTTP/3 {b:.0} req/s");
            h2_rates.push(a);
            h3_rates.push(b);
        }
        let (h2m, h3m) = (median(h2_rates), median(h3_rates));
        println!("hello world, {WORKERS} PHP workers, {connections} connections x {streams} streams, {rounds} rounds of {secs} s");
        println!("| protocol | req/s (median) | ratio to HTTP/2+TLS |");
        println!("|---|---|---|");
        println!("| HTTP/2 over TLS (hyper, rustls) | {h2m:.0} | 1.00 |");
        println!("| HTTP/3 (quinn, h3) | {h3m:.0} | {:.2} |", h3m / h2m);
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
