//! The grpc plugin against real PHP workers (tests/php/workers/grpc.php) and a tonic client
//! that sends and receives raw message bytes.

use std::time::Duration;

use bytes::Bytes;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::Value;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

#[path = "support/raw_codec.rs"]
mod raw_codec;
use raw_codec::Raw;

fn proto(name: &str) -> String {
    format!("{}/tests/proto/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn worker() -> String {
    format!("php {}/../../tests/php/workers/grpc.php", env!("CARGO_MANIFEST_DIR"))
}

/// `service.Message { string msg = 1; }`
fn msg(text: &str) -> Bytes {
    let mut out = Vec::new();
    if !text.is_empty() {
        out.push(0x0a);
        let mut n = text.len();
        while n > 0x7f {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(text.as_bytes());
    }
    out.into()
}

fn text(message: &Bytes) -> String {
    let mut b = &message[..];
    if b.is_empty() {
        return String::new();
    }
    assert_eq!(b[0], 0x0a, "not a service.Message: {message:?}");
    b = &b[1..];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let c = b[0];
        b = &b[1..];
        len |= ((c & 0x7f) as usize) << shift;
        if c < 0x80 {
            break;
        }
        shift += 7;
    }
    String::from_utf8(b[..len].to_vec()).unwrap()
}

struct Server {
    port: u16,
    server: TestServer,
}

impl Server {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port)).unwrap().connect().await.unwrap()
    }

    async fn client(&self) -> tonic::client::Grpc<Channel> {
        tonic::client::Grpc::new(self.channel().await)
    }
}

fn yaml(port: u16, grpc_extra: &str, top_extra: &str) -> String {
    format!(
        "version: '3'\n{top_extra}server:\n  command: \"{}\"\ngrpc:\n  listen: tcp://127.0.0.1:{port}\n  proto: [\"{}\"]\n{grpc_extra}\n",
        worker(),
        proto("service.proto")
    )
}

fn build() -> rr_runtime::Build {
    rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_metrics::Plugin>().plugin::<rr_status::Plugin>().plugin::<rr_grpc::Plugin>()
}

/// A server with 2 workers unless `grpc_extra` (YAML under `grpc:`) sets the pool.
async fn serve(grpc_extra: &str) -> Server {
    serve_with(grpc_extra, "").await
}

