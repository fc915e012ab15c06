//! The http plugin against real PHP workers (tests/php/workers/http.php).

use std::time::Duration;

use futures::StreamExt;
use rr_runtime::config::Config;
use rr_runtime::host::Host;
use rr_runtime::testing::{free_port, TestServer};
use serde_json::Value;

struct Server {
    port: u16,
    server: TestServer,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn shutdown(self) {
        self.server.stop().await.unwrap();
    }
}

fn worker() -> String {
    format!("php {}/../../tests/php/workers/http.php", env!("CARGO_MANIFEST_DIR"))
}

/// Start a host with the http plugin; `http_extra` is YAML indented under `http:`.
async fn serve(http_extra: &str) -> Server {
    let port = free_port();
    serve_on(port, &format!("  address: 127.0.0.1:{port}\n{http_extra}")).await
}

async fn serve_on(port: u16, http_section: &str) -> Server {
    serve_command(&worker(), port, http_section).await
}

async fn serve_command(command: &str, port: u16, http_section: &str) -> Server {
    let yaml = format!("version: '3'\nserver:\n  command: \"{command}\"\nhttp:\n{http_section}\n");
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_proxy_ip_parser::Plugin>().plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("the http listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    // Workers may still be starting; the first request waits for one.
    Server { port, server }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn echo(server: &Server, req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "echo failed");
    let _ = server;
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_and_keep_alive() {
    let server = serve("  pool:\n    num_workers: 2").await;
    let c = client();
    for _ in 0..3 {
        let resp = c.get(server.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), reqwest::Version::HTTP_11);
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.text().await.unwrap(), "Hello, World!");
    }
    server.shutdown().await;
}

