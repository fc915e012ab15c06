//! Listeners: accept connections, serve them with hyper (HTTP/1.1 keep-alive, HTTP/2 by prior
//! knowledge or `Upgrade: h2c` on cleartext when `http2.h2c`, or by ALPN over TLS), drain them
//! on shutdown.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{self, BoxFuture, FutureExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rr_runtime::http::{ClientAddr, Handler, Route};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::early_hints::{EarlyHints, HintsIo};
use crate::h2c_upgrade;
use crate::linger::{Linger, UnreadBody};
use crate::request::{ConnInfo, PeerAddr};

pub struct Listener {
    pub listener: TcpListener,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub h2c: bool,
    pub cfg: Arc<crate::Config>,
    /// Other plugins' endpoints, served ahead of the middleware chain (`Services::http_routes`).
    pub routes: Arc<[Route]>,
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
        let upgrade = l.h2c.then(|| Upgrade { builder: builder.clone(), watcher: Arc::new(Mutex::new(Some(graceful.watcher()))) });
        let conn = |hints| ConnService {
            handler: handler.clone(),
            head_bytes,
            info: ConnInfo { tls: l.tls.is_some() },
            client: ClientAddr(remote.ip()),
            peer: PeerAddr(remote),
            hints,
            unread: unread.clone(),
            upgrade: upgrade.clone(),
            routes: l.routes.clone(),
        };
        // Upgrades only where they are ours to take (h2c, another plugin's route): hyper hands
        // any 101 off otherwise.
        let upgrades = l.h2c || !l.routes.is_empty();
        match &l.tls {
            None => {
                let (io, hints) = HintsIo::new(stream);
                let (io, service) = (TokioIo::new(io), conn(hints));
                if upgrades {
                    spawn_watched(graceful.watch(builder.serve_connection_with_upgrades(io, service).into_owned()));
                } else {
                    spawn_watched(graceful.watch(builder.serve_connection(io, service).into_owned()));
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let service = conn(EarlyHints::default());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return tracing::debug!(error = %e, "https: handshake failed"),
                        Err(_) => return tracing::debug!("https: handshake timed out"),
                    };
                    // A tls-alpn-01 check ends with its handshake (RFC 8737 §3).
                    if tls.get_ref().1.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
                        return;
                    }
                    let (io, hints) = HintsIo::new(tls);
                    let (io, service) = (TokioIo::new(io), ConnService { hints, ..service });
                    let served = if upgrades {
                        watcher.watch(builder.serve_connection_with_upgrades(io, service).into_owned()).await
                    } else {
                        watcher.watch(builder.serve_connection(io, service).into_owned()).await
                    };
                    if let Err(e) = served {
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

fn spawn_watched<E: std::fmt::Display>(conn: impl Future<Output = Result<(), E>> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "http: connection ended with an error");
        }
    });
}

/// One connection's service: refuses bad heads, attaches the connection's facts to each request
/// and hands it to the handler; on h2c listeners it also takes `Upgrade: h2c`.
#[derive(Clone)]
struct ConnService {
    handler: Handler,
    head_bytes: usize,
    info: ConnInfo,
    client: ClientAddr,
    peer: PeerAddr,
    hints: EarlyHints,
    unread: UnreadBody,
    upgrade: Option<Upgrade>,
    routes: Arc<[Route]>,
}

/// Where an upgraded connection goes on: the listener's builder, watched for a graceful shutdown
/// (a connection upgrades at most once).
#[derive(Clone)]
struct Upgrade {
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Arc<Mutex<Option<Watcher>>>,
}

type Answer = Result<rr_runtime::http::Response, Infallible>;

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = rr_runtime::http::Response;
    type Error = Infallible;
    type Future = future::Map<future::Either<BoxFuture<'static, rr_runtime::http::Response>, future::Ready<rr_runtime::http::Response>>, fn(rr_runtime::http::Response) -> Answer>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        let answer = if let Some(refused) = refuse(&req, self.head_bytes) {
            future::Either::Right(future::ready(refused))
        } else if let Some(upgrade) = self.upgrade.as_ref().filter(|_| h2c_upgrade::wanted(&req)) {
            future::Either::Right(future::ready(upgrade.switch(&mut req, self.clone())))
        } else {
            req.extensions_mut().insert(self.info);
            req.extensions_mut().insert(self.client);
            req.extensions_mut().insert(self.peer);
            req.extensions_mut().insert(self.hints.clone());
            req.extensions_mut().insert(self.unread.clone());
            let handler = self.routes.iter().find(|r| r.matches(req.uri().path())).map_or(&self.handler, |r| &r.handler);
            future::Either::Left(handler(req.map(|b| b.map_err(rr_runtime::BoxError::from).boxed_unsync())))
        };
        answer.map(Ok as fn(_) -> Answer)
    }
}

