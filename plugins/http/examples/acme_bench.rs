//! HTTPS with an ACME certificate (from Pebble) beside the same listener with certificate files,
//! side by side in one run, each figure the median over the runs:
//! 1. start until PHP's first HTTPS answer: files / ACME with a new order / ACME from `cache_dir`;
//! 2. full TLS handshakes per second on new connections (no resumption): rustls-acme's resolver
//!    against a single certificate, both ECDSA P-256 leaves, both servers up, taking turns going
//!    first; the client checks the handshake signature, not the chain (`SignatureOnly`).
//!
//! `bench/acme.sh [handshakes-per-run] [runs]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use rr_runtime::testing::{free_port, TestServer};
use rustls::pki_types::ServerName;

#[path = "../tests/support/pebble.rs"]
#[allow(dead_code)]
mod pebble;
use pebble::{Pebble, DOMAIN};

const CLIENTS: usize = 4;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("usage: acme_bench [handshakes-per-run] [runs]"));
    let (handshakes, runs) = (args.next().unwrap_or(2000), args.next().unwrap_or(5));
    let pebble = Pebble::start(None).await;
    let files = tempfile::tempdir().unwrap();
    let own = rcgen::generate_simple_self_signed(vec![DOMAIN.to_string()]).unwrap();
    std::fs::write(files.path().join("cert.pem"), own.cert.pem()).unwrap();
    std::fs::write(files.path().join("key.pem"), own.signing_key.serialize_pem()).unwrap();

    let (mut start_files, mut start_new, mut start_cached, mut hs_files, mut hs_acme) = (vec![], vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let (files_port, acme_port) = (free_port(), free_port());
        let section = format!("  ssl:\n    address: 127.0.0.1:{files_port}\n    cert: {0}/cert.pem\n    key: {0}/key.pem\n", files.path().display());
        let (files_server, took) = start(&section, files_port, &own.cert.pem()).await;
        start_files.push(ms(took));
        let cache = tempfile::tempdir().unwrap();
        let section = format!("  ssl:\n    address: 127.0.0.1:{acme_port}\n{}", pebble.acme_section(cache.path(), DOMAIN, &format!("      alt_http_port: {}\n", pebble.http_port)));
        let (acme_server, took) = start(&section, acme_port, &pebble.issuing_root).await;
        start_new.push(ms(took));
        // Both serve now; which side goes first takes turns.
        let mut sides = [(files_port, &mut hs_files), (acme_port, &mut hs_acme)];
        for i in [run % 2, 1 - run % 2] {
            let (port, figures) = &mut sides[i];
            figures.push(handshakes_per_sec(*port, handshakes).await);
        }
        files_server.stop().await.unwrap();
        acme_server.stop().await.unwrap();
        let (server, took) = start(&section, acme_port, &pebble.issuing_root).await;
        start_cached.push(ms(took));
        server.stop().await.unwrap();
        eprintln!("run {}/{runs} done; pebble issued {}", run + 1, pebble.issued());
    }
    let (sf, sn, sc, hf, ha) = (median(start_files), median(start_new), median(start_cached), median(hs_files), median(hs_acme));
    println!("| {runs} runs, medians | certificate files | ACME | ACME / files |");
    println!("|---|---|---|---|");
    println!("| start until PHP's first HTTPS answer, new order (ms) | {sf:.0} | {sn:.0} | {:.2} |", sn / sf);
    println!("| start until PHP's first HTTPS answer, from cache_dir (ms) | {sf:.0} | {sc:.0} | {:.2} |", sc / sf);
    println!("| full TLS handshakes/s, {CLIENTS} clients, {handshakes} per run | {hf:.0} | {ha:.0} | {:.2} |", ha / hf);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Start rr with the `http` section and time it until PHP answers over HTTPS on `port`.
async fn start(http_section: &str, port: u16, root_pem: &str) -> (TestServer, Duration) {
    let yaml = format!("version: '3'\nserver:\n  command: \"php {}/../../tests/php/workers/http.php\"\nhttp:\n{http_section}  pool:\n    num_workers: 1\n", env!("CARGO_MANIFEST_DIR"));
    let client = pebble::client_trusting(root_pem, port);
    let started = Instant::now();
    let build = rr_runtime::Build::new("rr", "bench").plugin::<rr_http::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let url = format!("https://{DOMAIN}:{port}/");
    server.until("PHP over HTTPS", || async { client.get(&url).send().await.ok().filter(|r| r.status() == 200) }).await;
    (server, started.elapsed())
}

async fn handshakes_per_sec(port: u16, total: usize) -> f64 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SignatureOnly(provider)))
        .with_no_client_auth();
    // Every handshake a full one, so the server resolves a certificate each time.
    config.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let connector = connector.clone();
            tokio::spawn(async move {
                for _ in 0..total / CLIENTS {
                    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                    connector.connect(ServerName::try_from(DOMAIN).unwrap(), tcp).await.unwrap();
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    (total / CLIENTS * CLIENTS) as f64 / started.elapsed().as_secs_f64()
}

/// Checks the handshake's signature but not the chain: Pebble's chain has an intermediate and
/// other keys than ours, and its cost to the client would blur the server's cost.
#[derive(Debug)]
struct SignatureOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &rustls::pki_types::CertificateDer<'_>, dss: &rustls::DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &rustls::pki_types::CertificateDer<'_>, dss: &rustls::DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
