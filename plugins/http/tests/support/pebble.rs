//! Pebble, the ACME test CA (Debian's `pebble`, which tests/run.sh installs), started on loopback
//! ports of its own choosing, with pebble-challtestsrv as its DNS server: that answers every name
//! with 127.0.0.1, so Pebble's checks come to our challenge ports on this machine (Pebble's
//! `httpPort`/`tlsPort`). Shared by tests/acme.rs and examples/acme_bench.rs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rr_runtime::testing::free_port;

pub const DOMAIN: &str = "app.acme.test";
/// A name in Pebble's `domainBlocklist`: the CA refuses to order it.
pub const BLOCKED: &str = "blocked.acme.test";

pub struct Pebble {
    dir: tempfile::TempDir,
    api: u16,
    pub http_port: u16,
    pub tls_port: u16,
    /// The root of the API's own certificate (`ca_root` for us).
    api_root: PathBuf,
    /// The root that the issued chains lead to (Pebble makes a new one each run).
    pub issuing_root: String,
    _servers: [tokio::process::Child; 2],
}

impl Pebble {
    /// `validity`: of the certificates Pebble issues, when short ones are wanted.
    pub async fn start(validity: Option<Duration>) -> Pebble {
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
    pub fn acme_section(&self, cache_dir: &Path, domain: &str, extra: &str) -> String {
        format!(
            "    acme:\n      cache_dir: {}\n      email: ops@acme.test\n      domains: [{domain}]\n      directory_url: https://localhost:{}/dir\n      ca_root: {}\n{extra}",
            cache_dir.display(),
            self.api,
            self.api_root.display()
        )
    }

    /// How many certificates Pebble has issued so far.
    pub fn issued(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap().matches("Issued certificate serial").count()
    }

    /// An HTTPS client that trusts only Pebble's issuing root, with `DOMAIN` pointed at `port`.
    pub fn client(&self, port: u16) -> reqwest::Client {
        client_trusting(&self.issuing_root, port)
    }
}

/// An HTTPS client that trusts only `root_pem`, with `DOMAIN` pointed at `port`; it reports the
/// server's certificate (`TlsInfo`).
pub fn client_trusting(root_pem: &str, port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve(DOMAIN, ([127, 0, 0, 1], port).into())
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
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
