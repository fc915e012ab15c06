//! Traces across client -> rr -> PHP -> a job -> its PHP consumer, exported to real receivers
//! started here: OTLP over HTTP/protobuf and gRPC, zipkin; the stdout exporter; jaeger refused.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rr_runtime::testing::{TestServer, free_port};
use serde_json::Value;
use support::{Got, named};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn worker() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/traced.php").display().to_string()
}

fn build() -> rr_runtime::Build {
    rr_runtime::Build::new("rr", "test")
        .plugin::<rr_otel::Plugin>()
        .plugin::<rr_rpc::Plugin>()
        .plugin::<rr_http::Plugin>()
        .plugin::<rr_jobs_memory::Plugin>()
        .plugin::<rr_jobs::Plugin>()
        .plugin::<rr_kv_memory::Plugin>()
        .plugin::<rr_kv::Plugin>()
}

/// A running server with `otel` (the given section), http with the otel middleware, jobs and kv.
struct Rr {
    server: TestServer,
    http_port: u16,
    rpc_port: u16,
    jobs_log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Start an [`Rr`] and wait until `first_path` is served.
async fn start(otel: &str, first_path: &str) -> Rr {
    let dir = tempfile::tempdir().unwrap();
    let jobs_log = dir.path().join("jobs.log");
    let (http_port, rpc_port) = (free_port(), free_port());
    let yaml = format!(
        r#"version: '3'
rpc:
  listen: tcp://127.0.0.1:{rpc_port}
server:
  command: "php {}"
  env:
    JOBS_LOG: {}
otel:
{otel}
http:
  address: 127.0.0.1:{http_port}
  middleware: [otel]
  pool:
    num_workers: 1
jobs:
  consume: [traced]
  pool:
    num_workers: 1
  pipelines:
    traced:
      driver: memory
      config: {{}}
kv:
  local:
    driver: memory
    config: {{}}
"#,
        worker(),
        jobs_log.display()
    );
    let mut server = TestServer::start(&build(), &yaml);
    server.until("http", || async { reqwest::get(format!("http://127.0.0.1:{http_port}{first_path}")).await.ok() }).await;
    Rr { server, http_port, rpc_port, jobs_log, _dir: dir }
}

async fn get(port: u16, path: &str, traceparent: Option<&str>) -> Value {
    let mut req = reqwest::Client::new().get(format!("http://127.0.0.1:{port}{path}")).header("user-agent", "otel-test");
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp).header("baggage", "tenant=acme");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn job_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The span id inside a `traceparent` value, after checking its trace id.
fn span_of(traceparent: &str, trace: &str) -> String {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1], parts[3]), (4, "00", trace, "01"), "{traceparent}");
    parts[2].to_string()
}

