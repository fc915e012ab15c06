//! The nats driver against the local NATS JetStream with a PHP consumer: delivery exactly once
//! per push, nack with requeue and delay, requeue with headers, delete_after_ack, a batch
//! (published together) delivered once each and in order.

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::TestServer;
use serde_json::Value;

fn log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_pipeline_with_a_php_consumer() {
    assert!(std::net::TcpStream::connect("127.0.0.1:4222").is_ok(), "NATS is not reachable on 127.0.0.1:4222 (tests/run.sh starts it)");
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unique = format!("rrtest{}x{}", std::process::id(), port);
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{port}\nnats:\n  addr: nats://127.0.0.1:4222\nserver:\n  command: \"php {}\"\n  env:\n    JOBS_LOG: {}\njobs:\n  consume: [js]\n  pool:\n    num_workers: 1\n  pipelines:\n    js:\n      driver: nats\n      config:\n        stream: {unique}\n        subject: {unique}.jobs\n        delete_after_ack: true\n",
        worker.display(),
        jobs_log.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_jobs_nats::Plugin>().plugin::<rr_jobs::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let address = format!("tcp://127.0.0.1:{port}");
    let mut c = server.rpc(&address).await;
    let push = |id: &str, payload: &str| proto::PushRequest {
        job: Some(proto::Job {
            job: "App\\Job".into(),
            id: id.into(),
            payload: payload.as_bytes().to_vec(),
            headers: Default::default(),
            options: Some(proto::Options { pipeline: "js".into(), ..Default::default() }),
        }),
    };
    // The pipeline exists once the plugin connected: the first push succeeds.
    let first_push = || async {
        let mut probe = RpcClient::connect(&address).await.ok()?;
        probe.call("jobs.Push", Codec::Proto, &push("n-ack", "ack").encode_to_vec()).await.ok()
    };
    server.until("the nats pipeline", first_push).await;
    for (id, payload) in [("n-nack", "nack-once"), ("n-requeue", "requeue-once")] {
        c.call("jobs.Push", Codec::Proto, &push(id, payload).encode_to_vec()).await.unwrap();
    }
    let start = Instant::now();
    while log(&jobs_log).len() < 5 {
        assert!(start.elapsed() < Duration::from_secs(20), "deliveries: {:?}", log(&jobs_log));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let entries = log(&jobs_log);
    let count = |id: &str| entries.iter().filter(|e| e["id"] == id).count();
    assert_eq!((count("n-ack"), count("n-nack"), count("n-requeue")), (1, 2, 2));
    let first = entries.iter().find(|e| e["id"] == "n-ack").unwrap();
    assert_eq!((first["driver"].as_str(), first["job"].as_str()), (Some("nats"), Some("App\\Job")));
    let re: Vec<_> = entries.iter().filter(|e| e["id"] == "n-requeue").collect();
    assert_eq!(re[1]["headers"]["attempt"][0], "1");

    // A batch is published before its acknowledgements are awaited: each job still arrives
    // once, in push order (one worker takes them in the stream's order).
    let ids: Vec<String> = (0..300).map(|i| format!("n-batch-{i}")).collect();
    let jobs = ids.iter().map(|id| push(id, "ack").job.unwrap()).collect();
    c.call("jobs.PushBatch", Codec::Proto, &proto::PushBatchRequest { jobs }.encode_to_vec()).await.unwrap();
    let batch = || log(&jobs_log).into_iter().filter_map(|e| e["id"].as_str().filter(|id| id.starts_with("n-batch-")).map(String::from)).collect::<Vec<_>>();
    let start = Instant::now();
    while batch().len() < ids.len() {
        assert!(start.elapsed() < Duration::from_secs(20), "batch deliveries: {}", batch().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(batch(), ids);

    // delete_after_ack: every acknowledged message leaves the stream (the deletes run beside
    // the jobs, so they may trail the last acknowledgement a little).
    let js = async_nats::jetstream::new(async_nats::connect("nats://127.0.0.1:4222").await.unwrap());
    let mut stream = js.get_stream(&unique).await.unwrap();
    let start = Instant::now();
    loop {
        let left = stream.info().await.unwrap().state.messages;
        if left == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{left} messages still in the stream after their acks");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    js.delete_stream(&unique).await.unwrap();
    server.stop().await.unwrap();
}
