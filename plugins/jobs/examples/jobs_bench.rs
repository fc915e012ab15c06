//! Jobs per second pushed and consumed end to end, per driver, with 2 PHP workers that only
//! acknowledge (`bench/jobs_worker.php`): `jobs.PushBatch` over RPC (batches of 100) while the
//! pipeline consumes, timed from the first push until `rr_jobs_jobs_ok` counted every job. The
//! memory driver is the ceiling (no broker). `nats_keep` is the nats driver without
//! `delete_after_ack`. The last column is the push side alone: jobs over the time until the last
//! `PushBatch` answered. Needs the local RabbitMQ, NATS and beanstalkd.
//!
//! `cargo run --release -p rr-jobs --example jobs_bench -- [jobs-per-run] [runs]`

use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::config::Config;
use rr_runtime::host::Host;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::free_port;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `rr_jobs_jobs_ok` from the metrics page.
async fn jobs_ok(metrics: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).await.unwrap();
    page.lines().find_map(|l| l.strip_prefix("rr_jobs_jobs_ok ")).map(|v| v.trim().parse().unwrap()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let jobs: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let (rpc, metrics) = (format!("tcp://127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let unique = format!("rr-bench-{}", std::process::id());
    let worker = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/jobs_worker.php");
    let yaml = format!(
        r#"version: '3'
rpc:
  listen: {rpc}
metrics:
  address: {metrics}
amqp:
  addr: amqp://guest:guest@127.0.0.1:5672/
nats:
  addr: nats://127.0.0.1:4222
beanstalk:
  addr: tcp://127.0.0.1:11300
server:
  command: "php {worker}"
jobs:
  consume: [memory, amqp, nats, nats_keep, beanstalk]
  pool:
    num_workers: 2
  pipelines:
    memory: {{ driver: memory }}
    amqp: {{ driver: amqp, config: {{ queue: {unique}, prefetch: 100 }} }}
    nats: {{ driver: nats, config: {{ stream: {unique}, subject: {unique}.jobs, delete_after_ack: true }} }}
    nats_keep: {{ driver: nats, config: {{ stream: {unique}-keep, subject: {unique}.keep }} }}
    beanstalk: {{ driver: beanstalk, config: {{ tube: {unique} }} }}
"#
    );
    let build = rr_runtime::Build::new("rr", "bench")
        .plugin::<rr_rpc::Plugin>()
        .plugin::<rr_metrics::Plugin>()
        .plugin::<rr_jobs_memory::Plugin>()
        .plugin::<rr_jobs_amqp::Plugin>()
        .plugin::<rr_jobs_nats::Plugin>()
        .plugin::<rr_jobs_beanstalk::Plugin>()
        .plugin::<rr_jobs::Plugin>();
    let host = Host::init(&build, &Config::from_str(&yaml).unwrap()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move { host.run_until(async { let _ = rx.await; }, Duration::from_secs(20)).await });
    let mut c = loop {
        if let Ok(mut c) = RpcClient::connect(&rpc).await {
            let listed = c.call("jobs.List", Codec::Proto, &proto::Empty {}.encode_to_vec()).await.ok().and_then(|r| proto::Pipelines::decode(r).ok());
            if listed.is_some_and(|l| l.pipelines.len() == 5) {
                break c;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    println!("| pipeline | jobs/s pushed and consumed (median of {runs}, {jobs} jobs each) | jobs/s pushed (PushBatch answered) |");
    println!("|---|---|---|");
    for driver in ["memory", "amqp", "nats", "nats_keep", "beanstalk"] {
        let (mut rates, mut push_rates) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let base = jobs_ok(&metrics).await;
            let start = Instant::now();
            for batch in (0..jobs).collect::<Vec<_>>().chunks(100) {
                let jobs = batch
                    .iter()
                    .map(|i| proto::Job {
                        job: "App\\Job".into(),
                        id: format!("{driver}-{run}-{i}"),
                        payload: b"{}".to_vec(),
                        headers: Default::default(),
                        options: Some(proto::Options { pipeline: driver.into(), ..Default::default() }),
                    })
                    .collect();
                c.call("jobs.PushBatch", Codec::Proto, &proto::PushBatchRequest { jobs }.encode_to_vec()).await.unwrap();
            }
            push_rates.push(jobs as f64 / start.elapsed().as_secs_f64());
            while jobs_ok(&metrics).await < base + jobs as u64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            rates.push(jobs as f64 / start.elapsed().as_secs_f64());
        }
        println!("| {driver} | {:.0} | {:.0} |", median(rates), median(push_rates));
    }
    let _ = tx.send(());
    let _ = server.await;
    let _ = std::process::Command::new("rabbitmqctl").args(["delete_queue", &unique]).output();
}
