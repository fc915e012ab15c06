//! A browser on the embedded hub: a page served by `rr` (the http plugin's static middleware)
//! loads centrifuge-js's browser build (served by `rr` too) in headless Chromium (Debian's
//! `chromium`, installed by tests/run.sh), connects to the hub, subscribes and publishes through
//! PHP, and shows what it receives, including what PHP publishes through RPC. The test reads the
//! page over the Chrome DevTools Protocol.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use rr_centrifuge::api_proto as api;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The npm package's browser builds (dist/): `$CENTRIFUGE_JS`, else the cache tests/run.sh
/// fills (installed here when missing).
fn centrifuge_dist() -> PathBuf {
    let dir = std::env::var_os("CENTRIFUGE_JS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/rr-tests/centrifuge-js"));
    if !dir.join("node_modules/centrifuge/package.json").exists() {
        let ok = std::process::Command::new("npm").args(["install", "--prefix"]).arg(&dir).args(["--no-audit", "--no-fund", "--silent", "centrifuge@5.7.4", "ws@8.18.3"]).status().unwrap();
        assert!(ok.success(), "npm install centrifuge ws into {}", dir.display());
    }
    dir.join("node_modules/centrifuge/dist")
}

/// The page: `?hub=<port>&framing=json|protobuf`. Each event is one JSON line in `#out`.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>hub</title>
<pre id="out"></pre>
<script>
const q = new URLSearchParams(location.search);
const protobuf = q.get('framing') === 'protobuf';
const out = (o) => { document.getElementById('out').textContent += JSON.stringify(o) + '\n'; };
// Protobuf clients carry bytes: JSON text in, JSON text out.
const enc = (o) => (protobuf ? new TextEncoder().encode(JSON.stringify(o)) : o);
const dec = (d) => (protobuf && d ? JSON.parse(new TextDecoder().decode(d)) : d);
const script = document.createElement('script');
script.src = protobuf ? 'centrifuge.protobuf.js' : 'centrifuge.js';
script.onerror = () => out({ event: 'failed', error: 'cannot load ' + script.src });
script.onload = () => {
  const c = new Centrifuge('ws://127.0.0.1:' + q.get('hub') + '/connection/websocket', { data: enc({ token: 't' }), name: 'browser' });
  c.on('connected', (ctx) => out({ event: 'connected', client: ctx.client }));
  c.on('disconnected', (ctx) => out({ event: 'disconnected', code: ctx.code, reason: ctx.reason }));
  c.on('error', (ctx) => out({ event: 'error', message: String(ctx.error && ctx.error.message) }));
  const sub = c.newSubscription('browser');
  sub.on('publication', (ctx) => out({ event: 'publication', data: dec(ctx.data), user: ctx.info && ctx.info.user }));
  sub.on('subscribed', async () => {
    out({ event: 'subscribed' });
    try {
      await sub.publish(enc({ from: 'browser' }));
      out({ event: 'published' });
    } catch (e) {
      out({ event: 'failed', error: String(e && (e.message || e.code)) });
    }
  });
  sub.subscribe();
  c.connect();
};
document.head.appendChild(script);
</script>
"#;

/// A DevTools Protocol session on one page of a headless Chromium.
struct Browser {
    _child: tokio::process::Child,
    _profile: tempfile::TempDir,
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    session: String,
    next_id: u64,
}

