//! kv operations per second through the `kv.*` RPC service, per driver, from concurrent Rust
//! goridge clients on their own connections: each iteration is a `kv.Set` of one 64-byte item
//! then a `kv.MGet` of it (a pair). The memory driver is the ceiling (no storage round trip);
//! redis, memcached and boltdb are the local servers `tests/run.sh` starts and a file.
//!
//! `cargo run --release -p rr-kv --example kv_bench -- [seconds-per-case] [runs] [clients]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use rr_kv::proto::{Item, Request};
use rr_runtime::config::Config;
use rr_runtime::host::Host;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::free_port;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Pairs per second and the pairs' latencies (µs) of `clients` clients on `storage` for `secs`.
async fn run(address: &str, storage: &str, clients: usize, secs: f64) -> (f64, Vec<f64>) {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let (count, address, storage) = (count.clone(), address.to_string(), storage.to_string());
            tokio::spawn(async move {
                let mut c = RpcClient::connect(&address).await.unwrap();
                let item = Item { key: format!("bench-{n}"), value: vec![b'v'; 64], timeout: String::new() };
                let set = Request { storage: storage.clone(), items: vec![item.clone()] }.encode_to_vec();
                let get = Request { storage, items: vec![Item { value: vec![], ..item }] }.encode_to_vec();
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    c.call("kv.Set", Codec::Proto, &set).await.unwrap();
                    c.call("kv.MGet", Codec::Proto, &get).await.unwrap();
                    latencies.push(started.elapsed().as_secs_f64() * 1e6);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (count.load(Ordering::Relaxed) as f64 / secs, all)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let clients: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let address = format!("tcp://127.0.0.1:{}", free_port());
    let db = tempfile::tempdir().unwrap();
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: {address}\nkv:\n  memory:\n    driver: memory\n    config: {{}}\n  redis:\n    driver: redis\n    config:\n      addrs: [\"127.0.0.1:6379\"]\n      db: 6\n  memcached:\n    driver: memcached\n    config:\n      addr: [\"127.0.0.1:11211\"]\n  boltdb:\n    driver: boltdb\n    config:\n      file: {}\n",
        db.path().join("bench.db").display()
    );
    let build = rr_runtime::Build::new("rr", "bench")
        .plugin::<rr_rpc::Plugin>()
        .plugin::<rr_kv_memory::Plugin>()
        .plugin::<rr_kv_redis::Plugin>()
        .plugin::<rr_kv_memcached::Plugin>()
        .plugin::<rr_kv_boltdb::Plugin>()
        .plugin::<rr_kv::Plugin>();
    let host = Host::init(&build, &Config::from_str(&yaml).unwrap()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move { host.run_until(async { let _ = rx.await; }, Duration::from_secs(5)).await });
    while RpcClient::connect(&address).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The storages connect in the background: wait until each answers.
    let mut c = RpcClient::connect(&address).await.unwrap();
    for storage in ["memory", "redis", "memcached", "boltdb"] {
        let has = Request { storage: storage.into(), items: vec![Item { key: "ready".into(), ..Default::default() }] }.encode_to_vec();
        let started = Instant::now();
        while let Err(e) = c.call("kv.Has", Codec::Proto, &has).await {
            assert!(started.elapsed() < Duration::from_secs(20), "storage {storage} not ready after 20 s: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("| storage | set+get pairs/s ({clients} clients, median of {runs}, {secs} s each) | p50 µs | p99 µs |");
    println!("|---|---|---|---|");
    for storage in ["memory", "redis", "memcached", "boltdb"] {
        run(&address, storage, clients, 0.2).await; // warm-up: connections to the storage
        let (mut rates, mut latencies) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (rate, l) = run(&address, storage, clients, secs).await;
            rates.push(rate);
            latencies.extend(l);
        }
        rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("| {storage} | {:.0} | {:.0} | {:.0} |", rates[rates.len() / 2], percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    }
    let _ = tx.send(());
    let _ = server.await;
}
