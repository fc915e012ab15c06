//! The rpc plugin with PHP clients over TCP and unix sockets, the `rr reset` / `rr workers`
//! commands, and bad input that must not harm other connections.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rr_runtime::testing::{free_port, rr_bare, TestServer};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    dir: tempfile::TempDir,
    http: u16,
    rpc: String,
    server: TestServer,
}

async fn serve(rpc_listen: Option<String>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let rpc = rpc_listen.unwrap_or_else(|| format!("tcp://127.0.0.1:{}", free_port()));
    let http = free_port();
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: {rpc}\nserver:\n  command: \"php {}/tests/php/workers/http.php\"\nhttp:\n  address: 127.0.0.1:{http}\n  pool:\n    num_workers: 2\n",
        root().display()
    );
    std::fs::write(dir.path().join(".rr.yaml"), &yaml).unwrap();
    let build = rr_runtime::Build::new("rr", "test-version").plugin::<rr_rpc::Plugin>().plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("the http pool", || http_get(http, "/pid")).await;
    Server { dir, http, rpc, server }
}

impl Server {
    /// Stop the server; its directory (with `.rr.yaml`) stays for further checks.
    async fn shutdown(self) -> tempfile::TempDir {
        self.server.stop().await.unwrap();
        self.dir
    }
}

async fn http_get(port: u16, path: &str) -> Option<String> {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok()
}

/// Run calls through the PHP RPC client; one JSON value per call.
fn php_calls(rpc: &str, calls: Value) -> Vec<Value> {
    let out = Command::new("php").arg(root().join("tests/php/rpc_client.php")).arg(calls.to_string()).env("RR_RPC", rpc).output().unwrap();
    assert!(out.status.success(), "php failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn check_services(server: &Server) {
    let r = php_calls(
        &server.rpc,
        json!([
            ["rpc.Version", true],
            ["informer.List", true],
            ["informer.Workers", "http"],
            ["informer.Workers", "nope"],
            ["resetter.List", true],
            ["resetter.Reset", "nope"],
            ["informer.Nope", true],
            ["nope.Method", true],
            ["informer.AddWorker", "nope"],
        ]),
    );
    assert_eq!(r[0]["ok"], "test-version");
    assert_eq!(r[1]["ok"], json!(["http"]));
    let workers = r[2]["ok"]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for key in ["pid", "status", "numExecs", "created", "memoryUsage", "CPUPercent", "command", "statusStr"] {
        assert!(workers[0].get(key).is_some(), "informer.Workers lacks `{key}`: {}", workers[0]);
    }
    assert_eq!(workers[0]["statusStr"], "ready");
    assert_eq!(workers[0]["status"], 1);
    assert_eq!(r[3]["ok"], json!({"workers": null}));
    assert_eq!(r[4]["ok"], json!(["http"]));
    assert!(r[5]["error"].as_str().unwrap().contains("no such plugin: nope"), "{}", r[5]);
    assert!(r[6]["error"].as_str().unwrap().contains("rpc: can't find method informer.Nope"), "{}", r[6]);
    assert!(r[7]["error"].as_str().unwrap().contains("rpc: can't find service nope.Method"), "{}", r[7]);
    assert!(r[8]["error"].as_str().unwrap().contains("plugin nope does not support workers management"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_client_over_tcp() {
    let server = serve(None).await;
    check_services(&server).await;
    let _ = server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_client_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(Some(format!("unix://{}/rpc.sock", dir.path().display()))).await;
    check_services(&server).await;
    let _ = server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_frames_close_only_their_connection() {
    let server = serve(None).await;
    let addr = server.rpc.strip_prefix("tcp://").unwrap().to_string();
    // A healthy connection first.
    let mut good = std::net::TcpStream::connect(&addr).unwrap();
    // Garbage on another connection: the server drops it.
    let mut bad = std::net::TcpStream::connect(&addr).unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(bad.read(&mut buf).unwrap_or(0), 0, "the corrupt connection is closed");
    // A frame with one option: closed too.
    let mut one = std::net::TcpStream::connect(&addr).unwrap();
    one.write_all(&rr_runtime::frame::Frame::new(0x08, vec![1], &b"rpc.Versiontrue"[..]).to_bytes()).unwrap();
    one.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(one.read(&mut buf).unwrap_or(0), 0);
    // The first connection still works, with the protobuf codec rejected politely.
    let call = |s: &mut std::net::TcpStream, flags: u8, seq: u32| {
        s.write_all(&rr_runtime::frame::Frame::new(flags, vec![seq, 11], &b"rpc.Versiontrue"[..]).to_bytes()).unwrap();
        let mut reader = bytes::BytesMut::new();
        loop {
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).unwrap();
            reader.extend_from_slice(&chunk[..n]);
            if let Some(f) = rr_runtime::frame::decode(&mut reader).unwrap() {
                return f;
            }
        }
    };
    let reply = call(&mut good, 0x08, 41);
    assert_eq!(reply.options, vec![41, 11]);
    assert_eq!(&reply.payload[..], b"rpc.Version\"test-version\"");
    let reply = call(&mut good, 0x80, 42);
    assert!(reply.is(rr_runtime::frame::ERROR));
    assert_eq!(reply.flags, 0x80 | 0x40);
    let _ = server.shutdown().await;
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rr_reset_under_load_and_rr_workers() {
    let rr = rr_bare();
    let server = serve(None).await;
    let config = server.dir.path().join(".rr.yaml");

    let out = Command::new(&rr).args(["workers", "-c"]).arg(&config).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("Workers of [http]:") && table.contains("PID") && table.contains("ready"), "{table}");
    let before: Vec<String> = table.lines().skip(2).map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
    assert_eq!(before.len(), 2);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, port) = (stop.clone(), ok.clone(), failed.clone(), server.http);
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match http_get(port, "/sleep?ms=5").await {
                    Some(_) => ok.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = tokio::task::spawn_blocking({
        let (rr, config) = (rr.clone(), config.clone());
        move || Command::new(&rr).args(["reset", "-c"]).arg(&config).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "resetting plugin: [http]\nplugin reset: [http]\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed during the reset");
    assert!(ok.load(Ordering::Relaxed) > 10);

    let out = Command::new(&rr).args(["workers", "http", "-c"]).arg(&config).output().unwrap();
    let after: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().skip(2).map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|p| !before.contains(p)), "every pid replaced: {before:?} -> {after:?}");
    let _dir = server.shutdown().await;

    // Nobody listening: a clear message with the address.
    let out = Command::new(&rr).args(["reset", "-c"]).arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cannot connect to the RPC server at `tcp://127.0.0.1:"), "{err}");
}
