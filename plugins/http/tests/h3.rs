//! HTTP/3 (`http.http3`) against real PHP workers (tests/php/workers/http.php), with a quinn + h3
//! client: the same request path to PHP as HTTP/1 and 2, and `Alt-Svc` on the TCP listeners.

#[path = "support/h3_client.rs"]
mod h3_client;
#[path = "support/logs.rs"]
mod logs;

use std::time::Duration;

use bytes::Bytes;
use h3_client::H3Client;
use rr_runtime::config::Config;
use rr_runtime::host::Host;
use rr_runtime::testing::{free_port, TestServer};
use serde_json::Value;

/// A self-signed certificate for `localhost` in a temporary directory.
struct Cert {
    dir: tempfile::TempDir,
    pem: String,
}

impl Cert {
    fn new() -> Cert {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        Cert { dir, pem: cert.cert.pem() }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A loopback UDP port that was free a moment ago ([`free_port`] checks TCP only, so two tests
/// could get the same number for their QUIC endpoints).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).unwrap()
}

struct Server {
    server: TestServer,
    /// The plain HTTP/1.1 listener.
    plain: u16,
    h3: u16,
    cert: Cert,
}

fn build() -> rr_runtime::Build {
    rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_headers::Plugin>().plugin::<rr_gzip::Plugin>().plugin::<rr_http::Plugin>()
}

/// A host with a plain listener and HTTP/3; `extra` is YAML under `http:`, where `CERTS` stands
/// for the certificate's directory.
async fn serve(extra: &str) -> Server {
    serve_with(extra, "").await
}

/// [`serve`] with `root` YAML beside the `http` section.
async fn serve_with(extra: &str, root: &str) -> Server {
    let cert = Cert::new();
    let (plain, h3) = (free_port(), free_udp_port());
    let yaml = format!(
        "version: '3'\n{root}server:\n  command: \"php {}/../../tests/php/workers/http.php\"\nhttp:\n  address: 127.0.0.1:{plain}\n  http3:\n    address: 127.0.0.1:{h3}\n    cert: {}\n    key: {}\n{extra}\n",
        env!("CARGO_MANIFEST_DIR"),
        cert.path("cert.pem"),
        cert.path("key.pem"),
    )
    .replace("CERTS", &cert.dir.path().display().to_string());
    let mut server = TestServer::start(&build(), &yaml);
    // The QUIC endpoint is bound before the TCP listeners.
    server.until("the http listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", plain)).await.ok() }).await;
    Server { server, plain, h3, cert }
}

impl Server {
    async fn client(&self) -> H3Client {
        H3Client::connect(self.h3, &self.cert.pem).await.unwrap()
    }
}