impl Browser {
    async fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let mut child = tokio::process::Command::new(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{chromium}` (tests/run.sh installs Debian's chromium): {e}"));
        // "DevTools listening on ws://127.0.0.1:<port>/devtools/browser/<id>" on stderr.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let find = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(at) = line.find("ws://") {
                    return line[at..].trim().to_string();
                }
            }
            panic!("chromium exited without a DevTools address");
        };
        let url = tokio::time::timeout(Duration::from_secs(30), find).await.expect("chromium's DevTools address within 30 s");
        // Keep draining stderr so that chromium never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        let mut browser = Browser { _child: child, _profile: profile, ws, session: String::new(), next_id: 0 };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"})).await;
        let attached = browser.call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true})).await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// One DevTools call (on the page once attached); its result. Events are skipped.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next()).await.expect("a DevTools answer").expect("open").unwrap();
            let Message::Text(t) = frame else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The page's events so far (the lines of `#out`).
    async fn events(&mut self) -> Vec<Value> {
        let expression = "(document.getElementById('out') || {}).textContent || ''";
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true})).await;
        r["result"]["value"].as_str().unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Poll the page until an event named `name` shows; all events then.
    async fn until(&mut self, name: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.events().await;
            if events.iter().any(|e| e["event"] == name) {
                return events;
            }
            assert!(Instant::now() < deadline, "the page never showed `{name}`; it shows {events:?}");
            assert!(!events.iter().any(|e| e["event"] == "failed" || e["event"] == "disconnected"), "{events:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn centrifuge_js_in_headless_chromium_on_a_page_served_by_rr() {
    let public = tempfile::tempdir().unwrap();
    std::fs::write(public.path().join("index.html"), PAGE).unwrap();
    for file in ["centrifuge.js", "centrifuge.protobuf.js"] {
        std::fs::copy(centrifuge_dist().join(file), public.path().join(file)).unwrap();
    }
    let (http, hub, proxy, rpc) = (free_port(), free_port(), free_port(), free_port());
    // The page's origin is the only one the hub accepts: the browser's Origin header is checked.
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nserver:\n  command: \"php {}\"\nhttp:\n  address: 127.0.0.1:{http}\n  middleware: [static]\n  static:\n    dir: {}\n  pool:\n    num_workers: 1\ncentrifuge:\n  proxy_address: tcp://127.0.0.1:{proxy}\n  pool:\n    num_workers: 2\n  hub:\n    address: 127.0.0.1:{hub}\n    allowed_origins: [\"http://127.0.0.1:{http}\"]\n",
        root().join("tests/php/workers/centrifuge.php").display(),
        public.path().display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_static::Plugin>().plugin::<rr_http::Plugin>().plugin::<rr_centrifuge::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    for port in [http, hub] {
        server.until("the http and hub listeners", || async move { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    }
    let rpc = format!("tcp://127.0.0.1:{rpc}");
    server.rpc(&rpc).await;

    let mut browser = Browser::start().await;
    for framing in ["json", "protobuf"] {
        browser.call("Page.navigate", json!({"url": format!("http://127.0.0.1:{http}/index.html?hub={hub}&framing={framing}")})).await;
        // Connected and subscribed through PHP; the page's own publication went through PHP's
        // publish handler (whose result data replaced it) and came back to it.
        let events = browser.until("published").await;
        assert!(events[0]["event"] == "connected" && events[0]["client"].as_str().is_some_and(|c| c.len() == 36), "{framing}: {events:?}");
        let events = browser.until("publication").await;
        let own = events.iter().find(|e| e["event"] == "publication").unwrap();
        assert_eq!((own["data"]["type"].as_str(), own["user"].as_str()), (Some("publish"), Some("42")), "{framing}: {own}");
        // PHP publishes through RPC: the page shows it.
        let data = json!({"from": "php", "framing": framing});
        let req = api::PublishRequest { channel: "browser".into(), data: data.to_string().into_bytes(), ..Default::default() };
        let out = tokio::process::Command::new("php").arg(root().join("tests/php/centrifuge_api_client.php")).arg(json!([["centrifuge.Publish", STANDARD.encode(req.encode_to_vec())]]).to_string()).env("RR_RPC", &rpc).output().await.unwrap();
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(r#""ok""#), "php: {out:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = browser.events().await;
            if events.iter().any(|e| e["event"] == "publication" && e["data"] == data) {
                break;
            }
            assert!(Instant::now() < deadline, "{framing}: PHP's publication never showed: {events:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    server.stop().await.unwrap();
}