impl Upgrade {
    /// Answer 101 and serve the connection as HTTP/2 from then on, the request on stream 1.
    fn switch(&self, req: &mut hyper::Request<Incoming>, service: ConnService) -> rr_runtime::http::Response {
        let Some(watcher) = self.watcher.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return refusal(req.version(), 400, "Bad Request: the connection was upgraded already");
        };
        let (frames, upgraded, builder) = (h2c_upgrade::request_frames(req), hyper::upgrade::on(req), self.builder.clone());
        tokio::spawn(async move {
            let io = match upgraded.await {
                Ok(io) => h2c_upgrade::Replay::new(TokioIo::new(io), frames),
                Err(e) => return tracing::debug!(error = %e, "http: h2c upgrade failed"),
            };
            let service = ConnService { upgrade: None, hints: EarlyHints::default(), ..service };
            if let Err(e) = watcher.watch(builder.serve_connection(TokioIo::new(io), service)).await {
                tracing::debug!(error = %e, "http: h2c connection ended with an error");
            }
        });
        h2c_upgrade::switching_protocols()
    }
}

/// The answer to a request refused before any handler sees it: a bad `Host` (400), or a head over
/// `max_header_bytes` that slipped through hyper's read buffer, which only bounds it roughly (431).
pub(crate) fn refuse<B>(req: &hyper::Request<B>, max_header_bytes: usize) -> Option<rr_runtime::http::Response> {
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

/// TLS settings from the `ssl` section (rustls, ALPN h2 and http/1.1); `certs` (ACME) takes the
/// place of `cert` and `key` and answers tls-alpn-01 checks.
pub fn tls_acceptor(ssl: &crate::config::Ssl, certs: Option<Arc<dyn rustls::server::ResolvesServerCert>>) -> Result<tokio_rustls::TlsAcceptor, String> {
    use crate::config::ClientAuth;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (&ssl.root_ca, ssl.client_auth_type) {
        (Some(ca), mode) if mode != ClientAuth::NoClientCerts => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &read(ca, "http.ssl.root_ca")?[..]) {
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
    let acme = certs.is_some();
    let mut config = match certs {
        Some(resolver) => builder.with_cert_resolver(resolver),
        None => {
            if ssl.cert.as_os_str().is_empty() || ssl.key.as_os_str().is_empty() {
                let key = if ssl.cert.as_os_str().is_empty() { "cert" } else { "key" };
                return Err(format!("config key `http.ssl.{key}`: required unless `http.ssl.acme` is set (a PEM file path)"));
            }
            let (certs, key) = read_cert_and_key(&ssl.cert, &ssl.key, "http.ssl")?;
            builder.with_single_cert(certs, key).map_err(|e| format!("config key `http.ssl`: {e}"))?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme {
        config.alpn_protocols.push(crate::acme::ACME_TLS_ALPN.to_vec());
    }
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The certificate chain and private key from PEM files; errors name `{section}.cert` / `.key`.
pub fn read_cert_and_key(
    cert: &std::path::Path,
    key: &std::path::Path,
    section: &str,
) -> Result<(Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>), String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &read(cert, &format!("{section}.cert"))?[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("config key `{section}.cert`: invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("config key `{section}.cert`: no certificate found in `{}`", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut &read(key, &format!("{section}.key"))?[..])
        .map_err(|e| format!("config key `{section}.key`: invalid PEM: {e}"))?
        .ok_or_else(|| format!("config key `{section}.key`: no private key found in `{}`", key.display()))?;
    Ok((certs, key))
}

fn read(path: &std::path::Path, config_key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("config key `{config_key}`: cannot read `{}`: {e}", path.display()))
}
