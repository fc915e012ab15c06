//! `http.fcgi.address`: rr as a FastCGI responder behind a real nginx (`fastcgi_pass`, keep-alive
//! upstream connections, TLS), and a raw FastCGI client for what nginx does not show: hostile
//! variables, stalled requests. The process logs as `logs.mode: development` does (console
//! text), read back to check what reaches a log line.

#[path = "support/logs.rs"]
mod logs;

use std::process::Stdio;
use std::time::Duration;

use rr_runtime::testing::{TestServer, free_port};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn worker() -> String {
    format!("php {}/../../tests/php/workers/http.php", env!("CARGO_MANIFEST_DIR"))
}

/// rr serving FastCGI only, on `address`.
async fn serve(address: &str) -> TestServer {
    serve_with(address, "").await
}

/// The same with `http_extra` (YAML under `http:`).
async fn serve_with(address: &str, http_extra: &str) -> TestServer {
    logs::capture("  mode: development\n  level: debug");
    let yaml = format!("version: '3'\nserver:\n  command: \"{}\"\nhttp:\n  fcgi:\n    address: {address}\n  max_request_size: 1\n  max_header_bytes: 4096\n  pool:\n    num_workers: 2\n{http_extra}\n", worker());
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_http::Plugin>();
    TestServer::start(&build, &yaml)
}

/// nginx in front of `upstream`, as a child process on a free port with its own config and
/// temp dirs; one process (no master), so that killing it when dropped leaves nothing behind.
struct Nginx {
    port: u16,
    /// The `ssl` listener's port, when there is one.
    tls_port: u16,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn nginx(upstream: &str) -> Nginx {
    nginx_with(upstream, "", false).await
}

/// nginx with `params` after Debian's `fastcgi_params`, and with `tls` a second listener with
/// `ssl` and a self-signed certificate for `localhost`.
async fn nginx_with(upstream: &str, params: &str, tls: bool) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let (port, tls_port, d) = (free_port(), free_port(), dir.path().display());
    let ssl = if tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        format!("listen 127.0.0.1:{tls_port} ssl;\n    ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n    ")
    } else {
        String::new()
    };
    let conf = format!(
        "master_process off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  fastcgi_temp_path {d}/fcgi;\n  proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream rr {{ server {upstream}; keepalive 8; }}\n\
         server {{\n    listen 127.0.0.1:{port};\n    {ssl}client_max_body_size 10m;\n    location / {{ include /etc/nginx/fastcgi_params; {params} fastcgi_pass rr; fastcgi_keep_conn on; }}\n  }}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = tokio::process::Command::new("nginx")
        .args(["-e", &format!("{d}/error.log"), "-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nginx is needed for this test: apt-get install nginx-light (.ci/run does)");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Nginx { port, tls_port, _child: child, _dir: dir };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not start: {}", std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_over_tcp() {
    let rr_port = free_port();
    let mut server = serve(&format!("tcp://127.0.0.1:{rr_port}")).await;
    server.until("the fcgi listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", rr_port)).await.ok() }).await;
    let nginx = nginx(&format!("127.0.0.1:{rr_port}")).await;
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);
    let c = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();

    let resp = c.get(url("/echo?a=1&b[]=2")).header("X-Test", "one").header("Cookie", "k=v").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!((v["method"].as_str(), v["protocol"].as_str(), v["remoteAddr"].as_str()), (Some("GET"), Some("HTTP/1.1"), Some("127.0.0.1")));
    // Debian's fastcgi_params passes `HTTP_HOST` as nginx's `$host`, without the port.
    assert_eq!(v["uri"], "http://127.0.0.1/echo?a=1&b[]=2");
    assert_eq!(v["rawQuery"], "a=1&b[]=2");
    assert_eq!(v["headers"]["X-Test"], serde_json::json!(["one"]));
    assert_eq!(v["cookies"]["k"], "v");

    // Bodies: a form, and a raw body over several STDIN records.
    let v: Value = c.post(url("/echo")).form(&[("name", "rr"), ("x[y]", "z")]).send().await.unwrap().json().await.unwrap();
    assert_eq!((v["parsed"].as_bool(), v["body"].as_str()), (Some(true), Some(r#"{"name":"rr","x":{"y":"z"}}"#)));
    let big = "0123456789abcdef".repeat(20_000);
    let v: Value = c.put(url("/echo")).body(big.clone()).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["body"].as_str().map(str::len), Some(big.len()));
    assert_eq!(v["body"], big);
    let too_large = c.post(url("/echo")).body(vec![b'x'; 2 << 20]).send().await.unwrap();
    assert_eq!(too_large.status(), 413, "http.max_request_size (1 MB) holds over FastCGI too");

    // Status and repeated headers.
    let resp = c.get(url("/multi")).send().await.unwrap();
    let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(c.get(url("/status?code=418")).send().await.unwrap().status(), 418);

    // Many at once over nginx's kept-alive upstream connections.
    let answers = futures::future::join_all((0..64).map(|i| {
        let req = c.get(url(&format!("/echo?i={i}")));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap()["rawQuery"].as_str().unwrap().to_string() }
    }))
    .await;
    assert_eq!(answers, (0..64).map(|i| format!("i={i}")).collect::<Vec<_>>());
    drop(nginx);
    server.stop().await.unwrap();
}