/// One request that pushes a job: the caller's trace runs through the http spans, PHP, the push
/// and the consumer, and every parent link holds.
fn check_request_to_job_chain(spans: &[Got], seen: &Value, job: &Value) {
    let spans: Vec<Got> = spans.iter().filter(|s| s.trace == CALLER_TRACE).cloned().collect();
    let spans = &spans[..];
    let request = named(spans, "/push?1");
    assert_eq!((request.trace.as_str(), request.parent.as_str()), (CALLER_TRACE, CALLER_SPAN), "continues the caller's trace");
    assert_eq!(request.kind, 2, "SERVER");
    assert_eq!(request.attrs["http.request.method"], "GET");
    assert_eq!(request.attrs["url.path"], "/push");
    assert_eq!(request.attrs["http.response.status_code"], "200");
    assert_eq!(request.attrs["user_agent.original"], "otel-test");
    assert_eq!(request.attrs["network.peer.address"], "127.0.0.1");
    let http = named(spans, "http");
    assert_eq!((http.trace.as_str(), http.parent.as_str()), (CALLER_TRACE, request.span.as_str()));

    // PHP saw the `http` span in all three formats, and the caller's baggage.
    assert_eq!(span_of(seen["traceparent"].as_str().unwrap(), CALLER_TRACE), http.span);
    assert_eq!(seen["uber-trace-id"], format!("{CALLER_TRACE}:{}:0:1", http.span));
    assert_eq!(seen["baggage"], "tenant=acme");

    // The app put its traceparent into the job: push -> in_memory_push -> in_memory_listener -> jobs_listener.
    let push = named(spans, "push");
    assert_eq!((push.trace.as_str(), push.parent.as_str(), push.scope.as_str()), (CALLER_TRACE, http.span.as_str(), "jobs"));
    let driver_push = named(spans, "in_memory_push");
    assert_eq!(driver_push.parent, push.span);
    let listener = named(spans, "in_memory_listener");
    assert_eq!((listener.trace.as_str(), listener.parent.as_str()), (CALLER_TRACE, driver_push.span.as_str()));
    assert_eq!(named(spans, "jobs_listener").parent, listener.span);
    // The consumer saw the listener span, under Go's canonical header keys.
    assert_eq!(span_of(job["headers"]["Traceparent"][0].as_str().unwrap(), CALLER_TRACE), listener.span);
    assert_eq!(job["headers"]["Uber-Trace-Id"][0], format!("{CALLER_TRACE}:{}:0:1", listener.span));
    assert!(job["headers"].get("traceparent").is_none(), "one spelling only: {job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_request_php_job_consumer_one_trace() {
    let (collector_port, received) = support::http_receiver().await;
    let otel = format!(
        "  exporter: otlp\n  client: http\n  endpoint: 127.0.0.1:{collector_port}\n  insecure: true\n  compress: true\n  custom_url: /collector/v1/traces\n  headers:\n    api-key: secret-1\n  resource:\n    service_name: shop\n    service_version: 2.3.4"
    );
    let Rr { mut server, http_port, rpc_port, jobs_log, _dir } = start(&otel, "/ready").await;

    let seen = get(http_port, "/push?1", Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))).await;
    let job = wait_for("the job consumed", || job_log(&jobs_log).into_iter().next()).await;
    // Without a caller's trace, the request starts one.
    let fresh = get(http_port, "/fresh", None).await;
    assert!(!seen["traceparent"].as_str().unwrap().contains(fresh["traceparent"].as_str().unwrap().split('-').nth(1).unwrap()));
    assert!(fresh["tracestate"].is_null(), "no empty tracestate is sent: {fresh}");
    // A KV call is traced too.
    let mut rpc = server.rpc(&format!("tcp://127.0.0.1:{rpc_port}")).await;
    let set = rr_kv::proto::Request { storage: "local".into(), items: vec![rr_kv::proto::Item { key: "k".into(), value: b"v".to_vec(), timeout: String::new() }] };
    rpc.call("kv.Set", rr_runtime::rpc::Codec::Proto, &prost::Message::encode_to_vec(&set)).await.unwrap();

    // Nothing is lost at a graceful stop: the batch is exported then.
    server.stop().await.unwrap();
    let requests = received.lock().unwrap().clone();
    assert!(!requests.is_empty(), "the batch was exported at stop");
    for r in &requests {
        assert_eq!(r.path, "/collector/v1/traces");
        assert_eq!(r.headers["api-key"], "secret-1");
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
        assert_eq!(r.headers["content-encoding"], "gzip", "compress: true");
    }
    let spans: Vec<Got> = requests.iter().flat_map(|r| r.otlp()).collect();
    check_request_to_job_chain(&spans, &seen, &job);
    assert_eq!(named(&spans, "memory:set").scope, "kv");
    let fresh_span = named(&spans, "/fresh");
    assert_eq!(fresh_span.parent, "", "a root span");
    let resource = &spans[0].resource;
    assert_eq!(resource["service.name"], "shop");
    assert_eq!(resource["service.version"], "2.3.4");
    assert!(resource["service.namespace"].starts_with("shop-"), "{resource:?}");
    assert_eq!(resource["webengine.name"], "RoadRunner");
    assert_eq!(resource["webengine.version"], "test");
    assert_eq!(resource["os.name"], "linux");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_exports_with_metadata_and_gzip() {
    let (collector_port, collector) = support::grpc_receiver().await;
    let otel = format!("  client: grpc\n  endpoint: 127.0.0.1:{collector_port}\n  insecure: true\n  compress: true\n  headers:\n    api-key: secret-2");
    let Rr { server, http_port, jobs_log, _dir, .. } = start(&otel, "/ready").await;
    let seen = get(http_port, "/push?1", Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))).await;
    let job = wait_for("the job consumed", || job_log(&jobs_log).into_iter().next()).await;
    server.stop().await.unwrap();

    let exports = collector.exports.lock().unwrap().clone();
    assert!(!exports.is_empty(), "the batch was exported at stop");
    for (metadata, _) in &exports {
        assert_eq!(metadata.get("api-key").unwrap(), "secret-2");
        assert_eq!(metadata.get("grpc-encoding").unwrap(), "gzip");
    }
    let spans: Vec<Got> = exports.into_iter().flat_map(|(_, s)| s).collect();
    check_request_to_job_chain(&spans, &seen, &job);
    assert_eq!(spans[0].resource["service.name"], "RoadRunner", "the default service name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_receives_the_spans_as_json() {
    let (zipkin_port, received) = support::http_receiver().await;
    let otel = format!("  exporter: zipkin\n  endpoint: http://127.0.0.1:{zipkin_port}/api/v2/spans\n  resource:\n    service_name: zipped");
    let Rr { server, http_port, _dir, .. } = start(&otel, "/ready").await;
    let seen = get(http_port, "/hello", Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))).await;
    server.stop().await.unwrap();

    let requests = received.lock().unwrap().clone();
    assert!(!requests.is_empty(), "zipkin got the batch at stop");
    assert_eq!(requests[0].path, "/api/v2/spans");
    let spans: Vec<Value> = requests.iter().flat_map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).unwrap()).collect();
    let http = spans.iter().find(|s| s["name"] == "http" && s["traceId"] == CALLER_TRACE).unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(http["traceId"], CALLER_TRACE);
    assert_eq!(http["kind"], "SERVER");
    assert_eq!(http["localEndpoint"]["serviceName"], "zipped", "the service name (src/zipkin.rs)");
    assert_eq!(span_of(seen["traceparent"].as_str().unwrap(), CALLER_TRACE), http["id"].as_str().unwrap());
    let request = spans.iter().find(|s| s["name"] == "/hello").unwrap();
    assert_eq!(request["parentId"], CALLER_SPAN);
    assert_eq!(http["parentId"], request["id"]);
}

