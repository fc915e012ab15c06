//! RPC calls per second through the goridge RPC server, with 1 and 8 concurrent clients, each on
//! its own connection (as PHP's RPC and MultiRPC use them). The same run measures the registry
//! call without the socket, to show the transport's share, and PHP clients (one process each,
//! `bench/rpc_php_client.php` on our test library), which is what an application sees.
//!
//! `cargo run --release -p rr-rpc --example rpc_bench -- [seconds-per-case] [runs]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rr_runtime::config::Config;
use rr_runtime::host::Host;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::free_port;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let address = format!("tcp://127.0.0.1:{}", free_port());
    let config = Config::from_str(&format!("version: '3'\nrpc:\n  listen: {address}\n")).unwrap();
    let host = Host::init(&rr_runtime::Build::new("rr", "bench").plugin::<rr_rpc::Plugin>(), &config).unwrap();
    let services = host.services.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move { host.run_until(async { let _ = rx.await; }, Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!("| clients | path | calls/s (median of {runs}, {secs} s each) |");
    println!("|---|---|---|");
    for clients in [1usize, 8] {
        let mut over_socket = Vec::new();
        let mut in_process = Vec::new();
        let mut from_php = Vec::new();
        for _ in 0..runs {
            let count = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let (count, address) = (count.clone(), address.clone());
                    tokio::spawn(async move {
                        let mut c = RpcClient::connect(&address).await.unwrap();
                        while Instant::now() < deadline {
                            c.call("rpc.Version", Codec::Json, b"true").await.unwrap();
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            over_socket.push(count.load(Ordering::Relaxed) as f64 / secs as f64);

            let count = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let (count, services) = (count.clone(), services.clone());
                    tokio::spawn(async move {
                        while Instant::now() < deadline {
                            services.rpc.call("rpc.Version", Codec::Json, bytes::Bytes::from_static(b"true")).await.unwrap();
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            in_process.push(count.load(Ordering::Relaxed) as f64 / secs as f64);

            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/rpc_php_client.php");
            let php: Vec<_> = (0..clients)
                .map(|_| {
                    let mut cmd = tokio::process::Command::new("php");
                    cmd.arg(script).arg(secs.to_string()).env("RR_RPC", &address);
                    cmd.output()
                })
                .collect();
            let mut calls = 0u64;
            for out in futures::future::join_all(php).await {
                let out = out.expect("php is needed for the PHP client rows");
                calls += String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or_else(|_| panic!("php client: {}", String::from_utf8_lossy(&out.stderr)));
            }
            from_php.push(calls as f64 / secs as f64);
        }
        println!("| {clients} | goridge RPC over TCP | {:.0} |", median(over_socket));
        println!("| {clients} | registry call, no socket | {:.0} |", median(in_process));
        println!("| {clients} | PHP client processes over TCP | {:.0} |", median(from_php));
    }
    let _ = tx.send(());
    let _ = server.await;
}