/// One FastCGI request on `conn`: BEGIN_REQUEST (with `flags`), PARAMS, empty STDIN.
async fn fcgi_get(conn: &mut (impl AsyncWriteExt + Unpin), id: u8, flags: u8, uri: &str) {
    fcgi_request(conn, id, flags, &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", uri), ("HTTP_HOST", "fcgi.test")]).await;
}

/// A FastCGI record of `kind` for request `id` (content under 256 bytes).
fn record(kind: u8, id: u8, content: &[u8]) -> Vec<u8> {
    [&[1, kind, 0, id, 0, content.len() as u8, 0, 0][..], content].concat()
}

/// Name-value pairs under 128 bytes each.
fn pairs(params: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in params {
        out.extend_from_slice(&[k.len() as u8, v.len() as u8]);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// A whole request with these CGI variables and no body.
async fn fcgi_request(conn: &mut (impl AsyncWriteExt + Unpin), id: u8, flags: u8, params: &[(&str, &str)]) {
    fcgi_request_with(conn, id, flags, params, b"").await;
}

/// The same with a body (under 256 bytes).
async fn fcgi_request_with(conn: &mut (impl AsyncWriteExt + Unpin), id: u8, flags: u8, params: &[(&str, &str)], body: &[u8]) {
    let stdin = if body.is_empty() { Vec::new() } else { record(5, id, body) };
    let wire = [record(1, id, &[0, 1, flags, 0, 0, 0, 0, 0]), record(4, id, &pairs(params)), record(4, id, b""), stdin, record(5, id, b"")].concat();
    conn.write_all(&wire).await.unwrap();
}

/// STDOUT of request `id` up to its END_REQUEST.
async fn fcgi_response(conn: &mut (impl AsyncReadExt + Unpin), id: u16) -> String {
    let mut out = Vec::new();
    loop {
        let mut head = [0u8; 8];
        conn.read_exact(&mut head).await.unwrap();
        let mut content = vec![0u8; u16::from_be_bytes([head[4], head[5]]) as usize + head[6] as usize];
        conn.read_exact(&mut content).await.unwrap();
        assert_eq!(u16::from_be_bytes([head[2], head[3]]), id);
        match head[1] {
            6 => out.extend_from_slice(&content[..content.len() - head[6] as usize]),
            3 => return String::from_utf8(out).unwrap(),
            kind => panic!("unexpected record type {kind}"),
        }
    }
}

/// `FCGI_KEEP_CONN` keeps the connection for the next request; without it the connection closes
/// after the response, over a unix socket as over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_conn_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rr.sock");
    let mut server = serve(&format!("unix://{}", socket.display())).await;
    let mut conn = server.until("the fcgi socket", || async { tokio::net::UnixStream::connect(&socket).await.ok() }).await;
    for (id, path) in [(1, "/echo?n=1"), (2, "/pid")] {
        fcgi_get(&mut conn, id, 1, path).await;
        let out = fcgi_response(&mut conn, id as u16).await;
        assert!(out.starts_with("Status: 200 OK\r\n"), "{out}");
        if id == 1 {
            let body: Value = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
            assert_eq!(body["uri"], "http://fcgi.test/echo?n=1");
        }
    }
    fcgi_get(&mut conn, 3, 0, "/pid").await;
    assert!(fcgi_response(&mut conn, 3).await.starts_with("Status: 200 OK\r\n"));
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after a request without FCGI_KEEP_CONN");

    // CGI variables past `http.max_header_bytes` (4096 here) close the connection unanswered.
    let mut conn = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let pair = [&[11, 0x80, 0, 0x0f, 0xa0][..], b"HTTP_X_HUGE", &[b'v'; 4000]].concat(); // 4000-byte value
    let params = |content: &[u8]| [&[1, 4, 0, 1][..], &(content.len() as u16).to_be_bytes(), &[0, 0], content].concat();
    conn.write_all(&[&[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0][..], &params(&pair), &params(&pair)].concat()).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut rest)).await;
    assert!(closed.is_ok() && rest.is_empty(), "no answer to an oversized request, the connection closed");
    server.stop().await.unwrap();
    assert!(!socket.exists(), "the socket file is removed at stop");
}

