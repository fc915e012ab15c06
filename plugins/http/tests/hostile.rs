//! Hostile input against the http plugin and real PHP workers (tests/php/workers/http.php), sent
//! as an attacker would, over raw sockets: bytes that are not UTF-8, bad `Host` values, broken
//! bodies, oversized heads and bodies, a worker that lies about its `Content-Length`, and static
//! paths and ranges. Each test ends by checking that no worker died. The process logs as
//! `logs.mode: production` does (zap's JSON), read back to check the request records.

#[path = "support/logs.rs"]
mod logs;

use std::time::Duration;

use rr_runtime::testing::{free_port, TestServer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    port: u16,
    server: TestServer,
}

fn worker() -> String {
    format!("php {}/../../tests/php/workers/http.php", env!("CARGO_MANIFEST_DIR"))
}

/// A host with the http plugin (and static); `http_extra` is YAML under `http:`, one worker
/// unless it has its own `pool`.
async fn serve(http_extra: &str) -> Server {
    let port = free_port();
    let pool = if http_extra.contains("  pool:") { "" } else { "  pool:\n    num_workers: 1\n" };
    let yaml = format!("version: '3'\nserver:\n  command: \"{}\"\nhttp:\n  address: 127.0.0.1:{port}\n{pool}{http_extra}\n", worker());
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_static::Plugin>().plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("the http listener", || async { TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    Server { port, server }
}

impl Server {
    /// Send raw bytes, read until the server closes the connection.
    async fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut conn = self.connect().await;
        conn.write_all(request).await.unwrap();
        read_to_close(&mut conn).await
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }

    /// The worker's pid: unchanged across a test, no worker died.
    async fn pid(&self) -> String {
        body(&self.raw(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await).to_string()
    }

    async fn echo(&self, request: &[u8]) -> Value {
        let resp = self.raw(request).await;
        assert!(resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.0 200"), "{}", String::from_utf8_lossy(&resp));
        serde_json::from_str(body(&resp)).unwrap()
    }
}

async fn read_to_close(conn: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut out)).await.expect("the server closes the connection").unwrap();
    out
}

/// Read until `needle` arrives (or the connection closes).
async fn read_until(conn: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(needle.len()).any(|w| w == needle) {
        let n = tokio::time::timeout(Duration::from_secs(20), conn.read(&mut buf)).await.expect("the server answers").unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn body(resp: &[u8]) -> &str {
    let text = std::str::from_utf8(resp).unwrap();
    text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

fn status(resp: &[u8]) -> &str {
    std::str::from_utf8(&resp[..resp.len().min(12)]).unwrap_or("?")
}

/// Item 1: a header value or cookie that is not UTF-8 once killed the worker (PHP's protobuf
/// runtime throws on such a `string`). It reaches PHP as ISO-8859-1 text, in both codecs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_utf8_reach_php_as_latin1_text() {
    for codec in ["proto", "json"] {
        let server = serve(&format!("  codec: {codec}\n  http2:\n    h2c: true")).await;
        let pid = server.pid().await;
        let v = server
            .echo(b"GET /echo HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xe9\r\nX-Mixed: \xc3\xa9t\xe9\r\nCookie: escaped=%A7; raw=\xff; ok=%C3%A9\r\nConnection: close\r\n\r\n")
            .await;
        assert_eq!(v["mode"], codec);
        assert_eq!(v["headers"]["User-Agent"], serde_json::json!(["café"]), "{codec}");
        assert_eq!(v["headers"]["X-Mixed"], serde_json::json!(["Ã©té"]), "{codec}: not UTF-8 as a whole: every byte is Latin-1");
        assert_eq!(v["cookies"]["escaped"], "§", "{codec}");
        assert_eq!(v["cookies"]["raw"], "ÿ", "{codec}");
        assert_eq!(v["cookies"]["ok"], "é", "{codec}: UTF-8 stays UTF-8");
        // An uploaded file's name and a field's value in Latin-1 are served; the value's bytes
        // are replaced as Go's JSON encoder does (body text, not header text).
        let part = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"caf\xe9.txt\"\r\n\r\ndata\r\n--b\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nd\xe9j\xe0\r\n--b--\r\n";
        let mut upload = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", part.len()).into_bytes();
        upload.extend_from_slice(part);
        let v = server.echo(&upload).await;
        let form: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
        assert_eq!(form["t"], "d\u{fffd}j\u{fffd}", "{codec}");
        // The same over HTTP/2 (h2c).
        let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
        let resp = h2
            .get(format!("http://127.0.0.1:{}/echo", server.port))
            .header("user-agent", reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["headers"]["User-Agent"], serde_json::json!(["café"]), "{codec} over HTTP/2");
        assert_eq!(server.pid().await, pid, "{codec}: no worker died");
        server.server.stop().await.unwrap();
    }
}

/// Item 2: `Host` is checked before anything reads it (RFC 9112 §3.2): PHP builds its URI from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_host_headers_are_400() {
    let server = serve("").await;
    let pid = server.pid().await;
    let refused: [(&[u8], &str); 7] = [
        (b"GET /public HTTP/1.1\r\nHost: x/admin\r\n\r\n", "malformed Host header"),
        (b"GET / HTTP/1.1\r\nHost: x:abc\r\n\r\n", "malformed Host header"),
        (b"GET / HTTP/1.1\r\nHost: x:99999\r\n\r\n", "malformed Host header"),
        (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", "malformed Host header"),
        (b"GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n", "malformed Host header"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "too many Host headers"),
        (b"GET / HTTP/1.1\r\n\r\n", "missing required Host header"),
    ];
    for (request, problem) in refused {
        let resp = server.raw(request).await;
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 400"), "{:?}: {text}", String::from_utf8_lossy(request));
        assert!(text.ends_with(&format!("400 Bad Request: {problem}")), "{text}");
    }
    // An absolute-form target's authority stands for Host, and is checked as well.
    let resp = server.raw(b"GET http://x:abc/ HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status(&resp), "HTTP/1.1 400", "{}", String::from_utf8_lossy(&resp));
    // Valid ones build the URI PHP sees; HTTP/1.0 may leave `Host` out.
    let v = server.echo(b"GET /echo?a=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n").await;
    assert_eq!(v["uri"], "http://example.com:8080/echo?a=1");
    let v = server.echo(b"GET /echo HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n").await;
    assert_eq!(v["uri"], "http://[::1]:80/echo");
    let v = server.echo(b"GET /echo HTTP/1.0\r\n\r\n").await;
    assert_eq!(v["uri"], "http://localhost/echo");
    assert_eq!(server.pid().await, pid, "no worker died");
    server.server.stop().await.unwrap();
}

/// Item 3: a worker's `Content-Length` decides how many body bytes the client gets; a longer body
/// cannot smuggle a second response onto a kept-alive connection, a shorter one closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_content_length_never_desyncs_the_connection() {
    let server = serve("").await;
    let pid = server.pid().await;
    let smuggled = "HTTP/1.1%20200%20OK%0D%0AContent-Length:%204%0D%0A%0D%0AEVIL";
    for route in ["wrong-length", "wrong-length-stream"] {
        // Longer than declared: cut at the declared length; the next response follows at once.
        let resp = server
            .raw(format!("GET /{route}?declared=5&body=Hello{smuggled} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
        let text = String::from_utf8_lossy(&resp);
        assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{route}: exactly two responses: {text}");
        assert!(!text.contains("EVIL"), "{route}: {text}");
        let (first, second) = text.split_at(text.rfind("HTTP/1.1 200").unwrap());
        assert!(first.ends_with("\r\n\r\nHello"), "{route}: {first}");
        assert!(second.ends_with("Hello, World!"), "{route}: {second}");
        // Shorter than declared: the connection closes after what there is; the pipelined
        // request is never answered on it (its response would be read as the rest of the body).
        let resp = server
            .raw(format!("GET /{route}?declared=50&body=short HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
        let text = String::from_utf8_lossy(&resp);
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "{route}: {text}");
        assert!(text.contains("Content-Length: 50\r\n") || text.contains("content-length: 50\r\n"), "{route}: {text}");
        assert!(text.ends_with("short"), "{route}: {text}");
    }
    assert_eq!(server.pid().await, pid, "no worker died");
    server.server.stop().await.unwrap();
}

/// Item 4: a body the client broke is its error (400), and the server's text stays out of the
/// response unless `pool.debug` is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_bodies_are_400_without_internal_text() {
    let server = serve("").await;
    let pid = server.pid().await;
    let broken: [&[u8]; 3] = [
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 11\r\nConnection: close\r\n\r\n--b\r\nbroken",
    ];
    for request in broken {
        let resp = server.raw(request).await;
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 400"), "{:?}: {text}", String::from_utf8_lossy(request));
        assert_eq!(body(&resp), "", "no internal text without pool.debug: {text}");
    }
    assert_eq!(server.pid().await, pid, "no worker died");
    server.server.stop().await.unwrap();
    let server = serve("  pool:\n    num_workers: 1\n    debug: true").await;
    let resp = server.raw(broken[1]).await;
    assert!(resp.starts_with(b"HTTP/1.1 400") && body(&resp).starts_with("multipart: "), "{}", String::from_utf8_lossy(&resp));
    server.server.stop().await.unwrap();
}

/// Item 9: a body over `max_request_size` is refused by its declared length before it is read
/// (and `Expect: 100-continue` gets no 100); a chunked one as soon as it passes the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let server = serve("  max_request_size: 1").await;
    let pid = server.pid().await;
    let two_mb = 2 * 1024 * 1024;
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut conn = server.connect().await;
        // The head only: the body is never sent, the answer comes anyway.
        conn.write_all(format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {two_mb}\r\n{expect}\r\n").as_bytes()).await.unwrap();
        let resp = read_until(&mut conn, b"\r\n\r\n").await;
        assert_eq!(status(&resp), "HTTP/1.1 413", "{expect:?}: {}", String::from_utf8_lossy(&resp));
    }
    // Chunked and never finished: 413 once past the limit.
    let mut conn = server.connect().await;
    conn.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    for _ in 0..(1024 * 1024 / (64 * 1024) + 1) {
        conn.write_all(chunk.as_bytes()).await.unwrap();
    }
    let resp = read_until(&mut conn, b"\r\n\r\n").await;
    assert_eq!(status(&resp), "HTTP/1.1 413", "{}", String::from_utf8_lossy(&resp));
    // A client that sends its whole body before it reads still gets the 413: the server does not
    // close on unread bytes (the kernel's RST would destroy the response) but lingers, as Go does.
    let mut conn = server.connect().await;
    let eight_mb = 8 * 1024 * 1024;
    conn.write_all(format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {eight_mb}\r\n\r\n").as_bytes()).await.unwrap();
    let sent = conn.write_all(&vec![b'x'; eight_mb]).await;
    let resp = read_until(&mut conn, b"\r\n\r\n").await;
    assert_eq!(status(&resp), "HTTP/1.1 413", "body sent: {sent:?}; read: {}", String::from_utf8_lossy(&resp));
    assert!(sent.is_ok(), "the body could be sent: {sent:?}");
    // At the limit: served.
    let exact = vec![b'y'; 1024 * 1024];
    let mut request = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", exact.len()).into_bytes();
    request.extend_from_slice(&exact);
    assert_eq!(server.echo(&request).await["body"].as_str().unwrap().len(), exact.len());
    assert_eq!(server.pid().await, pid, "no worker died");
    server.server.stop().await.unwrap();
}

/// Item 9: the request head may be as large as Go's default (1 MB), `max_header_bytes` and
/// `max_headers` set the limits, and past them the answer is 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_limits_are_settings_with_go_defaults() {
    let request = |fields: usize, each: usize| {
        let mut r = String::from("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for i in 0..fields {
            r.push_str(&format!("X-H{i}: {}\r\n", "v".repeat(each)));
        }
        r + "\r\n"
    };
    let server = serve("  http2:\n    h2c: true").await;
    let v = server.echo(request(1, 900 * 1024).as_bytes()).await;
    assert_eq!(v["headers"]["X-H0"][0].as_str().unwrap().len(), 900 * 1024, "900 KB of headers pass by default");
    assert_eq!(status(&server.raw(request(1, 1100 * 1024).as_bytes()).await), "HTTP/1.1 431");
    assert_eq!(status(&server.raw(request(150, 10).as_bytes()).await), "HTTP/1.1 431", "more than 100 fields by default");
    // HTTP/2 allows as much (hyper's own default is 16 KB).
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = h2.get(format!("http://127.0.0.1:{}/echo", server.port)).header("x-big", "v".repeat(100 * 1024)).send().await.unwrap();
    assert_eq!((resp.version(), resp.status()), (reqwest::Version::HTTP_2, reqwest::StatusCode::OK));
    server.server.stop().await.unwrap();
    let server = serve("  max_header_bytes: 16384\n  max_headers: 300").await;
    let v = server.echo(request(250, 10).as_bytes()).await;
    assert_eq!(v["headers"]["X-H249"][0], "vvvvvvvvvv");
    assert_eq!(status(&server.raw(request(1, 20 * 1024).as_bytes()).await), "HTTP/1.1 431");
    server.server.stop().await.unwrap();
}

/// Item 8: static files as Go's `ServeContent` serves them (ranges, conditional GETs), and paths
/// that try to leave `http.static.dir` never reach a file outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_ranges_conditionals_and_traversal() {
    let public = tempfile::tempdir().unwrap();
    std::fs::write(public.path().join("data.txt"), "0123456789").unwrap();
    let server = serve(&format!("  middleware: [static]\n  static:\n    dir: {}", public.path().display())).await;
    let pid = server.pid().await;
    let get = |headers: &str| format!("GET /data.txt HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    let whole = server.raw(get("").as_bytes()).await;
    let text = String::from_utf8_lossy(&whole).to_lowercase();
    assert!(text.starts_with("http/1.1 200") && text.contains("accept-ranges: bytes\r\n"), "{text}");
    let at = text.find("last-modified: ").expect("Last-Modified") + "last-modified: ".len();
    let original = String::from_utf8_lossy(&whole);
    let last_modified = original[at..].split("\r\n").next().unwrap().to_string();
    let one = server.raw(get("Range: bytes=2-4\r\n").as_bytes()).await;
    assert_eq!(status(&one), "HTTP/1.1 206");
    assert!(String::from_utf8_lossy(&one).to_lowercase().contains("content-range: bytes 2-4/10\r\n"));
    assert_eq!(body(&one), "234");
    let several = server.raw(get("Range: bytes=0-1,8-\r\n").as_bytes()).await;
    assert_eq!(status(&several), "HTTP/1.1 206");
    assert!(String::from_utf8_lossy(&several).to_lowercase().contains("content-type: multipart/byteranges; boundary="));
    assert!(body(&several).contains("Content-Range: bytes 0-1/10\r\n\r\n01\r\n") && body(&several).contains("Content-Range: bytes 8-9/10\r\n\r\n89\r\n"));
    let unsatisfiable = server.raw(get("Range: bytes=50-60\r\n").as_bytes()).await;
    assert_eq!(status(&unsatisfiable), "HTTP/1.1 416");
    assert!(String::from_utf8_lossy(&unsatisfiable).to_lowercase().contains("content-range: bytes */10\r\n"));
    // Conditional GETs, with the date the server sent.
    assert_eq!(status(&server.raw(get(&format!("If-Modified-Since: {last_modified}\r\n")).as_bytes()).await), "HTTP/1.1 304");
    assert_eq!(status(&server.raw(get("If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n").as_bytes()).await), "HTTP/1.1 200");
    let stale = server.raw(get("Range: bytes=0-1\r\nIf-Range: Mon, 01 Jan 2001 00:00:00 GMT\r\n").as_bytes()).await;
    assert_eq!((status(&stale), body(&stale)), ("HTTP/1.1 200", "0123456789"), "a stale If-Range gets the whole file");
    // Traversal, raw and encoded: refused or handed to PHP, never a file outside `dir`.
    for path in ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc/passwd", "/data.txt/../../etc/passwd"] {
        let resp = server.raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await;
        assert!(!String::from_utf8_lossy(&resp).contains("root:"), "{path}");
    }
    assert_eq!(server.pid().await, pid, "no worker died");
    server.server.stop().await.unwrap();
}

/// Requests that are not HTTP as RFC 9112 writes it, smuggling attempts among them: hyper refuses
/// each with a 400 and closes, before any worker sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_and_cost_no_worker() {
    let server = serve("").await;
    let pid = server.pid().await;
    let malformed: [&[u8]; 9] = [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
    ];
    for request in malformed {
        let resp = server.raw(request).await;
        assert_eq!(status(&resp), "HTTP/1.1 400", "{:?}: {}", String::from_utf8_lossy(request), String::from_utf8_lossy(&resp));
    }
    // Content-Length and chunked together (the smuggling classic): the chunked body is the body
    // and the length is ignored (RFC 9112 §6.3).
    let v = server.echo(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(v["body"], "hello");
    assert_eq!(server.pid().await, pid, "no worker died");
    server.server.stop().await.unwrap();
}


/// Issue 29 item 3: each request leaves RoadRunner's record (its http plugin's log middleware,
/// RoadRunner 2025.1), here in zap's JSON: `http log`, or `http access log` with `access_logs`
/// and the request's details; `remote_address` is the client's `host:port`, `read_bytes` and
/// `write_bytes` the bodies as read and as the app sent them, `start` (Unix ns) and `elapsed` (ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_record_has_roadrunners_fields() {
    logs::capture("  mode: production\n  level: debug");
    for access in [false, true] {
        let server = serve(if access { "  access_logs: true" } else { "" }).await;
        let mut conn = server.connect().await;
        let client = conn.local_addr().unwrap();
        let target = format!("/echo?record={access}");
        let sent = "x".repeat(1234);
        let request = format!(
            "POST {target} HTTP/1.1\r\nHost: rec.test:8080\r\nUser-Agent: agent/1.0\r\nReferer: http://ref.test/a\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sent}",
            sent.len()
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let resp = read_to_close(&mut conn).await;
        assert_eq!(status(&resp), "HTTP/1.1 200");
        let line = logs::wait_for(&[&format!("\"URI\":\"{target}\"")]).await.remove(0);
        let v: Value = serde_json::from_str(&line).unwrap();
        let msg = if access { "http access log" } else { "http log" };
        assert_eq!((v["level"].as_str(), v["logger"].as_str(), v["msg"].as_str()), (Some("info"), Some("http"), Some(msg)), "{line}");
        assert_eq!(v["status"], 200, "{line}");
        assert_eq!((v["method"].as_str(), v["URL"].as_str()), (Some("POST"), Some(target.as_str())), "{line}");
        assert_eq!(v["remote_address"], client.to_string(), "{line}");
        assert_eq!(v["read_bytes"], sent.len(), "{line}");
        assert_eq!(v["write_bytes"], body(&resp).len(), "{line}");
        assert!(v["start"].as_u64().is_some_and(|ns| ns > 1_700_000_000_000_000_000) && v["elapsed"].as_u64().is_some(), "{line}");
        if access {
            assert_eq!((v["query"].as_str(), v["host"].as_str()), (Some("record=true"), Some("rec.test:8080")), "{line}");
            assert_eq!((v["user_agent"].as_str(), v["referer"].as_str()), (Some("agent/1.0"), Some("http://ref.test/a")), "{line}");
            assert_eq!(v["content_len"], sent.len(), "{line}");
            // Go's layout `02/Jan/06:15:04:05 -0700`.
            let local = v["time_local"].as_str().unwrap_or_default();
            assert!(local.len() == 24 && local.as_bytes()[2] == b'/' && local.as_bytes()[18] == b' ', "{line}");
            assert!(v["request_time"].as_i64().is_some(), "{line}");
        } else {
            assert!(v.get("user_agent").is_none() && v.get("time_local").is_none(), "{line}");
        }
        server.server.stop().await.unwrap();
    }
}