#[tokio::test]
async fn jaeger_is_refused_with_roadrunners_message() {
    let config = rr_runtime::config::Config::from_str("version: '3'\notel:\n  exporter: jaeger\n").unwrap();
    let err = rr_runtime::host::Host::init(&build(), &config).err().expect("jaeger is refused").to_string();
    assert_eq!(
        err,
        "plugin `otel` failed to initialise: jaeger exporter is deprecated, use OTLP instead: https://github.com/roadrunner-server/roadrunner/issues/1699"
    );
}

/// Run one test of this file again as a child process with `env` (the exporters' process-wide
/// inputs: stdout, `OTEL_*` variables); the child sees `OTEL_TEST_CHILD` and does the server part.
fn run_child(test: &str, env: &[(&str, String)]) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("OTEL_TEST_CHILD", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The child's part: a server with `otel` (the given section) that serves one request to `path`.
fn serve_one_request(otel: &str, path: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async { start(otel, path).await.server.stop().await.unwrap() });
}

#[test]
fn stdout_exporter_prints_each_span_as_json() {
    if std::env::var_os("OTEL_TEST_CHILD").is_some() {
        return serve_one_request("  exporter: stdout", "/printed");
    }
    let stdout = run_child("stdout_exporter_prints_each_span_as_json", &[]);
    let spans: Vec<Value> = serde_json::Deserializer::from_str(&stdout[stdout.find('{').unwrap()..stdout.rfind('}').unwrap() + 1])
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    let request = spans.iter().find(|s| s["Name"] == "/printed").unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(request["SpanKind"], 2);
    assert_eq!(request["SpanContext"]["TraceFlags"], "01");
    assert!(request["Attributes"].as_array().unwrap().iter().any(|a| a["Key"] == "http.request.method" && a["Value"]["Value"] == "GET"), "{request}");
    let http = spans.iter().find(|s| s["Name"] == "http").unwrap();
    assert_eq!(http["Parent"]["SpanID"], request["SpanContext"]["SpanID"]);
    assert!(request["Resource"].as_array().unwrap().iter().any(|a| a["Key"] == "service.name" && a["Value"]["Value"] == "RoadRunner"));
}

/// An empty `otel` section: transport, endpoint and service come from the OTEL_* variables.
#[test]
fn otel_environment_variables_fill_an_empty_section() {
    if std::env::var_os("OTEL_TEST_CHILD").is_some() {
        return serve_one_request("  {}", "/from-env");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (collector_port, collector) = runtime.block_on(support::grpc_receiver());
    let env = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{collector_port}")),
        ("OTEL_SERVICE_NAME", "from-env".to_string()),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging".to_string()),
    ];
    run_child("otel_environment_variables_fill_an_empty_section", &env);
    let spans: Vec<Got> = collector.exports.lock().unwrap().iter().flat_map(|(_, s)| s.clone()).collect();
    let request = named(&spans, "/from-env");
    assert_eq!(request.resource["service.name"], "from-env");
    assert_eq!(request.resource["deployment.environment"], "staging");
}
