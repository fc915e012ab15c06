//! The pool against real PHP workers (tests/php/workers/echo.php) over pipes, TCP and unix sockets.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rr_runtime::config::Config;
use rr_runtime::pool::{Payload, Pool, PoolConfig, PoolError, WorkerState};
use rr_runtime::{Build, Services};

fn php_worker(name: &str) -> String {
    format!("php {}/../tests/php/workers/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn start(relay: &str, pool_yaml: &str) -> (Arc<Services>, Pool) {
    start_with(&php_worker("echo.php"), relay, pool_yaml).await
}

async fn start_with(command: &str, relay: &str, pool_yaml: &str) -> (Arc<Services>, Pool) {
    let yaml = format!("version: '3'\nserver:\n  command: \"{command}\"\n  relay: \"{relay}\"\npool:\n{pool_yaml}\n");
    let config = Config::from_str(&yaml).unwrap();
    let services = rr_runtime::host::services(&Build::new("rr", "test"), &config).unwrap();
    let cfg: PoolConfig = config.section("pool").unwrap().unwrap_or_default();
    let pool = services.new_pool("test", "test", cfg).await.expect("pool starts");
    (services, pool)
}

async fn call(pool: &Pool, body: &str) -> Result<String, PoolError> {
    let reply = pool.exec(Payload::new(0, "ctx", body.to_string())).await?;
    assert!(reply.stream.is_none(), "unexpected stream");
    Ok(String::from_utf8(reply.payload.body.to_vec()).unwrap())
}

fn pids(pool: &Pool) -> HashSet<u32> {
    pool.workers().iter().map(|w| w.pid).collect()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn echo_roundtrip(relay: &str) {
    let (_s, pool) = start(relay, "  num_workers: 2").await;
    let reply = pool.exec(Payload::new(0x04, "{\"id\":\"1\"}", "hello")).await.unwrap();
    assert_eq!(&reply.payload.context[..], b"{\"id\":\"1\"}");
    assert_eq!(&reply.payload.body[..], b"hello");
    let workers = pool.workers();
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|w| w.state == WorkerState::Ready && w.memory > 0));
    assert_eq!(workers.iter().map(|w| w.num_execs).sum::<u64>(), 1);
    pool.destroy().await;
    assert!(pool.workers().is_empty());
    assert!(matches!(pool.exec(Payload::new(0, "", "x")).await, Err(PoolError::Stopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_pipes() {
    echo_roundtrip("pipes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_tcp() {
    echo_roundtrip("tcp://127.0.0.1:0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    echo_roundtrip(&format!("unix://{}/rr.sock", dir.path().display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_frame_is_soft_and_keeps_the_worker() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let before = pids(&pool);
    match call(&pool, "error:boom").await {
        Err(PoolError::SoftError(m)) => assert_eq!(m, "boom"),
        other => panic!("expected a soft error, got {other:?}"),
    }
    assert_eq!(call(&pool, "after").await.unwrap(), "after");
    assert_eq!(pids(&pool), before, "the worker stays alive after an error frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_request_fails_only_that_request() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let before = pids(&pool);
    assert!(matches!(call(&pool, "crash").await, Err(PoolError::Network { .. })));
    assert_eq!(call(&pool, "next").await.unwrap(), "next");
    wait_for("the crashed worker to be replaced", || pids(&pool).len() == 1 && pids(&pool) != before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_worker_that_dies_is_replaced() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let pid = *pids(&pool).iter().next().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for("a replacement", || pids(&pool).len() == 1 && !pids(&pool).contains(&pid)).await;
    assert_eq!(call(&pool, "ok").await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_request_is_retried_on_another_worker() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let first = pids(&pool);
    call(&pool, "a").await.unwrap();
    call(&pool, "b").await.unwrap();
    // The worker has served 2 requests and asks to stop; the request runs again on a fresh one.
    assert_eq!(call(&pool, "stopat:2").await.unwrap(), "stopat:2");
    wait_for("the stopped worker to leave", || pids(&pool).len() == 1 && pids(&pool) != first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_after_answering_finishes_the_request_it_already_read() {
    // The worker answers, then asks to stop; the next request reaches it before the stop is
    // read. It must be able to answer that one (into the void) and then exit on the stop frame,
    // not die on a closed pipe (RoadRunner keeps the pipes open until the process exits).
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("afterstop.log");
    call(&pool, &format!("afterstop:{}", log.display())).await.unwrap();
    assert_eq!(call(&pool, "next").await.unwrap(), "next", "retried on a fresh worker");
    wait_for("the stopped worker to exit", || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("exited"))).await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "answered\nexited\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_stdout_is_reported_with_the_bytes() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    match call(&pool, "garbage").await {
        Err(PoolError::Network { message, .. }) => {
            assert!(message.contains("validation failed on the message sent to STDOUT"), "{message}");
            assert!(message.contains("this is not a frame, it is php echo output"), "{message}");
        }
        other => panic!("expected a network error, got {other:?}"),
    }
    assert_eq!(call(&pool, "fine").await.unwrap(), "fine");
}

/// The error of a pool that cannot start its one worker with `command`.
async fn spawn_error(command: &str) -> String {
    let yaml = format!("version: '3'\nserver:\n  command: \"{command}\"\npool:\n  num_workers: 1\n  allocate_timeout: 5s\n");
    let config = Config::from_str(&yaml).unwrap();
    let services = rr_runtime::host::services(&Build::new("rr", "test"), &config).unwrap();
    let err = services.new_pool("test", "test", config.section("pool").unwrap().unwrap()).await.err().expect("spawn fails");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_script_names_the_file_and_the_directory() {
    let text = spawn_error("php /nonexistent/worker.php").await;
    assert!(text.contains("PHP cannot open the worker script `/nonexistent/worker.php`"), "{text}");
    assert!(text.contains("fix the script path in `server.command`"), "{text}");
    assert!(!text.contains("allocate-timeout"), "the link is for allocate timeouts only: {text}");

    let cwd = std::env::current_dir().unwrap();
    let text = spawn_error("php no-such-worker.php").await;
    assert!(text.contains(&format!("there is no `{}`", cwd.join("no-such-worker.php").display())), "{text}");
    assert!(text.contains(&format!("relative to `{}`", cwd.display())), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_program_names_it_and_the_path_searched() {
    let text = spawn_error("no-such-program-rr worker.php").await;
    let path = std::env::var("PATH").unwrap();
    assert!(text.contains(&format!("program `no-such-program-rr` not found in PATH ({path})")), "{text}");
    assert!(text.contains("set `server.command` to the program's full path"), "{text}");
    assert!(!text.contains("allocate-timeout"), "{text}");

    // PHP itself missing: the Debian package to install (PATH emptied for this worker only).
    let yaml = "version: '3'\nserver:\n  command: \"php worker.php\"\n  env:\n    PATH: /nonexistent-bin\npool:\n  num_workers: 1\n";
    let config = Config::from_str(yaml).unwrap();
    let services = rr_runtime::host::services(&Build::new("rr", "test"), &config).unwrap();
    let err = services.new_pool("test", "test", config.section("pool").unwrap().unwrap()).await.err().expect("spawn fails");
    let text = err.to_string();
    assert!(text.contains("program `php` not found in PATH (/nonexistent-bin)"), "{text}");
    assert!(text.contains("apt-get install php-cli"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_fatal_at_boot_shows_phps_own_lines() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fatal.php");
    std::fs::write(&script, "<?php\nfwrite(STDERR, \"booting\\n\");\nthrow new RuntimeException('no database at boot');\n").unwrap();
    let text = spawn_error(&format!("php -d display_errors=stderr {}", script.display())).await;
    let cause = text.split("exited before the pid handshake: ").nth(1).unwrap_or_else(|| panic!("{text}"));
    assert!(cause.contains("Fatal error:  Uncaught RuntimeException: no database at boot"), "{text}");
    assert!(text.contains("fix it in the worker script"), "{text}");
    assert!(text.contains("booting"), "PHP's earlier lines are shown too: {text}");
    assert!(!text.contains("allocate-timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_links_the_allocate_timeout_page() {
    let yaml = "version: '3'\nserver:\n  command: \"sleep 30\"\npool:\n  num_workers: 1\n  allocate_timeout: 300ms\n";
    let config = Config::from_str(yaml).unwrap();
    let services = rr_runtime::host::services(&Build::new("rr", "test"), &config).unwrap();
    let err = services.new_pool("test", "test", config.section("pool").unwrap().unwrap()).await.err().expect("spawn fails");
    let text = err.to_string();
    assert!(text.contains("did not complete the pid handshake within"), "{text}");
    assert!(text.contains("https://docs.roadrunner.dev/error-codes/allocate-timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_ttl_kills_the_worker() {
    let (_s, pool) = start("pipes", "  num_workers: 1\n  supervisor:\n    exec_ttl: 300ms").await;
    let before = pids(&pool);
    assert!(matches!(call(&pool, "sleep:5000").await, Err(PoolError::ExecTtl { .. })));
    assert_eq!(call(&pool, "quick").await.unwrap(), "quick");
    assert_ne!(pids(&pool), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_until_kills_a_worker_silent_at_the_deadline() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let before = pids(&pool);
    let by = tokio::time::Instant::now() + Duration::from_millis(300);
    assert!(matches!(pool.exec_until(Payload::new(0, "ctx", "sleep:60000"), by).await, Err(PoolError::ExecTtl { .. })));
    // The only worker was asleep for a minute: an answer now comes from its replacement.
    assert_eq!(call(&pool, "quick").await.unwrap(), "quick");
    assert_ne!(pids(&pool), before);
    let by = tokio::time::Instant::now() + Duration::from_secs(30);
    let reply = pool.exec_until(Payload::new(0, "ctx", "in time"), by).await.unwrap();
    assert_eq!(&reply.payload.body[..], b"in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocate_timeout_gives_no_free_workers() {
    let (_s, pool) = start("pipes", "  num_workers: 1\n  allocate_timeout: 200ms").await;
    let busy = tokio::spawn({
        let pool = pool.clone();
        async move { call(&pool, "sleep:1500").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pool.has_free_worker());
    assert!(matches!(call(&pool, "x").await, Err(PoolError::NoFreeWorkers)));
    assert_eq!(pool.no_free_workers_total(), 1);
    assert_eq!(busy.await.unwrap().unwrap(), "sleep:1500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limit_rejects_at_once() {
    let (_s, pool) = start("pipes", "  num_workers: 1\n  max_queue_size: 1").await;
    let busy = tokio::spawn({
        let pool = pool.clone();
        async move { call(&pool, "sleep:800").await }
    });
    wait_for("the first request to be queued", || pool.queue_size() == 1).await;
    assert!(matches!(call(&pool, "x").await, Err(PoolError::QueueFull)));
    assert!(busy.await.unwrap().is_ok());
    assert_eq!(pool.queue_size(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_jobs_recycles_workers() {
    let (_s, pool) = start("pipes", "  num_workers: 1\n  max_jobs: 2").await;
    let mut seen = HashSet::new();
    for _ in 0..6 {
        seen.insert(call(&pool, "pid").await.unwrap());
    }
    assert_eq!(seen.len(), 3, "each worker serves exactly 2 requests: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_mode_uses_a_fresh_worker_per_request() {
    let (_s, pool) = start("pipes", "  debug: true").await;
    assert!(pool.workers().is_empty(), "debug mode pre-allocates nothing");
    let a = call(&pool, "pid").await.unwrap();
    let b = call(&pool, "pid").await.unwrap();
    assert_ne!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_under_load_loses_no_request() {
    let (_s, pool) = start("pipes", "  num_workers: 2").await;
    let before = pids(&pool);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (pool, stop, ok) = (pool.clone(), stop.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match call(&pool, &format!("sleep:5-{i}")).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    pool.reset().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        assert_eq!(c.await.unwrap(), Vec::<String>::new());
    }
    assert!(ok.load(Ordering::Relaxed) > 10);
    let after = pids(&pool);
    assert_eq!(after.len(), 2);
    assert!(after.is_disjoint(&before), "every worker replaced: {before:?} -> {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_is_soft() {
    let (_s, pool) = start("pipes", "  num_workers: 1\n  supervisor:\n    watch_tick: 50ms\n    max_worker_memory: 40").await;
    let pid = call(&pool, "pid").await.unwrap();
    // Grow past the limit, then keep the worker busy across several ticks: it must finish.
    assert!(call(&pool, "leak:64").await.is_ok());
    assert_eq!(call(&pool, "sleep:400").await.unwrap(), "sleep:400");
    wait_for("the fat worker to be replaced", || !pids(&pool).contains(&pid.parse().unwrap())).await;
    assert_ne!(call(&pool, "pid").await.unwrap(), pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_never_interrupts_a_request() {
    let (_s, pool) = start("pipes", "  num_workers: 1\n  supervisor:\n    watch_tick: 50ms\n    ttl: 200ms").await;
    let pid = call(&pool, "pid").await.unwrap();
    assert_eq!(call(&pool, "sleep:600").await.unwrap(), "sleep:600");
    wait_for("ttl replacement", || !pids(&pool).contains(&pid.parse().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_chunks_arrive_in_order() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let reply = pool.exec(Payload::new(0, "c", "stream:7")).await.unwrap();
    assert_eq!(&reply.payload.body[..], b"chunk0");
    let mut stream = reply.stream.expect("a stream");
    let mut bodies = Vec::new();
    while let Some(chunk) = stream.next().await {
        bodies.push(String::from_utf8(chunk.unwrap().body.to_vec()).unwrap());
    }
    assert_eq!(bodies, ["chunk1", "chunk2", "chunk3", "chunk4", "chunk5", "chunk6", "end"]);
    assert_eq!(call(&pool, "after").await.unwrap(), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_stream_is_stopped_and_the_worker_returns() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let pid = call(&pool, "pid").await.unwrap();
    let reply = pool.exec(Payload::new(0, "c", "stream:500")).await.unwrap();
    let mut stream = reply.stream.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    // The worker sees STOP at its next PING cycle, ends the stream and serves the next request.
    assert_eq!(call(&pool, "pid").await.unwrap(), pid);
}

/// `ReplyStream::stop`: the worker gets STOP and its frames still come, up to its final one
/// (how a stopping server lets a stream end the worker's way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_stream_is_forwarded_to_its_final_frame() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let pid = call(&pool, "pid").await.unwrap();
    let reply = pool.exec(Payload::new(0, "c", "stream:500")).await.unwrap();
    let mut stream = reply.stream.unwrap();
    stream.next().await.unwrap().unwrap();
    stream.stop();
    stream.stop();
    let mut bodies = Vec::new();
    while let Some(chunk) = stream.next().await {
        bodies.push(String::from_utf8(chunk.unwrap().body.to_vec()).unwrap());
    }
    assert_eq!(bodies.last().map(String::as_str), Some(""), "the worker's final frame after STOP");
    assert!(bodies.len() < 499, "the worker stopped early: {} frames", bodies.len());
    assert_eq!(call(&pool, "pid").await.unwrap(), pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_that_goes_away_does_not_take_the_worker() {
    let (_s, pool) = start("pipes", "  num_workers: 1").await;
    let pid = call(&pool, "pid").await.unwrap();
    // Abandon an exec while the worker is busy with it; the exchange finishes in the background.
    assert!(tokio::time::timeout(Duration::from_millis(50), call(&pool, "sleep:300")).await.is_err());
    assert_eq!(call(&pool, "pid").await.unwrap(), pid);
    assert_eq!(pool.workers()[0].num_execs, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_echo_worker_serves_over_every_relay() {
    // Build it into this test's own target dir (a no-op when `cargo test --workspace` did).
    let profile_dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "rr-echo-worker", "--target-dir"])
        .arg(target_dir)
        .status()
        .unwrap();
    assert!(status.success(), "cannot build rr-echo-worker");
    let exe = profile_dir.join("rr-echo-worker");
    let dir = tempfile::tempdir().unwrap();
    for relay in ["pipes".to_string(), "tcp://127.0.0.1:0".into(), format!("unix://{}/echo.sock", dir.path().display())] {
        let (_s, pool) = start_with(&exe.display().to_string(), &relay, "  num_workers: 2").await;
        let reply = pool.exec(Payload::new(0x04, "c", "ping")).await.unwrap();
        assert_eq!((&reply.payload.context[..], &reply.payload.body[..], reply.payload.codec), (&b"c"[..], &b"ping"[..], 0x04), "{relay}");
        pool.destroy().await;
    }
}
