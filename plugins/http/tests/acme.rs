//! `http.ssl.acme` against Pebble, the ACME test CA (Debian's `pebble`, which tests/run.sh installs),
//! with real PHP workers behind the HTTPS listener.
//!
//! Each test starts its own Pebble on loopback ports it picks, and pebble-challtestsrv as Pebble's
//! DNS server, which answers every name with 127.0.0.1: Pebble's checks come to our challenge
//! ports on this machine (`httpPort`/`tlsPort` in Pebble's config are those ports).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rr_runtime::testing::{free_port, TestServer};

const DOMAIN: &str = "app.acme.test";
/// A name in Pebble's `domainBlocklist`: the CA refuses to order it.
const BLOCKED: &str = "blocked.acme.test";

struct Pebble {
    dir: tempfile::TempDir,
    api: u16,
    http_port: u16,
    tls_port: u16,
    /// The root of the API's own certificate (`ca_root` for us).
    api_root: PathBuf,
    /// The root that the issued chains lead to (Pebble makes a new one each run).
    issuing_root: String,
    _servers: [tokio::process::Child; 2],
}

impl Pebble {
    /// `validity`: of the certificates Pebble issues, when short ones are wanted.
    async fn start(validity: Option<Duration>) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let (api, management, http_port, tls_port, dns) = (free_port(), free_port(), free_port(), free_port(), free_port());
        let (api_root, cert, key) = api_certificate(dir.path());
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{api}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
            "domainBlocklist": [BLOCKED],
        }});
        if let Some(validity) = validity {
            config["pebble"]["certificateValidityPeriod"] = validity.as_secs().into();
        }
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns_server = tokio::process::Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-management", &format!("127.0.0.1:{}", free_port())])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .kill_on_drop(true)
            .spawn()
            .expect("pebble-challtestsrv (Debian package `pebble`; tests/run.sh installs it)");
        let ca = tokio::process::Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No artificial waits before checks; no refused nonces (Pebble refuses 5% by default to
            // test clients' retries, which rustls-acme leaves to its order-level backoff).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .kill_on_drop(true)
            .spawn()
            .expect("pebble (Debian package `pebble`; tests/run.sh installs it)");
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&api_root).unwrap()).unwrap())
            .tls_built_in_root_certs(false)
            .build()
            .unwrap();
        let started = Instant::now();
        let issuing_root = loop {
            if let Ok(resp) = client.get(format!("https://localhost:{management}/roots/0")).send().await
                && resp.status() == 200
            {
                break resp.text().await.unwrap();
            }
            assert!(started.elapsed() < Duration::from_secs(20), "pebble did not start: {}", std::fs::read_to_string(dir.path().join("pebble.err")).unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Pebble { dir, api, http_port, tls_port, api_root, issuing_root, _servers: [dns_server, ca] }
    }

    /// The `ssl.acme` section (indented under `ssl:`) for this CA.
    fn acme_section(&self, cache_dir: &Path, domain: &str, extra: &str) -> String {
        format!(
            "    acme:\n      cache_dir: {}\n      email: ops@acme.test\n      domains: [{domain}]\n      directory_url: https://localhost:{}/dir\n      ca_root: {}\n{extra}",
            cache_dir.display(),
            self.api,
            self.api_root.display()
        )
    }

    /// How many certificates Pebble has issued so far.
    fn issued(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap().matches("Issued certificate serial").count()
    }

    /// An HTTPS client that trusts only Pebble's issuing root, with `DOMAIN` pointed at `port`.
    fn client(&self, port: u16) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.issuing_root.as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .resolve(DOMAIN, ([127, 0, 0, 1], port).into())
            .tls_info(true)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }
}

/// A CA and, signed by it, a certificate for localhost: Pebble's API serves the latter.
fn api_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "pebble api test root");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap().signed_by(&key, &ca).unwrap();
    let paths = (dir.join("api-root.pem"), dir.join("api-cert.pem"), dir.join("api-key.pem"));
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

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
async fn tlsalpn01_on_the_https_listener() {
    let pebble = Pebble::start(None).await;
    let cache = tempfile::tempdir().unwrap();
    // The CA's tls-alpn-01 check comes to the HTTPS listener itself (the default setup: 443 both).
    let https = pebble.tls_port;
    let acme = pebble.acme_section(cache.path(), DOMAIN, &format!("      challenge_type: tlsalpn-01\n      alt_tlsalpn_port: {https}\n"));
    let mut server = start(&format!("  ssl:\n    address: 127.0.0.1:{https}\n{acme}"));
    served_leaf(&mut server, &pebble, https).await;
    assert_eq!(pebble.issued(), 1);
    server.stop().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_stops_the_start_with_the_cas_reason() {
    let pebble = Pebble::start(None).await;
    let cache = tempfile::tempdir().unwrap();
    let acme = pebble.acme_section(cache.path(), BLOCKED, &format!("      alt_http_port: {}\n", pebble.http_port));
    let config = rr_runtime::config::Config::from_str(&yaml(&format!("  ssl:\n    address: 127.0.0.1:{}\n{acme}", free_port()))).unwrap();
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_http::Plugin>();
    let host = rr_runtime::host::Host::init(&build, &config).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), host.run_until(std::future::pending(), Duration::from_secs(10))).await;
    let err = ended.expect("the start fails instead of waiting").unwrap_err().to_string();
    for part in ["http.ssl.acme: cannot obtain a certificate for `blocked.acme.test`", "rejectedIdentifier", "check `domains`"] {
        assert!(err.contains(part), "`{part}` missing in: {err}");
    }
    assert_eq!(pebble.issued(), 0);
}
