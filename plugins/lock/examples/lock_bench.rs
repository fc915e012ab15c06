//! Lock/release pairs per second through the `lock.*` RPC service, from 1 and 8 concurrent
//! clients, each on its own connection: every client on its own resource (no contention) or all
//! on one (each pair waits for the others). Rust goridge clients show the server's ceiling; PHP
//! client processes (`bench/lock_php_client.php` on our test library) what an application sees.
//!
//! `cargo run --release -p rr-lock --example lock_bench -- [seconds-per-case] [runs]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use rr_lock::proto::{Request, Response};
use rr_runtime::config::Config;
use rr_runtime::host::Host;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::free_port;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn call(c: &mut RpcClient, method: &str, req: &Request) -> bool {
    let reply = c.call(method, Codec::Proto, &req.encode_to_vec()).await.unwrap();
    Response::decode(reply).unwrap().ok
}

/// Pairs per second of `clients` Rust clients for `secs`.
async fn rust_clients(address: &str, clients: usize, shared: bool, secs: u64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let (count, address) = (count.clone(), address.to_string());
            tokio::spawn(async move {
                let mut c = RpcClient::connect(&address).await.unwrap();
                let resource = if shared { "bench".to_string() } else { format!("bench-{n}") };
                let req = Request { resource, id: format!("client-{n}"), ttl: Some(10_000_000), wait: Some(10_000_000) };
                while Instant::now() < deadline {
                    assert!(call(&mut c, "lock.Lock", &req).await && call(&mut c, "lock.Release", &req).await);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / secs as f64
}

/// Pairs per second of `clients` PHP client processes for `secs`.
async fn php_clients(address: &str, clients: usize, shared: bool, secs: u64) -> f64 {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/lock_php_client.php");
    let runs = (0..clients).map(|n| {
        let resource = if shared { "bench".to_string() } else { format!("bench-{n}") };
        tokio::process::Command::new("php").arg(script).arg(secs.to_string()).arg(resource).env("RR_RPC", address).output()
    });
    let mut pairs = 0u64;
    for out in futures::future::join_all(runs).await {
        let out = out.expect("php is needed for the PHP client rows");
        pairs += String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or_else(|_| panic!("php client: {}", String::from_utf8_lossy(&out.stderr)));
    }
    pairs as f64 / secs as f64
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let address = format!("tcp://127.0.0.1:{}", free_port());
    let config = Config::from_str(&format!("version: '3'\nrpc:\n  listen: {address}\n")).unwrap();
    let build = rr_runtime::Build::new("rr", "bench").plugin::<rr_rpc::Plugin>().plugin::<rr_lock::Plugin>();
    let host = Host::init(&build, &config).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move { host.run_until(async { let _ = rx.await; }, Duration::from_secs(5)).await });
    while RpcClient::connect(&address).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!("| clients | resource | client | lock/release pairs/s (median of {runs}, {secs} s each) |");
    println!("|---|---|---|---|");
    for clients in [1usize, 8] {
        for shared in [false, true] {
            if clients == 1 && shared {
                continue;
            }
            let resource = if shared { "one for all" } else { "one each" };
            let (mut rust, mut php) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                rust.push(rust_clients(&address, clients, shared, secs).await);
                php.push(php_clients(&address, clients, shared, secs).await);
            }
            println!("| {clients} | {resource} | Rust goridge | {:.0} |", median(rust));
            println!("| {clients} | {resource} | PHP process | {:.0} |", median(php));
        }
    }
    let _ = tx.send(());
    let _ = server.await;
}
