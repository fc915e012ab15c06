//! Workers that misbehave (tests/php/workers/hostile.php): exits around an answer, garbage and
//! cut frames on stdout, non-UTF-8 and huge lines on stderr. Each costs at most the request the
//! worker actually took, and what went wrong is reported in words.

use std::sync::Arc;

use rr_runtime::config::Config;
use rr_runtime::pool::{Payload, Pool, PoolConfig, PoolError};
use rr_runtime::{Build, Services};

async fn start(workers: usize) -> (Arc<Services>, Pool) {
    start_on("pipes", workers).await
}

async fn start_on(relay: &str, workers: usize) -> (Arc<Services>, Pool) {
    let command = format!("php {}/../tests/php/workers/hostile.php", env!("CARGO_MANIFEST_DIR"));
    let yaml = format!("version: '3'\nserver:\n  command: \"{command}\"\n  relay: \"{relay}\"\npool:\n  num_workers: {workers}\n");
    let config = Config::from_str(&yaml).unwrap();
    let services = rr_runtime::host::services(&Build::new("rr", "test"), &config).unwrap();
    let cfg: PoolConfig = config.section("pool").unwrap().unwrap_or_default();
    let pool = services.new_pool("test", "test", cfg).await.expect("pool starts");
    (services, pool)
}

async fn call(pool: &Pool, body: &str) -> Result<String, PoolError> {
    let reply = pool.exec(Payload::new(0, "ctx", body.to_string())).await?;
    Ok(String::from_utf8(reply.payload.body.to_vec()).unwrap())
}

/// The error text of a request that must fail with a broken worker.
async fn broken(pool: &Pool, body: &str) -> String {
    match call(pool, body).await {
        Err(PoolError::Network { message, .. }) => message,
        other => panic!("`{body}`: expected a worker failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_exiting_after_its_answer_costs_no_request_it_never_read() {
    // Every worker answers once and exits (exit() in shutdown code). Requests written to a worker
    // that is already on its way out stay unread in its pipe; they must go to another worker.
    let (_s, pool) = start(4).await;
    let calls = (0..60).map(|i| {
        let pool = pool.clone();
        tokio::spawn(async move { call(&pool, &format!("exit-after-answer:{i}")).await })
    });
    let results = futures::future::join_all(calls).await;
    let failed: Vec<_> = results.into_iter().map(|r| r.unwrap()).filter_map(Result::err).collect();
    assert!(failed.is_empty(), "{} of 60 requests failed, first: {}", failed.len(), failed[0]);
    assert_eq!(call(&pool, "still serving").await.unwrap(), "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_exiting_with_the_request_fails_that_request_only() {
    // It read the request, so it may have acted on it: not retried (no second worker dies for it).
    let (_s, pool) = start(1).await;
    let message = broken(&pool, "exit-before-answer").await;
    assert!(message.contains("exited in the middle of a request"), "{message}");
    assert_eq!(call(&pool, "next").await.unwrap(), "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_that_is_not_utf8_does_not_silence_the_worker() {
    let (_s, pool) = start(1).await;
    assert_eq!(call(&pool, "stderr-latin1").await.unwrap(), "stderr-latin1");
    let message = broken(&pool, "fatal").await;
    assert!(message.contains("caf\u{FFFD} au lait"), "{message}");
    assert!(message.contains("after the latin-1 line"), "{message}");
    assert!(message.contains("PHP Fatal error:  Uncaught Error"), "the crash explained: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_stderr_line_is_logged_in_pieces_and_logging_goes_on() {
    let (_s, pool) = start(1).await;
    assert_eq!(call(&pool, "stderr-huge:1024").await.unwrap(), "stderr-huge:1024");
    let message = broken(&pool, "fatal").await;
    assert!(message.contains("after the huge line") && message.contains("PHP Fatal error"), "{}", &message[message.len() - 300..]);
    assert!(message.len() < 64 * 1024, "the crash error quotes a bounded tail, not {} bytes", message.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_garbage_on_stdout_breaks_only_its_worker() {
    let (_s, pool) = start(1).await;
    let message = broken(&pool, "stdout-binary").await;
    assert!(message.contains("invalid frame header length 0"), "{message}");
    assert!(message.contains("invalid message: \\0\u{FFFD}\u{FFFD}\u{FFFD}garbage"), "the bytes are shown: {message}");
    assert_eq!(call(&pool, "next").await.unwrap(), "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_cut_short_is_reported_as_truncated_not_as_stdout_garbage() {
    let (_s, pool) = start(1).await;
    let message = broken(&pool, "partial-frame").await;
    assert!(message.contains("closed the connection in the middle of a frame: 60 of 116 bytes"), "{message}");
    assert!(!message.contains("STDOUT"), "{message}");
    assert_eq!(call(&pool, "next").await.unwrap(), "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_with_a_wrong_checksum_breaks_only_its_worker() {
    let (_s, pool) = start(1).await;
    let message = broken(&pool, "bad-crc").await;
    assert!(message.contains("validation failed on the message sent to STDOUT"), "{message}");
    assert_eq!(call(&pool, "next").await.unwrap(), "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_on_the_socket_relay_cannot_announce_a_huge_frame() {
    use std::io::{Read, Write};
    let (_s, pool) = start_on("tcp://127.0.0.1:0", 1).await;
    let address = call(&pool, "relay").await.unwrap();
    let mut conn = std::net::TcpStream::connect(address.strip_prefix("tcp://").unwrap()).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut pid_request = [0u8; 64];
    assert!(conn.read(&mut pid_request).unwrap() > 0, "the server asks for the pid");
    // A "pid reply" announcing 4 GB, then a stream of bytes: the server must hang up at once.
    let mut head = rr_runtime::frame::Frame::new(0x01, vec![], vec![]).to_bytes().to_vec();
    head[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = crc32fast::hash(&head[..6]);
    head[6..10].copy_from_slice(&crc.to_le_bytes());
    conn.write_all(&head).unwrap();
    let _ = conn.write_all(&vec![b'x'; 256 * 1024]);
    match conn.read(&mut pid_request) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection is still open: {other:?}"),
    }
    assert_eq!(call(&pool, "still serving").await.unwrap(), "still serving");
}
