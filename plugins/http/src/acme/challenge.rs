//! Where the CA's checks are answered. http-01: `GET /.well-known/acme-challenge/<token>` gets the
//! key authorization of an order in progress (RFC 8555 §8.3). tls-alpn-01: the certificate
//! resolver answers, on any listener whose TLS settings have it.

use std::sync::Arc;

use rr_runtime::http::{Handler, Request};

use super::{Acme, Challenge, Config};
use crate::response::{error_response, full};

const PREFIX: &str = "/.well-known/acme-challenge/";

/// `next` with http-01 answers in front (the plain listener's handler, or [`not_found`] on a
/// listener of its own).
pub fn http01(acme: Acme, next: Handler) -> Handler {
    Arc::new(move |req: Request| {
        let answer = req.uri().path().strip_prefix(PREFIX).and_then(|token| acme.http01_answer(token));
        match answer {
            Some(key_auth) => {
                let mut resp = http::Response::new(full(key_auth.into()));
                resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
                Box::pin(async move { resp })
            }
            None => next(req),
        }
    })
}

/// Anything but a check, on a listener of the checks.
pub fn not_found() -> Handler {
    Arc::new(|_req: Request| Box::pin(async { error_response(404, None) }))
}

/// What a listener of its own for the checks needs: its port, the port's config key, TLS
/// (tls-alpn-01: the HTTPS listener's settings, `tls`) and its handler.
pub fn listener(acme: &Acme, cfg: &Config, tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, &'static str, Option<tokio_rustls::TlsAcceptor>, Handler) {
    match acme.challenge {
        Challenge::Http01 => (cfg.alt_http_port, "http.ssl.acme.alt_http_port", None, http01(acme.clone(), not_found())),
        Challenge::TlsAlpn01 => (cfg.alt_tlsalpn_port, "http.ssl.acme.alt_tlsalpn_port", tls, not_found()),
    }
}
