//! The beanstalk driver against a real beanstalkd with PHP consumers: the memory driver's
//! behaviour (ack, nack with requeue and delay, requeue with headers, errors, priorities,
//! pause/resume, statistics, Declare/Destroy), what differs from RoadRunner (a nack buries, a
//! requeue-nack is not duplicated, long jobs are touched instead of running twice), auto_ack,
//! and a broker restart (its own beanstalkd with a binlog) that loses and repeats nothing.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rr_jobs::proto;
use rr_runtime::rpc::client::RpcClient;
use rr_runtime::testing::{TestServer, free_port};

#[path = "../../jobs/tests/support/jobs_rpc.rs"]
#[allow(dead_code)]
mod jobs_rpc;
use jobs_rpc::{call, count, log, wait_for};

fn job(id: &str, payload: &str, pipeline: &str, priority: i64) -> proto::Job {
    proto::Job {
        job: "App\\Job".into(),
        id: id.into(),
        payload: payload.as_bytes().to_vec(),
        headers: [("trace".to_string(), proto::HeaderValue { value: vec!["t-1".into()] })].into(),
        options: Some(proto::Options { pipeline: pipeline.into(), priority, ..Default::default() }),
    }
}

/// `stats-tube` read straight from beanstalkd: one counter, 0 for a tube that does not exist.
fn tube_stat(port: u16, tube: &str, key: &str) -> i64 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "stats-tube {tube}\r\n").unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply);
        if text.starts_with("NOT_FOUND") || n == 0 {
            return 0;
        }
        if let Some(len) = text.strip_prefix("OK ").and_then(|r| r.split("\r\n").next()).and_then(|l| l.parse::<usize>().ok())
            && reply.len() >= format!("OK {len}\r\n").len() + len + 2
        {
            return text.lines().find_map(|l| l.strip_prefix(&format!("{key}: ")).map(|v| v.trim().parse().unwrap())).unwrap();
        }
    }
}

fn yaml(rpc: u16, beanstalk: u16, timeout: &str, jobs_log: &Path, pipelines: &str, consume: &str) -> String {
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/jobs.php");
    format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nbeanstalk:\n  addr: tcp://127.0.0.1:{beanstalk}\n  timeout: {timeout}\nserver:\n  command: \"php {}\"\n  env:\n    JOBS_LOG: {}\njobs:\n  consume: [{consume}]\n  pool:\n    num_workers: 1\n  pipelines:\n{pipelines}",
        worker.display(),
        jobs_log.display()
    )
}

fn build() -> rr_runtime::Build {
    rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_jobs_beanstalk::Plugin>().plugin::<rr_jobs::Plugin>()
}

