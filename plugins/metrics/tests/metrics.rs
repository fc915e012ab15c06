//! /metrics parsed as Prometheus text: pool metrics follow the requests served; application
//! collectors declared in config and over RPC from PHP, with PHP's error texts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rr_runtime::testing::{free_port, TestServer};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn scrape(port: u16) -> prometheus_parse::Scrape {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(|s| match s.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_and_application_collectors() {
    let (http, metrics, rpc) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nmetrics:\n  address: 127.0.0.1:{metrics}\n  collect:\n    app_started:\n      type: gauge\n      help: Started\nserver:\n  command: \"php {}/tests/php/workers/http.php\"\nhttp:\n  address: 127.0.0.1:{http}\n  pool:\n    num_workers: 2\n",
        root().display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_metrics::Plugin>().plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let first = || async { reqwest::get(format!("http://127.0.0.1:{http}/")).await.ok().filter(|r| r.status().is_success()) };
    server.until("the first http response", first).await;

    let s = scrape(metrics).await;
    assert_eq!(value(&s, "rr_http_total_workers", &[]), Some(2.0));
    assert_eq!(value(&s, "rr_http_workers_ready", &[]), Some(2.0));
    assert!(value(&s, "rr_http_workers_memory_bytes", &[]).unwrap() > 1e6);
    let pids: Vec<_> = s.samples.iter().filter(|x| x.metric == "rr_http_worker_state").map(|x| x.labels.get("pid").unwrap().to_string()).collect();
    assert_eq!(pids.len(), 2);
    assert!(s.samples.iter().any(|x| x.metric == "rr_http_worker_state" && x.labels.get("state") == Some("ready")));
    assert_eq!(value(&s, "app_started", &[]), Some(0.0), "collect: declared from config: {:?}", s.samples.iter().map(|x| &x.metric).collect::<Vec<_>>());

    // Values follow the work: a slow request shows a working worker and a queued request.
    let slow = tokio::spawn(reqwest::get(format!("http://127.0.0.1:{http}/sleep?ms=700")));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let s = scrape(metrics).await;
    assert_eq!(value(&s, "rr_http_workers_working", &[]), Some(1.0));
    assert_eq!(value(&s, "rr_http_requests_queue", &[]), Some(1.0));
    slow.await.unwrap().unwrap();

    let out = Command::new("php").arg(root().join("tests/php/metrics_client.php")).env("RR_RPC", format!("tcp://127.0.0.1:{rpc}")).output().unwrap();
    let r: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(r.len(), 13, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(r[..8].iter().all(|x| x["ok"] == true), "{r:?}");
    assert!(r[8]["error"].as_str().unwrap().contains("undefined collector missing, try first Declare the desired collector"));
    assert!(r[9]["error"].as_str().unwrap().contains("collector `orders_total` does not support method `Sub`"));
    assert!(r[10]["error"].as_str().unwrap().contains("required labels for collector orders_total"));
    assert_eq!(r[11]["ok"], true, "declaring an existing collector is not an error");
    assert!(r[12]["error"].as_str().unwrap().contains("undefined collector nope"));

    let s = scrape(metrics).await;
    assert_eq!(value(&s, "app_orders_total", &[("shop", "eu")]), Some(5.0));
    assert_eq!(value(&s, "queue_depth", &[]), Some(6.0));
    assert_eq!(value(&s, "latency_count", &[]), Some(1.0));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_metrics_middleware_counts_and_times_responses_by_status() {
    let (http, metrics) = (free_port(), free_port());
    let yaml = format!(
        "version: '3'\nmetrics:\n  address: 127.0.0.1:{metrics}\nserver:\n  command: \"php {}/tests/php/workers/http.php\"\nhttp:\n  address: 127.0.0.1:{http}\n  middleware: [http_metrics]\n  pool:\n    num_workers: 1\n",
        root().display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_metrics::Plugin>().plugin::<rr_http_metrics::Plugin>().plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let get = |path: &'static str| reqwest::get(format!("http://127.0.0.1:{http}{path}"));
    server.until("the first http response", || async { get("/").await.ok().filter(|r| r.status().is_success()) }).await;

    let before = scrape(metrics).await;
    let ok_before = value(&before, "rr_http_request_total", &[("status", "200")]).unwrap();
    for path in ["/", "/", "/sleep?ms=60", "/status?code=404", "/error"] {
        get(path).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s = scrape(metrics).await;
    assert_eq!(value(&s, "rr_http_request_total", &[("status", "200")]), Some(ok_before + 3.0));
    assert_eq!(value(&s, "rr_http_request_total", &[("status", "404")]), Some(1.0));
    assert_eq!(value(&s, "rr_http_request_total", &[("status", "500")]), Some(1.0), "a worker error counts as the 500 the client got");
    let histogram = s.samples.iter().find(|x| x.metric == "rr_http_request_duration_seconds" && x.labels.get("status") == Some("200")).expect("duration histogram");
    let prometheus_parse::Value::Histogram(buckets) = &histogram.value else { panic!("not a histogram: {:?}", histogram.value) };
    let under = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap().count;
    assert_eq!(under(f64::INFINITY), ok_before + 3.0);
    assert!(under(0.05) <= ok_before + 2.0, "the 60 ms request is above the 50 ms bucket");
    assert!(value(&s, "rr_http_uptime_seconds", &[]).unwrap() >= 1.0);
    // The pool's own queue and no-free-worker metrics are there too, under RoadRunner's names.
    assert_eq!(value(&s, "rr_http_requests_queue", &[]), Some(0.0));
    assert_eq!(value(&s, "rr_http_no_free_workers_total", &[]), Some(0.0));
    server.stop().await.unwrap();
}
