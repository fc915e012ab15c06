//! Hostile goridge RPC clients: frames announcing huge payloads, frames cut short, broken headers.
//! Each closes only its own connection, promptly, with a log line that says what was wrong.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use rr_runtime::frame::{self, Frame};
use rr_runtime::rpc::Codec;
use rr_runtime::testing::{TestServer, free_port};

/// The log file every server in this test binary writes to (the subscriber is process-wide).
fn log_file() -> &'static PathBuf {
    static LOG: OnceLock<PathBuf> = OnceLock::new();
    LOG.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("hostile_rpc-{}.log", std::process::id()));
        let yaml = format!("version: '3'\nlogs:\n  mode: development\n  level: warn\n  output: {}\n", path.display());
        rr_runtime::logging::init(&rr_runtime::config::Config::from_str(&yaml).unwrap()).unwrap();
        path
    })
}

async fn serve(max_request_size_mb: u64) -> (TestServer, String) {
    log_file();
    let address = format!("127.0.0.1:{}", free_port());
    let yaml = format!("version: '3'\nrpc:\n  listen: tcp://{address}\n  max_request_size: {max_request_size_mb}\n");
    let mut server = TestServer::start(&rr_runtime::Build::new("rr", "test-version").plugin::<rr_rpc::Plugin>(), &yaml);
    server.rpc(&format!("tcp://{address}")).await;
    (server, address)
}

/// Wait (bounded) for the server to close `conn`; fails if it keeps it open.
fn assert_closed(conn: &mut TcpStream, what: &str) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    match conn.read(&mut buf) {
        Ok(0) => {}
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {}
        Ok(n) => panic!("{what}: the server answered {n} bytes instead of closing"),
        Err(e) => panic!("{what}: the connection is still open ({e})"),
    }
}

/// Wait (bounded) for a log line containing `text`; returns that line.
async fn logged(text: &str) -> String {
    for _ in 0..500 {
        let log = std::fs::read_to_string(log_file()).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains(text)) {
            return line.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no log line contains {text:?}");
}

async fn version(address: &str) -> String {
    let mut client = rr_runtime::rpc::client::RpcClient::connect(&format!("tcp://{address}")).await.unwrap();
    let reply = client.call("rpc.Version", Codec::Json, b"true").await.unwrap();
    String::from_utf8(reply.to_vec()).unwrap()
}

/// A request frame header (with its two options) announcing `payload_len` bytes.
fn header(payload_len: u32) -> Vec<u8> {
    let mut bytes = Frame::new(frame::CODEC_JSON, vec![1, 11], &b"rpc.Version"[..]).to_bytes()[..frame::HEADER_LEN + 8].to_vec();
    bytes[2..6].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..6]);
    bytes[6..10].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_declared_length_closes_the_connection_before_the_payload_is_buffered() {
    let (server, address) = serve(1).await;
    let mut conn = TcpStream::connect(&address).unwrap();
    conn.write_all(&header(u32::MAX)).unwrap();
    // Stream part of the announced 4 GB; the server must not wait for (or keep) the rest.
    let _ = conn.write_all(&vec![b' '; 256 * 1024]);
    assert_closed(&mut conn, "4 GB announced");
    let line = logged("over rpc.max_request_size (1 MB)").await;
    assert!(line.contains("announces 4294967295 bytes"), "{line}");
    assert_eq!(version(&address).await, "\"test-version\"", "other connections are served");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_exactly_max_request_size_is_served() {
    let (server, address) = serve(1).await;
    let mut conn = TcpStream::connect(&address).unwrap();
    // `rpc.Version` + `true` padded with JSON whitespace to exactly 1 MB of payload.
    let mut payload = b"rpc.Versiontrue".to_vec();
    payload.resize(1 << 20, b' ');
    conn.write_all(&Frame::new(frame::CODEC_JSON, vec![7, 11], payload).to_bytes()).unwrap();
    let mut reply = bytes::BytesMut::new();
    let mut chunk = [0u8; 4096];
    let frame = loop {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "the server closed a connection whose request was within the limit");
        reply.extend_from_slice(&chunk[..n]);
        if let Some(f) = frame::decode(&mut reply).unwrap() {
            break f;
        }
    };
    assert_eq!((frame.options.clone(), &frame.payload[..]), (vec![7, 11], &b"rpc.Version\"test-version\""[..]));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_is_logged_as_truncated() {
    let (server, address) = serve(100).await;
    let mut conn = TcpStream::connect(&address).unwrap();
    let request = Frame::new(frame::CODEC_JSON, vec![3, 11], &b"rpc.Versiontrue"[..]).to_bytes();
    conn.write_all(&request[..30]).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut conn, "a truncated frame");
    let line = logged("in the middle of a frame: 30 of 35 bytes").await;
    assert!(!line.contains("STDOUT"), "{line}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_headers_and_garbage_close_only_their_connection() {
    let (server, address) = serve(100).await;
    let mut bad_crc = header(15);
    bad_crc[6] ^= 0xFF;
    let mut bad_length = header(15);
    bad_length[0] = 0x12;
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    for (what, bytes) in [("a wrong CRC", bad_crc), ("a header length of 2 words", bad_length), ("binary garbage", binary)] {
        let mut conn = TcpStream::connect(&address).unwrap();
        conn.write_all(&bytes).unwrap();
        assert_closed(&mut conn, what);
    }
    logged("validation failed on the message sent to STDOUT").await;
    logged("invalid frame header length 2").await;
    assert_eq!(version(&address).await, "\"test-version\"");
    server.stop().await.unwrap();
}

#[test]
fn an_out_of_range_max_request_size_is_refused_with_the_key_and_the_range() {
    let yaml = "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:0\n  max_request_size: 5000\n";
    let build = rr_runtime::Build::new("rr", "test-version").plugin::<rr_rpc::Plugin>();
    let err = rr_runtime::host::Host::init(&build, &rr_runtime::config::Config::from_str(yaml).unwrap()).err().expect("init fails");
    let text = format!("{err:#}");
    assert!(text.contains("config key `rpc.max_request_size`: 5000 MB is out of range; use 1 to 4095"), "{text}");
}
