//! Jobs per second end to end (pushed over RPC in batches of 100, consumed by 2 PHP workers that
//! only ack), per driver, the memory driver as the ceiling. Completion is read from the jobs
//! plugin's `rr_jobs_jobs_ok` counter. Needs tansu on 127.0.0.1:9092 and moto on :4566.
//! Usage: bench/jobs_kafka_sqs.sh [jobs] [runs]

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::TestServer;

fn jobs_ok(port: u16) -> u64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let line = out.lines().find(|l| l.starts_with("rr_jobs_jobs_ok")).unwrap_or("rr_jobs_jobs_ok 0");
    line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64
}

async fn push(c: &mut RpcClient, pipeline: &str, first: usize, n: usize) {
    let jobs = (first..first + n)
        .map(|i| proto::Job {
            job: "Bench".into(),
            id: format!("{pipeline}-{i}"),
            payload: b"{}".to_vec(),
            headers: Default::default(),
            options: Some(proto::Options { pipeline: pipeline.into(), ..Default::default() }),
        })
        .collect();
    c.call("jobs.PushBatch", Codec::Proto, &proto::PushBatchRequest { jobs }.encode_to_vec()).await.unwrap();
}

async fn wait_ok(port: u16, target: u64) {
    while jobs_ok(port) < target {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (jobs, runs) = (args.first().copied().unwrap_or(2000), args.get(1).copied().unwrap_or(3));
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (rpc, metrics) = (free(), free());
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/jobs_ack.php");
    let topic = format!("rr-bench-{}", std::process::id());
    let yaml = format!(
        r#"version: '3'
rpc:
  listen: tcp://127.0.0.1:{rpc}
metrics:
  address: 127.0.0.1:{metrics}
kafka:
  brokers: ["127.0.0.1:9092"]
sqs:
  key: test
  secret: test
  region: us-east-1
  endpoint: http://127.0.0.1:4566
server:
  command: "php {}"
jobs:
  consume: [memory, kafka, sqs]
  pool:
    num_workers: 2
  pipelines:
    memory: {{ driver: memory }}
    kafka:
      driver: kafka
      config:
        auto_create_topics_enable: true
        consumer_options: {{ topics: [{topic}] }}
        group_options: {{ group_id: {topic}, session_timeout: 6s }}
    sqs:
      driver: sqs
      config: {{ queue: {topic}, prefetch: 10, wait_time_seconds: 1 }}
"#,
        worker.display()
    );
    let build = rr_runtime::Build::new("rr", "bench")
        .plugin::<rr_rpc::Plugin>()
        .plugin::<rr_metrics::Plugin>()
        .plugin::<rr_jobs_memory::Plugin>()
        .plugin::<rr_jobs_kafka::Plugin>()
        .plugin::<rr_jobs_sqs::Plugin>()
        .plugin::<rr_jobs::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let address = format!("tcp://127.0.0.1:{rpc}");
    let mut c = server.rpc(&address).await;
    let mut done = 0u64;
    println!("{jobs} jobs per run, {runs} runs, 2 PHP workers; jobs/s end to end (push and consume)");
    for pipeline in ["memory", "kafka", "sqs"] {
        // Warm up: the pipeline is consuming (a kafka group has joined) once one job went through.
        loop {
            if c.call("jobs.Push", Codec::Proto, &proto::PushRequest { job: Some(proto::Job { job: "Bench".into(), id: format!("{pipeline}-warm"), payload: b"{}".to_vec(), headers: Default::default(), options: Some(proto::Options { pipeline: pipeline.into(), ..Default::default() }) }) }.encode_to_vec()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        done += 1;
        wait_ok(metrics, done).await;
        let (mut rates, mut push_rates) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let start = Instant::now();
            for batch in (0..jobs).step_by(100) {
                push(&mut c, pipeline, run * jobs + batch, 100.min(jobs - batch)).await;
            }
            push_rates.push(jobs as f64 / start.elapsed().as_secs_f64());
            done += jobs as u64;
            wait_ok(metrics, done).await;
            rates.push(jobs as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let shown: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        push_rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
        // The consume side alone: jobs pushed while the pipeline is paused, timed from its resume.
        let mut consumed = f64::NAN;
        if pipeline != "sqs" {
            let named = || proto::Pipelines { pipelines: vec![pipeline.into()] };
            c.call("jobs.Pause", Codec::Proto, &named().encode_to_vec()).await.unwrap();
            for batch in (0..jobs).step_by(100) {
                push(&mut c, pipeline, (runs + 1) * jobs + batch, 100.min(jobs - batch)).await;
            }
            let start = Instant::now();
            c.call("jobs.Resume", Codec::Proto, &named().encode_to_vec()).await.unwrap();
            done += jobs as u64;
            wait_ok(metrics, done).await;
            consumed = jobs as f64 / start.elapsed().as_secs_f64();
        }
        println!("{pipeline:>7}: median {:.0} jobs/s (runs: {}); pushed alone: median {:.0} jobs/s; consumed alone (one run): {consumed:.0} jobs/s", rates[rates.len() / 2], shown.join(", "), push_rates[push_rates.len() / 2]);
    }
    server.stop().await.unwrap();
}
