//! `http.ssl.acme` against Pebble (tests/support/pebble.rs), with real PHP workers behind the
//! HTTPS listener.

use std::time::{Duration, Instant};

use rr_runtime::testing::{free_port, TestServer};

#[path = "support/pebble.rs"]
mod pebble;
#[path = "support/h3_client.rs"]
#[allow(dead_code)]
mod h3_client;
use pebble::{Pebble, BLOCKED, DOMAIN};

fn worker() -> String {
    format!("php {}/../../tests/php/workers/http.php", env!("CARGO_MANIFEST_DIR"))
}

fn yaml(http_section: &str) -> String {
    format!("version: '3'\nserver:\n  command: \"{}\"\nhttp:\n{http_section}\n  pool:\n    num_workers: 1\n", worker())
}

fn start(http_section: &str) -> TestServer {
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_http::Plugin>();
    TestServer::start(&build, &yaml(http_section))
}

/// Wait until the HTTPS listener on `port` serves PHP with a certificate from Pebble; returns
/// the leaf certificate (DER).
async fn served_leaf(server: &mut TestServer, pebble: &Pebble, port: u16) -> Vec<u8> {
    let client = pebble.client(port);
    let resp = server.until("an HTTPS answer with the ACME certificate", || async { client.get(format!("https://{DOMAIN}:{port}/")).send().await.ok() }).await;
    leaf_of(resp).await
}