async fn serve_with(grpc_extra: &str, top_extra: &str) -> Server {
    let port = free_port();
    let extra = if grpc_extra.contains("pool:") { grpc_extra.to_string() } else { format!("{grpc_extra}\n  pool:\n    num_workers: 2") };
    let mut server = TestServer::start(&build(), &yaml(port, &extra, top_extra));
    server.until("the grpc listener", || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    Server { port, server }
}

async fn unary(c: &mut tonic::client::Grpc<Channel>, path: &'static str, req: Request<Bytes>) -> Result<tonic::Response<Bytes>, Status> {
    c.ready().await.unwrap();
    c.unary(req, http::uri::PathAndQuery::from_static(path), Raw).await
}

async fn ping(c: &mut tonic::client::Grpc<Channel>, text: &str) -> Result<tonic::Response<Bytes>, Status> {
    unary(c, "/service.Echo/Ping", Request::new(msg(text))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_reaches_php_with_roadrunners_payload() {
    let server = serve("  env:\n    grpc_test_env: val").await;
    let mut c = server.client().await;
    assert_eq!(text(ping(&mut c, "hello").await.unwrap().get_ref()), "HELLO");

    let mut req = Request::new(msg("ctx"));
    req.metadata_mut().insert("x-request-id", "abc".parse().unwrap());
    req.metadata_mut().append("x-multi", "a<b".parse().unwrap());
    req.metadata_mut().append("x-multi", "2".parse().unwrap());
    req.metadata_mut().insert_bin("x-raw-bin", tonic::metadata::MetadataValue::from_bytes(b"hi"));
    req.metadata_mut().insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
    req.set_timeout(Duration::from_secs(30));
    let raw = text(unary(&mut c, "/service.Echo/Ping", req).await.unwrap().get_ref());
    let prefix = format!(r#"{{"service":"service.Echo","method":"Ping","context":{{":authority":["127.0.0.1:{}"],":peer.address":["127.0.0.1:"#, server.port);
    assert!(raw.starts_with(&prefix), "{raw}");
    assert!(raw.contains(r#""x-multi":["a\u003cb","2"]"#), "Go's escaping and multiple values: {raw}");
    let ctx: Value = serde_json::from_str(&raw).unwrap();
    let context = ctx["context"].as_object().unwrap();
    let keys: Vec<&String> = context.keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "metadata keys are sorted");
    assert_eq!(context["x-request-id"], serde_json::json!(["abc"]));
    assert_eq!(context["x-raw-bin"], serde_json::json!(["hi"]), "-bin values arrive decoded");
    assert_eq!(context["content-type"], serde_json::json!(["application/grpc"]));
    assert!(context["user-agent"][0].as_str().unwrap().contains("tonic"));
    // The call's span continues the client's trace (even without the otel plugin); the
    // client's own header stays beside it, lowercase, as grpc-go delivers it.
    let span = context["Traceparent"][0].as_str().unwrap().strip_prefix("00-4bf92f3577b34da6a3ce929d0e0e4736-").unwrap().strip_suffix("-01").unwrap();
    assert_ne!(span, "00f067aa0ba902b7");
    assert_eq!(context["Uber-Trace-Id"][0], format!("4bf92f3577b34da6a3ce929d0e0e4736:{span}:0:1"));
    assert_eq!(context["traceparent"][0], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    for absent in ["te", "grpc-timeout", ":peer.auth-type", ":path", ":method"] {
        assert!(!context.contains_key(absent), "{absent} must not reach PHP: {raw}");
    }

    assert_eq!(text(ping(&mut c, "env").await.unwrap().get_ref()), "grpc,val", "RR_MODE and grpc.env");
    // side.Side comes from a file service.proto imports.
    let side = unary(&mut c, "/side.Side/Hello", Request::new(msg("side"))).await.unwrap();
    assert_eq!(text(side.get_ref()), "SIDE");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_errors_as_roadrunner_sends_them() {
    let server = serve("").await;
    let mut c = server.client().await;

    // roadrunner-grpc >= 3.4: `headers` and `trailers` as JSON strings.
    let resp = ping(&mut c, "headers").await.unwrap();
    assert_eq!(text(resp.get_ref()), "ok");
    assert_eq!(resp.metadata().get("x-id").unwrap(), "42");
    assert_eq!(resp.metadata().get("x-t").unwrap(), "1");
    // The flat map of older libraries: headers.
    let resp = ping(&mut c, "flat").await.unwrap();
    assert_eq!(resp.metadata().get("x-id").unwrap(), "42");

    // GRPCException: {"error": base64 Status}; PHP's headers and trailers travel with it.
    let st = ping(&mut c, "error:13:FOOOOOOOOOOOO").await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::Internal, "FOOOOOOOOOOOO"));
    assert_eq!(st.metadata().get("x-h").unwrap(), "h");
    assert_eq!(st.metadata().get("x-t").unwrap(), "t");
    assert!(st.details().is_empty(), "no grpc-status-details-bin without details");
    let st = ping(&mut c, "error:5:naïve 100%").await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::NotFound, "naïve 100%"), "grpc-message is percent-encoded");

    // With details: grpc-status-details-bin carries the whole Status.
    let st = ping(&mut c, "details").await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::PermissionDenied, "denied"));
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD
        .decode("CAcSBmRlbmllZBpDCih0eXBlLmdvb2dsZWFwaXMuY29tL2dvb2dsZS5ycGMuRXJyb3JJbmZvEhcKEFBlcm1pc3Npb25EZW5pZWQSA2FwcA==")
        .unwrap();
    assert_eq!(st.details(), &expected[..]);

    // A status-0 error is a success with an empty message.
    assert_eq!(ping(&mut c, "status0").await.unwrap().get_ref().len(), 0);

    // Any other PHP exception: an error frame, INTERNAL with RoadRunner's text.
    let st = ping(&mut c, "throw:boom").await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::Internal, "sync_worker_receive_frame: SoftJobError: boom"));
    // roadrunner-grpc 2.0.0: `code|:|message` in the error frame.
    let st = ping(&mut c, "legacy:7:Unauthorized access `index`").await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::PermissionDenied, "Unauthorized access `index`"));

    // Reply metadata that is not a JSON object of strings, a stream to a unary method.
    assert_eq!(ping(&mut c, "badmeta").await.unwrap_err().code(), Code::Unknown);
    let st = ping(&mut c, "stream:2").await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::Unknown, "streaming is not supported"));

    // Not in the protos: grpc-go's texts.
    let st = unary(&mut c, "/service.Nope/X", Request::new(msg(""))).await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::Unimplemented, "unknown service service.Nope"));
    let st = unary(&mut c, "/service.Echo/Nope", Request::new(msg(""))).await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::Unimplemented, "unknown method Nope for service service.Echo"));

    // The workers survived all of it.
    assert_eq!(text(ping(&mut c, "still").await.unwrap().get_ref()), "STILL");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_and_gzip() {
    let server = serve("  max_recv_msg_size: 1\n  max_send_msg_size: 1").await;
    let mut c = server.client().await;
    let st = ping(&mut c, &"x".repeat(2 << 20)).await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted);
    assert!(st.message().starts_with("grpc: received message larger than max ("), "{}", st.message());
    let st = ping(&mut c, "big:1100000").await.unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted);
    assert!(st.message().starts_with("grpc: trying to send message larger than max ("), "{}", st.message());

    let mut gz = server.client().await.send_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Gzip);
    let long = "gzip ".repeat(1000);
    let resp = ping(&mut gz, &long).await.unwrap();
    assert_eq!(text(resp.get_ref()), long.to_uppercase());
    assert_eq!(resp.metadata().get("grpc-encoding").unwrap(), "gzip", "the answer is compressed as the request was");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_timeout_bounds_the_wait_for_a_worker_never_a_running_call() {
    let server = serve("  pool:\n    num_workers: 1").await;
    let mut c = server.client().await;
    let pid = text(ping(&mut c, "pid").await.unwrap().get_ref());

    // The only worker is busy: a call with a deadline gives up waiting for it. (A raw HTTP/2
    // client sends `grpc-timeout` without a timer of its own, so the answer is the server's.)
    let mut busy = server.client().await;
    let running = tokio::spawn(async move { ping(&mut busy, "sleep:1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (head, _, trailers) = raw_call(server.port, "/service.Echo/Ping", &[("grpc-timeout", "200m")], &msg("late")).await;
    assert_eq!(grpc_status(&head, &trailers), ("4".to_string(), "context deadline exceeded".to_string()));
    // The running call was not cut.
    assert_eq!(text(running.await.unwrap().unwrap().get_ref()), "sleep:1500");

    // A deadline that passes while PHP runs the call: the worker finishes and stays.
    let (head, _, trailers) = raw_call(server.port, "/service.Echo/Ping", &[("grpc-timeout", "200m")], &msg("sleep:600")).await;
    assert_eq!(grpc_status(&head, &trailers).0, "4");
    assert_eq!(text(ping(&mut c, "pid").await.unwrap().get_ref()), pid, "the worker was not killed");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_free_worker_and_a_crashed_worker_are_internal_with_the_pools_text() {
    let server = serve("  pool:\n    num_workers: 1\n    allocate_timeout: 300ms").await;
    let mut c = server.client().await;
    let mut busy = server.client().await;
    let running = tokio::spawn(async move { ping(&mut busy, "sleep:1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = ping(&mut c, "waits").await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::Internal, "no free workers in the pool, wait timeout exceed"));
    running.await.unwrap().unwrap();
    let st = ping(&mut c, "crash").await.unwrap_err();
    assert_eq!(st.code(), Code::Internal, "{st:?}");
    // The pool replaced the worker.
    assert_eq!(text(ping(&mut c, "again").await.unwrap().get_ref()), "AGAIN");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_end_to_end_and_cancellation() {
    let server = serve("").await;
    let mut c = server.client().await;
    c.ready().await.unwrap();
    let path = || http::uri::PathAndQuery::from_static("/service.Echo/Stream");
    let resp = c.server_streaming(Request::new(msg("stream:3")), path(), Raw).await.unwrap();
    assert_eq!(resp.metadata().get("x-first").unwrap(), "yes");
    let mut stream = resp.into_inner();
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(text(&m));
    }
    assert_eq!(got, ["0", "1", "2"]);
    assert_eq!(stream.trailers().await.unwrap().unwrap().get("x-done").unwrap(), "yes");

    c.ready().await.unwrap();
    let mut stream = c.server_streaming(Request::new(msg("streamerr:2")), path(), Raw).await.unwrap().into_inner();
    assert_eq!(text(&stream.message().await.unwrap().unwrap()), "0");
    assert_eq!(text(&stream.message().await.unwrap().unwrap()), "1");
    let st = stream.message().await.unwrap_err();
    assert_eq!((st.code(), st.message()), (Code::FailedPrecondition, "stream failed"));

    // A client that goes away stops the worker's stream (STOP), and the worker serves again.
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("stopped");
    c.ready().await.unwrap();
    let mut stream = c.server_streaming(Request::new(msg(&format!("endless:{}", flag.display()))), path(), Raw).await.unwrap().into_inner();
    for i in 0..3 {
        assert_eq!(text(&stream.message().await.unwrap().unwrap()), i.to_string());
    }
    drop(stream);
    let mut server = server;
    server.server.until("the worker to see STOP", || async { std::fs::read_to_string(&flag).ok().filter(|s| s.contains("stopped")) }).await;
    for _ in 0..4 {
        assert_eq!(text(ping(&mut c, "after").await.unwrap().get_ref()), "AFTER");
    }
    server.server.stop().await.unwrap();
}

type Sender = hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>>;

/// A bare HTTP/2 connection (hyper): no timers or retries of a gRPC client in the way. The task
/// ends when the server closes the connection.
async fn raw_connection(port: u16) -> (Sender, tokio::task::JoinHandle<()>) {
    let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    let (send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
    (send, tokio::spawn(async move {
        let _ = conn.await;
    }))
}

/// One call on a new bare connection: the response head, the message bytes as framed on the
/// wire, and the trailers.
async fn raw_call(port: u16, path: &str, headers: &[(&str, &str)], message: &[u8]) -> (http::response::Parts, Vec<u8>, Option<http::HeaderMap>) {
    raw_call_on(&mut raw_connection(port).await.0, path, headers, message).await
}

async fn raw_call_on(send: &mut Sender, path: &str, headers: &[(&str, &str)], message: &[u8]) -> (http::response::Parts, Vec<u8>, Option<http::HeaderMap>) {
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    raw_exchange(send, path, headers, body).await
}

/// One call whose request body is `body` as it stands (framing included).
async fn raw_exchange(send: &mut Sender, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (http::response::Parts, Vec<u8>, Option<http::HeaderMap>) {
    use http_body_util::BodyExt;
    let mut req = http::Request::post(format!("http://127.0.0.1{path}")).header("content-type", "application/grpc").header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send.ready().await.unwrap();
    let resp = send.send_request(req.body(http_body_util::Full::new(Bytes::from(body))).unwrap()).await.unwrap();
    let (parts, mut body) = resp.into_parts();
    let (mut data, mut trailers) = (Vec::new(), None);
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(d) => data.extend_from_slice(&d),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    (parts, data, trailers)
}

/// `grpc-status` and `grpc-message`, from the trailers or a trailers-only head.
fn grpc_status(head: &http::response::Parts, trailers: &Option<http::HeaderMap>) -> (String, String) {
    let map = trailers.as_ref().unwrap_or(&head.headers);
    let get = |k: &str| map.get(k).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (get("grpc-status"), get("grpc-message"))
}

/// A `grpc.health.v1.HealthCheckResponse` status.
fn health_status(m: &Bytes) -> u8 {
    assert_eq!(m.len(), 2, "{m:?}");
    m[1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_list_and_watch_during_reset() {
    let rpc = free_port();
    let mut server = serve_with("", &format!("rpc:\n  listen: tcp://127.0.0.1:{rpc}\n")).await;
    let mut c = server.client().await;
    // Any service name gets the server's status, as in RoadRunner.
    let check = unary(&mut c, "/grpc.health.v1.Health/Check", Request::new(Bytes::from_static(b"\x0a\x04nope"))).await.unwrap();
    assert_eq!(check.get_ref(), &Bytes::from_static(b"\x08\x01"));
    let list = unary(&mut c, "/grpc.health.v1.Health/List", Request::new(Bytes::new())).await.unwrap();
    assert_eq!(list.get_ref(), &Bytes::from_static(b"\x0a\x0a\x0a\x04grpc\x12\x02\x08\x01"));

    c.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Watch");
    let mut watch = c.server_streaming(Request::new(Bytes::new()), path, Raw).await.unwrap().into_inner();
    assert_eq!(health_status(&watch.message().await.unwrap().unwrap()), 1);
    let mut rpc = server.server.rpc(&format!("127.0.0.1:{rpc}")).await;
    let reset: bool = rpc.call_json("resetter.Reset", &"grpc").await.unwrap();
    assert!(reset);
    assert_eq!(health_status(&watch.message().await.unwrap().unwrap()), 2, "NOT_SERVING during the reset");
    assert_eq!(health_status(&watch.message().await.unwrap().unwrap()), 1, "SERVING after it");

    // `rr workers grpc` reads informer.Workers.
    let workers: Value = rpc.call_json("informer.Workers", &"grpc").await.unwrap();
    assert_eq!(workers["workers"].as_array().unwrap().len(), 2);
    let _ = &mut server;
    server.server.stop().await.unwrap();
}

/// GET over a fresh connection; the status line and body.
async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_status_and_graceful_stop() {
    let (metrics, status) = (free_port(), free_port());
    let mut server = serve_with("", &format!("metrics:\n  address: 127.0.0.1:{metrics}\nstatus:\n  address: 127.0.0.1:{status}\n")).await;
    let mut c = server.client().await;
    ping(&mut c, "one").await.unwrap();
    ping(&mut c, "throw:x").await.unwrap_err();
    let (code, page) = server.server.until("the metrics page", || async { Some(http_get(metrics, "/metrics").await).filter(|(c, _)| *c == 200) }).await;
    assert_eq!(code, 200);
    for line in [
        r#"rr_grpc_request_total{grpc_method="/service.Echo/Ping",status_code="OK"} 1"#,
        r#"rr_grpc_request_total{grpc_method="/service.Echo/Ping",status_code="Internal"} 1"#,
        r#"rr_grpc_request_duration_seconds_count{grpc_method="/service.Echo/Ping"} 2"#,
        "rr_grpc_total_workers 2",
        "rr_grpc_requests_queue",
    ] {
        assert!(page.contains(line), "{line} missing from:\n{page}");
    }
    let (code, body) = server.server.until("the status server", || async { Some(http_get(status, "/health?plugin=grpc").await).filter(|(c, _)| *c != 0) }).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(http_get(status, "/ready?plugin=grpc").await.0, 200);

    // Graceful stop: a call running in PHP finishes.
    let mut slow = server.client().await;
    let running = tokio::spawn(async move { ping(&mut slow, "sleep:800").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.server.stop().await.unwrap();
    assert_eq!(text(running.await.unwrap().unwrap().get_ref()), "sleep:800");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_listener() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("grpc.sock");
    std::fs::write(&sock, "stale").unwrap();
    let yaml = format!(
        "version: '3'\nserver:\n  command: \"{}\"\ngrpc:\n  listen: unix://{}\n  proto: \"{}\"\n  pool:\n    num_workers: 2\n",
        worker(),
        sock.display(),
        proto("service.proto")
    );
    let mut server = TestServer::start(&build(), &yaml);
    let path = sock.clone();
    server.until("the unix socket", || async { tokio::net::UnixStream::connect(&path).await.ok() }).await;
    let path = sock.clone();
    let channel = tonic::transport::Endpoint::from_static("http://unix")
        .connect_with_connector(tower_service_fn(path))
        .await
        .unwrap();
    let mut c = tonic::client::Grpc::new(channel);
    assert_eq!(text(ping(&mut c, "unix").await.unwrap().get_ref()), "UNIX");
    server.stop().await.unwrap();
}

/// One I/O thread per core with its own workers (on a machine with 2 CPUs or more), and the
/// connections dealt out to the threads in turn: two connections opened one after the other are
/// served by different threads, so each one's calls go to its own thread's worker while that is
/// free; and a thread whose worker is busy borrows the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_dealt_out_to_the_threads_per_core() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return eprintln!("one CPU: the grpc plugin serves from one thread; nothing to check");
    }
    let server = serve("").await;
    let (mut a, mut b) = (server.client().await, server.client().await);
    let mut pids = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for _ in 0..4 {
        pids.0.insert(text(ping(&mut a, "pid").await.unwrap().get_ref()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        pids.1.insert(text(ping(&mut b, "pid").await.unwrap().get_ref()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((pids.0.len(), pids.1.len()), (1, 1), "each connection's calls on its thread's worker: {pids:?}");
    assert_ne!(pids.0, pids.1, "both connections on one thread");
    // A's worker busy: B's thread still serves, and A's next call borrows B's worker.
    let slow = tokio::spawn(async move { ping(&mut a, "sleep:1500").await.map(|r| text(r.get_ref())) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let mut c = server.client().await; // the third connection: A's thread again
    assert_eq!(text(ping(&mut c, "fast").await.unwrap().get_ref()), "FAST");
    assert!(started.elapsed() < Duration::from_millis(1000), "waited {:?} behind the slow call", started.elapsed());
    assert_eq!(slow.await.unwrap().unwrap(), "sleep:1500");
}

fn tower_service_fn(
    path: std::path::PathBuf,
) -> impl tower_service::Service<http::Uri, Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>, Error = std::io::Error, Future = impl Send> + Clone + Send {
    #[derive(Clone)]
    struct Connect(std::path::PathBuf);
    impl tower_service::Service<http::Uri> for Connect {
        type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
        type Error = std::io::Error;
        type Future = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Uri) -> Self::Future {
            let path = self.0.clone();
            Box::pin(async move { Ok(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?)) })
        }
    }
    Connect(path)
}

/// Init only: each bad configuration is one error naming what and where.
fn init_error(grpc: &str) -> String {
    let yaml = format!("version: '3'\nserver:\n  command: \"{}\"\ngrpc:\n{grpc}\n", worker());
    let config = rr_runtime::config::Config::from_str(&yaml).unwrap();
    match rr_runtime::host::Host::init(&build(), &config) {
        Ok(_) => panic!("config accepted: {grpc}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_configurations_are_one_clear_error_each() {
    let cases = [
        ("  listen: localhost\n  proto: []", "malformed grpc address, provided: localhost"),
        ("  listen: :9001\n  proto: [nope/missing.proto]", "proto file 'nope/missing.proto' does not exists"),
        (&format!("  listen: :9001\n  proto: [\"{}\"]", proto("bad/broken.proto")), "bad/broken.proto' does not parse"),
        (&format!("  listen: :9001\n  proto: [\"{}\"]", proto("bad/nopkg.proto")), "service `Echo` has no package"),
        (
            &format!("  listen: :9001\n  proto: [\"{}\", \"{}\"]", proto("service.proto"), proto("bad/dup.proto")),
            "duplicate service registration for \"service.Echo\"",
        ),
        ("  listen: :9001\n  interceptors: [otel]", "interceptor otel is not registered"),
        ("  listen: :9001\n  tls:\n    key: /nope.key\n    cert: /nope.crt", "key file '/nope.key' does not exists"),
        ("  listen: :9001\n  max_concurrent_streams: many", "grpc.max_concurrent_streams"),
        ("  listen: :9001\n  max_header_list_size: 5000000000", "grpc.max_header_list_size"),
    ];
    for (grpc, expected) in cases {
        let err = init_error(grpc);
        assert!(err.contains(expected), "for\n{grpc}\nexpected `{expected}` in: {err}");
    }
    // The duplicate's error names both files.
    let dup = init_error(&format!("  listen: :9001\n  proto: [\"{}\", \"{}\"]", proto("service.proto"), proto("bad/dup.proto")));
    assert!(dup.contains("service.proto") && dup.contains("dup.proto"), "{dup}");
}

#[test]
fn proto_globs_with_double_star() {
    let files = rr_grpc::protos::expand(&[format!("{}/tests/proto/**/side.proto", env!("CARGO_MANIFEST_DIR")), String::new()]).unwrap();
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("nested/side.proto"));
    let all = rr_grpc::protos::expand(&[format!("{}/tests/proto/*.proto", env!("CARGO_MANIFEST_DIR"))]).unwrap();
    let services = rr_grpc::protos::Services::load(all).unwrap();
    assert_eq!(services.services.keys().collect::<Vec<_>>(), ["service.Echo", "side.Side"]);
    assert!(services.method("service.Echo", "Stream").unwrap().server_streaming);
    assert!(rr_grpc::protos::expand(&["/nothing/**/*.proto".into()]).unwrap().is_empty(), "a glob matching nothing adds nothing");
    let alternatives = rr_grpc::protos::expand(&[format!("{}/tests/proto/{{service,nested/side}}.proto", env!("CARGO_MANIFEST_DIR"))]).unwrap();
    assert_eq!(alternatives.len(), 2, "{alternatives:?}");
}

/// The fields of a protobuf message: (number, bytes of a length-delimited field or a varint's
/// value as decimal text).
fn fields(mut b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let c = b[0];
            *b = &b[1..];
            v |= ((c & 0x7f) as u64) << shift;
            if c < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        match key & 7 {
            2 => {
                let len = varint(&mut b) as usize;
                out.push((key >> 3, b[..len].to_vec()));
                b = &b[len..];
            }
            0 => out.push((key >> 3, varint(&mut b).to_string().into_bytes())),
            t => panic!("wire type {t}"),
        }
    }
    out
}

fn field(b: &[u8], n: u64) -> Vec<Vec<u8>> {
    fields(b).into_iter().filter(|(k, _)| *k == n).map(|(_, v)| v).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_and_v1alpha_list_and_describe() {
    use prost::Message;
    let server = serve("").await;
    let mut c = server.client().await;
    for path in ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"] {
        // list_services = "*" (7); file_containing_symbol (4); file_by_filename (3); unknown symbol.
        let asks = vec![
            Bytes::from_static(b"\x3a\x01*"),
            Bytes::from_static(b"\x22\x0cservice.Echo"),
            Bytes::from_static(b"\x1a\x11nested/side.proto"),
            Bytes::from_static(b"\x22\x04nope"),
        ];
        c.ready().await.unwrap();
        let path = http::uri::PathAndQuery::try_from(path).unwrap();
        let mut answers = c.streaming(Request::new(futures::stream::iter(asks)), path, Raw).await.unwrap().into_inner();
        let list = answers.message().await.unwrap().unwrap();
        let names: Vec<String> = field(&field(&list, 6)[0], 1).iter().map(|svc| String::from_utf8(field(svc, 1)[0].clone()).unwrap()).collect();
        assert_eq!(names, ["service.Echo", "side.Side"]);

        let files = field(&field(&answers.message().await.unwrap().unwrap(), 4)[0], 1);
        let files: Vec<prost_types::FileDescriptorProto> = files.iter().map(|f| prost_types::FileDescriptorProto::decode(&f[..]).unwrap()).collect();
        assert_eq!(files[0].name(), "service.proto");
        assert_eq!(files[0].service[0].method[0].input_type(), ".service.Message", "types are resolved");
        assert!(files[0].service[0].method[1].server_streaming());
        let mut names: Vec<&str> = files.iter().map(|f| f.name()).collect();
        names.sort();
        assert_eq!(names, ["google/protobuf/empty.proto", "nested/side.proto", "service.proto"], "the file comes with its imports");

        let side = field(&field(&answers.message().await.unwrap().unwrap(), 4)[0], 1);
        assert_eq!(prost_types::FileDescriptorProto::decode(&side[0][..]).unwrap().name(), "nested/side.proto");
        let err = field(&answers.message().await.unwrap().unwrap(), 7);
        assert_eq!(field(&err[0], 1)[0], b"5", "NOT_FOUND for an unknown symbol");
    }
    server.server.stop().await.unwrap();

    let off = serve("  reflection: false").await;
    let mut c = off.client().await;
    c.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo");
    let st = c.streaming(Request::new(futures::stream::iter(vec![Bytes::from_static(b"\x3a\x01*")])), path, Raw).await.unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented);
    off.server.stop().await.unwrap();
}

/// A CA, a server certificate for localhost and a client certificate, as PEM files in `dir`.
fn certificates(dir: &std::path::Path) -> String {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.as_ref().pem()).unwrap();
    for name in ["server", "client"] {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    ca.as_ref().pem()
}

async fn tls_client(port: u16, ca: &str, identity: Option<&std::path::Path>) -> Result<tonic::client::Grpc<Channel>, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    if let Some(dir) = identity {
        tls = tls.identity(Identity::from_pem(std::fs::read(dir.join("client.pem")).unwrap(), std::fs::read(dir.join("client.key")).unwrap()));
    }
    let channel = Channel::from_shared(format!("https://localhost:{port}")).unwrap().tls_config(tls)?.connect().await?;
    Ok(tonic::client::Grpc::new(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    let d = dir.path().display();
    let server = serve(&format!("  tls:\n    cert: {d}/server.pem\n    key: {d}/server.key")).await;
    let mut c = tls_client(server.port, &ca, None).await.unwrap();
    let ctx: Value = serde_json::from_str(&text(ping(&mut c, "ctx").await.unwrap().get_ref())).unwrap();
    assert_eq!(ctx["context"][":peer.auth-type"], serde_json::json!(["tls"]));
    server.server.stop().await.unwrap();

    let mtls = serve(&format!("  tls:\n    cert: {d}/server.pem\n    key: {d}/server.key\n    root_ca: {d}/ca.pem\n    client_auth_type: require_and_verify_client_cert")).await;
    let mut c = tls_client(mtls.port, &ca, Some(dir.path())).await.unwrap();
    assert_eq!(text(ping(&mut c, "mtls").await.unwrap().get_ref()), "MTLS");
    let refused = match tls_client(mtls.port, &ca, None).await {
        Err(_) => true,
        Ok(mut c) => ping(&mut c, "no cert").await.is_err(),
    };
    assert!(refused, "a client without a certificate is refused");
    mtls.server.stop().await.unwrap();
}

/// A second, independent client (grpcio, gRPC's C core): framing mistakes tonic might forgive
/// itself show up here. `.ci/run` installs grpcio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_sees_the_same_server() {
    let have = std::process::Command::new("python3").args(["-c", "import grpc"]).status().is_ok_and(|s| s.success());
    assert!(have, "this test needs Python's grpcio: `pip install grpcio` (.ci/run installs it)");
    let server = serve("").await;
    let script = format!("{}/tests/grpcio_client.py", env!("CARGO_MANIFEST_DIR"));
    let port = server.port.to_string();
    let out = tokio::process::Command::new("python3").args([script.as_str(), port.as_str()]).output().await.unwrap();
    assert!(out.status.success(), "grpcio client failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["hello"], "HELLO");
    assert_eq!(r["ctx"]["method"], "Ping");
    assert_eq!(r["ctx"]["context"]["x-request-id"], serde_json::json!(["abc"]));
    assert!(r["ctx"]["context"]["user-agent"][0].as_str().unwrap().contains("grpc-python"), "{}", r["ctx"]);
    assert_eq!(r["headers"]["x-id"], "42");
    assert_eq!(r["trailers"], serde_json::json!({"x-t": "1"}));
    assert_eq!(r["gzip"], "GZIP ".repeat(50));
    assert_eq!(r["details"]["code"], "PERMISSION_DENIED");
    assert_eq!(r["details"]["message"], "denied");
    assert!(r["details"]["details_bin"].as_str().unwrap().starts_with("0807120664656e696564"), "{}", r["details"]);
    assert_eq!(r["throw"], serde_json::json!({"code": "INTERNAL", "message": "sync_worker_receive_frame: SoftJobError: boom", "details_bin": null}));
    assert_eq!(r["unknown"]["code"], "UNIMPLEMENTED");
    assert_eq!(r["unknown"]["message"], "unknown service service.Nope");
    assert_eq!(r["stream"], serde_json::json!(["0", "1", "2"]));
    assert_eq!(r["stream_trailers"], serde_json::json!({"x-done": "yes"}));
    assert_eq!(r["health"], "0801");
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_format_as_grpc_go_sends_it() {
    let server = serve("").await;
    // Success: HEADERS (content-type, metadata), DATA `00 len msg`, trailers with an empty grpc-message.
    let (head, data, trailers) = raw_call(server.port, "/service.Echo/Ping", &[], &msg("headers")).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "application/grpc");
    assert_eq!(head.headers["x-id"], "42");
    assert_eq!(data, b"\x00\x00\x00\x00\x04\x0a\x02ok");
    let trailers = trailers.expect("trailers");
    assert_eq!((trailers["grpc-status"].to_str().unwrap(), trailers["grpc-message"].to_str().unwrap()), ("0", ""));
    assert_eq!(trailers["x-t"], "1");
    // An error without a message: trailers-only, the status in the one HEADERS frame.
    let (head, data, trailers) = raw_call(server.port, "/service.Echo/Ping", &[], &msg("error:3:bad input: 100%")).await;
    assert!(data.is_empty() && trailers.is_none());
    assert_eq!((head.headers["grpc-status"].to_str().unwrap(), head.headers["grpc-message"].to_str().unwrap()), ("3", "bad input: 100%25"));
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close() {
    let mut server = serve("  max_connection_idle: 300ms").await;
    let (mut send, conn) = raw_connection(server.port).await;
    let (head, _, trailers) = raw_call_on(&mut send, "/service.Echo/Ping", &[], &msg("a")).await;
    assert_eq!(grpc_status(&head, &trailers).0, "0");
    server.server.until("the idle connection to close", || async { conn.is_finished().then_some(()) }).await;
    server.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_connections_close_after_their_calls_finish() {
    let mut server = serve("  max_connection_age: 500ms\n  max_connection_age_grace: 30s").await;
    let (mut send, conn) = raw_connection(server.port).await;
    // GOAWAY comes while this call runs; it finishes within the grace.
    let (head, data, trailers) = raw_call_on(&mut send, "/service.Echo/Ping", &[], &msg("sleep:1200")).await;
    assert_eq!(grpc_status(&head, &trailers).0, "0");
    assert_eq!(&data[5..], &msg("sleep:1200")[..]);
    server.server.until("the old connection to close", || async { conn.is_finished().then_some(()) }).await;
    server.server.stop().await.unwrap();
}

/// A malformed `grpc-timeout` and a compressed-flag byte other than 0 or 1 get INTERNAL with
/// grpc-go's texts (the timeout, as grpc-go, with HTTP 400), not a call without a deadline or a
/// message read as uncompressed (issue 31).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_timeout_and_payload_format_are_internal() {
    let server = serve("").await;
    let (mut send, _conn) = raw_connection(server.port).await;
    for (value, message) in [
        ("abc", r#"malformed grpc-timeout: transport: timeout unit is not recognized: "abc""#),
        ("-1S", r#"malformed grpc-timeout: strconv.ParseUint: parsing "-1": invalid syntax"#),
        ("99999999999H", r#"malformed grpc-timeout: transport: timeout string is too long: "99999999999H""#),
    ] {
        let (head, data, trailers) = raw_call_on(&mut send, "/service.Echo/Ping", &[("grpc-timeout", value)], &msg("x")).await;
        assert_eq!(head.status, 400, "{value}");
        assert!(data.is_empty() && trailers.is_none(), "{value}: trailers-only");
        assert_eq!(grpc_status(&head, &trailers), ("13".to_string(), message.to_string()));
    }
    for flag in [2u8, 0xff] {
        let mut body = vec![flag, 0, 0, 0, 3];
        body.extend_from_slice(&msg("x"));
        let (head, _, trailers) = raw_exchange(&mut send, "/service.Echo/Ping", &[], body).await;
        assert_eq!(grpc_status(&head, &trailers), ("13".to_string(), format!("grpc: received unexpected payload format {flag}")));
    }
    // The connection serves on, and a valid timeout still works.
    let (head, data, trailers) = raw_call_on(&mut send, "/service.Echo/Ping", &[("grpc-timeout", "5S")], &msg("ok")).await;
    assert_eq!(grpc_status(&head, &trailers).0, "0");
    assert_eq!(&data[5..], &msg("OK")[..]);
    server.server.stop().await.unwrap();
}

type Piece = Result<hyper::body::Frame<Bytes>, std::convert::Infallible>;
type Upload = http_body_util::StreamBody<futures::channel::mpsc::UnboundedReceiver<Piece>>;

/// A call whose request body is sent piece by piece through the returned sender; the request
/// ends when the sender is dropped. The task yields the response head.
fn upload(send: &mut hyper::client::conn::http2::SendRequest<Upload>, path: &str) -> (futures::channel::mpsc::UnboundedSender<Piece>, tokio::task::JoinHandle<http::response::Parts>) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let req = http::Request::post(format!("http://127.0.0.1{path}")).header("content-type", "application/grpc").header("te", "trailers").body(http_body_util::StreamBody::new(rx)).unwrap();
    let resp = send.send_request(req);
    (tx, tokio::spawn(async move { resp.await.unwrap().into_parts().0 }))
}

fn framed(message: &[u8], claimed: u32) -> Piece {
    let mut body = vec![0u8];
    body.extend_from_slice(&claimed.to_be_bytes());
    body.extend_from_slice(message);
    Ok(hyper::body::Frame::data(Bytes::from(body)))
}

/// Clients do not hold a graceful stop (issue 31): 20 requests still being sent (HEADERS and
/// part of a message, no END_STREAM) end at once with UNAVAILABLE, a running server stream is
/// told to stop (the worker sees STOP) and ends UNAVAILABLE, and a call whose request is
/// complete finishes with its answer. Before, the stop waited out the grace period (20 s here,
/// an error from `stop`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_uploads_and_running_streams_and_finishes_complete_calls() {
    let server = serve("  max_concurrent_streams: 30").await;
    let io = hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Upload>(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(conn);
    let mut uploads = Vec::new();
    for _ in 0..20 {
        send.ready().await.unwrap();
        let (tx, head) = upload(&mut send, "/service.Echo/Ping");
        tx.unbounded_send(framed(b"\x0a\x62partial", 100)).unwrap();
        uploads.push((tx, head));
    }
    // A complete call after them on the same connection: its answer means the server has them.
    send.ready().await.unwrap();
    let (tx, head) = upload(&mut send, "/service.Echo/Ping");
    tx.unbounded_send(framed(&msg("a"), msg("a").len() as u32)).unwrap();
    drop(tx);
    assert_eq!(head.await.unwrap().status, 200);

    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("stopped");
    let mut c = server.client().await;
    c.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/service.Echo/Stream");
    let mut stream = c.server_streaming(Request::new(msg(&format!("endless:{}", flag.display()))), path, Raw).await.unwrap().into_inner();
    for i in 0..3 {
        assert_eq!(text(&stream.message().await.unwrap().unwrap()), i.to_string());
    }
    let mut slow = server.client().await;
    let running = tokio::spawn(async move { ping(&mut slow, "sleep:1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = tokio::spawn(server.server.stop());
    // A bound on behaviour, far from the grace period (20 s): nothing waits it out.
    let stopped = tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("the stop waited for the clients");
    stopped.unwrap().unwrap();
    for (_tx, head) in uploads {
        let head = head.await.unwrap();
        assert_eq!(grpc_status(&head, &None), ("14".to_string(), "the server is stopping".to_string()));
    }
    let st = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended OK"),
            Err(st) => break st,
        }
    };
    assert_eq!((st.code(), st.message()), (Code::Unavailable, "the server is stopping"));
    assert_eq!(std::fs::read_to_string(&flag).unwrap(), "stopped\n", "the worker was told to stop");
    assert_eq!(text(running.await.unwrap().unwrap().get_ref()), "sleep:1500");
}

/// Request metadata up to grpc-go's `MaxHeaderListSize` (16 MiB; `max_header_list_size`)
/// reaches PHP; over the limit, that call alone is RESOURCE_EXHAUSTED and the connection serves
/// on (issue 31). Before, hyper's 16 KiB applied: a 16.5 KB value got HTTP 431 (UNKNOWN to the
/// client) and a 55 KB block (CONTINUATION frames) a GOAWAY that failed the whole connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_metadata_up_to_the_header_list_limit() {
    let server = serve("").await;
    let (mut send, conn) = raw_connection(server.port).await;
    let auth = format!("Bearer {}", "t".repeat(16_500));
    let (head, data, trailers) = raw_call_on(&mut send, "/service.Echo/Ping", &[("authorization", &auth)], &msg("ctx")).await;
    assert_eq!(grpc_status(&head, &trailers).0, "0");
    let ctx: Value = serde_json::from_str(&text(&Bytes::copy_from_slice(&data[5..]))).unwrap();
    assert_eq!(ctx["context"]["authorization"][0], auth.as_str());
    let big: Vec<(String, String)> = (0..11).map(|i| (format!("x-big-{i}"), format!("{i}").repeat(5000))).collect();
    let big: Vec<(&str, &str)> = big.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (head, data, trailers) = raw_call_on(&mut send, "/service.Echo/Ping", &big, &msg("ctx")).await;
    assert_eq!(grpc_status(&head, &trailers).0, "0");
    let ctx: Value = serde_json::from_str(&text(&Bytes::copy_from_slice(&data[5..]))).unwrap();
    assert_eq!(ctx["context"]["x-big-10"][0].as_str().unwrap().len(), 10_000);
    assert!(!conn.is_finished());
    server.server.stop().await.unwrap();

    let server = serve("  max_header_list_size: 8192").await;
    let (mut send, conn) = raw_connection(server.port).await;
    let (head, _, trailers) = raw_call_on(&mut send, "/service.Echo/Ping", &[("authorization", &auth[..10_000])], &msg("x")).await;
    let (code, message) = grpc_status(&head, &trailers);
    assert_eq!((head.status.as_u16(), code.as_str()), (200, "8"));
    assert!(message.starts_with("grpc: received header list larger than max (") && message.ends_with(" vs. 8192)"), "{message}");
    let (head, data, trailers) = raw_call_on(&mut send, "/service.Echo/Ping", &[("authorization", &auth[..1000])], &msg("after")).await;
    assert_eq!(grpc_status(&head, &trailers).0, "0", "the connection serves on");
    assert_eq!(&data[5..], &msg("AFTER")[..]);
    assert!(!conn.is_finished());
    server.server.stop().await.unwrap();
}
