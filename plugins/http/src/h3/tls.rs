//! The QUIC endpoint's TLS: TLS 1.3 only (QUIC requires it), ALPN `h3`, certificates from a
//! rustls resolver, so a resolver that renews them (ACME) can stand in for the files.

use std::sync::Arc;

use rustls::server::ResolvesServerCert;
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use crate::config::Http3;

/// HTTP/3's certificates: `http.http3.cert` / `key` when set, else `acme`'s (`http.ssl.acme`).
pub fn resolver(cfg: &Http3, acme: Option<Arc<dyn ResolvesServerCert>>) -> Result<Arc<dyn ResolvesServerCert>, String> {
    match acme {
        Some(acme) if cfg.cert.is_none() && cfg.key.is_none() => Ok(acme),
        _ => resolver_from_files(cfg),
    }
}

/// The certificate and key from `http.http3.cert` / `key`, checked to belong together.
fn resolver_from_files(cfg: &Http3) -> Result<Arc<dyn ResolvesServerCert>, String> {
    let missing = |name: &str| format!("config key `http.http3.{name}` is missing: HTTP/3 needs a TLS certificate; set `http.http3.cert` and `http.http3.key` to PEM files, or configure `http.ssl.acme`");
    let cert = cfg.cert.as_deref().ok_or_else(|| missing("cert"))?;
    let key = cfg.key.as_deref().ok_or_else(|| missing("key"))?;
    let (certs, key) = crate::server::read_cert_and_key(cert, key, "http.http3")?;
    let certified = CertifiedKey::from_der(certs, key, &rustls::crypto::ring::default_provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => "config key `http.http3.key` is not the private key of the certificate in `http.http3.cert`".to_string(),
        e => format!("config keys `http.http3.cert` and `http.http3.key`: {e}"),
    })?;
    Ok(Arc::new(SingleCertAndKey::from(certified)))
}

/// quinn's server settings around `certificates`.
pub fn server_config(certificates: Arc<dyn ResolvesServerCert>) -> Result<quinn::ServerConfig, String> {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}