/// The leaf certificate the server showed for `resp`; asserts PHP answered.
async fn leaf_of(resp: reqwest::Response) -> Vec<u8> {
    let leaf = resp.extensions().get::<reqwest::tls::TlsInfo>().and_then(|i| i.peer_certificate()).expect("a TLS peer certificate").to_vec();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "Hello, World!", "the PHP worker answers");
    leaf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_on_a_listener_of_its_own() {
    let pebble = Pebble::start(None).await;
    let cache = tempfile::tempdir().unwrap();
    let https = free_port();
    // No `http.address`: the challenge port gets a listener of its own.
    let acme = pebble.acme_section(cache.path(), DOMAIN, &format!("      challenge_type: http-01\n      alt_http_port: {}\n", pebble.http_port));
    let mut server = start(&format!("  ssl:\n    address: 127.0.0.1:{https}\n{acme}"));
    served_leaf(&mut server, &pebble, https).await;
    assert_eq!(pebble.issued(), 1);
    // Only challenge answers there.
    let resp = reqwest::get(format!("http://127.0.0.1:{}/", pebble.http_port)).await.unwrap();
    assert_eq!(resp.status(), 404);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_on_the_https_listener_or_one_of_its_own() {
    let pebble = Pebble::start(None).await;
    // The check comes to the HTTPS listener itself (the default setup: 443 both), or, behind a
    // port forward, to a port of its own.
    for (round, https) in [pebble.tls_port, free_port()].into_iter().enumerate() {
        let cache = tempfile::tempdir().unwrap();
        let acme = pebble.acme_section(cache.path(), DOMAIN, &format!("      challenge_type: tlsalpn-01\n      alt_tlsalpn_port: {}\n", pebble.tls_port));
        let mut server = start(&format!("  ssl:\n    address: 127.0.0.1:{https}\n{acme}"));
        let leaf = served_leaf(&mut server, &pebble, https).await;
        assert_eq!(pebble.issued(), round + 1);
        if https != pebble.tls_port {
            // That listener has the certificate too, but serves nothing else.
            let resp = pebble.client(pebble.tls_port).get(format!("https://{DOMAIN}:{}/", pebble.tls_port)).send().await.unwrap();
            assert_eq!(resp.status(), 404);
            assert_eq!(resp.extensions().get::<reqwest::tls::TlsInfo>().and_then(|i| i.peer_certificate()), Some(&leaf[..]));
        }
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_cached_certificate_without_a_new_order() {
    let pebble = Pebble::start(None).await;
    let cache = tempfile::tempdir().unwrap();
    let https = free_port();
    // The plain listener is on the challenge port: it answers the checks and serves PHP too.
    let section = format!(
        "  address: 127.0.0.1:{0}\n  ssl:\n    address: 127.0.0.1:{https}\n{1}",
        pebble.http_port,
        pebble.acme_section(cache.path(), DOMAIN, &format!("      alt_http_port: {}\n", pebble.http_port))
    );
    let mut server = start(&section);
    let first = served_leaf(&mut server, &pebble, https).await;
    let plain = reqwest::get(format!("http://127.0.0.1:{}/", pebble.http_port)).await.unwrap();
    assert_eq!(plain.text().await.unwrap(), "Hello, World!");
    server.stop().await.unwrap();
    assert_eq!(pebble.issued(), 1);
    let mut cached: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    cached.sort();
    assert!(cached.len() == 2 && cached[0].starts_with("cached_account_") && cached[1].starts_with("cached_cert_"), "{cached:?}");

    let mut server = start(&section);
    let again = served_leaf(&mut server, &pebble, https).await;
    assert_eq!(again, first, "the same certificate after a restart");
    assert_eq!(pebble.issued(), 1, "no new order after a restart");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_while_connections_go_on() {
    // Renewal comes at two thirds of the life: after about 20 s.
    let pebble = Pebble::start(Some(Duration::from_secs(30))).await;
    let cache = tempfile::tempdir().unwrap();
    let https = free_port();
    let acme = pebble.acme_section(cache.path(), DOMAIN, &format!("      alt_http_port: {}\n", pebble.http_port));
    let mut server = start(&format!("  ssl:\n    address: 127.0.0.1:{https}\n{acme}"));
    let kept = pebble.client(https);
    let url = format!("https://{DOMAIN}:{https}/");
    let first = server.until("the first certificate", || async { kept.get(&url).send().await.ok() }).await;
    let first = leaf_of(first).await;
    let started = Instant::now();
    let renewed = loop {
        // A new connection each time: it shows the certificate in use now.
        let leaf = leaf_of(pebble.client(https).get(&url).send().await.unwrap()).await;
        if leaf != first {
            break leaf;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no renewal within 60 s; pebble issued {}", pebble.issued());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(pebble.issued() >= 2);
    // The connection opened before the renewal is still open and still has the old certificate.
    assert_eq!(leaf_of(kept.get(&url).send().await.unwrap()).await, first);
    assert_ne!(renewed, first);
    server.stop().await.unwrap();
}

/// The error that ends a server started with `http_section`.
async fn start_error(http_section: &str) -> String {
    let config = rr_runtime::config::Config::from_str(&yaml(http_section)).unwrap();
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_http::Plugin>();
    let host = rr_runtime::host::Host::init(&build, &config).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), host.run_until(std::future::pending(), Duration::from_secs(10))).await;
    ended.expect("the start fails instead of waiting").unwrap_err().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_stops_the_start_with_the_cas_reason() {
    let pebble = Pebble::start(None).await;
    let cache = tempfile::tempdir().unwrap();
    let acme = pebble.acme_section(cache.path(), BLOCKED, &format!("      alt_http_port: {}\n", pebble.http_port));
    let err = start_error(&format!("  ssl:\n    address: 127.0.0.1:{}\n{acme}", free_port())).await;
    for part in ["http.ssl.acme: cannot obtain a certificate for `blocked.acme.test`", "rejectedIdentifier", "check `domains`"] {
        assert!(err.contains(part), "`{part}` missing in: {err}");
    }
    assert_eq!(pebble.issued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_dir_that_cannot_be_made_is_named() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let section = format!(
        "  ssl:\n    address: 127.0.0.1:{}\n    acme:\n      cache_dir: {}/certs\n      email: ops@acme.test\n      domains: [{DOMAIN}]\n      alt_http_port: {}\n",
        free_port(),
        file.path().display(),
        free_port()
    );
    let err = start_error(&section).await;
    assert!(err.contains("config key `http.ssl.acme.cache_dir`: cannot create") && err.contains("/certs"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_without_cert_and_key_serves_the_acme_certificate() {
    let pebble = Pebble::start(None).await;
    let cache = tempfile::tempdir().unwrap();
    let (https, quic) = (free_port(), free_port());
    let acme = pebble.acme_section(cache.path(), DOMAIN, &format!("      alt_http_port: {}\n", pebble.http_port));
    let mut server = start(&format!("  ssl:\n    address: 127.0.0.1:{https}\n{acme}\n  http3:\n    address: 127.0.0.1:{quic}\n"));
    let leaf = served_leaf(&mut server, &pebble, https).await;
    // Checked against Pebble's issuing root and the ACME domain: only the ACME certificate passes.
    let client = h3_client::H3Client::connect_as(quic, &pebble.issuing_root, DOMAIN).await.expect("an HTTP/3 connection with the ACME certificate");
    let (status, body) = client.get("/").await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"Hello, World!"[..]));
    assert_eq!(pebble.issued(), 1, "one certificate for HTTPS and HTTP/3");
    assert!(!leaf.is_empty());
    server.stop().await.unwrap();
}
