//! Automatic certificates from an ACME CA (`http.ssl.acme`), with rustls-acme.
//!
//! [`start`] runs the order loop in a task: the certificate in `cache_dir` if there is one (no new
//! order), else a new order; then a renewal at two thirds of the certificate's life, retried with
//! backoff on failure. Its product is a rustls certificate resolver ([`Acme::resolver`]) that every
//! TLS listener takes: a renewed certificate goes into it in place, so new handshakes get the new
//! one while open connections go on. The same resolver answers tls-alpn-01 checks; `challenge`
//! answers http-01 checks.

pub mod challenge;
pub mod config;

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use rustls::server::ResolvesServerCert;
use rustls_acme::caches::DirCache;
use rustls_acme::{AcmeConfig, EventError, EventOk, ResolvesServerCertAcme, UseChallenge};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use config::{Challenge, Config};

/// The ALPN protocol of tls-alpn-01 checks (RFC 8737); such a connection ends after its handshake.
pub const ACME_TLS_ALPN: &[u8] = rustls_acme::acme::ACME_TLS_ALPN_NAME;

/// The certificates that the order loop keeps current.
#[derive(Clone)]
pub struct Acme {
    resolver: Arc<ResolvesServerCertAcme>,
    pub challenge: Challenge,
}

impl Acme {
    /// The current certificate for TLS handshakes (HTTPS, HTTP/3), and the tls-alpn-01 answer.
    pub fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        self.resolver.clone()
    }

    /// The key authorization for an http-01 token that the CA is checking now.
    pub fn http01_answer(&self, token: &str) -> Option<String> {
        self.resolver.get_http_01_key_auth(token)
    }
}

/// Failed orders (or cache reads) before the start gives up.
const START_TRIES: u32 = 3;

/// Resolves once the first certificate is in place (from the cache or a new order), or with the
/// first failure, worded for the user.
pub type FirstCertificate = oneshot::Receiver<Result<(), String>>;

/// Start the order loop; it ends with `shutdown`.
pub fn start(cfg: &Config, shutdown: CancellationToken) -> Result<(Acme, FirstCertificate), String> {
    create_private_dir(&cfg.cache_dir)?;
    let acme = AcmeConfig::new_with_provider(&cfg.domains, Arc::new(rustls::crypto::ring::default_provider()));
    let acme = match &cfg.ca_root {
        Some(root) => acme.client_tls_config(client_tls(root)?),
        None => acme,
    };
    let mut state = acme
        .contact_push(format!("mailto:{}", cfg.email))
        .directory(cfg.directory())
        .challenge_type(match cfg.challenge_type {
            Challenge::Http01 => UseChallenge::Http01,
            Challenge::TlsAlpn01 => UseChallenge::TlsAlpn01,
        })
        .cache(DirCache::new(cfg.cache_dir.clone()))
        .state();
    let resolver = state.resolver();
    let (first_tx, first_rx) = oneshot::channel();
    let (domains, directory) = (cfg.domains.join(", "), cfg.directory().to_string());
    tokio::spawn(async move {
        let (mut first, mut failures) = (Some(first_tx), 0);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = state.next() => match event {
                    Some(event) => event,
                    None => return,
                },
            };
            match event {
                Ok(EventOk::DeployedCachedCert) => tracing::info!(target: "http", %domains, "acme: certificate loaded from the cache"),
                Ok(EventOk::DeployedNewCert) => tracing::info!(target: "http", %domains, %directory, "acme: certificate obtained"),
                Ok(done) => {
                    tracing::debug!(target: "http", event = ?done, "acme: cache updated");
                    continue;
                }
                Err(e) => {
                    let text = failure(&e, &domains, &directory);
                    failures += 1;
                    match first.take() {
                        // A CA may refuse a nonce or be busy for a moment: the start gives up
                        // after a few tries (rustls-acme waits 1 s, then 2 s between them).
                        Some(pending) if failures < START_TRIES => {
                            tracing::warn!(target: "http", "{text} (try {failures} of {START_TRIES})");
                            first = Some(pending);
                        }
                        Some(first) => {
                            let _ = first.send(Err(text));
                        }
                        None => tracing::error!(target: "http", "{text} (the current certificate stays in use; retrying with backoff)"),
                    }
                    continue;
                }
            }
            if let Some(first) = first.take() {
                let _ = first.send(Ok(()));
            }
        }
    });
    Ok((Acme { resolver, challenge: cfg.challenge_type }, first_rx))
}

/// What went wrong, and what to check.
fn failure(e: &EventError<std::io::Error, std::io::Error>, domains: &str, directory: &str) -> String {
    match e {
        EventError::Order(_) | EventError::NewCertParse(_) => format!(
            "http.ssl.acme: cannot obtain a certificate for `{domains}` from `{directory}`: {e}; check `domains` (they must resolve to this server), the challenge port the CA reaches (`alt_http_port`/`alt_tlsalpn_port`) and `directory_url`"
        ),
        _ => format!("config key `http.ssl.acme.cache_dir`: {e}; it must be a writable directory that holds only what rr wrote there"),
    }
}

/// The TLS client settings for the CA's API when `ca_root` is set: that root alone is trusted
/// (else rustls-acme's public roots are).
pub(crate) fn client_tls(ca_root: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let key = "config key `http.ssl.acme.ca_root`";
    let pem = std::fs::read(ca_root).map_err(|e| format!("{key}: cannot read `{}`: {e}", ca_root.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.map_err(|e| format!("{key}: invalid PEM in `{}`: {e}", ca_root.display()))?).map_err(|e| format!("{key}: `{}`: {e}", ca_root.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{key}: no certificate found in `{}`", ca_root.display()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The cache holds private keys: a directory we create is the server user's alone.
fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("config key `http.ssl.acme.cache_dir`: cannot create `{}`: {e}", dir.display()))
}
