//! /metrics as RoadRunner (Go's client_golang) writes it: application collectors declared and fed
//! from PHP compared line by line with client_golang's output for the same collectors, in the
//! text format 0.0.4 and in OpenMetrics; the `rr_*` series of the pools and of `http_metrics`;
//! RoadRunner's error texts; and every scrape read by a Prometheus text parser as well.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rr_runtime::testing::{TestServer, free_port};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `GET /metrics` with an optional `Accept`: (content type, body).
async fn get(port: u16, accept: Option<&str>) -> (String, String) {
    let mut req = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/metrics"));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let resp = req.send().await.unwrap();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    (content_type, resp.text().await.unwrap())
}

/// The default (0.0.4) exposition, checked for its content type and parsed.
async fn scrape(port: u16) -> (String, prometheus_parse::Scrape) {
    let (content_type, text) = get(port, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    (text, parsed)
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(|s| match s.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    })
}

/// Runs `calls` ([method, argument] pairs) through tests/php/metrics_client.php.
fn php(rpc: u16, calls: Value) -> Vec<Value> {
    let mut child = Command::new("php")
        .arg(root().join("tests/php/metrics_client.php"))
        .env("RR_RPC", format!("tcp://127.0.0.1:{rpc}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(calls.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let replies: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(replies.len(), calls.as_array().unwrap().len(), "{}", String::from_utf8_lossy(&out.stderr));
    replies
}

/// The server's error text in goridge's `Error '<text>' on <address>`.
fn error(reply: &Value) -> &str {
    let message = reply["error"].as_str().unwrap_or_else(|| panic!("expected an error, got {reply}"));
    message.strip_prefix("Error '").and_then(|m| m.rsplit_once("' on ")).map_or(message, |(text, _)| text)
}

/// A collector as spiral/roadrunner-metrics' `Collector::toArray()` sends it.
fn collector(kind: &str, help: &str, labels: &[&str]) -> Value {
    json!({"namespace": "", "subsystem": "", "type": kind, "help": help, "labels": labels, "buckets": []})
}

fn declare(name: &str, collector: Value) -> Value {
    json!(["metrics.Declare", {"name": name, "collector": collector}])
}

fn op(method: &str, name: &str, value: f64, labels: &[&str]) -> Value {
    json!([format!("metrics.{method}"), {"name": name, "value": value, "labels": labels}])
}

/// What client_golang writes, in the text format 0.0.4, for the collectors the test declares
/// and the values it feeds (families by name, labels by name, Go's floats and escaping; the
/// unused vector is left out, a summary without objectives has no quantiles).
const TEXT: &str = r#"# HELP api_seconds API time
# TYPE api_seconds summary
api_seconds{method="GET",quantile="0.5"} 0.25
api_seconds{method="GET",quantile="0.9"} 0.5
api_seconds{method="GET",quantile="0.99"} 0.5
api_seconds_sum{method="GET"} 0.875
api_seconds_count{method="GET"} 3
# HELP app_orders Orders placed
# TYPE app_orders counter
app_orders 5
# HELP big_bytes Big
# TYPE big_bytes gauge
big_bytes 1.234567e+06
# HELP latency Latency
# TYPE latency histogram
latency_bucket{route="/a",le="0.1"} 1
latency_bucket{route="/a",le="1"} 2
latency_bucket{route="/a",le="2.5"} 2
latency_bucket{route="/a",le="+Inf"} 3
latency_sum{route="/a"} 3.5625
latency_count{route="/a"} 3
# HELP queue_depth Depth \\ of "queue"\nnow
# TYPE queue_depth gauge
queue_depth 6
# HELP rpc_seconds RPC time
# TYPE rpc_seconds summary
rpc_seconds_sum 0.75
rpc_seconds_count 2
# HELP shop_orders_total Orders by shop
# TYPE shop_orders_total counter
shop_orders_total{region="eu",shop="a\"b\\c\nd"} 1
shop_orders_total{region="us",shop="x"} 1.5
# HELP slo_seconds SLO
# TYPE slo_seconds summary
slo_seconds{quantile="0.5"} NaN
slo_seconds{quantile="0.99"} NaN
slo_seconds_sum 0
slo_seconds_count 0
"#;

/// The same in OpenMetrics as client_golang writes it: a counter named `…_total` is the family
/// without the suffix, one named otherwise keeps its name as `unknown`; integral floats get `.0`.
const OPENMETRICS: &str = r#"# HELP api_seconds API time
# TYPE api_seconds summary
api_seconds{method="GET",quantile="0.5"} 0.25
api_seconds{method="GET",quantile="0.9"} 0.5
api_seconds{method="GET",quantile="0.99"} 0.5
api_seconds_sum{method="GET"} 0.875
api_seconds_count{method="GET"} 3
# HELP app_orders Orders placed
# TYPE app_orders unknown
app_orders 5.0
# HELP big_bytes Big
# TYPE big_bytes gauge
big_bytes 1.234567e+06
# HELP latency Latency
# TYPE latency histogram
latency_bucket{route="/a",le="0.1"} 1
latency_bucket{route="/a",le="1.0"} 2
latency_bucket{route="/a",le="2.5"} 2
latency_bucket{route="/a",le="+Inf"} 3
latency_sum{route="/a"} 3.5625
latency_count{route="/a"} 3
# HELP queue_depth Depth \\ of \"queue\"\nnow
# TYPE queue_depth gauge
queue_depth 6.0
# HELP rpc_seconds RPC time
# TYPE rpc_seconds summary
rpc_seconds_sum 0.75
rpc_seconds_count 2
# HELP shop_orders Orders by shop
# TYPE shop_orders counter
shop_orders_total{region="eu",shop="a\"b\\c\nd"} 1.0
shop_orders_total{region="us",shop="x"} 1.5
# HELP slo_seconds SLO
# TYPE slo_seconds summary
slo_seconds{quantile="0.5"} NaN
slo_seconds{quantile="0.99"} NaN
slo_seconds_sum 0.0
slo_seconds_count 0
# EOF
"#;

/// Compares line by line, leaving out the rr process' own `process_*` families.
fn assert_lines(got: &str, want: &str) {
    let process = |l: &&str| l.starts_with("process_") || l.starts_with("# HELP process_") || l.starts_with("# TYPE process_");
    let got: String = got.lines().filter(|l| !process(l)).map(|l| format!("{l}\n")).collect();
    let got = got.as_str();
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "line {}", i + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count(), "whole output:\n{got}");
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_collector_type_is_written_as_client_golang_writes_it() {
    let (metrics, rpc) = (free_port(), free_port());
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nmetrics:\n  address: 127.0.0.1:{metrics}\n  collect:\n    slo_seconds:\n      type: summary\n      help: SLO\n      objectives:\n        0.5: 0.05\n        0.99: 0.001\n"
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_metrics::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    server.until("/metrics", || async { reqwest::get(format!("http://127.0.0.1:{metrics}/metrics")).await.ok() }).await;

    let mut shop = collector("counter", "Orders by shop", &["shop", "region"]);
    shop["namespace"] = json!("shop");
    let mut latency = collector("histogram", "Latency", &["route"]);
    latency["buckets"] = json!([0.1, 1, 2.5]);
    let mut api = collector("summary", "API time", &["method"]);
    api["objectives"] = json!({"0.5": 0.05, "0.9": 0.01, "0.99": 0.001});
    let replies = php(
        rpc,
        json!([
            declare("app_orders", collector("counter", "Orders placed", &[])),
            declare("orders_total", shop),
            declare("queue_depth", collector("gauge", "Depth \\ of \"queue\"\nnow", &[])),
            declare("big_bytes", collector("gauge", "Big", &[])),
            declare("latency", latency),
            declare("rpc_seconds", collector("summary", "RPC time", &[])),
            declare("api_seconds", api),
            declare("unused", collector("counter", "Never fed", &["x"])),
            op("Add", "app_orders", 3.0, &[]),
            op("Add", "app_orders", 2.0, &["ignored, as by RoadRunner"]),
            op("Add", "orders_total", 1.0, &["a\"b\\c\nd", "eu"]),
            op("Add", "orders_total", 1.5, &["x", "us"]),
            op("Set", "queue_depth", 10.0, &[]),
            op("Sub", "queue_depth", 4.0, &[]),
            op("Set", "big_bytes", 1234567.0, &[]),
            op("Observe", "latency", 0.0625, &["/a"]),
            op("Observe", "latency", 0.5, &["/a"]),
            op("Observe", "latency", 3.0, &["/a"]),
            op("Observe", "rpc_seconds", 0.25, &[]),
            op("Observe", "rpc_seconds", 0.5, &[]),
            op("Observe", "api_seconds", 0.5, &["GET"]),
            op("Observe", "api_seconds", 0.125, &["GET"]),
            op("Observe", "api_seconds", 0.25, &["GET"]),
        ]),
    );
    assert!(replies.iter().all(|r| r["ok"] == true), "{replies:?}");

    let (text, parsed) = scrape(metrics).await;
    assert_lines(&text, TEXT);
    assert_eq!(value(&parsed, "shop_orders_total", &[("shop", "a\\\"b\\\\c\\nd"), ("region", "eu")]), Some(1.0), "{:?}", parsed.samples);
    assert!(parsed.docs.contains_key("queue_depth"));

    // Prometheus' own Accept header prefers OpenMetrics.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, om) = get(metrics, Some(prometheus_accept)).await;
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert_lines(&om, OPENMETRICS);
    // A scraper that ranks text/plain higher gets the text format.
    assert_lines(&get(metrics, Some("text/plain;version=0.0.4,application/openmetrics-text;q=0.5")).await.1, TEXT);

    // Error paths, with RoadRunner's texts; none of them changes what is exported.
    let mut bad_objectives = collector("summary", "", &[]);
    bad_objectives["objectives"] = json!({"1.5": 0.1});
    let mut app_namespace = collector("counter", "", &[]);
    app_namespace["namespace"] = json!("app");
    let r = php(
        rpc,
        json!([
            op("Add", "missing", 1.0, &[]),
            op("Add", "orders_total", 1.0, &["only-one"]),
            op("Add", "app_orders", -1.0, &[]),
            declare("app_orders", collector("gauge", "Another type", &[])),
            op("Set", "app_orders", 1.0, &[]),
            declare("orders", app_namespace),
            declare("bad_summary", bad_objectives),
            declare("meter", collector("meter", "", &[])),
            declare("with_le", collector("histogram", "", &["le"])),
            op("Observe", "queue_depth", 1.0, &[]),
            json!(["metrics.Unregister", "nope"]),
        ]),
    );
    assert_eq!(error(&r[0]), "undefined collector missing, try first Declare the desired collector");
    assert!(error(&r[1]).starts_with("required labels for collector orders_total"), "{}", r[1]);
    assert_eq!(error(&r[2]), "counter cannot decrease in value: app_orders");
    assert_eq!(r[3]["ok"], true, "a second declaration of a name is accepted and changes nothing, as in RoadRunner");
    assert_eq!(error(&r[4]), "collector `app_orders` does not support method `Set`");
    assert!(error(&r[5]).starts_with("duplicate metrics collector registration attempted: `app_orders`"), "{}", r[5]);
    assert!(error(&r[6]).contains("quantile `1.5` is not a number from 0 to 1"), "{}", r[6]);
    assert!(error(&r[7]).starts_with("unknown collector type `meter`"), "{}", r[7]);
    assert!(error(&r[8]).contains("\"le\" is not allowed as label name in histograms"), "{}", r[8]);
    assert_eq!(error(&r[9]), "collector `queue_depth` does not support method `Observe`");
    assert_eq!(error(&r[10]), "undefined collector nope");
    assert_lines(&scrape(metrics).await.0, TEXT);

    // Unregistered collectors leave the exposition.
    assert_eq!(php(rpc, json!([["metrics.Unregister", "app_orders"]]))[0]["ok"], true);
    assert!(!scrape(metrics).await.0.contains("app_orders"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_metrics_have_roadrunners_names_and_help() {
    let (http, metrics, rpc) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "version: '3'\nrpc:\n  listen: tcp://127.0.0.1:{rpc}\nmetrics:\n  address: 127.0.0.1:{metrics}\nserver:\n  command: \"php {}/tests/php/workers/http.php\"\nhttp:\n  address: 127.0.0.1:{http}\n  pool:\n    num_workers: 2\n",
        root().display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_rpc::Plugin>().plugin::<rr_metrics::Plugin>().plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let first = || async { reqwest::get(format!("http://127.0.0.1:{http}/")).await.ok().filter(|r| r.status().is_success()) };
    server.until("the first http response", first).await;

    let (text, s) = scrape(metrics).await;
    for family in [
        "# HELP rr_http_total_workers Total number of workers used by the HTTP plugin\n# TYPE rr_http_total_workers gauge\nrr_http_total_workers 2\n",
        "# HELP rr_http_workers_ready HTTP workers currently in ready state\n# TYPE rr_http_workers_ready gauge\nrr_http_workers_ready 2\n",
        "# HELP rr_http_workers_working HTTP workers currently in working state\n# TYPE rr_http_workers_working gauge\nrr_http_workers_working 0\n",
        "# HELP rr_http_workers_invalid HTTP workers currently in invalid,killing,destroyed,errored,inactive states\n# TYPE rr_http_workers_invalid gauge\nrr_http_workers_invalid 0\n",
        "# HELP rr_http_workers_memory_bytes Memory usage by HTTP workers.\n# TYPE rr_http_workers_memory_bytes gauge\n",
        "# HELP rr_http_worker_memory_bytes Worker current memory usage\n# TYPE rr_http_worker_memory_bytes gauge\n",
        "# HELP rr_http_worker_state Worker current state\n# TYPE rr_http_worker_state gauge\n",
    ] {
        assert!(text.contains(family), "missing\n{family}in\n{text}");
    }
    assert!(value(&s, "rr_http_workers_memory_bytes", &[]).unwrap() > 1e6);
    // The rr process itself, as client_golang's process collector reports it.
    for family in [
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\n",
        "# HELP process_max_fds Maximum number of open file descriptors.\n# TYPE process_max_fds gauge\n",
        "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\n",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n",
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\n",
        "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\n",
        "# HELP process_virtual_memory_max_bytes Maximum amount of virtual memory available in bytes.\n# TYPE process_virtual_memory_max_bytes gauge\n",
    ] {
        assert!(text.contains(family), "missing\n{family}in\n{text}");
    }
    assert!(value(&s, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(value(&s, "process_open_fds", &[]).unwrap() > 3.0);
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = value(&s, "process_start_time_seconds", &[]).unwrap();
    assert!(started <= since_epoch && started > since_epoch - 86400.0, "this test process started today: {started}");
    let states: Vec<_> = text.lines().filter(|l| l.starts_with("rr_http_worker_state{")).collect();
    assert_eq!(states.len(), 2, "{text}");
    // Labels in name order, as Go writes them: pid before state.
    assert!(states.iter().all(|l| l.starts_with("rr_http_worker_state{pid=\"") && l.ends_with(",state=\"ready\"} 0")), "{states:?}");
    // The queue and no-free-worker series are http_metrics' (as in RoadRunner), not the pool's.
    assert!(!text.contains("requests_queue") && !text.contains("no_free_workers"), "{text}");

    // Values follow the work: a slow request shows a working worker.
    let slow = tokio::spawn(reqwest::get(format!("http://127.0.0.1:{http}/sleep?ms=700")));
    server.until("a working worker", || async { (value(&scrape(metrics).await.1, "rr_http_workers_working", &[]) == Some(1.0)).then_some(()) }).await;
    slow.await.unwrap().unwrap();

    // An application collector cannot take a name a plugin exports.
    let r = php(rpc, json!([declare("rr_http_total_workers", collector("gauge", "", &[]))]));
    assert!(error(&r[0]).starts_with("duplicate metrics collector registration attempted: `rr_http_total_workers`"), "{}", r[0]);
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

    let (_, before) = scrape(metrics).await;
    let ok_before = value(&before, "rr_http_request_total", &[("status", "200")]).unwrap();
    for path in ["/", "/", "/sleep?ms=60", "/status?code=404", "/error"] {
        get(path).await.unwrap();
    }
    server.until("uptime of a second", || async { (value(&scrape(metrics).await.1, "rr_http_uptime_seconds", &[]) >= Some(1.0)).then_some(()) }).await;
    let (text, s) = scrape(metrics).await;
    assert_eq!(value(&s, "rr_http_request_total", &[("status", "200")]), Some(ok_before + 3.0));
    assert_eq!(value(&s, "rr_http_request_total", &[("status", "404")]), Some(1.0));
    assert_eq!(value(&s, "rr_http_request_total", &[("status", "500")]), Some(1.0), "a worker error counts as the 500 the client got");
    let histogram = s.samples.iter().find(|x| x.metric == "rr_http_request_duration_seconds" && x.labels.get("status") == Some("200")).expect("duration histogram");
    let prometheus_parse::Value::Histogram(buckets) = &histogram.value else { panic!("not a histogram: {:?}", histogram.value) };
    let under = |le: f64| buckets.iter().find(|b| b.less_than == le).unwrap().count;
    assert_eq!(under(f64::INFINITY), ok_before + 3.0);
    assert!(under(0.05) <= ok_before + 2.0, "the 60 ms request is above the 50 ms bucket");
    // RoadRunner's names, types, help texts and buckets (up to 60 s).
    for family in [
        "# HELP rr_http_request_total Total number of handled http requests after server restart.\n# TYPE rr_http_request_total counter\n",
        "# HELP rr_http_request_duration_seconds HTTP request duration.\n# TYPE rr_http_request_duration_seconds histogram\n",
        "# HELP rr_http_requests_queue Total number of queued requests.\n# TYPE rr_http_requests_queue gauge\nrr_http_requests_queue 0\n",
        "# HELP rr_http_no_free_workers_total Total number of NoFreeWorkers occurrences.\n# TYPE rr_http_no_free_workers_total counter\nrr_http_no_free_workers_total 0\n",
        "# HELP rr_http_uptime_seconds Uptime in seconds\n# TYPE rr_http_uptime_seconds counter\n",
    ] {
        assert!(text.contains(family), "missing\n{family}in\n{text}");
    }
    let les: Vec<_> = text.lines().filter_map(|l| l.strip_prefix("rr_http_request_duration_seconds_bucket{status=\"404\",le=\"")).map(|l| l.split('"').next().unwrap()).collect();
    assert_eq!(les, ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "20", "30", "60", "+Inf"]);
    server.stop().await.unwrap();
}
