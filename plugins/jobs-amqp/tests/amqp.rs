//! The amqp driver against the local RabbitMQ with a PHP consumer: delivery, nack with requeue
//! and delay (delay queue), requeue with headers, and a broker restart in the middle: the
//! pipeline reconnects and resumes by itself, and no acknowledged job comes back.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::TestServer;
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
    assert!(std::net::TcpStream::connect("127.0.0.1:5672").is_ok(), "RabbitMQ is not reachable on 127.0.0.1:5672 (tests/run.sh starts it)");
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
    let mut server = TestServer::start(&build, &yaml);
    let address = format!("tcp://127.0.0.1:{port}");
    let mut c = server.rpc(&address).await;
    // The pipeline exists once the plugin connected: the first push succeeds.
    let first_push = || async {
        let mut probe = RpcClient::connect(&address).await.ok()?;
        push(&mut probe, job("a-ack", "ack", "broker")).await.ok()
    };
    server.until("the amqp pipeline", first_push).await;
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

    server.stop().await.unwrap();
    let _ = Command::new("rabbitmqctl").args(["delete_queue", &queue]).output();
}
