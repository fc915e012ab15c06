//! The tcp plugin against real PHP workers (tests/php/workers/tcp.php, which logs every event it
//! gets to `TCP_LOG`): contexts and reply words, delimiters, `tcp.Close`, error paths, hundreds of
//! connections on two workers, clients that vanish mid-event, `rr workers tcp` / `rr reset tcp`,
//! the `rr_tcp_*` pool metrics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rr_runtime::testing::{free_port, rr_bare, TestServer};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Fixture {
    server: TestServer,
    /// Port of server `greet` (says hello with the uuid, `\n`-delimited).
    greet: u16,
    /// Port of server `plain` (silent on connect, default `\r\n` delimiter).
    plain: u16,
    rpc: String,
    metrics: u16,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(workers: usize) -> Fixture {
        Fixture::start_with(workers, "").await
    }

    /// [`Fixture::start`] with `extra` YAML lines under `tcp:`.
    async fn start_with(workers: usize, extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (greet, plain, rpc, metrics) = (free_port(), free_port(), free_port(), free_port());
        let yaml = format!(
            "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nmetrics:\n  address: 127.0.0.1:{metrics}\nserver:\n  command: \"php {}\"\n  env:\n    TCP_LOG: {}\n\
             tcp:\n{extra}  servers:\n    greet:\n      addr: tcp://127.0.0.1:{greet}\n      delimiter: \"\\n\"\n    plain:\n      addr: 127.0.0.1:{plain}\n  pool:\n    num_workers: {workers}\n",
            root().join("tests/php/workers/tcp.php").display(),
            dir.path().join("events.log").display()
        );
        std::fs::write(dir.path().join(".rr.yaml"), &yaml).unwrap();
        let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_metrics::Plugin>().plugin::<rr_tcp::Plugin>();
        let mut server = TestServer::start(&build, &yaml);
        server.until("the tcp listener", || async { TcpStream::connect(("127.0.0.1", plain)).await.ok() }).await;
        Fixture { server, greet, plain, rpc: format!("tcp://127.0.0.1:{rpc}"), metrics, dir }
    }

    fn events(&self) -> Vec<Value> {
        events(self.dir.path())
    }

    /// The event names one connection produced, in order.
    fn events_of(&self, uuid: &str) -> Vec<String> {
        self.events().iter().filter(|e| e["uuid"] == uuid).map(|e| e["event"].as_str().unwrap().to_string()).collect()
    }

    /// Wait until a worker got `event` of connection `uuid`.
    async fn server_events_until(&self, uuid: &str, event: &str) {
        let started = std::time::Instant::now();
        while !self.events_of(uuid).iter().any(|e| e == event) {
            assert!(started.elapsed() < Duration::from_secs(20), "no {event} for {uuid} within 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop the server (every connection's CLOSE has been handled then) and keep the log.
    async fn stop(self) -> Stopped {
        let events = Stopped(self.dir);
        self.server.stop().await.unwrap();
        events
    }
}

struct Stopped(tempfile::TempDir);

/// Every event the workers got, as logged.
fn events(dir: &Path) -> Vec<Value> {
    let log = std::fs::read_to_string(dir.join("events.log")).unwrap_or_default();
    log.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

impl Stopped {
    fn events(&self) -> Vec<Value> {
        events(self.0.path())
    }

    fn count(&self, uuid: &str, event: &str) -> usize {
        self.events().iter().filter(|e| e["uuid"] == uuid && e["event"] == event).count()
    }
}

/// A client connection reading `\n`-terminated lines.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    async fn connect(port: u16) -> Client {
        Client { reader: BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap()) }
    }

    async fn send(&mut self, bytes: &str) {
        self.reader.get_mut().write_all(bytes.as_bytes()).await.unwrap();
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), self.reader.read_line(&mut line)).await.expect("a reply within 20 s").unwrap();
        line
    }

    /// True when the server closed the connection (after anything still unread).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), self.reader.read_to_end(&mut rest)).await.expect("EOF within 20 s").is_ok()
    }

    /// The uuid from `greet`'s hello.
    async fn hello(&mut self) -> String {
        let line = self.line().await;
        line.strip_prefix("hello ").and_then(|s| s.strip_suffix('\n')).unwrap_or_else(|| panic!("not a hello: {line:?}")).to_string()
    }
}

