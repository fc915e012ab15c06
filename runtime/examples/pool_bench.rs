//! Exec round trip through the pool versus the bare relay loop, with a Rust echo worker and the
//! PHP test worker. Run: `bench/pool.sh` (builds the echo worker, then this in release mode).
//!
//! `cargo run --release -p rr-runtime --example pool_bench -- <worker command> [requests] [runs]`
//!
//! For 1 and 2 workers it prints requests/s and p50/p99 latency of (a) the bare relay: one
//! process driven directly over pipes, which is the ceiling the worker's own loop allows, and
//! (b) `Pool::exec` with as many concurrent clients as workers. Medians over the runs.

use std::time::{Duration, Instant};

use rr_runtime::config::Config;
use rr_runtime::frame::{self, Frame};
use rr_runtime::pool::{Payload, PoolConfig};
use rr_runtime::relay::{Relay, pid_handshake};
use rr_runtime::Build;

struct Sample {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn summarize(mut lat: Vec<Duration>, elapsed: Duration) -> Sample {
    lat.sort();
    let rate = lat.len() as f64 / elapsed.as_secs_f64();
    Sample { rate, p50: lat[lat.len() / 2], p99: lat[lat.len() * 99 / 100] }
}

/// Drive `workers` processes directly, one client each: the worker loop's own limit.
async fn bare(args: &[String], workers: usize, requests: usize) -> Sample {
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let args = args.to_vec();
            tokio::spawn(async move {
                let mut child = tokio::process::Command::new(&args[0])
                    .args(&args[1..])
                    .env("RR_RELAY", "pipes")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("spawn worker");
                let mut relay = Relay::new(Box::new(child.stdout.take().unwrap()), Box::new(child.stdin.take().unwrap()));
                pid_handshake(&mut relay, std::process::id()).await.expect("handshake");
                let request = Frame::data(frame::CODEC_RAW, b"{}", b"hello");
                let mut lat = Vec::with_capacity(requests);
                for _ in 0..requests {
                    let t = Instant::now();
                    relay.send(&request).await.unwrap();
                    relay.receive().await.unwrap();
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

async fn pooled(command: &str, workers: usize, requests: usize) -> Sample {
    let yaml = format!("version: '3'\nserver:\n  command: \"{command}\"\n");
    let config = Config::from_str(&yaml).unwrap();
    let services = rr_runtime::host::services(&Build::new("rr", "bench"), &config).unwrap();
    let cfg = PoolConfig { num_workers: workers, ..Default::default() };
    let pool = services.new_pool("bench", "bench", cfg).await.expect("pool");
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(requests);
                for _ in 0..requests {
                    let t = Instant::now();
                    pool.exec(Payload::new(frame::CODEC_RAW, &b"{}"[..], &b"hello"[..])).await.unwrap();
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
    let sample = summarize(all, started.elapsed());
    pool.destroy().await;
    sample
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = argv.first().cloned().unwrap_or_else(|| "php tests/php/workers/echo.php".into());
    let requests: usize = argv.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let runs: usize = argv.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let args: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!("worker: {command}  ({requests} requests per client, median of {runs} runs)");
    println!("| workers | path | execs/s | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    for workers in [1, 2] {
        let mut results: Vec<(&str, Vec<Sample>)> = vec![("bare relay", Vec::new()), ("pool.exec", Vec::new())];
        for _ in 0..runs {
            results[0].1.push(rt.block_on(bare(&args, workers, requests)));
            results[1].1.push(rt.block_on(pooled(&command, workers, requests)));
        }
        let mut rates = Vec::new();
        for (path, samples) in &results {
            let rate = median(samples.iter().map(|s| s.rate).collect());
            let p50 = median(samples.iter().map(|s| s.p50.as_secs_f64() * 1e6).collect());
            let p99 = median(samples.iter().map(|s| s.p99.as_secs_f64() * 1e6).collect());
            println!("| {workers} | {path} | {rate:.0} | {p50:.1} | {p99:.1} |");
            rates.push((rate, p50));
        }
        println!(
            "| {workers} | pool/bare | {:.2}x rate | +{:.1} µs p50 (server's own share) | |",
            rates[1].0 / rates[0].0,
            rates[1].1 - rates[0].1
        );
    }
}
