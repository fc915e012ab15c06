//! The sqs driver against moto's SQS server (started by `tests/run.sh`) with PHP consumers: push
//! (single and batch) with headers, delay limits, ack, nack, a failed worker (copied back, or kept
//! for `error_visibility_timeout` with `retain_failed_jobs`), requeue with headers on a standard
//! and a FIFO queue (the copy is not dropped as a duplicate), `jobs.Stat` with queue counts,
//! Declare at runtime, auto_ack, pause/resume/destroy, a stop while a job runs, and a broker restart: the pipeline declares its queue again and goes on.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rr_jobs::proto;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::TestServer;

#[path = "../../jobs/tests/support/jobs_rpc.rs"]
#[allow(dead_code)]
mod jobs_rpc;
use jobs_rpc::{call, count, log, wait_for};

fn job(id: &str, payload: &str, pipeline: &str) -> proto::Job {
    proto::Job {
        job: "App\\Job".into(),
        id: id.into(),
        payload: payload.as_bytes().to_vec(),
        headers: [("tenant".to_string(), proto::HeaderValue { value: vec!["acme".into()] })].into(),
        options: Some(proto::Options { pipeline: pipeline.into(), priority: 3, ..Default::default() }),
    }
}

async fn push(c: &mut RpcClient, j: proto::Job) -> Result<proto::Empty, String> {
    call(c, "jobs.Push", proto::PushRequest { job: Some(j) }).await
}

fn server(jobs_log: &Path, endpoint: &str, consume: &str, pipelines: &str) -> (TestServer, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{port}\nsqs:\n  key: test\n  secret: test\n  region: us-east-1\n  endpoint: {endpoint}\nserver:\n  command: \"php {}\"\n  env:\n    JOBS_LOG: {}\njobs:\n  consume: [{consume}]\n  pool:\n    num_workers: 2\n  pipelines:\n{pipelines}",
        worker.display(),
        jobs_log.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_jobs_sqs::Plugin>().plugin::<rr_jobs::Plugin>();
    (TestServer::start(&build, &yaml), format!("tcp://127.0.0.1:{port}"))
}

