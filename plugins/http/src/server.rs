//! Listeners: accept connections, serve them with hyper (HTTP/1.1 keep-alive, HTTP/2 by prior
//! knowledge on cleartext when `http2.h2c`, or by ALPN over TLS), drain them on shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rr_runtime::http::{ClientAddr, Handler};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::early_hints::{EarlyHints, HintsIo};
use crate::linger::Linger;
use crate::request::ConnInfo;

pub struct Listener {
    pub listener: TcpListener,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub h2c: bool,
    pub cfg: Arc<crate::Config>,
}

/// Serve until `shutdown`, then let open connections finish their requests (up to `drain`).
pub async fn run(l: Listener, handler: Handler, shutdown: CancellationToken, drain: Duration) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let head_bytes = l.cfg.max_header_bytes;
    builder.http2().max_concurrent_streams(l.cfg.http2.max_concurrent_streams).max_header_list_size(u32::try_from(head_bytes).unwrap_or(u32::MAX));
    // Slow or idle clients cannot hold a connection forever (hyper needs a timer for this).
    let read_header_timeout = Some(l.cfg.read_header_timeout).filter(|t| !t.is_zero());
    let mut http1 = builder.http1();
    http1.timer(TokioTimer::new()).header_read_timeout(read_header_timeout);
    // The head must fit hyper's read buffer (8 KiB at least); the default count keeps hyper's
    // allocation-free fast path.
    http1.max_buf_size(head_bytes.max(8192));
    if l.cfg.max_headers != 100 {
        http1.max_headers(l.cfg.max_headers);
    }
    let builder = if l.tls.is_none() && !l.h2c { builder.http1_only() } else { builder };
    let builder = Arc::new(builder);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = l.listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let (stream, unread) = Linger::new(stream);
        let (info, client) = (ConnInfo { tls: l.tls.is_some() }, ClientAddr(remote.ip()));
        let handler = handler.clone();
        let service = move |hints: EarlyHints| {
            let unread = unread.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let handled = match refuse(&req, head_bytes) {
                    Some(refused) => Err(refused),
                    None => {
                        req.extensions_mut().insert(info);
                        req.extensions_mut().insert(client);
                        req.extensions_mut().insert(hints.clone());
                        req.extensions_mut().insert(unread.clone());
                        Ok(handler(req.map(|b| b.map_err(rr_runtime::BoxError::from).boxed_unsync())))
                    }
                };
                async move {
                    Ok::<_, Infallible>(match handled {
                        Ok(fut) => fut.await,
                        Err(refused) => refused,
                    })
                }
            })
        };
        match &l.tls {
            None => {
                let (io, hints) = HintsIo::new(stream);
                let conn = builder.serve_connection(TokioIo::new(io), service(hints)).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "http: connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return tracing::debug!(error = %e, "https: handshake failed"),
                        Err(_) => return tracing::debug!("https: handshake timed out"),
                    };
                    let (io, hints) = HintsIo::new(tls);
                    let conn = builder.serve_connection(TokioIo::new(io), service(hints)).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "https: connection ended with an error");
                    }
                });
            }
        }
    }
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("http: connections still open after {drain:?}; closing them");
    }
}

/// The answer to a request refused before any handler sees it: a bad `Host` (400), or a head over
/// `max_header_bytes` that slipped through hyper's read buffer, which only bounds it roughly (431).
fn refuse<B>(req: &hyper::Request<B>, max_header_bytes: usize) -> Option<rr_runtime::http::Response> {
    if let Some(problem) = crate::host::problem(req.version(), req.headers(), req.uri().authority().map(|a| a.as_str())) {
        return Some(refusal(req.version(), 400, &format!("Bad Request: {problem}")));
    }
    // Counted as on the wire: `name: value\r\n` per field.
    let target = req.uri().authority().map_or(0, |a| a.as_str().len()) + req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let head = target + req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum::<usize>();
    (head > max_header_bytes).then(|| refusal(req.version(), 431, "Request Header Fields Too Large"))
}

/// Worded as Go's net/http does; an HTTP/1 connection is closed after it.
fn refusal(version: http::Version, status: u16, text: &str) -> rr_runtime::http::Response {
    let mut resp = crate::response::error_response(status, Some(format!("{status} {text}")));
    let headers = resp.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    if version < http::Version::HTTP_2 {
        headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    resp
}

/// TLS settings from the `ssl` section (rustls, ALPN h2 and http/1.1).
pub fn tls_acceptor(ssl: &crate::config::Ssl) -> Result<tokio_rustls::TlsAcceptor, String> {
    use crate::config::ClientAuth;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &std::path::Path, key: &str| {
        std::fs::read(path).map_err(|e| format!("config key `http.ssl.{key}`: cannot read `{}`: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &read(&ssl.cert, "cert")?[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("config key `http.ssl.cert`: invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("config key `http.ssl.cert`: no certificate found in `{}`", ssl.cert.display()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &read(&ssl.key, "key")?[..])
        .map_err(|e| format!("config key `http.ssl.key`: invalid PEM: {e}"))?
        .ok_or_else(|| format!("config key `http.ssl.key`: no private key found in `{}`", ssl.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (&ssl.root_ca, ssl.client_auth_type) {
        (Some(ca), mode) if mode != ClientAuth::NoClientCerts => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &read(ca, "root_ca")?[..]) {
                roots.add(cert.map_err(|e| format!("config key `http.ssl.root_ca`: {e}"))?).map_err(|e| format!("config key `http.ssl.root_ca`: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match mode {
                ClientAuth::RequestClientCert | ClientAuth::VerifyClientCertIfGiven => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("config key `http.ssl.root_ca`: {e}"))?)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| format!("config key `http.ssl`: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
