//! The kafka driver against the local Kafka-compatible broker (tansu, started by `tests/run.sh`) with
//! PHP consumers: push (single and batch) with headers and priority, a refused delay, ack, nack
//! and a failed worker (both come back, unlike RoadRunner #1325), requeue with headers, `jobs.Stat`,
//! pause/resume, Declare at runtime, a job's `topic` and (Manual) `partition` options, a stop while a job runs, and a second server in the same group that gets only what
//! was never acked.

use std::path::Path;
use std::time::Duration;

use rr_jobs::proto;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::TestServer;

#[path = "../../jobs/tests/support/jobs_rpc.rs"]
#[allow(dead_code)]
mod jobs_rpc;
use jobs_rpc::{call, count, log, wait_for};

const BROKER: &str = "127.0.0.1:9092";

fn job(id: &str, payload: &str, pipeline: &str) -> proto::Job {
    proto::Job {
        job: "App\\Job".into(),
        id: id.into(),
        payload: payload.as_bytes().to_vec(),
        headers: [("tenant".to_string(), proto::HeaderValue { value: vec!["acme".into()] })].into(),
        options: Some(proto::Options { pipeline: pipeline.into(), priority: 3, ..Default::default() }),
    }
}

fn server(jobs_log: &Path, broker: &str, topic: &str) -> (TestServer, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let yaml = format!(
        r#"version: '3'
rpc:
  listen: tcp://127.0.0.1:{port}
kafka:
  brokers: ["{broker}"]
server:
  command: "php {}"
  env:
    JOBS_LOG: {}
jobs:
  consume: [k]
  pool:
    num_workers: 2
  pipelines:
    k:
      driver: kafka
      config:
        priority: 7
        auto_create_topics_enable: true
        consumer_options:
          topics: [{topic}]
        group_options:
          group_id: {topic}-group
          session_timeout: 6s
"#,
        worker.display(),
        jobs_log.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_jobs_kafka::Plugin>().plugin::<rr_jobs::Plugin>();
    (TestServer::start(&build, &yaml), format!("tcp://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_pipeline_with_php_consumers() {
    assert!(std::net::TcpStream::connect(BROKER).is_ok(), "no Kafka broker on {BROKER} (tests/run.sh starts tansu)");
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let topic = format!("rr-test-{}", std::process::id());
    let (mut first, address) = server(&jobs_log, BROKER, &topic);
    let mut c = first.rpc(&address).await;
    let probe = || async {
        let mut probe = RpcClient::connect(&address).await.ok()?;
        call::<proto::Empty>(&mut probe, "jobs.Push", proto::PushRequest { job: Some(job("k-ack", "ack", "k")) }).await.ok()
    };
    first.until("the kafka pipeline", probe).await;

    let mut delayed = job("k-delayed", "ack", "k");
    delayed.options.as_mut().unwrap().delay = 5;
    let err = call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(delayed) }).await.unwrap_err();
    assert!(err.contains("kafka cannot delay jobs"), "{err}");
    let jobs = [("k-nack", "nack-once"), ("k-requeue", "requeue-once"), ("k-fail", "fail-once"), ("k-batch", "ack")];
    let batch = proto::PushBatchRequest { jobs: jobs.iter().map(|(id, p)| job(id, p, "k")).collect() };
    call::<proto::Empty>(&mut c, "jobs.PushBatch", batch).await.unwrap();
    wait_for("eight deliveries", 60, || log(&jobs_log).len() >= 8).await;
    let entries = log(&jobs_log);
    let counts: Vec<usize> = ["k-ack", "k-nack", "k-requeue", "k-fail", "k-batch"].iter().map(|id| count(&entries, id)).collect();
    assert_eq!(counts, [1, 2, 2, 2, 1], "a nacked or failed job comes back; {entries:?}");
    let first_ack = entries.iter().find(|e| e["id"] == "k-ack").unwrap();
    assert_eq!((first_ack["driver"].as_str(), first_ack["queue"].as_str(), first_ack["job"].as_str()), (Some("kafka"), Some(topic.as_str()), Some("App\\Job")));
    assert_eq!((first_ack["pipeline"].as_str(), first_ack["headers"]["tenant"][0].as_str()), (Some("k"), Some("acme")));
    let requeued: Vec<_> = entries.iter().filter(|e| e["id"] == "k-requeue").collect();
    assert_eq!(requeued[1]["headers"]["attempt"][0], "1");

    let stats: proto::Stats = call(&mut c, "jobs.Stat", proto::Empty {}).await.unwrap();
    let stat = stats.stats.iter().find(|s| s.pipeline == "k").unwrap();
    assert_eq!((stat.driver.as_str(), stat.queue.as_str(), stat.ready, stat.priority), ("kafka", topic.as_str(), true, 7));

    // Paused, the pipeline still takes pushes; resumed, it delivers them.
    let k = || proto::Pipelines { pipelines: vec!["k".into()] };
    call::<proto::Empty>(&mut c, "jobs.Pause", k()).await.unwrap();
    let stats: proto::Stats = call(&mut c, "jobs.Stat", proto::Empty {}).await.unwrap();
    assert!(!stats.stats.iter().find(|s| s.pipeline == "k").unwrap().ready);
    call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("k-paused", "ack", "k")) }).await.unwrap();
    call::<proto::Empty>(&mut c, "jobs.Resume", k()).await.unwrap();
    wait_for("the job pushed while paused", 60, || count(&log(&jobs_log), "k-paused") == 1).await;

    // A pipeline declared at runtime, with its options as JSON strings as PHP sends them; without
    // a group it reads every partition of its topic from the start.
    let declared = format!("{topic}-declared");
    let declare = proto::DeclareRequest {
        pipeline: [
            ("driver", "kafka".to_string()),
            ("name", "kd".into()),
            ("priority", "4".into()),
            ("auto_create_topics_enable", "true".into()),
            ("consumer_options", format!(r#"{{"topics":["{declared}"]}}"#)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    };
    let mut wrong = declare.clone();
    wrong.pipeline.insert("name".into(), "kw".into());
    wrong.pipeline.insert("producer_options".into(), r#"{"required_acks":"Most"}"#.into());
    let err = call::<proto::Empty>(&mut c, "jobs.Declare", wrong).await.unwrap_err();
    assert!(err.contains("kafka pipeline `kw`: `producer_options.required_acks: Most`: use NoAck, LeaderAck or AllISRAck"), "{err}");
    call::<proto::Empty>(&mut c, "jobs.Declare", declare).await.unwrap();
    call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("kd-1", "ack", "kd")) }).await.unwrap();
    wait_for("the job of the declared pipeline", 60, || count(&log(&jobs_log), "kd-1") == 1).await;
    // A job's `topic` option (PHP's KafkaOptions) picks the topic it is produced to: pushed
    // through `k`, it is consumed from the declared pipeline's topic.
    let mut elsewhere = job("k-topic", "ack", "k");
    elsewhere.options.as_mut().unwrap().topic = declared.clone();
    call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(elsewhere) }).await.unwrap();
    wait_for("the job produced to another topic", 60, || count(&log(&jobs_log), "k-topic") == 1).await;
    let entries = log(&jobs_log);
    assert_eq!(entries.iter().find(|e| e["id"] == "k-topic").unwrap()["queue"].as_str(), Some(declared.as_str()));
    // `partitioning_strategy: Manual`: a job goes to its `partition` option; this pipeline reads
    // partition 1 only.
    let manual = format!("{topic}-manual");
    let declare = proto::DeclareRequest {
        pipeline: [
            ("driver", "kafka".to_string()),
            ("name", "kp".into()),
            ("auto_create_topics_enable", "true".into()),
            ("producer_options", r#"{"partitioning_strategy":"Manual"}"#.into()),
            ("consumer_options", format!(r#"{{"consume_partitions":{{"{manual}":{{"1":{{"type":"AtStart"}}}}}}}}"#)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    };
    call::<proto::Empty>(&mut c, "jobs.Declare", declare).await.unwrap();
    for (id, partition) in [("kp-0", 0), ("kp-1", 1)] {
        let mut j = job(id, "ack", "kp");
        j.options.as_mut().unwrap().partition = partition;
        call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(j) }).await.unwrap();
    }
    wait_for("the job produced to partition 1", 60, || count(&log(&jobs_log), "kp-1") == 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&log(&jobs_log), "kp-0"), 0, "partition 0 is not this pipeline's");
    call::<proto::Empty>(&mut c, "jobs.Destroy", proto::Pipelines { pipelines: vec!["kd".into(), "kp".into()] }).await.unwrap();
    // Stopped while a job runs: the job finishes and its offset is committed on the way out.
    call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("k-stop", "sleep-1500", "k")) }).await.unwrap();
    wait_for("the job running at stop", 60, || count(&log(&jobs_log), "k-stop") == 1).await;
    first.stop().await.unwrap();

    // A second server in the same group resumes after the committed offsets: it gets the job
    // pushed while nobody consumed, and none of the acknowledged ones again.
    let (mut second, address) = server(&jobs_log, BROKER, &topic);
    let probe = || async {
        let mut probe = RpcClient::connect(&address).await.ok()?;
        call::<proto::Empty>(&mut probe, "jobs.Push", proto::PushRequest { job: Some(job("k-later", "ack", "k")) }).await.ok()
    };
    second.until("the second server", probe).await;
    wait_for("the job pushed to the second server", 60, || count(&log(&jobs_log), "k-later") == 1).await;
    let entries = log(&jobs_log);
    assert_eq!(entries.len(), 14, "nothing acknowledged is delivered twice: {entries:?}");
    second.stop().await.unwrap();
}