/// Issue 29 item 2: the URI PHP sees is built as RoadRunner builds it (Go's
/// `cgi.RequestFromMap`): `HTTP_HOST` with its port, `https` when `HTTPS` is on. Debian's
/// `fastcgi_params` passes nginx's `$host` (no port); `fastcgi_param HTTP_HOST $http_host;`
/// after it passes the client's `Host`, port included (nginx sends both; the last one counts).
/// Each request leaves its `http log` record, in console text here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_the_uri_keeps_the_port_with_and_without_tls() {
    let rr_port = free_port();
    let mut server = serve(&format!("tcp://127.0.0.1:{rr_port}")).await;
    server.until("the fcgi listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", rr_port)).await.ok() }).await;
    let nginx = nginx_with(&format!("127.0.0.1:{rr_port}"), "fastcgi_param HTTP_HOST $http_host;", true).await;
    let c = reqwest::Client::builder().timeout(Duration::from_secs(20)).danger_accept_invalid_certs(true).build().unwrap();
    let plain = format!("http://127.0.0.1:{}/echo?via=fcgi&q=1", nginx.port);
    let v: Value = c.get(&plain).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["uri"], plain.as_str());
    let tls = format!("https://localhost:{}/echo?via=fcgi&q=2", nginx.tls_port);
    let v: Value = c.get(&tls).header("User-Agent", "fcgi-test").send().await.unwrap().json().await.unwrap();
    assert_eq!(v["uri"], tls.as_str());
    // The record: Go's `URL` is the absolute URL, `URI` the target.
    for (url, target) in [(&plain, "/echo?via=fcgi&q=1"), (&tls, "/echo?via=fcgi&q=2")] {
        let line = logs::wait_for(&[" http log ", &format!("URL=\"{url}\"")]).await.remove(0);
        for field in ["status=200", "method=\"GET\"", &format!("URI=\"{target}\""), "remote_address=\"127.0.0.1:", "read_bytes=0", "write_bytes=", "start=", "elapsed="] {
            assert!(line.contains(field), "{field} in {line}");
        }
        assert!(!line.contains("write_bytes=0 "), "{line}");
    }
    drop(nginx);
    server.stop().await.unwrap();
}

