//! The middleware plugins in front of real PHP workers: static, headers (and CORS), gzip,
//! sendfile. `http.middleware` lists them; the first listed is the outermost.

use std::io::{Read, Write};
use std::time::Duration;

use rr_runtime::testing::{free_port, TestServer};

/// A raw request, so paths like `/../x` reach the server unnormalised.
fn raw(port: u16, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_headers_gzip_sendfile() {
    let public = tempfile::tempdir().unwrap();
    std::fs::write(public.path().join("app.css"), "body { color: red }").unwrap();
    std::fs::write(public.path().join("secret.php"), "<?php // never served").unwrap();
    std::fs::write(public.path().join("README"), "no extension").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", public.path().join("escape.txt")).unwrap();
    let download = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(download.path(), vec![7u8; 3 * 1024 * 1024]).unwrap();

    let port = free_port();
    let worker = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/http.php");
    let yaml = format!(
        r#"version: '3'
server:
  command: "php {}"
http:
  address: 127.0.0.1:{port}
  middleware: [headers, gzip, static, sendfile]
  static:
    dir: {}
    forbid: [".php"]
    calculate_etag: true
    response:
      X-Static: "yes"
  headers:
    request:
      X-From-Server: "hello php"
    response:
      X-Powered-By: rr-rs
    cors:
      allowed_origin: "https://app.example"
      allowed_methods: "GET,POST"
      allowed_headers: "Content-Type"
      max_age: 600
  pool:
    num_workers: 1
"#,
        worker.display(),
        public.path().display()
    );
    let build = rr_runtime::Build::new("rr", "test")
        .plugin::<rr_headers::Plugin>()
        .plugin::<rr_gzip::Plugin>()
        .plugin::<rr_static::Plugin>()
        .plugin::<rr_sendfile::Plugin>()
        .plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let c = reqwest::Client::new();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    server.until("the first response", || async { c.get(url("/")).send().await.ok().filter(|r| r.status().is_success()) }).await;

    // static: served with type, etag, extra header; 304 on a matching etag.
    let r = c.get(url("/app.css")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css");
    assert_eq!(r.headers()["x-static"], "yes");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.text().await.unwrap(), "body { color: red }");
    assert_eq!(c.get(url("/app.css")).header("If-None-Match", &etag).send().await.unwrap().status(), 304);
    // Forbidden extension, no extension, missing file: PHP answers.
    for path in ["/secret.php", "/README", "/missing.css"] {
        assert_eq!(c.get(url(path)).send().await.unwrap().text().await.unwrap(), "Hello, World!", "{path}");
    }
    // No way out of the directory.
    assert!(raw(port, "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 403"));
    assert!(raw(port, "GET /escape.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 403"), "symlink escape refused");

    // headers: request header reaches PHP; response header added; CORS.
    let v: serde_json::Value = c.get(url("/echo")).header("Origin", "https://app.example").send().await.unwrap().json().await.unwrap();
    assert_eq!(v["headers"]["X-From-Server"][0], "hello php");
    let r = c.get(url("/")).header("Origin", "https://app.example").send().await.unwrap();
    assert_eq!(r.headers()["x-powered-by"], "rr-rs");
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    let pre = c
        .request(reqwest::Method::OPTIONS, url("/api"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    assert_eq!(pre.headers()["access-control-allow-methods"], "GET,POST");
    assert_eq!(pre.headers()["access-control-max-age"], "600");
    let other = c.get(url("/")).header("Origin", "https://evil.example").send().await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // gzip: a large PHP answer is compressed for clients that ask.
    let r = c.get(url("/big")).header("Accept-Encoding", "gzip").send().await.unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let zipped = r.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped[..]).read_to_string(&mut text).unwrap();
    assert_eq!(text, "compressible text ".repeat(1000));
    assert!(zipped.len() < 1000);
    let plain = c.get(url("/big")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    // ... with brotli when the client prefers it or ties, gzip when it ranks brotli lower.
    let r = c.get(url("/big")).header("Accept-Encoding", "gzip, deflate, br").send().await.unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    let compressed = r.bytes().await.unwrap();
    let mut text = String::new();
    brotli::Decompressor::new(&compressed[..], 4096).read_to_string(&mut text).unwrap();
    assert_eq!(text, "compressible text ".repeat(1000));
    assert!(compressed.len() < 1000);
    let r = c.get(url("/big")).header("Accept-Encoding", "br;q=0.5, gzip").send().await.unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let r = c.get(url("/big")).header("Accept-Encoding", "br;q=0, gzip;q=0").send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());

    // sendfile: the server streams the file PHP names.
    let r = c.get(url(&format!("/sendfile?path={}", download.path().display()))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 3 * 1024 * 1024);
    assert_eq!(c.get(url("/sendfile?path=/nonexistent")).send().await.unwrap().status(), 404);

    server.stop().await.unwrap();
}
