//! The trace context travels in the job headers through every driver, with real brokers and
//! without the otel plugin (RoadRunner's jobs always propagate): a job pushed with a
//! `traceparent` reaches its PHP consumer with a `Traceparent` of the same trace, one span on.

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::rpc::Codec;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_driver_carries_the_trace_to_the_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let port = free_port();
    let unique = format!("rr-trace-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis());
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let drivers = ["memory", "boltdb", "amqp", "nats", "beanstalk", "kafka", "sqs"];
    let yaml = format!(
        r#"version: '3'
rpc:
  listen: tcp://127.0.0.1:{port}
amqp:
  addr: amqp://guest:guest@127.0.0.1:5672/
nats:
  addr: nats://127.0.0.1:4222
beanstalk:
  addr: tcp://127.0.0.1:11300
kafka:
  brokers: ["127.0.0.1:9092"]
sqs:
  key: test
  secret: test
  region: us-east-1
  endpoint: http://127.0.0.1:4566
server:
  command: "php {worker}"
  env:
    JOBS_LOG: {log}
jobs:
  consume: [{consume}]
  pool:
    num_workers: 2
  pipelines:
    memory:
      driver: memory
      config: {{}}
    boltdb:
      driver: boltdb
      config:
        file: {dir}/jobs.db
    amqp:
      driver: amqp
      config:
        queue: {unique}
        exchange: {unique}
    nats:
      driver: nats
      config:
        stream: {unique}
        subject: {unique}.jobs
        delete_after_ack: true
    beanstalk:
      driver: beanstalk
      config:
        tube: {unique}
        reserve_timeout: 1s
    kafka:
      driver: kafka
      config:
        auto_create_topics_enable: true
        consumer_options:
          topics: [{unique}]
        group_options:
          group_id: {unique}-group
    sqs:
      driver: sqs
      config:
        queue: {unique}
        wait_time_seconds: 1
"#,
        worker = worker.display(),
        log = jobs_log.display(),
        dir = dir.path().display(),
        consume = drivers.join(", "),
    );
    let build = rr_runtime::Build::new("rr", "test")
        .plugin::<rr_rpc::Plugin>()
        .plugin::<rr_jobs_memory::Plugin>()
        .plugin::<rr_jobs_boltdb::Plugin>()
        .plugin::<rr_jobs_amqp::Plugin>()
        .plugin::<rr_jobs_nats::Plugin>()
        .plugin::<rr_jobs_beanstalk::Plugin>()
        .plugin::<rr_jobs_kafka::Plugin>()
        .plugin::<rr_jobs_sqs::Plugin>()
        .plugin::<rr_jobs::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let mut c = server.rpc(&format!("tcp://127.0.0.1:{port}")).await;
    for driver in drivers {
        let job = proto::Job {
            job: "App\\Traced".into(),
            id: format!("traced-{driver}"),
            payload: b"ack".to_vec(),
            headers: [("traceparent".to_string(), proto::HeaderValue { value: vec![format!("00-{TRACE}-{CALLER_SPAN}-01")] })].into(),
            options: Some(proto::Options { pipeline: driver.into(), ..Default::default() }),
        };
        // Pipelines on brokers may still be connecting: retry the push for a while.
        let start = Instant::now();
        loop {
            let pushed = c.call("jobs.Push", Codec::Proto, &proto::PushRequest { job: Some(job.clone()) }.encode_to_vec()).await;
            match pushed {
                Ok(_) => break,
                Err(_) if start.elapsed() < Duration::from_secs(20) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("push to {driver}: {e}"),
            }
        }
    }
    let start = Instant::now();
    let consumed = loop {
        let log: Vec<Value> = std::fs::read_to_string(&jobs_log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if drivers.iter().all(|d| log.iter().any(|e| e["id"] == format!("traced-{d}"))) {
            break log;
        }
        assert!(start.elapsed() < Duration::from_secs(40), "not every driver delivered: {log:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.stop().await.unwrap();
    for driver in drivers {
        let job = consumed.iter().find(|e| e["id"] == format!("traced-{driver}")).unwrap();
        let headers = &job["headers"];
        let traceparent = headers["Traceparent"][0].as_str().unwrap_or_else(|| panic!("{driver}: no Traceparent in {job}"));
        let span = traceparent.strip_prefix(&format!("00-{TRACE}-")).and_then(|s| s.strip_suffix("-01")).unwrap_or_else(|| panic!("{driver}: another trace: {traceparent}"));
        assert_ne!(span, CALLER_SPAN, "{driver}: the consumer's span is a new one");
        assert_eq!(headers["Uber-Trace-Id"][0], format!("{TRACE}:{span}:0:1"), "{driver}");
        assert!(headers.get("traceparent").is_none(), "{driver}: one spelling only: {headers}");
    }
}