async fn post(client: &H3Client, path: &str, content_type: &str, body: impl Into<Bytes>) -> (http::StatusCode, Bytes) {
    let req = http::Request::post(client.uri(path)).header("content-type", content_type).body(()).unwrap();
    let reply = client.send(req, body.into()).await.unwrap();
    let status = reply.head.status();
    (status, reply.body().await.unwrap())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_post_reach_php_as_http3() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let c = server.client().await;
    let reply = c.send(http::Request::get(c.uri("/")).body(()).unwrap(), Bytes::new()).await.unwrap();
    assert_eq!(reply.head.status(), 200);
    assert_eq!(reply.head.version(), http::Version::HTTP_3);
    assert_eq!(reply.head.headers()["content-length"], "13");
    assert_eq!(reply.body().await.unwrap(), "Hello, World!");

    let (status, body) = c.get("/echo?a=1").await.unwrap();
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["protocol"], "HTTP/3.0");
    assert_eq!(v["uri"], format!("https://localhost:{}/echo?a=1", server.h3));
    assert_eq!(v["rawQuery"], "a=1");
    assert_eq!(v["remoteAddr"], "127.0.0.1");

    let (status, body) = post(&c, "/echo", "application/octet-stream", "raw bytes from quic").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["body"], "raw bytes from quic");
    let (_, body) = post(&c, "/echo", "application/x-www-form-urlencoded", "a[b][]=1&a[b][]=2").await;
    let v = json(&body);
    assert_eq!(v["parsed"], true);
    assert_eq!(serde_json::from_str::<Value>(v["body"].as_str().unwrap()).unwrap(), serde_json::json!({"a": {"b": ["1", "2"]}}));
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_over_http3() {
    let uploads = tempfile::tempdir().unwrap();
    let server = serve(&format!("  uploads:\n    dir: {}\n  pool:\n    num_workers: 1", uploads.path().display())).await;
    let c = server.client().await;
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nholiday\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"beach.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nJPEGDATA\r\n\
                --XyZ--\r\n";
    let (status, body) = post(&c, "/echo", "multipart/form-data; boundary=XyZ", body).await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(serde_json::from_str::<Value>(v["body"].as_str().unwrap()).unwrap(), serde_json::json!({"title": "holiday"}));
    let photo = &v["uploads"]["photo"];
    assert_eq!((photo["name"].as_str(), photo["mime"].as_str(), photo["size"].as_u64()), (Some("beach.jpg"), Some("image/jpeg"), Some(8)));
    assert_eq!(photo["tmpName"]["content"], "JPEGDATA");
    assert_eq!(std::fs::read_dir(uploads.path()).unwrap().count(), 0, "temp files removed after the response");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_both_ways_and_the_size_limit() {
    let server = serve("  max_request_size: 1\n  pool:\n    num_workers: 1").await;
    let c = server.client().await;
    // 900 KiB up, echoed back inside JSON.
    let big = "q".repeat(900 * 1024);
    let (status, body) = post(&c, "/echo", "text/plain", big.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["body"].as_str().map(str::len), Some(big.len()));
    // Over max_request_size: 413, and the connection serves on.
    let (status, _) = post(&c, "/echo", "text/plain", vec![b'x'; 2 * 1024 * 1024]).await;
    assert_eq!(status, 413);
    let (status, body) = c.get("/").await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"Hello, World!"[..]));
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_arrives_chunk_by_chunk() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let c = server.client().await;
    let mut reply = c.send(http::Request::get(c.uri("/stream?n=4&ms=50")).body(()).unwrap(), Bytes::new()).await.unwrap();
    assert_eq!(reply.head.status(), 200);
    let (mut text, mut chunks) = (String::new(), 0);
    while let Some(chunk) = reply.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        chunks += 1;
    }
    assert_eq!(text, "chunk0\nchunk1\nchunk2\nchunk3\ndone\n");
    assert!(chunks >= 2, "the body arrived in {chunks} piece(s)");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_one_connection_and_errors() {
    let server = serve("  internal_error_code: 502\n  pool:\n    num_workers: 2").await;
    let c = server.client().await;
    let requests = (0..40).map(|i| {
        let c = c.clone();
        async move { c.get(&format!("/echo?i={i}")).await.unwrap() }
    });
    for (i, (status, body)) in futures::future::join_all(requests).await.into_iter().enumerate() {
        assert_eq!(status, 200);
        assert_eq!(json(&body)["rawQuery"], format!("i={i}"));
    }
    assert_eq!(c.get("/error").await.unwrap().0, 502, "a worker error gives internal_error_code");
    assert_eq!(c.get("/crash").await.unwrap().0, 502);
    assert_eq!(c.get("/status?code=404").await.unwrap().0, 404);
    assert_eq!(c.get("/").await.unwrap().0, 200);
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_applies_to_http3() {
    let server = serve("  middleware: [headers, gzip]\n  headers:\n    response:\n      X-Powered-By: rr-rs\n  pool:\n    num_workers: 1").await;
    let c = server.client().await;
    let req = http::Request::get(c.uri("/big")).header("accept-encoding", "gzip").body(()).unwrap();
    let reply = c.send(req, Bytes::new()).await.unwrap();
    assert_eq!(reply.head.headers()["x-powered-by"], "rr-rs");
    assert_eq!(reply.head.headers()["content-encoding"], "gzip");
    let zipped = reply.body().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut text).unwrap();
    assert_eq!(text, "compressible text ".repeat(1000));
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listeners_advertise_http3_with_alt_svc() {
    let tls = free_port();
    let server = serve(&format!("  ssl:\n    address: 127.0.0.1:{tls}\n    cert: CERTS/cert.pem\n    key: CERTS/key.pem\n  pool:\n    num_workers: 1")).await;
    let expected = format!("h3=\":{}\"; ma=2592000", server.h3);
    let plain = reqwest::get(format!("http://127.0.0.1:{}/", server.plain)).await.unwrap();
    assert_eq!(plain.version(), reqwest::Version::HTTP_11);
    assert_eq!(plain.headers()["alt-svc"], expected.as_str());
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.cert.pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], tls).into())
        .build()
        .unwrap();
    let h2 = https.get(format!("https://localhost:{tls}/")).send().await.unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.headers()["alt-svc"], expected.as_str());
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_answers_requests_in_flight_then_closes() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let c = server.client().await;
    let slow = tokio::spawn({
        let c = c.clone();
        async move { c.get("/sleep?ms=1500").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = tokio::spawn(server.server.stop());
    let (status, body) = slow.await.unwrap().expect("the request in flight is answered");
    assert_eq!((status.as_u16(), &body[..]), (200, &b"slept"[..]));
    stopped.await.unwrap().unwrap();
    // Nothing listens any more: a new connection is not answered.
    let again = tokio::time::timeout(Duration::from_secs(3), H3Client::connect(server.h3, &server.cert.pem)).await;
    assert!(!matches!(again, Ok(Ok(_))), "the endpoint still accepts connections after stop");
}

#[test]
fn bad_http3_config_is_one_clear_error() {
    let cert = Cert::new();
    let other = Cert::new();
    let err = |http3: &str| {
        let yaml = format!("version: '3'\nhttp:\n  address: 127.0.0.1:0\n  http3:\n{http3}\n");
        Host::init(&build(), &Config::from_str(&yaml).unwrap()).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let missing = err("    address: 127.0.0.1:0");
    assert!(missing.contains("`http.http3.cert` is missing"), "{missing}");
    let unreadable = err(&format!("    address: 127.0.0.1:0\n    cert: /nope.pem\n    key: {}", cert.path("key.pem")));
    assert!(unreadable.contains("config key `http.http3.cert`: cannot read `/nope.pem`"), "{unreadable}");
    let not_pem = err(&format!("    address: 127.0.0.1:0\n    cert: {}\n    key: {}", cert.path("key.pem"), cert.path("key.pem")));
    assert!(not_pem.contains("config key `http.http3.cert`: no certificate found"), "{not_pem}");
    let not_its_key = err(&format!("    address: 127.0.0.1:0\n    cert: {}\n    key: {}", cert.path("cert.pem"), other.path("key.pem")));
    assert!(not_its_key.contains("`http.http3.key` is not the private key of the certificate in `http.http3.cert`"), "{not_its_key}");
    let no_address = err(&format!("    cert: {}\n    key: {}", cert.path("cert.pem"), cert.path("key.pem")));
    assert!(no_address.contains("`http.http3`: missing field `address`"), "{no_address}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_names_the_key() {
    let cert = Cert::new();
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let yaml = format!(
        "version: '3'\nserver:\n  command: \"php {}/../../tests/php/workers/http.php\"\nhttp:\n  http3:\n    address: 127.0.0.1:{port}\n    cert: {}\n    key: {}\n",
        env!("CARGO_MANIFEST_DIR"),
        cert.path("cert.pem"),
        cert.path("key.pem")
    );
    let server = TestServer::start(&build(), &yaml);
    let err = tokio::time::timeout(Duration::from_secs(20), server.stop()).await.unwrap().unwrap_err().to_string();
    assert!(err.contains(&format!("config key `http.http3.address`: cannot listen on `127.0.0.1:{port}`")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_stream_frees_the_worker() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let c = server.client().await;
    let (_, pid) = c.get("/pid").await.unwrap();
    let mut reply = c.send(http::Request::get(c.uri("/stream?n=400&ms=10")).body(()).unwrap(), Bytes::new()).await.unwrap();
    reply.chunk().await.unwrap().expect("a first chunk");
    drop(reply);
    // The stream's STOP reaches the worker; it ends the stream (4 s if it went on) and serves again.
    let (_, again) = tokio::time::timeout(Duration::from_secs(2), c.get("/pid")).await.expect("the worker is free again").unwrap();
    assert_eq!(again, pid, "the same worker serves the next request");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_replaces_the_workers_behind_an_open_connection() {
    let rpc = free_port();
    let mut server = serve_with("  pool:\n    num_workers: 1", &format!("rpc:\n  listen: tcp://127.0.0.1:{rpc}\n")).await;
    let c = server.client().await;
    let (_, before) = c.get("/pid").await.unwrap();
    let reset: bool = server.server.rpc(&format!("127.0.0.1:{rpc}")).await.call_json("resetter.Reset", &"http").await.unwrap();
    assert!(reset);
    let (status, after) = c.get("/pid").await.unwrap();
    assert_eq!(status, 200, "the same QUIC connection is served by the new worker");
    assert_ne!(before, after, "a new worker process");
    server.server.stop().await.unwrap();
}

/// Panics on other threads than the calling test's (the server's tasks), from now on.
fn panics_elsewhere() -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (mine, record) = (std::thread::current().name().map(str::to_string), seen.clone());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name().map(str::to_string) != mine {
            record.lock().unwrap().push(info.to_string());
        }
        previous(info);
    }));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_every_time_without_a_panic() {
    let panics = panics_elsewhere();
    let server = serve("  max_request_size: 1\n  pool:\n    num_workers: 1").await;
    let c = server.client().await;
    let big = Bytes::from(vec![b'x'; 2 * 1024 * 1024]);
    let mut statuses = Vec::new();
    for i in 0..20 {
        let mut req = http::Request::post(c.uri("/echo")).header("content-type", "text/plain");
        // Refused by its declared length, or while it is read.
        if i % 4 == 0 {
            req = req.header("content-length", big.len());
        }
        // In small DATA frames (as browsers and curl send), so a read often ends inside a
        // frame: h3 then returns buffered data while the next read is still pending.
        let size = [2 * 1024 * 1024, 16 * 1024, 1000, 4096][i % 4];
        let frames: Vec<Bytes> = (0..big.len()).step_by(size).map(|at| big.slice(at..(at + size).min(big.len()))).collect();
        let reply = c.send_frames(req.body(()).unwrap(), frames).await;
        statuses.push(reply.map(|r| r.head.status().as_u16()).map_err(|e| e.to_string()));
    }
    assert!(statuses.iter().all(|s| s == &Ok(413)), "{statuses:?}");
    let (status, body) = c.get("/").await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"Hello, World!"[..]), "the connection serves on");
    server.server.stop().await.unwrap();
    assert_eq!(*panics.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_record_has_the_peers_port() {
    logs::capture("  mode: production\n  level: info");
    let server = serve("").await;
    let client = server.client().await;
    let (status, _) = client.get("/echo?record=h3").await.unwrap();
    assert_eq!(status, 200);
    let line = logs::wait_for(&["\"URI\":\"/echo?record=h3\"", "\"msg\":\"http log\""]).await.remove(0);
    let v: Value = serde_json::from_str(&line).unwrap();
    // Go's RemoteAddr: host:port, the port of the client's QUIC endpoint.
    assert_eq!(v["remote_address"], client.local_addr().to_string(), "{line}");
    server.server.stop().await.unwrap();
}
