//! The jobs plugin with the memory driver and a PHP consumer: exactly-once delivery, ack, nack
//! with requeue and delay, requeue with headers, errors, priorities, pause/resume, RPC errors,
//! RoadRunner's `rr_jobs_*` metrics.

use std::path::Path;
use std::time::Duration;

use rr_jobs::proto;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::{free_port, rr_bare, TestServer};
use serde_json::Value;

#[path = "support/jobs_rpc.rs"]
#[allow(dead_code)]
mod jobs_rpc;
use jobs_rpc::{call, log, wait_for};

fn job(id: &str, payload: &str, pipeline: &str, priority: i64) -> proto::Job {
    proto::Job {
        job: "App\\Job".into(),
        id: id.into(),
        payload: payload.as_bytes().to_vec(),
        headers: [("trace".to_string(), proto::HeaderValue { value: vec!["t-1".into()] })].into(),
        options: Some(proto::Options { pipeline: pipeline.into(), priority, ..Default::default() }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pipelines_with_a_php_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let (port, status_port, metrics_port) = (free_port(), free_port(), free_port());
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let yaml = format!(
        r#"version: '3'
rpc:
  listen: tcp://127.0.0.1:{port}
metrics:
  address: 127.0.0.1:{metrics_port}
status:
  address: 127.0.0.1:{status_port}
server:
  command: "php {}"
  env:
    JOBS_LOG: {}
jobs:
  consume: [main]
  pool:
    num_workers: 1
  pipelines:
    main:
      driver: memory
      config:
        priority: 10
    held:
      driver: memory
      config: {{}}
"#,
        worker.display(),
        jobs_log.display()
    );
    let build = rr_runtime::Build::new("rr", "test")
        .plugin::<rr_rpc::Plugin>()
        .plugin::<rr_status::Plugin>()
        .plugin::<rr_metrics::Plugin>()
        .plugin::<rr_jobs_memory::Plugin>()
        .plugin::<rr_jobs::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let mut c = server.rpc(&format!("tcp://127.0.0.1:{port}")).await;
    let mut listed = proto::Pipelines::default();
    for _ in 0..200 {
        listed = call(&mut c, "jobs.List", proto::Empty {}).await.unwrap();
        if listed.pipelines.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(listed.pipelines, ["held", "main"]);

    // Delivery, context, ack, nack+requeue+delay, requeue with headers, error.
    let batch = proto::PushBatchRequest {
        jobs: vec![job("j-ack", "ack", "main", 0), job("j-nack", "nack-once", "main", 0), job("j-requeue", "requeue-once", "main", 0), job("j-fail", "fail", "main", 0)],
    };
    call::<proto::Empty>(&mut c, "jobs.PushBatch", batch).await.unwrap();
    wait_for("six deliveries", 20, || log(&jobs_log).len() >= 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let entries = log(&jobs_log);
    let count = |id: &str| entries.iter().filter(|e| e["id"] == id).count();
    assert_eq!(count("j-ack"), 1, "exactly once");
    assert_eq!(count("j-nack"), 2, "nack with requeue delivers again");
    assert_eq!(count("j-requeue"), 2);
    assert_eq!(count("j-fail"), 1, "an error frame is a nack without requeue");
    let first = entries.iter().find(|e| e["id"] == "j-ack").unwrap();
    assert_eq!(first["job"], "App\\Job");
    assert_eq!(first["driver"], "memory");
    assert_eq!(first["pipeline"], "main");
    assert_eq!(first["headers"]["trace"][0], "t-1");
    let requeued: Vec<_> = entries.iter().filter(|e| e["id"] == "j-requeue").collect();
    assert_eq!(requeued[1]["headers"]["attempt"][0], "1", "requeue carries the new headers");
    let nacked: Vec<f64> = entries.iter().filter(|e| e["id"] == "j-nack").map(|e| e["at"].as_f64().unwrap()).collect();
    assert!(nacked[1] - nacked[0] >= 0.9, "the nack delay is respected: {nacked:?}");

    // RoadRunner's rr_jobs_* series: three acked, two requeued once, one failed; four pushed.
    wait_for("the outcomes counted", 20, || http_get(metrics_port, "/metrics").contains("\nrr_jobs_jobs_ok 3\n")).await;
    let metrics = http_get(metrics_port, "/metrics");
    for family in [
        "# HELP rr_jobs_jobs_err Number of jobs error while processing in the worker\n# TYPE rr_jobs_jobs_err counter\nrr_jobs_jobs_err 1\n",
        "# HELP rr_jobs_jobs_ok Number of successfully processed jobs\n# TYPE rr_jobs_jobs_ok counter\nrr_jobs_jobs_ok 3\n",
        "# HELP rr_jobs_jobs_requeue Number of re-queued jobs\n# TYPE rr_jobs_jobs_requeue counter\nrr_jobs_jobs_requeue 2\n",
        "# HELP rr_jobs_push_err Number of jobs push which was failed\n# TYPE rr_jobs_push_err counter\nrr_jobs_push_err 0\n",
        "# HELP rr_jobs_push_ok Number of job push\n# TYPE rr_jobs_push_ok counter\nrr_jobs_push_ok 4\n",
        "# HELP rr_jobs_push_latency Histogram represents latency for pushed operation\n# TYPE rr_jobs_push_latency histogram\n",
        "\nrr_jobs_push_latency_count{driver=\"memory\",job=\"main\",source=\"batch\"} 4\n",
        "# HELP rr_jobs_requests_total The total number of requests sent to the JOBS plugin\n# TYPE rr_jobs_requests_total counter\nrr_jobs_requests_total{driver=\"memory\",job=\"main\",source=\"batch\"} 4\n",
        "# HELP rr_jobs_total_workers Total number of workers used by the plugin\n# TYPE rr_jobs_total_workers gauge\nrr_jobs_total_workers 1\n",
        "# HELP rr_jobs_workers_memory_bytes Memory usage by workers.\n",
    ] {
        assert!(metrics.contains(family), "missing\n{family}in\n{metrics}");
    }

    // A paused pipeline holds its jobs; on resume they arrive by priority (lower first).
    std::fs::write(&jobs_log, "").unwrap();
    for (id, prio) in [("p-30", 30), ("p-10", 10), ("p-20", 20), ("p-5", 5)] {
        call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job(id, "ack", "held", prio)) }).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(log(&jobs_log).is_empty(), "held is not consumed yet");
    let stats: proto::Stats = call(&mut c, "jobs.Stat", proto::Empty {}).await.unwrap();
    let held = stats.stats.iter().find(|s| s.pipeline == "held").unwrap();
    assert_eq!((held.active, held.ready), (4, false));
    call::<proto::Empty>(&mut c, "jobs.Resume", proto::Pipelines { pipelines: vec!["held".into()] }).await.unwrap();
    wait_for("held jobs", 20, || log(&jobs_log).len() == 4).await;
    let order: Vec<String> = log(&jobs_log).iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(order, ["p-5", "p-10", "p-20", "p-30"]);
    call::<proto::Empty>(&mut c, "jobs.Pause", proto::Pipelines { pipelines: vec!["held".into()] }).await.unwrap();

    // Declared at runtime, then destroyed.
    let declare = proto::DeclareRequest { pipeline: [("name".to_string(), "extra".to_string()), ("driver".into(), "memory".into()), ("priority".into(), "3".into())].into() };
    call::<proto::Empty>(&mut c, "jobs.Declare", declare.clone()).await.unwrap();
    let err = call::<proto::Empty>(&mut c, "jobs.Declare", declare).await.unwrap_err();
    assert!(err.contains("pipeline already exists, name: extra, driver: memory"), "{err}");
    let destroyed: proto::Pipelines = call(&mut c, "jobs.Destroy", proto::Pipelines { pipelines: vec!["extra".into()] }).await.unwrap();
    assert_eq!(destroyed.pipelines, ["extra"]);

    // /jobs on the status plugin: `held` is paused, so not ready.
    let jobs_page = http_get(status_port, "/jobs");
    assert!(jobs_page.starts_with("HTTP/1.1 503"), "{jobs_page}");
    assert!(jobs_page.contains("\"pipeline\":\"held\"") && jobs_page.contains("\"ready\":false"), "{jobs_page}");

    // informer.Jobs (JSON, Go field names) and `rr jobs`.
    let states: Value = c.call_json("informer.Jobs", &"jobs").await.unwrap();
    let held = states.as_array().unwrap().iter().find(|s| s["Pipeline"] == "held").unwrap();
    assert_eq!((held["Driver"].as_str(), held["Ready"].as_bool()), (Some("memory"), Some(false)));
    let config_file = dir.path().join(".rr.yaml");
    std::fs::write(&config_file, &yaml).unwrap();
    let rr = rr_bare();
    let out = tokio::task::spawn_blocking({
        let (rr, config_file) = (rr.clone(), config_file.clone());
        move || std::process::Command::new(rr).args(["jobs", "--list", "-c"]).arg(config_file).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Pipeline(s)\nheld\nmain\n", "{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(&rr).args(["jobs", "--pause", "-c"]).arg(&config_file).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("rr jobs --<destroy/resume/pause> pipe1,pipe2"));

    // RPC errors PHP sees.
    let err = call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("x", "ack", "nope", 0)) }).await.unwrap_err();
    assert!(err.contains("no such pipeline, requested: nope"), "{err}");
    // A batch goes pipeline run by pipeline run, in order, and stops at the first failure: the
    // job before it is pushed, the one after it is not.
    let batch = proto::PushBatchRequest { jobs: vec![job("j-b1", "ack", "main", 0), job("j-b2", "ack", "nope", 0), job("j-b3", "ack", "main", 0)] };
    let err = call::<proto::Empty>(&mut c, "jobs.PushBatch", batch).await.unwrap_err();
    assert!(err.contains("no such pipeline, requested: nope"), "{err}");
    wait_for("the job before the failure", 20, || log(&jobs_log).iter().any(|e| e["id"] == "j-b1")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!log(&jobs_log).iter().any(|e| e["id"] == "j-b3"), "a job after the failure was pushed");
    let err = call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("", "ack", "main", 0)) }).await.unwrap_err();
    assert!(err.contains("empty ID field not allowed"), "{err}");
    let no_driver = proto::DeclareRequest { pipeline: [("name".to_string(), "y".to_string())].into() };
    assert!(call::<proto::Empty>(&mut c, "jobs.Declare", no_driver).await.unwrap_err().contains("no associated driver with the pipeline"));

    server.stop().await.unwrap();
}


fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// One priority order over all pipelines, as RoadRunner's single priority queue: while the only
/// worker is busy, jobs of the `urgent` pipeline (priority 1) overtake the `bulk` ones (10)
/// pushed before them; an explicit job priority beats its pipeline's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_order_deliveries_across_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let port = free_port();
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{port}\nserver:\n  command: \"php {}\"\n  env:\n    JOBS_LOG: {}\njobs:\n  consume: [bulk, urgent]\n  pool:\n    num_workers: 1\n  pipelines:\n    bulk:\n      driver: memory\n      config:\n        priority: 10\n    urgent:\n      driver: memory\n      config:\n        priority: 1\n",
        worker.display(),
        jobs_log.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_jobs_memory::Plugin>().plugin::<rr_jobs::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let mut c = server.rpc(&format!("tcp://127.0.0.1:{port}")).await;
    server
        .until("both pipelines", || async {
            let mut probe = RpcClient::connect(&format!("tcp://127.0.0.1:{port}")).await.ok()?;
            let listed: proto::Pipelines = call(&mut probe, "jobs.List", proto::Empty {}).await.ok()?;
            (listed.pipelines.len() == 2).then_some(())
        })
        .await;
    call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("busy", "sleep-500", "bulk", 0)) }).await.unwrap();
    wait_for("the worker to be busy", 20, || log(&jobs_log).len() == 1).await;
    let jobs = vec![job("b1", "ack", "bulk", 0), job("b2", "ack", "bulk", 0), job("u1", "ack", "urgent", 0), job("b0", "ack", "bulk", -5), job("u2", "ack", "urgent", 0)];
    call::<proto::Empty>(&mut c, "jobs.PushBatch", proto::PushBatchRequest { jobs }).await.unwrap();
    wait_for("six deliveries", 20, || log(&jobs_log).len() == 6).await;
    let order: Vec<String> = log(&jobs_log).iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(order, ["busy", "b0", "u1", "u2", "b1", "b2"]);
    server.stop().await.unwrap();
}
