//! Two rr servers sharing one pipeline, the way teams scale past one machine: each server has
//! its own PHP workers and its own connection to the broker, jobs are pushed through one of them,
//! and every job is consumed exactly once across both, by both. For each broker driver:
//! beanstalk, amqp, nats, kafka (one consumer group) and sqs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::Value;

const JOBS: usize = 40;

fn ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string()).collect()
}

/// One server: rpc on its own port, 2 PHP workers logging to `log`, the pipeline `shared`.
fn server(broker: &str, pipeline: &str, log: &Path) -> (TestServer, String) {
    let port = free_port();
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{port}\n{broker}\nserver:\n  command: \"php {}\"\n  env:\n    JOBS_LOG: {}\njobs:\n  consume: [shared]\n  pool:\n    num_workers: 2\n  pipelines:\n    shared:\n{pipeline}",
        worker.display(),
        log.display()
    );
    let build = rr_runtime::Build::new("rr", "test")
        .plugin::<rr_rpc::Plugin>()
        .plugin::<rr_jobs_amqp::Plugin>()
        .plugin::<rr_jobs_nats::Plugin>()
        .plugin::<rr_jobs_beanstalk::Plugin>()
        .plugin::<rr_jobs_kafka::Plugin>()
        .plugin::<rr_jobs_sqs::Plugin>()
        .plugin::<rr_jobs::Plugin>();
    (TestServer::start(&build, &yaml), format!("tcp://127.0.0.1:{port}"))
}

fn job(id: String, payload: &str) -> proto::Job {
    proto::Job {
        job: "App\\Job".into(),
        id,
        payload: payload.as_bytes().to_vec(),
        headers: Default::default(),
        options: Some(proto::Options { pipeline: "shared".into(), ..Default::default() }),
    }
}

/// `warm_up`: push single jobs until both servers have run one, for brokers that hand a
/// consumer its share only after a group rebalance (Kafka), so the batch is split between them
/// rather than taken back from one server halfway.
async fn shared_pipeline(broker_port: u16, broker: &str, pipeline: &str, warm_up: bool) {
    assert!(std::net::TcpStream::connect(("127.0.0.1", broker_port)).is_ok(), "no broker on 127.0.0.1:{broker_port} (tests/run.sh starts it)");
    let dir = tempfile::tempdir().unwrap();
    let logs: [PathBuf; 2] = [dir.path().join("a.log"), dir.path().join("b.log")];
    let (mut a, a_addr) = server(broker, pipeline, &logs[0]);
    let (mut b, b_addr) = server(broker, pipeline, &logs[1]);
    // Both consume before the first push.
    for (s, addr) in [(&mut a, &a_addr), (&mut b, &b_addr)] {
        s.until("the shared pipeline", || async {
            let mut c = RpcClient::connect(addr).await.ok()?;
            let stats = c.call("jobs.Stat", Codec::Proto, &proto::Empty {}.encode_to_vec()).await.ok()?;
            proto::Stats::decode(stats).ok()?.stats.iter().any(|s| s.pipeline == "shared" && s.ready).then_some(())
        })
        .await;
    }
    let run = format!("{}-{}", std::process::id(), free_port());
    let mut c = RpcClient::connect(&a_addr).await.unwrap();
    let mut pushed = Vec::new();
    let start = Instant::now();
    while warm_up && (ids(&logs[0]).is_empty() || ids(&logs[1]).is_empty()) {
        assert!(start.elapsed() < Duration::from_secs(90), "the group never gave both servers a share");
        let warm = job(format!("w-{run}-{}", pushed.len()), "ack");
        c.call("jobs.Push", Codec::Proto, &proto::PushRequest { job: Some(warm.clone()) }.encode_to_vec()).await.unwrap();
        pushed.push(warm.id);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let jobs: Vec<proto::Job> = (0..JOBS).map(|i| job(format!("s-{run}-{i}"), "sleep-50")).collect();
    pushed.extend(jobs.iter().map(|j| j.id.clone()));
    c.call("jobs.PushBatch", Codec::Proto, &proto::PushBatchRequest { jobs }.encode_to_vec()).await.unwrap();
    let start = Instant::now();
    while ids(&logs[0]).len() + ids(&logs[1]).len() < pushed.len() {
        assert!(start.elapsed() < Duration::from_secs(60), "consumed {} + {} of {}", ids(&logs[0]).len(), ids(&logs[1]).len(), pushed.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Settled on both, then stopped: nothing may come twice, late.
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    let (on_a, on_b) = (ids(&logs[0]), ids(&logs[1]));
    let mut all: Vec<String> = on_a.iter().chain(&on_b).cloned().collect();
    all.sort();
    pushed.sort();
    assert_eq!(all, pushed, "every job exactly once across both servers");
    // The batch itself, not only the warm-up, is split between them.
    let batch = |on: &[String]| on.iter().filter(|id| id.starts_with("s-")).count();
    assert!(batch(&on_a) > 0 && batch(&on_b) > 0, "both servers consumed the batch: {} on the pushing one, {} on the other", batch(&on_a), batch(&on_b));
}

fn unique(what: &str) -> String {
    format!("rr-shared-{what}-{}-{}", std::process::id(), free_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_a_beanstalk_tube() {
    let tube = unique("bs");
    shared_pipeline(11300, "beanstalk:\n  addr: tcp://127.0.0.1:11300", &format!("      driver: beanstalk\n      config:\n        tube: {tube}\n"), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_an_amqp_queue() {
    let queue = unique("amqp");
    shared_pipeline(5672, "amqp:\n  addr: amqp://guest:guest@127.0.0.1:5672/", &format!("      driver: amqp\n      config:\n        queue: {queue}\n        prefetch: 2\n"), false).await;
    let _ = std::process::Command::new("rabbitmqctl").args(["delete_queue", &queue]).output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_a_nats_stream() {
    let stream = unique("nats");
    shared_pipeline(
        4222,
        "nats:\n  addr: nats://127.0.0.1:4222",
        &format!("      driver: nats\n      config:\n        stream: {stream}\n        subject: {stream}.jobs\n        prefetch: 2\n        delete_after_ack: true\n"),
        false,
    )
    .await;
}

/// One consumer group over a topic of several partitions: the group splits them between the two
/// servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_a_kafka_consumer_group() {
    let topic = unique("kafka");
    shared_pipeline(
        9092,
        "kafka:\n  brokers: [\"127.0.0.1:9092\"]",
        &format!(
            "      driver: kafka\n      config:\n        auto_create_topics_enable: true\n        consumer_options:\n          topics: [{topic}]\n        group_options:\n          group_id: {topic}\n          session_timeout: 6s\n"
        ),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_an_sqs_queue() {
    let queue = unique("sqs");
    shared_pipeline(
        4566,
        "sqs:\n  key: test\n  secret: test\n  region: us-east-1\n  endpoint: http://127.0.0.1:4566",
        &format!("      driver: sqs\n      config:\n        queue: {queue}\n        prefetch: 2\n        wait_time_seconds: 1\n"),
        false,
    )
    .await;
}