/// Issue 31 item 6: a `REQUEST_URI` (or `REQUEST_METHOD`) that makes no request gets a plain 400
/// that repeats nothing of it, and its CR/LF reach the log escaped: one event, one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cgi_variables_get_a_plain_400_and_one_log_line() {
    let rr_port = free_port();
    let mut server = serve(&format!("tcp://127.0.0.1:{rr_port}")).await;
    let mut conn = server.until("the fcgi listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", rr_port)).await.ok() }).await;
    let hostile = [
        [("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/a b\r\nforged-uri-line level=error"), ("HTTP_HOST", "x")],
        [("REQUEST_METHOD", "GE T\r\nforged-method-line"), ("REQUEST_URI", "/"), ("HTTP_HOST", "x")],
    ];
    for (id, params) in hostile.iter().enumerate() {
        let id = id as u8 + 1;
        fcgi_request(&mut conn, id, 1, params).await;
        let out = fcgi_response(&mut conn, id as u16).await;
        assert!(out.starts_with("Status: 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("Content-Type: text/plain; charset=utf-8\r\n") && out.ends_with("\r\n\r\n400 Bad Request"), "{out}");
        assert!(!out.contains("forged"), "the answer repeats nothing of the request: {out}");
    }
    // A form key is decoded from the body: the parser's complaint quotes it, escaped.
    let form = [("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/echo"), ("HTTP_HOST", "x"), ("CONTENT_TYPE", "application/x-www-form-urlencoded")];
    fcgi_request_with(&mut conn, 3, 1, &form, b"a%0D%0Aforged-form-line[b]=2&a%0D%0Aforged-form-line=1").await;
    let out = fcgi_response(&mut conn, 3).await;
    assert!(out.starts_with("Status: 400 Bad Request\r\n") && !out.contains("forged"), "{out}");
    for forged in ["forged-uri-line", "forged-method-line", "forged-form-line"] {
        let line = logs::wait_for(&[forged]).await.remove(0);
        assert!(line.contains(r"\r\n"), "escaped: {line}");
    }
    assert!(!logs::lines().iter().any(|l| l.starts_with("forged")), "no line begins where a CR/LF was");
    // The connection still serves.
    fcgi_get(&mut conn, 4, 1, "/pid").await;
    assert!(fcgi_response(&mut conn, 4).await.starts_with("Status: 200 OK\r\n"));
    server.stop().await.unwrap();
}

/// Issue 31 item 6: a connection whose request stops arriving midway is closed after
/// `http.read_header_timeout` (as an HTTP/1 head must arrive within it); a kept connection idle
/// between requests is not (nginx's upstream keepalive closes those).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requests_are_closed_after_the_read_timeout() {
    let rr_port = free_port();
    let mut server = serve_with(&format!("tcp://127.0.0.1:{rr_port}"), "  read_header_timeout: 1s").await;
    let connect = || async { tokio::net::TcpStream::connect(("127.0.0.1", rr_port)).await.ok() };
    let mut idle = server.until("the fcgi listener", connect).await;
    // Stalled in the variables, in the body, and inside a record.
    let begin = record(1, 1, &[0, 1, 1, 0, 0, 0, 0, 0]);
    let head = [begin.clone(), record(4, 1, &pairs(&[("REQUEST_METHOD", "POST"), ("REQUEST_URI", "/echo")])), record(4, 1, b"")].concat();
    let stalls = [
        [begin.clone(), record(4, 1, &pairs(&[("REQUEST_METHOD", "GET")]))].concat(),
        [head.clone(), record(5, 1, b"part of a body")].concat(),
        [&head[..], &[1, 5, 0, 1, 0, 100, 0, 0], b"less than 100 bytes"].concat(),
    ];
    for stall in stalls {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", rr_port)).await.unwrap();
        conn.write_all(&stall).await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0))), "closed unanswered: {closed:?} {rest:?}");
    }
    // Idle after a whole request: still served.
    fcgi_get(&mut idle, 1, 1, "/pid").await;
    assert!(fcgi_response(&mut idle, 1).await.starts_with("Status: 200 OK\r\n"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fcgi_get(&mut idle, 2, 1, "/pid").await;
    assert!(fcgi_response(&mut idle, 2).await.starts_with("Status: 200 OK\r\n"));
    server.stop().await.unwrap();
}
