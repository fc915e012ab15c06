//! The amqp driver against the local RabbitMQ with a PHP consumer: delivery, nack with requeue
//! and delay (delay queue), requeue with headers, and a broker restart in the middle: the
//! pipeline reconnects and resumes by itself, and no acknowledged job comes back.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::config::Config;
use rr_runtime::host::Host;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use serde_json::Value;

fn job(id: &str, payload: &str, pipeline: &str) -> proto::Job {
    proto::Job {
        job: "App\\Job".into(),
        id: id.into(),
        payload: payload.as_bytes().to_vec(),
        headers: Default::default(),
        options: Some(proto::Options { pipeline: pipeline.into(), ..Default::default() }),
    }
}

fn log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn push(c: &mut RpcClient, j: proto::Job) -> Result<(), String> {
    c.call("jobs.Push", Codec::Proto, &proto::PushRequest { job: Some(j) }.encode_to_vec()).await.map(|_| ()).map_err(|e| e.to_string())
}

fn rabbitmqctl(arg: &str) {
    let out = Command::new("rabbitmqctl").arg(arg).output().expect("rabbitmqctl is needed for the broker restart");
    assert!(out.status.success(), "rabbitmqctl {arg}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_nack_requeue_and_survive_a_broker_restart() {
    assert!(std::net::TcpStream::connect("127.0.0.1:5672").is_ok(), "RabbitMQ is not reachable on 127.0.0.1:5672 (.ci/run starts it)");
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let queue = format!("rr-test-{}", std::process::id());
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let yaml = format!(
        r#"version: '3'
rpc:
  listen: tcp://127.0.0.1:{port}
amqp:
  addr: amqp://guest:guest@127.0.0.1:5672/
server:
  command: "php {}"
  env:
    JOBS_LOG: {}
jobs:
  consume: [broker]
  pool:
    num_workers: 1
  pipelines:
    broker:
      driver: amqp
      config:
        queue: {queue}
        exchange: rr-test
        durable: true
        exchange_durable: true
        prefetch: 5
"#,
        worker.display(),
        jobs_log.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_jobs_amqp::Plugin>().plugin::<rr_jobs::Plugin>();
    let host = Host::init(&build, &Config::from_str(&yaml).unwrap()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move { host.run_until(async { let _ = rx.await; }, Duration::from_secs(20)).await });
    let mut c = loop {
        if let Ok(c) = RpcClient::connect(&format!("tcp://127.0.0.1:{port}")).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The pipeline exists once the plugin connected.
    let start = Instant::now();
    while push(&mut c, job("a-ack", "ack", "broker")).await.is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            let host = if task.is_finished() { format!("{:?}", task.await) } else { "running".into() };
            panic!("the amqp pipeline never came up; host: {host}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    push(&mut c, job("a-nack", "nack-once", "broker")).await.unwrap();
    push(&mut c, job("a-requeue", "requeue-once", "broker")).await.unwrap();
    wait_for("five deliveries", 20, || log(&jobs_log).len() >= 5).await;
    let entries = log(&jobs_log);
    let count = |e: &[Value], id: &str| e.iter().filter(|x| x["id"] == id).count();
    assert_eq!(count(&entries, "a-ack"), 1);
    assert_eq!(count(&entries, "a-nack"), 2);
    assert_eq!(count(&entries, "a-requeue"), 2);
    let first = entries.iter().find(|e| e["id"] == "a-ack").unwrap();
    assert_eq!((first["driver"].as_str(), first["queue"].as_str(), first["job"].as_str()), (Some("amqp"), Some(queue.as_str()), Some("App\\Job")));
    let re: Vec<_> = entries.iter().filter(|e| e["id"] == "a-requeue").collect();
    assert_eq!(re[1]["headers"]["attempt"][0], "1");

    // The broker restarts: the pipeline reconnects and resumes by itself.
    rabbitmqctl("stop_app");
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbitmqctl("start_app");
    let start = Instant::now();
    while push(&mut c, job("a-after", "ack", "broker")).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "push never worked again after the broker restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for("the job pushed after the restart", 30, || log(&jobs_log).iter().any(|e| e["id"] == "a-after")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let entries = log(&jobs_log);
    assert_eq!(count(&entries, "a-after"), 1);
    assert_eq!(count(&entries, "a-ack"), 1, "an acknowledged job never comes back");

    let _ = tx.send(());
    task.await.unwrap().unwrap();
    let _ = Command::new("rabbitmqctl").args(["delete_queue", &queue]).output();
}
