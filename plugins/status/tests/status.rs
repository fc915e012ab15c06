//! /health and /ready follow the pool: ready turns unavailable while every worker is busy and
//! comes back; unknown plugins and the custom unavailable code.

use std::path::Path;
use std::time::Duration;

use rr_runtime::testing::{free_port, TestServer};
use serde_json::Value;

async fn probe(port: u16, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_free_workers() {
    let (http, status) = (free_port(), free_port());
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/php/workers/http.php");
    let yaml = format!(
        "version: '3'\nstatus:\n  address: 127.0.0.1:{status}\n  unavailable_status_code: 500\nserver:\n  command: \"php {}\"\nhttp:\n  address: 127.0.0.1:{http}\n  pool:\n    num_workers: 1\n",
        worker.display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_status::Plugin>().plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let first = || async { reqwest::get(format!("http://127.0.0.1:{http}/")).await.ok().filter(|r| r.status().is_success()) };
    server.until("the first http response", first).await;

    let (code, body) = probe(status, "/ready?plugin=http").await;
    assert_eq!(code, 200);
    assert_eq!(body[0]["plugin_name"], "http");
    assert_eq!(body[0]["status_code"], 200);

    let busy = tokio::spawn(reqwest::get(format!("http://127.0.0.1:{http}/sleep?ms=800")));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (code, body) = probe(status, "/ready?plugin=http").await;
    assert_eq!(code, 500, "every worker busy: not ready ({body})");
    assert_eq!(probe(status, "/health?plugin=http").await.0, 200, "still healthy");
    busy.await.unwrap().unwrap();
    assert_eq!(probe(status, "/ready").await.0, 200, "ready again");

    let (code, body) = probe(status, "/health?plugin=http&plugin=nope").await;
    assert_eq!(code, 500);
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert!(body[1]["error_message"].as_str().unwrap().contains("`nope`"));
    server.stop().await.unwrap();
}