async fn until_pushed(server: &mut TestServer, address: &str, j: proto::Job) {
    let probe = || async {
        let mut probe = RpcClient::connect(address).await.ok()?;
        push(&mut probe, j.clone()).await.ok()
    };
    server.until("the sqs pipeline", probe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_pipelines_with_php_consumers() {
    assert!(std::net::TcpStream::connect("127.0.0.1:4566").is_ok(), "moto's SQS server is not on 127.0.0.1:4566 (tests/run.sh starts it)");
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let unique = format!("rr-test-{}", std::process::id());
    let pipelines = format!(
        r#"    s:
      driver: sqs
      config:
        queue: {unique}
        prefetch: 5
        wait_time_seconds: 1
        priority: 6
        attributes:
          visibilitytimeout: 30
        tags:
          team: jobs
    f:
      driver: sqs
      config:
        queue: {unique}.fifo
        message_group_id: g
        wait_time_seconds: 1
    r:
      driver: sqs
      config:
        queue: {unique}-retain
        retain_failed_jobs: true
        error_visibility_timeout: 1
        wait_time_seconds: 1
    idle:
      driver: sqs
      config:
        queue: {unique}-idle
    short:
      driver: sqs
      config:
        queue: {unique}-short
        visibility_timeout: 1
        wait_time_seconds: 1
"#
    );
    let (mut first, address) = server(&jobs_log, "http://127.0.0.1:4566", "s, f, r, short", &pipelines);
    let mut c = first.rpc(&address).await;
    until_pushed(&mut first, &address, job("s-ack", "ack", "s")).await;

    let mut delayed = job("s-late", "ack", "s");
    delayed.options.as_mut().unwrap().delay = 901;
    assert!(push(&mut c, delayed.clone()).await.unwrap_err().contains("at most 900 s"));
    delayed.options.as_mut().unwrap().pipeline = "f".into();
    delayed.options.as_mut().unwrap().delay = 1;
    assert!(push(&mut c, delayed).await.unwrap_err().contains("FIFO queues cannot delay"));

    let jobs = [("s-nack", "nack-once", "s"), ("s-requeue", "requeue-once", "s"), ("s-fail", "fail-once", "s"), ("f-requeue", "requeue-once", "f"), ("r-fail", "fail-once", "r")];
    let batch = proto::PushBatchRequest { jobs: jobs.iter().map(|(id, p, pipeline)| job(id, p, pipeline)).collect() };
    call::<proto::Empty>(&mut c, "jobs.PushBatch", batch).await.unwrap();
    wait_for("eleven deliveries", 60, || log(&jobs_log).len() >= 11).await;
    let entries = log(&jobs_log);
    let counts: Vec<usize> = ["s-ack", "s-nack", "s-requeue", "s-fail", "f-requeue", "r-fail"].iter().map(|id| count(&entries, id)).collect();
    assert_eq!(counts, [1, 2, 2, 2, 2, 2], "{entries:?}");
    let first_ack = entries.iter().find(|e| e["id"] == "s-ack").unwrap();
    assert_eq!((first_ack["driver"].as_str(), first_ack["queue"].as_str(), first_ack["job"].as_str()), (Some("sqs"), Some(unique.as_str()), Some("App\\Job")));
    assert_eq!(first_ack["headers"]["tenant"][0], "acme");
    assert_eq!(first_ack["headers"]["ApproximateReceiveCount"][0], "1", "system attributes are headers");
    let requeued: Vec<_> = entries.iter().filter(|e| e["id"] == "f-requeue").collect();
    assert_eq!(requeued[1]["headers"]["attempt"][0], "1", "the FIFO copy arrives with its new headers");
    let retained: Vec<_> = entries.iter().filter(|e| e["id"] == "r-fail").collect();
    assert_eq!(retained[1]["headers"]["ApproximateReceiveCount"][0], "2", "a retained job is the same message again");

    let stats: proto::Stats = call(&mut c, "jobs.Stat", proto::Empty {}).await.unwrap();
    let stat = stats.stats.iter().find(|s| s.pipeline == "s").unwrap();
    assert_eq!((stat.driver.as_str(), stat.ready, stat.priority), ("sqs", true, 6));
    assert!(stat.queue.ends_with(&format!("/{unique}")), "{}", stat.queue);

    // `rr jobs` counts the messages waiting in a queue nobody consumes.
    for id in ["i-1", "i-2"] {
        push(&mut c, job(id, "ack", "idle")).await.unwrap();
    }
    let start = Instant::now();
    loop {
        let stats: proto::Stats = call(&mut c, "jobs.Stat", proto::Empty {}).await.unwrap();
        let idle = stats.stats.iter().find(|s| s.pipeline == "idle").unwrap();
        if (idle.active, idle.ready) == (2, false) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{idle:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Declared at runtime, every value a string as PHP sends them (`wait_time`, not `wait_time_seconds`).
    let declare = proto::DeclareRequest {
        pipeline: [("driver", "sqs"), ("name", "sd"), ("queue", &format!("{unique}-declared")), ("wait_time", "1"), ("prefetch", "3"), ("priority", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let mut wrong = declare.clone();
    wrong.pipeline.insert("name".into(), "sw".into());
    wrong.pipeline.insert("visibility_timeout".into(), "50000".into());
    let err = call::<proto::Empty>(&mut c, "jobs.Declare", wrong).await.unwrap_err();
    assert!(err.contains("sqs pipeline `sw`: `visibility_timeout: 50000` is out of range: SQS accepts 0 to 43200 seconds"), "{err}");
    call::<proto::Empty>(&mut c, "jobs.Declare", declare).await.unwrap();
    push(&mut c, job("sd-1", "ack", "sd")).await.unwrap();
    wait_for("the job of the declared pipeline", 30, || count(&log(&jobs_log), "sd-1") == 1).await;

    // auto_ack: deleted when received, so a failing job does not come back (s-fail did).
    let mut auto = job("s-auto", "fail", "s");
    auto.options.as_mut().unwrap().auto_ack = true;
    push(&mut c, auto).await.unwrap();
    wait_for("the auto-acked job", 30, || count(&log(&jobs_log), "s-auto") == 1).await;

    // Paused, a pipeline keeps its pushes in the queue; resumed, it delivers them; destroyed,
    // it is gone from the list.
    let names = |p: &str| proto::Pipelines { pipelines: vec![p.into()] };
    call::<proto::Empty>(&mut c, "jobs.Pause", names("s")).await.unwrap();
    push(&mut c, job("s-paused", "ack", "s")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&log(&jobs_log), "s-paused"), 0, "a paused pipeline delivers nothing");
    call::<proto::Empty>(&mut c, "jobs.Resume", names("s")).await.unwrap();
    wait_for("the job pushed while paused", 30, || count(&log(&jobs_log), "s-paused") == 1).await;
    assert_eq!(count(&log(&jobs_log), "s-auto"), 1, "an auto-acked job runs once, even when it fails");
    call::<proto::Empty>(&mut c, "jobs.Destroy", names("sd")).await.unwrap();
    let list: proto::Pipelines = call(&mut c, "jobs.List", proto::Empty {}).await.unwrap();
    assert!(!list.pipelines.contains(&"sd".to_string()), "{:?}", list.pipelines);
    // Stopped while a job runs: the job finishes and is deleted on the way out, so a server
    // started next does not get it back when its 1 s visibility would have ended.
    push(&mut c, job("short-stop", "sleep-1500", "short")).await.unwrap();
    wait_for("the job running at stop", 30, || count(&log(&jobs_log), "short-stop") == 1).await;
    first.stop().await.unwrap();
    let (mut second, address) = server(&jobs_log, "http://127.0.0.1:4566", "short", &pipelines);
    until_pushed(&mut second, &address, job("short-next", "ack", "short")).await;
    wait_for("the job pushed to the next server", 30, || count(&log(&jobs_log), "short-next") == 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&log(&jobs_log), "short-stop"), 1, "a job finished at stop is not run again");
    second.stop().await.unwrap();
}

/// moto on a port of its own, so that it can be stopped and started again.
fn moto(port: u16) -> Child {
    let bin = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    Command::new(&bin).args(["-H", "127.0.0.1", "-p", &port.to_string()]).stderr(std::process::Stdio::null()).spawn().unwrap_or_else(|e| panic!("cannot start {bin} (set MOTO_SERVER): {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_survives_a_broker_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut broker = moto(port);
    wait_for("moto", 30, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let pipelines = "    s:\n      driver: sqs\n      config:\n        queue: restart\n        wait_time_seconds: 1\n";
    let (mut server, address) = server(&jobs_log, &format!("http://127.0.0.1:{port}"), "s", pipelines);
    let mut c = server.rpc(&address).await;
    until_pushed(&mut server, &address, job("before", "ack", "s")).await;
    wait_for("the job pushed before the restart", 30, || count(&log(&jobs_log), "before") == 1).await;

    // moto keeps queues in memory: after the restart the queue is gone until the pipeline
    // declares it again, which its receive loop does by itself.
    broker.kill().unwrap();
    broker.wait().unwrap();
    let mut broker = moto(port);
    let start = Instant::now();
    while push(&mut c, job("after", "ack", "s")).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "push never worked again after the broker restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for("the job pushed after the restart", 30, || count(&log(&jobs_log), "after") == 1).await;
    assert_eq!(count(&log(&jobs_log), "before"), 1, "an acknowledged job never comes back");
    server.stop().await.unwrap();
    broker.kill().unwrap();
    broker.wait().unwrap();
}