/// With a thread per core each thread has its own workers; a thread whose worker is busy with a
/// slow request must borrow the other's free worker, whichever thread a connection landed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_does_not_hold_up_requests_on_other_connections() {
    let server = serve("  pool:\n    num_workers: 2").await;
    let slow_url = server.url("/sleep?ms=4000");
    let slow = tokio::spawn(async move { client().get(slow_url).send().await.unwrap().text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    // A client each: a new connection each, spread over the server's threads.
    let fast = (0..8).map(|_| {
        let url = server.url("/");
        async move { client().get(url).send().await.unwrap().text().await.unwrap() }
    });
    for body in futures::future::join_all(fast).await {
        assert_eq!(body, "Hello, World!");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "fast requests waited {:?} behind the slow one", started.elapsed());
    assert_eq!(slow.await.unwrap(), "slept");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_after_read_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = serve("  read_header_timeout: 1s\n  pool:\n    num_workers: 1").await;
    let closed_within = |mut conn: tokio::net::TcpStream| async move {
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await.expect("closed by the server").unwrap();
        (started.elapsed(), String::from_utf8_lossy(&rest).to_string())
    };
    // A head that never ends (slowloris).
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let (waited, _) = closed_within(slow).await;
    assert!(waited >= Duration::from_millis(800), "closed after {waited:?}");
    // A keep-alive connection is served, then closed once idle for as long.
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (_, answered) = closed_within(idle).await;
    assert!(answered.starts_with("HTTP/1.1 200") && answered.ends_with("Hello, World!"), "{answered}");
    server.shutdown().await;
}

async fn request_context(codec: &str) {
    let server = serve(&format!("  codec: {codec}\n  pool:\n    num_workers: 1")).await;
    let c = client();
    let v = echo(
        &server,
        c.put(server.url("/echo?a=1&b[]=2&b[]=3"))
            .header("X-Multi", "one")
            .header("X-Multi", "two")
            .header("Cookie", "session=abc%20def; theme=dark")
            .body("raw body bytes"),
    )
    .await;
    assert_eq!(v["mode"], codec);
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["remoteAddr"], "127.0.0.1");
    assert_eq!(v["uri"], format!("http://127.0.0.1:{}/echo?a=1&b[]=2&b[]=3", server.port));
    assert_eq!(v["rawQuery"], "a=1&b[]=2&b[]=3");
    assert_eq!(v["headers"]["X-Multi"], serde_json::json!(["one", "two"]));
    assert!(v["headers"].get("Host").is_none(), "Host travels in the uri only");
    assert_eq!(v["cookies"]["session"], "abc def");
    assert_eq!(v["cookies"]["theme"], "dark");
    assert_eq!(v["body"], "raw body bytes");
    assert_eq!(v["parsed"], false);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_context_protobuf() {
    request_context("proto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_context_json() {
    request_context("json").await;
}

/// A PHP app in a temp dir whose composer `installed.php` lists spiral/roadrunner-http `version`
/// (none: no vendor dir); its worker (our library pretending to be that version) answers with the
/// codec it was sent.
fn app(version: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("public")).unwrap();
    let lib = format!("{}/../../tests/php/lib/Http.php", env!("CARGO_MANIFEST_DIR"));
    let installed = "__DIR__ . '/../vendor/composer/installed.php'";
    let pretend = if version.is_some() { format!("$http->pretend({installed});") } else { String::new() };
    let worker = format!("<?php\nrequire '{lib}';\n$http = RrTest\\HttpWorker::create();\n{pretend}\nwhile ($http->waitRequest() !== null) {{ $http->respond(200, $http->json ? 'json' : 'proto'); }}\n");
    std::fs::write(dir.path().join("public/worker.php"), worker).unwrap();
    if let Some(version) = version {
        std::fs::create_dir_all(dir.path().join("vendor/composer")).unwrap();
        let installed = format!("<?php return array(\n    'versions' => array(\n        'spiral/roadrunner-http' => array(\n            'pretty_version' => 'v{version}',\n            'version' => '{version}.0',\n        ),\n    ),\n);\n");
        std::fs::write(dir.path().join("vendor/composer/installed.php"), installed).unwrap();
    }
    dir
}

/// `http.codec: auto` (the default) by the app's spiral/roadrunner-http and PHP: the codec the worker
/// was sent, or the status when it could not read it.
async fn auto_codec(version: Option<&str>, php: &str, http_extra: &str) -> String {
    let app = app(version);
    let port = free_port();
    let command = format!("{php} -d opcache.enable_cli=0 {}/public/worker.php", app.path().display());
    let server = serve_command(&command, port, &format!("  address: 127.0.0.1:{port}\n  pool:\n    num_workers: 1\n{http_extra}")).await;
    let resp = client().get(server.url("/")).send().await.unwrap();
    let answer = if resp.status() == 200 { resp.text().await.unwrap() } else { resp.status().to_string() };
    server.shutdown().await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_auto_sends_json_to_apps_that_accept_it() {
    assert_eq!(auto_codec(Some("3.4.0"), "php", "").await, "json", "before 3.5: JSON only");
    assert_eq!(auto_codec(Some("3.4.0"), "php", "  codec: proto").await, "500 Internal Server Error", "the app really reads JSON only");
    assert_eq!(auto_codec(Some("3.5.1"), "php", "").await, "json", "3.5 without ext-protobuf: JSON is faster");
    assert_eq!(auto_codec(Some("3.5.1"), "php", "  codec: proto").await, "proto", "`proto` still forces protobuf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_auto_sends_protobuf_where_unsure_or_fast() {
    assert_eq!(auto_codec(None, "php", "").await, "proto", "no installed.php");
    assert_eq!(auto_codec(Some("4.0.0"), "php", "").await, "proto", "a version not known to accept JSON");
    // A PHP whose `php -m` lists protobuf, as with ext-protobuf installed.
    let bin = tempfile::tempdir().unwrap();
    let php = bin.path().join("php");
    let script = "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -m ] && { php \"$@\"; echo protobuf; exit 0; }; done\nexec php \"$@\"\n";
    std::fs::write(&php, script).unwrap();
    std::fs::set_permissions(&php, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_eq!(auto_codec(Some("3.5.1"), &php.display().to_string(), "").await, "proto", "3.5 with ext-protobuf");
}

/// Issue 29 item 1: Laravel Octane starts `-o server.command=/usr/bin/php8.2,BASE/vendor/bin/roadrunner-worker`,
/// a script without the `.php` suffix; on spiral/roadrunner-http 3.5 without ext-protobuf its
/// app gets JSON whether the command is comma-joined (as `-o` gives it), a string or a list.
/// (The other frameworks' commands: `codec_choice`'s unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_auto_finds_octanes_script_in_every_command_form() {
    let app = app(Some("3.5.1"));
    std::fs::create_dir_all(app.path().join("vendor/bin")).unwrap();
    let script = app.path().join("vendor/bin/roadrunner-worker");
    std::fs::write(&script, "#!/usr/bin/env php\n<?php\nrequire __DIR__ . '/../../public/worker.php';\n").unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let php = std::env::split_paths(&path).map(|d| d.join("php")).find(|p| p.is_file()).expect("php on PATH");
    let (php, script) = (std::fs::canonicalize(php).unwrap().display().to_string(), script.display().to_string());
    for command in [format!("\"{php},{script}\""), format!("\"{php} -d opcache.enable_cli=0 {script}\""), format!("[\"{php}\", \"-dopcache.enable_cli=0\", \"{script}\"]")] {
        let port = free_port();
        let yaml = format!("version: '3'\nserver:\n  command: {command}\nhttp:\n  address: 127.0.0.1:{port}\n  pool:\n    num_workers: 1\n");
        let build = rr_runtime::Build::new("rr", "test").plugin::<rr_http::Plugin>();
        let mut server = TestServer::start(&build, &yaml);
        server.until("the http listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
        let answer = client().get(format!("http://127.0.0.1:{port}/")).send().await.unwrap().text().await.unwrap();
        assert_eq!(answer, "json", "command: {command}");
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urlencoded_nested_form_is_parsed() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let v = echo(
        &server,
        client()
            .post(server.url("/echo"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("name=x&name=y&tags[]=a&tags[]=b&user[address][city]=Oslo&user[0]=z"),
    )
    .await;
    assert_eq!(v["parsed"], true);
    let form: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(form, serde_json::json!({"name": "y", "tags": ["a", "b"], "user": {"address": {"city": "Oslo"}, "0": "z"}}));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&format!("  uploads:\n    dir: {}\n    forbid: [\".php\"]\n  pool:\n    num_workers: 1", dir.path().display())).await;
    let form = reqwest::multipart::Form::new()
        .text("title", "holiday")
        .text("meta[tags][]", "sea")
        .part("photo", reqwest::multipart::Part::bytes(b"JPEGDATA".to_vec()).file_name("beach.jpg").mime_str("image/jpeg").unwrap())
        .part("docs[]", reqwest::multipart::Part::bytes(b"one".to_vec()).file_name("a.txt"))
        .part("docs[]", reqwest::multipart::Part::bytes(b"two".to_vec()).file_name("b.txt"))
        .part("evil", reqwest::multipart::Part::bytes(b"<?php".to_vec()).file_name("shell.PHP"));
    let v = echo(&server, client().post(server.url("/echo")).multipart(form)).await;
    let fields: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(fields, serde_json::json!({"title": "holiday", "meta": {"tags": ["sea"]}}));
    let up = &v["uploads"];
    assert_eq!(up["photo"]["name"], "beach.jpg");
    assert_eq!(up["photo"]["mime"], "image/jpeg");
    assert_eq!(up["photo"]["size"], 8);
    assert_eq!(up["photo"]["error"], 0);
    assert_eq!(up["photo"]["tmpName"]["content"], "JPEGDATA");
    assert!(up["photo"]["tmpName"]["path"].as_str().unwrap().starts_with(&dir.path().display().to_string()));
    assert_eq!(up["docs"][1]["tmpName"]["content"], "two");
    assert_eq!(up["evil"]["error"], 8, "forbidden extension gives UPLOAD_ERR_EXTENSION");
    assert_eq!(up["evil"]["tmpName"], "");
    // Temp files are removed once the response is done.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_body_is_413() {
    let server = serve("  max_request_size: 1\n  pool:\n    num_workers: 1").await;
    let resp = client().post(server.url("/echo")).body(vec![b'x'; 2 * 1024 * 1024]).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let resp = client().post(server.url("/echo")).body(vec![b'x'; 1000]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_error_and_crash_give_internal_error_code_then_normal_service() {
    let server = serve("  internal_error_code: 502\n  pool:\n    num_workers: 1").await;
    let c = client();
    let resp = c.get(server.url("/error")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.text().await.unwrap(), "", "no error text without pool.debug");
    let resp = c.get(server.url("/crash")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let resp = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    server.shutdown().await;

    let server = serve("  pool:\n    debug: true").await;
    let resp = c.get(server.url("/error?msg=details")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert!(resp.text().await.unwrap().contains("app failed: details"), "pool.debug shows the error");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_multi_value_headers() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let c = client();
    assert_eq!(c.get(server.url("/status?code=404")).send().await.unwrap().status(), 404);
    assert_eq!(c.get(server.url("/status?code=999")).send().await.unwrap().status(), 500);
    let resp = c.get(server.url("/multi")).send().await.unwrap();
    let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    server.shutdown().await;
}

/// 103 Early Hints reach an HTTP/1.1 client while the app still works, each with only its own
/// headers; the final response carries none of them. HTTP/1.0 and HTTP/2 clients get no 1xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_arrive_before_the_final_response() {
    let server = serve("  pool:\n    num_workers: 1\n  http2:\n    h2c: true").await;
    let port = server.port;
    let (hints, rest) = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /hints?ms=400 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
        // Both hints, read while the worker is still sleeping.
        while seen.windows(4).filter(|w| w == b"\r\n\r\n").count() < 2 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed after {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        let hints = String::from_utf8(seen).unwrap();
        let mut rest = String::new();
        s.read_to_string(&mut rest).unwrap();
        (hints, rest)
    })
    .await
    .unwrap();
    assert_eq!(
        hints,
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n",
        "the hints come first, alone, before the app finished"
    );
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
    assert!(!rest.to_ascii_lowercase().contains("link:") && rest.contains("after hints"), "{rest}");

    let http10 = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /hints HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(http10.starts_with("HTTP/1.0 200 OK\r\n") && !http10.contains("103"), "{http10}");

    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = h2.get(server.url("/hints")).send().await.unwrap();
    assert_eq!((resp.version(), resp.status()), (reqwest::Version::HTTP_2, reqwest::StatusCode::OK));
    assert!(resp.headers().get("link").is_none());
    assert_eq!(resp.text().await.unwrap(), "after hints");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_response_arrives_chunk_by_chunk() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let resp = client().get(server.url("/stream?n=4&ms=30")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        chunks += 1;
    }
    assert_eq!(text, "chunk0\nchunk1\nchunk2\nchunk3\ndone\n");
    assert!(chunks >= 2, "the body arrived in {chunks} piece(s)");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_mid_stream_frees_the_worker() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let c = client();
    let pid = c.get(server.url("/pid")).send().await.unwrap().text().await.unwrap();
    let resp = c.get(server.url("/stream?n=400&ms=10")).send().await.unwrap();
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    // STOP reaches the worker at its next PING cycle; it ends the stream and serves again.
    let again = c.get(server.url("/pid")).send().await.unwrap().text().await.unwrap();
    assert_eq!(again, pid, "the same worker serves the next request");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge() {
    let server = serve("  http2:\n    h2c: true\n  pool:\n    num_workers: 1").await;
    let c = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = c.get(server.url("/echo")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["protocol"], "HTTP/2.0");
    server.shutdown().await;
}

/// Read one HTTP/2 frame: (type, flags, stream, payload).
async fn read_frame(conn: &mut tokio::net::TcpStream) -> (u8, u8, u32, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 9];
    conn.read_exact(&mut head).await.unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize];
    conn.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff, payload)
}

/// The response on `stream`: the first header block byte and the body.
async fn h2_response(conn: &mut tokio::net::TcpStream, stream: u32) -> (u8, Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    let (mut status, mut body) = (0, Vec::new());
    loop {
        let (kind, flags, id, payload) = read_frame(conn).await;
        match kind {
            0x4 if flags & 1 == 0 => conn.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).await.unwrap(), // SETTINGS → ACK
            0x1 if id == stream => status = payload[0],
            0x0 if id == stream => body.extend_from_slice(&payload),
            0x7 => panic!("GOAWAY: {payload:?}"),
            _ => {}
        }
        if id == stream && flags & 1 != 0 && (kind == 0x0 || kind == 0x1) {
            return (status, body);
        }
    }
}

/// `Upgrade: h2c` from HTTP/1.1, as Go's h2c package takes it: 101, then HTTP/2 with the response
/// to the upgraded request on stream 1, and further requests on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_from_http11() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = serve("  http2:\n    h2c: true\n  pool:\n    num_workers: 1").await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let upgrade = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n";
    conn.write_all(format!("GET /echo?x=1 HTTP/1.1\r\nHost: localhost\r\nX-Test: yes\r\n{upgrade}\r\n").as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(conn.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: h2c"), "{head}");
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
    let (status, body) = h2_response(&mut conn, 1).await;
    assert_eq!(status, 0x88, "`:status: 200` from HPACK's static table");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((v["protocol"].as_str(), v["method"].as_str(), v["rawQuery"].as_str()), (Some("HTTP/2.0"), Some("GET"), Some("x=1")));
    assert_eq!(v["uri"], "http://localhost/echo?x=1");
    assert_eq!(v["headers"]["X-Test"], serde_json::json!(["yes"]));
    assert!(v["headers"].get("Upgrade").is_none() && v["headers"].get("Http2-Settings").is_none(), "{v}");
    // The next request on stream 3: HPACK literals without indexing.
    let mut block = Vec::new();
    for (name, value) in [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", "/echo?n=2")] {
        block.extend_from_slice(&[0, name.len() as u8]);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    conn.write_all(&[&(block.len() as u32).to_be_bytes()[1..], &[1, 5, 0, 0, 0, 3], &block[..]].concat()).await.unwrap();
    let (_, body) = h2_response(&mut conn, 3).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((v["protocol"].as_str(), v["rawQuery"].as_str()), (Some("HTTP/2.0"), Some("n=2")));

    drop(conn); // an open HTTP/2 connection that answers no PING would hold up the graceful stop

    // With a body the upgrade is ignored and HTTP/1.1 answers.
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    conn.write_all(format!("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n{upgrade}\r\nhi").as_bytes()).await.unwrap();
    let mut answer = [0u8; 12];
    conn.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    drop(conn);

    // curl's `--http2` on http:// upgrades the same way.
    let curl = tokio::process::Command::new("curl").args(["-sS", "--http2", "-w", "\n%{http_version}"]).arg(server.url("/echo?c=1")).output().await;
    match curl {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && text.ends_with("\n2"), "{text} {}", String::from_utf8_lossy(&out.stderr));
            assert!(text.contains("\"protocol\":\"HTTP\\/2.0\""), "{text}");
        }
        Err(e) => eprintln!("curl not run: {e}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_http2_and_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let (plain, tls) = (free_port(), free_port());
    let section = format!(
        "  address: 127.0.0.1:{plain}\n  ssl:\n    address: 127.0.0.1:{tls}\n    redirect: true\n    cert: {0}/cert.pem\n    key: {0}/key.pem\n  pool:\n    num_workers: 1",
        dir.path().display()
    );
    let mut server = serve_on(plain, &section).await;
    // The plain listener is bound first.
    server.server.until("the https listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", tls)).await.ok() }).await;
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], tls).into())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = c.get(format!("https://localhost:{tls}/echo")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["uri"], format!("https://localhost:{tls}/echo"));
    let resp = c.get(format!("http://127.0.0.1:{plain}/x?y=1")).header("Host", "localhost").send().await.unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], format!("https://localhost:{tls}/x?y=1"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_ip_parser_trusts_only_listed_subnets() {
    // Without the middleware listed (as in RoadRunner) proxy headers are ignored.
    let server = serve("  trusted_subnets: [\"127.0.0.0/8\"]\n  pool:\n    num_workers: 1").await;
    let v = echo(&server, client().get(server.url("/echo")).header("X-Forwarded-For", "203.0.113.7")).await;
    assert_eq!(v["remoteAddr"], "127.0.0.1");
    server.shutdown().await;
    let server = serve("  middleware: [proxy_ip_parser]\n  trusted_subnets: [\"127.0.0.0/8\"]\n  pool:\n    num_workers: 1").await;
    let v = echo(&server, client().get(server.url("/echo")).header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")).await;
    assert_eq!(v["remoteAddr"], "203.0.113.7", "the leftmost address");
    let forwarded = client().get(server.url("/echo")).header("Forwarded", "for=\"[2001:db8::7]:4711\"").header("X-Real-IP", "198.51.100.1");
    assert_eq!(echo(&server, forwarded).await["remoteAddr"], "2001:db8::7", "Forwarded comes first in the default order");
    server.shutdown().await;
    let server = serve("  middleware: [proxy_ip_parser]\n  trusted_headers: [X-Real-IP]\n  pool:\n    num_workers: 1").await;
    let v = echo(&server, client().get(server.url("/echo")).header("X-Forwarded-For", "203.0.113.7").header("X-Real-IP", "198.51.100.1")).await;
    assert_eq!(v["remoteAddr"], "198.51.100.1", "only the configured headers, default subnets include loopback");
    server.shutdown().await;
    let server = serve("  middleware: [proxy_ip_parser]\n  trusted_subnets: [\"10.0.0.0/8\"]\n  pool:\n    num_workers: 1").await;
    let v = echo(&server, client().get(server.url("/echo")).header("X-Forwarded-For", "203.0.113.7")).await;
    assert_eq!(v["remoteAddr"], "127.0.0.1", "an untrusted peer cannot claim another address");
    server.shutdown().await;
}

#[test]
fn config_errors_name_the_key() {
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_proxy_ip_parser::Plugin>().plugin::<rr_http::Plugin>();
    let err = |yaml: &str| Host::init(&build, &Config::from_str(yaml).unwrap()).err().unwrap().to_string();
    assert!(err("version: '3'\nhttp:\n  pool: {num_workers: 1}\n").contains("no method has been specified"));
    let bad_subnet = "version: '3'\nhttp:\n  address: ':0'\n  middleware: [proxy_ip_parser]\n  trusted_subnets: [nope]\n";
    assert!(err(bad_subnet).contains("http.trusted_subnets"), "{}", err(bad_subnet));
    assert!(err("version: '3'\nhttp:\n  address: ':0'\n  codec: xml\n").contains("http.codec"));
    assert!(err("version: '3'\nhttp:\n  address: ':0'\n  ssl: {cert: /nope.pem, key: /nope.key}\n").contains("http.ssl.cert"));
}