async fn pipelines(server: &mut TestServer, address: &str, n: usize) {
    server
        .until("the beanstalk pipelines", || async {
            let mut probe = RpcClient::connect(address).await.ok()?;
            let listed: proto::Pipelines = call(&mut probe, "jobs.List", proto::Empty {}).await.ok()?;
            (listed.pipelines.len() == n).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beanstalk_pipelines_with_a_php_consumer() {
    assert!(std::net::TcpStream::connect("127.0.0.1:11300").is_ok(), "beanstalkd is not reachable on 127.0.0.1:11300 (tests/run.sh starts it)");
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let port = free_port();
    let (main, held) = (format!("rr-main-{}-{port}", std::process::id()), format!("rr-held-{}-{port}", std::process::id()));
    // A TTR of 2 s: the 3.5 s job below outlives it and must be touched, not run again.
    let pipes = format!(
        "    main:\n      driver: beanstalk\n      config:\n        tube: {main}\n        reserve_timeout: 1s\n    held:\n      driver: beanstalk\n      config:\n        tube: {held}\n"
    );
    let mut server = TestServer::start(&build(), &yaml(port, 11300, "2s", &jobs_log, &pipes, "main"));
    let address = format!("tcp://127.0.0.1:{port}");
    let mut c = server.rpc(&address).await;
    pipelines(&mut server, &address, 2).await;

    // Delivery, context, ack, nack+requeue+delay, requeue with headers, error, auto_ack, touch.
    let mut auto = job("j-auto", "fail", "main", 0);
    auto.options.as_mut().unwrap().auto_ack = true;
    let jobs = vec![
        job("j-ack", "ack", "main", 0),
        job("j-nack", "nack-once", "main", 0),
        job("j-requeue", "requeue-once", "main", 0),
        job("j-fail", "fail", "main", 0),
        auto,
    ];
    call::<proto::Empty>(&mut c, "jobs.PushBatch", proto::PushBatchRequest { jobs }).await.unwrap();
    wait_for("seven deliveries", 30, || log(&jobs_log).len() >= 7).await;
    wait_for("the tube to empty", 30, || tube_stat(11300, &main, "current-jobs-ready") + tube_stat(11300, &main, "current-jobs-reserved") + tube_stat(11300, &main, "current-jobs-delayed") == 0).await;
    let entries = log(&jobs_log);
    assert_eq!(count(&entries, "j-ack"), 1, "exactly once");
    assert_eq!(count(&entries, "j-nack"), 2, "nack with requeue delivers again, once (no copy beside the released job)");
    assert_eq!(count(&entries, "j-requeue"), 2);
    assert_eq!(count(&entries, "j-fail"), 1, "an error frame is a nack without requeue");
    assert_eq!(count(&entries, "j-auto"), 1, "auto_ack: deleted when reserved, the failure changes nothing");
    assert_eq!(tube_stat(11300, &main, "current-jobs-buried"), 1, "the failed job is buried, not deleted");
    let first = entries.iter().find(|e| e["id"] == "j-ack").unwrap();
    assert_eq!((first["job"].as_str(), first["driver"].as_str(), first["pipeline"].as_str(), first["queue"].as_str()), (Some("App\\Job"), Some("beanstalk"), Some("main"), Some(main.as_str())));
    assert_eq!(first["headers"]["trace"][0], "t-1", "headers travel in the v6 Hdrs field");
    let requeued: Vec<_> = entries.iter().filter(|e| e["id"] == "j-requeue").collect();
    assert_eq!(requeued[1]["headers"]["attempt"][0], "1", "requeue carries the new headers");
    let nacked: Vec<f64> = entries.iter().filter(|e| e["id"] == "j-nack").map(|e| e["at"].as_f64().unwrap()).collect();
    assert!(nacked[1] - nacked[0] >= 0.9, "the nack delay is respected: {nacked:?}");

    // A job longer than the TTR keeps its reservation (touch): another consumer of the tube,
    // waiting meanwhile, never gets it.
    call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("j-long", "sleep-3500", "main", 0)) }).await.unwrap();
    wait_for("the long job", 30, || count(&log(&jobs_log), "j-long") == 1).await;
    let other = tokio::task::spawn_blocking({
        let main = main.clone();
        move || {
            let mut s = std::net::TcpStream::connect("127.0.0.1:11300").unwrap();
            write!(s, "watch {main}\r\nreserve-with-timeout 3\r\n").unwrap();
            let mut reply = String::new();
            let mut buf = [0u8; 65536];
            while reply.matches("\r\n").count() < 2 {
                let n = s.read(&mut buf).unwrap();
                reply.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            reply
        }
    });
    let reply = other.await.unwrap();
    assert!(reply.ends_with("TIMED_OUT\r\n"), "another consumer reserved the running job: {reply:?}");
    wait_for("the long job to finish", 30, || tube_stat(11300, &main, "current-jobs-reserved") == 0).await;
    assert_eq!(count(&log(&jobs_log), "j-long"), 1);

    // A paused pipeline holds its jobs (counted by stats-tube); on resume they arrive by priority.
    std::fs::write(&jobs_log, "").unwrap();
    for (id, prio) in [("p-30", 30), ("p-10", 10), ("p-20", 20), ("p-5", 5)] {
        call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job(id, "ack", "held", prio)) }).await.unwrap();
    }
    let mut stats = proto::Stats::default();
    server
        .until("the held jobs counted", || {
            let address = address.clone();
            async move {
                let mut probe = RpcClient::connect(&address).await.ok()?;
                let stats: proto::Stats = call(&mut probe, "jobs.Stat", proto::Empty {}).await.ok()?;
                stats.stats.iter().any(|s| s.pipeline == "held" && s.active == 4).then_some(stats)
            }
        })
        .await
        .clone_into(&mut stats);
    let held_stat = stats.stats.iter().find(|s| s.pipeline == "held").unwrap();
    assert_eq!((held_stat.driver.as_str(), held_stat.queue.as_str(), held_stat.ready), ("beanstalk", held.as_str(), false));
    assert!(log(&jobs_log).is_empty(), "held is not consumed yet");
    call::<proto::Empty>(&mut c, "jobs.Resume", proto::Pipelines { pipelines: vec!["held".into()] }).await.unwrap();
    wait_for("held jobs", 30, || log(&jobs_log).len() == 4).await;
    let order: Vec<String> = log(&jobs_log).iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(order, ["p-5", "p-10", "p-20", "p-30"]);

    // Paused while consuming, it keeps what is pushed in the tube until resumed.
    let held_only = || proto::Pipelines { pipelines: vec!["held".into()] };
    call::<proto::Empty>(&mut c, "jobs.Pause", held_only()).await.unwrap();
    call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("p-paused", "ack", "held", 0)) }).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&log(&jobs_log), "p-paused"), 0, "a paused pipeline reserves nothing");
    call::<proto::Empty>(&mut c, "jobs.Resume", held_only()).await.unwrap();
    wait_for("the job pushed while paused", 30, || count(&log(&jobs_log), "p-paused") == 1).await;

    // Declared at runtime (every value a string), used, then destroyed.
    let extra = format!("rr-extra-{}-{port}", std::process::id());
    let declare = proto::DeclareRequest {
        pipeline: [("name", "extra"), ("driver", "beanstalk"), ("tube", extra.as_str()), ("priority", "3"), ("tube_priority", "7"), ("reserve_timeout", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    call::<proto::Empty>(&mut c, "jobs.Declare", declare).await.unwrap();
    call::<proto::Empty>(&mut c, "jobs.Resume", proto::Pipelines { pipelines: vec!["extra".into()] }).await.unwrap();
    call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("x-1", "ack", "extra", 0)) }).await.unwrap();
    wait_for("the declared pipeline's job", 30, || count(&log(&jobs_log), "x-1") == 1).await;
    let destroyed: proto::Pipelines = call(&mut c, "jobs.Destroy", proto::Pipelines { pipelines: vec!["extra".into()] }).await.unwrap();
    assert_eq!(destroyed.pipelines, ["extra"]);
    let bad = proto::DeclareRequest {
        pipeline: [("name", "bad"), ("driver", "beanstalk"), ("tube_priority", "high")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let err = call::<proto::Empty>(&mut c, "jobs.Declare", bad).await.unwrap_err();
    assert!(err.contains("config of pipeline `bad`: `tube_priority` is \"high\", expected a number"), "{err}");

    server.stop().await.unwrap();
    for tube in [&main, &held, &extra] {
        drain(11300, tube);
    }
}

/// Delete what a test left in a tube of the shared beanstalkd (the buried job).
fn drain(port: u16, tube: &str) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "use {tube}\r\n").unwrap();
    for _ in 0..10 {
        write!(s, "peek-buried\r\n").unwrap();
        let mut buf = [0u8; 65536];
        let n = s.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let Some(id) = text.strip_prefix("FOUND ").and_then(|r| r.split(' ').next()) else { continue };
        write!(s, "delete {id}\r\n").unwrap();
        let _ = s.read(&mut buf);
    }
}