/// Run calls through the PHP RPC client (tests/php/rpc_client.php); one JSON value per call.
fn php_calls(rpc: &str, calls: Value) -> Vec<Value> {
    let out = Command::new("php").arg(root().join("tests/php/rpc_client.php")).arg(calls.to_string()).env("RR_RPC", rpc).output().unwrap();
    assert!(out.status.success(), "php failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_roadrunners_context_and_reply_words_steer_the_connection() {
    let fx = Fixture::start(2).await;
    let mut c = Client::connect(fx.greet).await;
    let uuid = c.hello().await;
    assert!(uuid::Uuid::parse_str(&uuid).is_ok_and(|u| u.get_version_num() == 4), "a v4 uuid: {uuid}");

    c.send("ctx\n").await;
    let ctx: Value = serde_json::from_str(&c.line().await).unwrap();
    let local = c.reader.get_ref().local_addr().unwrap().to_string();
    assert_eq!(ctx, json!({"remote_addr": local, "server": "greet", "uuid": uuid, "event": "DATA", "body": "ctx\n"}));

    // CONTINUE writes nothing: the next line is the echo of what follows.
    c.send("word:CONTINUE\n").await;
    c.send("ping\n").await;
    assert_eq!(c.line().await, "ping\n");
    c.send("word:WRITE\n").await;
    assert_eq!(c.line().await, "after WRITE\n");
    c.send("quit\n").await;
    assert_eq!(c.line().await, "bye\n");
    assert!(c.closed().await, "WRITECLOSE closes");

    // CLOSE writes nothing and closes; so does any other word.
    let mut closing = Vec::new();
    for line in ["close\n", "word:NOPE\n", "word:\n", "word:write\n"] {
        let mut c = Client::connect(fx.greet).await;
        let uuid = c.hello().await;
        c.send(line).await;
        let mut rest = String::new();
        c.reader.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "", "{line:?} writes nothing and closes");
        closing.push(uuid);
    }

    // `plain` says nothing on connect and splits on the default `\r\n`.
    let mut p = Client::connect(fx.plain).await;
    p.send("ctx\r\n").await;
    let ctx: Value = serde_json::from_str(&p.line().await).unwrap();
    assert_eq!((ctx["server"].as_str(), ctx["body"].as_str()), (Some("plain"), Some("ctx\r\n")));
    assert_eq!(fx.events_of(ctx["uuid"].as_str().unwrap()), ["CONNECTED", "DATA"]);
    drop(p);

    let log = fx.stop().await;
    assert_eq!(log.count(&uuid, "CLOSE"), 1);
    assert_eq!(log.count(&uuid, "DATA"), 5);
    for uuid in closing {
        assert_eq!((log.count(&uuid, "CONNECTED"), log.count(&uuid, "CLOSE")), (1, 1), "{uuid}");
    }
    assert_eq!(log.count(ctx["uuid"].as_str().unwrap(), "CLOSE"), 1, "a client that hangs up gets CLOSE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_end_at_the_delimiter_of_everything_read_so_far() {
    let fx = Fixture::start(1).await;
    let mut c = Client::connect(fx.plain).await;
    // Pieces shorter than the delimiter, and the delimiter itself split over two writes; the
    // pauses make separate reads likely (the outcome is the same either way).
    for piece in ["H", "EL", "O\r", "\n"] {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.line().await, "HELO\r\n");
    // Inner delimiters do not split what arrived together (RoadRunner's contract).
    c.send("a\r\nb\r\n").await;
    assert_eq!(c.line().await, "a\r\n");
    assert_eq!(c.line().await, "b\r\n");
    c.send("ctx\r\n").await;
    let uuid = serde_json::from_str::<Value>(&c.line().await).unwrap()["uuid"].as_str().unwrap().to_string();
    let bodies: Vec<String> = fx.events().iter().filter(|e| e["uuid"] == uuid.as_str() && e["event"] == "DATA").map(|e| e["body"].as_str().unwrap().into()).collect();
    assert_eq!(bodies, ["HELO\r\n", "a\r\nb\r\n", "ctx\r\n"]);

    // Bytes without a delimiter when the client hangs up still reach PHP, then CLOSE.
    c.send("tail").await;
    c.reader.get_mut().shutdown().await.unwrap();
    assert_eq!(c.line().await, "tail", "the last DATA is answered on the half-closed socket");
    let log = fx.stop().await;
    let events: Vec<String> = log.events().iter().filter(|e| e["uuid"] == uuid.as_str()).map(|e| e["event"].as_str().unwrap().into()).collect();
    assert_eq!(events, ["CONNECTED", "DATA", "DATA", "DATA", "DATA", "CLOSE"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_close_over_rpc_closes_the_connection_once() {
    let fx = Fixture::start(2).await;
    let mut c = Client::connect(fx.greet).await;
    let uuid = c.hello().await;
    let replies = php_calls(&fx.rpc, json!([["tcp.Close", uuid], ["tcp.Close", "no-such-uuid"]]));
    assert_eq!(replies, [json!({"ok": true}), json!({"ok": true})]);
    assert!(c.closed().await);
    let log = fx.stop().await;
    assert_eq!(log.count(&uuid, "CLOSE"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_still_closed_by_tcp_close() {
    let fx = Fixture::start(1).await;
    let mut c = Client::connect(fx.greet).await;
    let uuid = c.hello().await;
    // More than the socket buffers hold: the server's write waits for a reader that never comes.
    c.send("big:100000000\n").await;
    // Once the only worker has the event, it serves another client only after the big reply is
    // handed over: the write is under way then, and stuck.
    fx.server_events_until(&uuid, "DATA").await;
    let mut other = Client::connect(fx.greet).await;
    other.hello().await;
    assert_eq!(php_calls(&fx.rpc, json!([["tcp.Close", uuid]])), [json!({"ok": true})]);
    fx.server_events_until(&uuid, "CLOSE").await;
    drop(c);
    let log = fx.stop().await;
    assert_eq!(log.count(&uuid, "CLOSE"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_close_the_socket_and_workers_keep_serving() {
    let fx = Fixture::start(1).await;
    let mut uuids = HashMap::new();
    // An error frame, a worker that dies mid-event, a streamed reply: the socket closes without
    // a CLOSE event (RoadRunner's rule for a failed exec), and the pool serves the next one.
    for cmd in ["error", "crash", "stream"] {
        let mut c = Client::connect(fx.greet).await;
        let uuid = c.hello().await;
        c.send(&format!("{cmd}\n")).await;
        assert!(c.closed().await, "{cmd} closes the connection");
        let mut next = Client::connect(fx.greet).await;
        next.hello().await;
        next.send("still here\n").await;
        assert_eq!(next.line().await, "still here\n", "after {cmd}");
        uuids.insert(cmd, uuid);
    }
    let log = fx.stop().await;
    for (cmd, uuid) in uuids {
        assert_eq!(log.count(&uuid, "CLOSE"), 0, "{cmd}: no CLOSE after a failed exec");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_connections_share_two_workers() {
    const CONNECTIONS: usize = 300;
    let fx = Fixture::start(2).await;
    let port = fx.greet;
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            tokio::spawn(async move {
                let mut c = Client::connect(port).await;
                let uuid = c.hello().await;
                for j in 0..3 {
                    let msg = format!("client {i} message {j}\n");
                    c.send(&msg).await;
                    assert_eq!(c.line().await, msg);
                }
                uuid
            })
        })
        .collect();
    let mut uuids = Vec::new();
    for c in clients {
        uuids.push(c.await.unwrap());
    }
    let log = fx.stop().await;
    let events = log.events();
    let pids: std::collections::BTreeSet<_> = events.iter().map(|e| e["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 2, "two workers served everything");
    let mut per_uuid: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in events.iter().filter(|e| e["server"] == "greet") {
        per_uuid.entry(e["uuid"].as_str().unwrap()).or_default().push(e["event"].as_str().unwrap());
    }
    assert_eq!(per_uuid.len(), CONNECTIONS);
    for uuid in &uuids {
        assert_eq!(per_uuid[uuid.as_str()], ["CONNECTED", "DATA", "DATA", "DATA", "CLOSE"], "{uuid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_vanish_mid_event_never_hold_a_worker() {
    let fx = Fixture::start(1).await;
    let mut gone = Vec::new();
    for i in 0..20 {
        let mut c = Client::connect(fx.greet).await;
        gone.push(c.hello().await);
        // Hang up while the only worker still handles the event; every other one resets the
        // connection (unread data makes the close an RST).
        c.send("sleep:20\n").await;
        if i % 2 == 0 {
            c.send("unread\n").await;
        }
        drop(c);
    }
    let mut c = Client::connect(fx.greet).await;
    c.hello().await;
    c.send("pid\n").await;
    assert!(c.line().await.trim().parse::<u32>().is_ok(), "the one worker still serves");
    drop(c);
    let log = fx.stop().await;
    for uuid in gone {
        assert_eq!(log.count(&uuid, "CLOSE"), 1, "{uuid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_size_closes_its_connection_only() {
    const MB: usize = 1024 * 1024;
    let fx = Fixture::start_with(1, "  max_message_size: 1\n").await;
    let mut other = Client::connect(fx.greet).await;
    other.hello().await;
    // Under the limit, delimiter included: one message.
    let near = format!("{}\n", "n".repeat(MB - 1));
    other.send(&near).await;
    assert_eq!(other.line().await.len(), MB);

    // 3 MB without a delimiter, then the client hangs up: the server closes on the way (so a
    // write may meet a reset), and no DATA reaches a worker.
    let mut hog = Client::connect(fx.greet).await;
    let uuid = hog.hello().await;
    let stream = hog.reader.get_mut();
    let _ = stream.write_all(&vec![b'x'; 3 * MB]).await;
    let _ = stream.shutdown().await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), hog.reader.read_to_end(&mut rest)).await.expect("closed within 20 s");
    fx.server_events_until(&uuid, "CLOSE").await;
    assert_eq!(fx.events_of(&uuid), ["CONNECTED", "CLOSE"]);

    other.send("still here\n").await;
    assert_eq!(other.line().await, "still here\n", "other connections keep working");
    let log = fx.stop().await;
    let largest = log.events().iter().filter(|e| e["event"] == "DATA").map(|e| e["body"].as_str().unwrap().len()).max();
    assert_eq!(largest, Some(MB), "no DATA over the limit");
}

/// The metrics plugin's `/metrics` text.
async fn metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rr_workers_rr_reset_and_metrics_know_tcp() {
    let rr = rr_bare();
    let fx = Fixture::start(2).await;
    let config = fx.dir.path().join(".rr.yaml");
    let workers = |rr: &Path| {
        let out = Command::new(rr).args(["workers", "tcp", "-c"]).arg(&config).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(table.contains("Workers of [tcp]:"), "{table}");
        table.lines().skip(2).map(|l| l.split_whitespace().next().unwrap().to_string()).collect::<Vec<_>>()
    };
    let before = workers(&rr);
    assert_eq!(before.len(), 2);
    let text = metrics(fx.metrics).await;
    assert!(text.contains("rr_tcp_total_workers 2") && text.contains("rr_tcp_workers_ready"), "{text}");
    let out = Command::new(&rr).args(["reset", "tcp", "-c"]).arg(&config).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "resetting plugin: [tcp]\nplugin reset: [tcp]\n");
    let after = workers(&rr);
    assert!(after.len() == 2 && after.iter().all(|p| !before.contains(p)), "{before:?} -> {after:?}");
    let mut c = Client::connect(fx.plain).await;
    c.send("after reset\r\n").await;
    assert_eq!(c.line().await, "after reset\r\n");
    drop(c);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_servers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tcp.sock");
    let yaml = format!(
        "version: '3'\nserver:\n  command: \"php {}\"\ntcp:\n  servers:\n    local: {{addr: \"unix://{}\", delimiter: \"\\n\"}}\n  pool: {{num_workers: 1}}\n",
        root().join("tests/php/workers/tcp.php").display(),
        socket.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_tcp::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let stream = server.until("the unix listener", || async { tokio::net::UnixStream::connect(&socket).await.ok() }).await;
    let mut c = BufReader::new(stream);
    c.get_mut().write_all(b"ctx\n").await.unwrap();
    let mut line = String::new();
    c.read_line(&mut line).await.unwrap();
    let ctx: Value = serde_json::from_str(&line).unwrap();
    assert_eq!((ctx["server"].as_str(), ctx["remote_addr"].as_str(), ctx["event"].as_str()), (Some("local"), Some(""), Some("DATA")));
    drop(c);
    server.stop().await.unwrap();
}

#[test]
fn config_errors_name_the_key() {
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_tcp::Plugin>();
    let err = |tcp: &str| {
        let yaml = format!("version: '3'\nserver:\n  command: php\ntcp:\n{tcp}");
        rr_runtime::host::Host::init(&build, &rr_runtime::config::Config::from_str(&yaml).unwrap()).err().unwrap().to_string()
    };
    assert!(err("  pool: {num_workers: 1}\n").contains("no servers registered"));
    assert!(err("  servers:\n    smtp: {delimiter: \"\\n\"}\n").contains("`tcp.servers.smtp.addr`: empty address for the server: smtp"));
    let unknown = err("  servers:\n    smtp: {addr: \"127.0.0.1:1\", delimeter: \"\\n\"}\n");
    assert!(unknown.contains("delimeter"), "{unknown}");
    let udp = err("  servers:\n    syslog: {addr: \"udp://127.0.0.1:514\"}\n");
    assert!(udp.contains("`tcp.servers.syslog.addr`: unsupported scheme `udp://` in `udp://127.0.0.1:514`"), "{udp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_fails_the_start_with_its_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let worker = root().join("tests/php/workers/tcp.php");
    let yaml = format!("version: '3'\nserver:\n  command: \"php {}\"\ntcp:\n  servers:\n    smtp: {{addr: \"127.0.0.1:{port}\"}}\n  pool: {{num_workers: 1}}\n", worker.display());
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_tcp::Plugin>();
    let err = TestServer::start(&build, &yaml).stop().await.unwrap_err().to_string();
    assert!(err.contains("`tcp.servers.smtp.addr`: cannot listen on `127.0.0.1"), "{err}");
}
