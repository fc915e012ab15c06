//! Jobs kept by the embedded persistent driver survive a server restart, are delivered once
//! consumed, and do not come back after PHP acknowledged them.

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use rr_jobs::proto;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::TestServer;

fn yaml(dir: &Path, port: u16, consume: bool) -> String {
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{port}\nserver:\n  command: \"php {}\"\n  env:\n    JOBS_LOG: {}/jobs.log\njobs:\n  consume: [{}]\n  pool:\n    num_workers: 1\n  pipelines:\n    persist:\n      driver: boltdb\n      config:\n        file: {}/jobs.db\n",
        worker.display(),
        dir.display(),
        if consume { "persist" } else { "" },
        dir.display()
    )
}

/// A server with its RPC client, ready once the pipeline is listed.
async fn start(yaml: &str, port: u16) -> (TestServer, RpcClient) {
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_jobs_boltdb::Plugin>().plugin::<rr_jobs::Plugin>();
    let mut server = TestServer::start(&build, yaml);
    let address = format!("tcp://127.0.0.1:{port}");
    let client = server.rpc(&address).await;
    let listed = || async {
        let mut probe = RpcClient::connect(&address).await.ok()?;
        let reply = probe.call("jobs.List", Codec::Proto, &[]).await.ok()?;
        (!proto::Pipelines::decode(reply).ok()?.pipelines.is_empty()).then_some(())
    };
    server.until("the boltdb pipeline", listed).await;
    (server, client)
}

fn ids(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("jobs.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    // Run 1: push without consuming, then stop.
    let (server, mut client) = start(&yaml(dir.path(), port, false), port).await;
    for (id, prio) in [("k-1", 3), ("k-2", 1), ("k-3", 2)] {
        let job = proto::Job {
            job: "App\\Job".into(),
            id: id.into(),
            payload: b"ack".to_vec(),
            headers: Default::default(),
            options: Some(proto::Options { pipeline: "persist".into(), priority: prio, ..Default::default() }),
        };
        client.call("jobs.Push", Codec::Proto, &proto::PushRequest { job: Some(job) }.encode_to_vec()).await.unwrap();
    }
    server.stop().await.unwrap();
    assert!(ids(dir.path()).is_empty());

    // Run 2: a new server consumes what the first one stored, by priority.
    let (server, _) = start(&yaml(dir.path(), port, true), port).await;
    let start_wait = Instant::now();
    while ids(dir.path()).len() < 3 {
        assert!(start_wait.elapsed() < Duration::from_secs(20), "stored jobs were not delivered: {:?}", ids(dir.path()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ids(dir.path()), ["k-2", "k-3", "k-1"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop().await.unwrap();

    // Run 3: acknowledged jobs are gone for good.
    let (server, _) = start(&yaml(dir.path(), port, true), port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ids(dir.path()).len(), 3, "no acknowledged job is delivered again");
    server.stop().await.unwrap();
}