/// A beanstalkd of this test's own, with a binlog so jobs survive its restart.
struct Broker {
    port: u16,
    binlog: std::path::PathBuf,
    child: Option<Child>,
}

impl Broker {
    fn start(port: u16, binlog: &Path) -> Broker {
        let mut b = Broker { port, binlog: binlog.to_path_buf(), child: None };
        b.restart();
        b
    }

    fn restart(&mut self) {
        let child = Command::new("beanstalkd")
            .args(["-l", "127.0.0.1", "-p", &self.port.to_string(), "-b"])
            .arg(&self.binlog)
            .spawn()
            .expect("beanstalkd is needed (apt-get install beanstalkd; tests/run.sh installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "beanstalkd did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// beanstalkd dies with jobs queued and one in flight, and comes back (from its binlog): the
/// pipeline reconnects by itself, every job pushed before runs exactly once, the running one is
/// not handed out again and its ack still deletes it, and pushes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_broker_restart_without_losing_or_repeating_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let (port, bs_port) = (free_port(), free_port());
    let mut broker = Broker::start(bs_port, dir.path());
    let pipes = "    q:\n      driver: beanstalk\n      config:\n        tube: restart\n";
    let mut server = TestServer::start(&build(), &yaml(port, bs_port, "30s", &jobs_log, pipes, "q"));
    let address = format!("tcp://127.0.0.1:{port}");
    let mut c = server.rpc(&address).await;
    pipelines(&mut server, &address, 1).await;

    let mut jobs = vec![job("r-long", "sleep-1500", "q", 0)];
    jobs.extend((0..5).map(|i| job(&format!("r-{i}"), "ack", "q", 0)));
    call::<proto::Empty>(&mut c, "jobs.PushBatch", proto::PushBatchRequest { jobs }).await.unwrap();
    wait_for("the long job to run", 30, || count(&log(&jobs_log), "r-long") == 1).await;
    broker.kill();
    broker.restart();
    let start = Instant::now();
    while call::<proto::Empty>(&mut c, "jobs.Push", proto::PushRequest { job: Some(job("r-after", "ack", "q", 0)) }).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "push never worked again after the broker restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for("every job", 30, || ["r-long", "r-0", "r-1", "r-2", "r-3", "r-4", "r-after"].iter().all(|id| count(&log(&jobs_log), id) >= 1)).await;
    wait_for("the tube to empty", 30, || tube_stat(bs_port, "restart", "current-jobs-ready") + tube_stat(bs_port, "restart", "current-jobs-reserved") == 0).await;
    let entries = log(&jobs_log);
    for id in ["r-long", "r-0", "r-1", "r-2", "r-3", "r-4", "r-after"] {
        assert_eq!(count(&entries, id), 1, "{id} exactly once: {entries:?}");
    }
    server.stop().await.unwrap();
}
