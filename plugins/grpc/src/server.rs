//! The HTTP/2 listener: TCP or unix socket, optional TLS (rustls, mTLS), keepalive pings,
//! stream limits, `max_connection_idle` / `max_connection_age` (+ grace), graceful stop.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::config::{Config, Listen, Tls};
use crate::handler::{self, Peer};

pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    pub async fn bind(cfg: &Config) -> Result<Listener, String> {
        let fail = |addr: &str, e: std::io::Error| format!("config key `grpc.listen`: cannot listen on `{addr}`: {e}");
        match cfg.listen()? {
            Listen::Tcp(addr) => tokio::net::TcpListener::bind(&addr).await.map(Listener::Tcp).map_err(|e| fail(&addr, e)),
            Listen::Unix(path) => {
                // A socket file left by an earlier run is replaced, as RoadRunner does.
                let _ = std::fs::remove_file(&path);
                tokio::net::UnixListener::bind(&path).map(Listener::Unix).map_err(|e| fail(&path.display().to_string(), e))
            }
        }
    }

    pub fn address(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(l) => l.local_addr().ok().and_then(|a| a.as_pathname().map(|p| format!("unix://{}", p.display()))).unwrap_or_default(),
        }
    }
}

/// Serve until `shutdown`; then GOAWAY every connection and let its calls finish within `drain`.
/// Connections are dealt out in turn to the `homes` runtimes (the I/O threads, one per core;
/// none: this runtime): a gRPC client opens few connections, so which thread serves each is not
/// left to chance as `SO_REUSEPORT` would (two connections on one thread half of the time).
pub async fn run(listener: Listener, homes: Vec<Handle>, tls: Option<tokio_rustls::TlsAcceptor>, shared: Arc<Shared>, shutdown: CancellationToken, drain: Duration) {
    // Every connection task holds a sender; all dropped = all connections closed.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let cfg = shared.cfg.clone();
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        // grpc-go sends no `date`; formatting and HPACK-encoding one costs every call.
        .auto_date_header(false)
        .max_concurrent_streams(cfg.max_concurrent_streams())
        .max_header_list_size(cfg.http2_header_list_size())
        .keep_alive_interval(cfg.ping_time())
        .keep_alive_timeout(cfg.ping_timeout());
    let builder = Arc::new(builder);
    let mut turn = 0;
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = shutdown.cancelled() => break,
        };
        let (io, address) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(target: "grpc", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (tls, shared, builder, conn) = (tls.clone(), shared.clone(), builder.clone(), Conn { open: open.clone(), shutdown: shutdown.clone() });
        let serve = async move {
            // Registered with the reactor of the thread that serves it.
            let io = match io {
                Io::Tcp(s) => tokio::net::TcpStream::from_std(s).map(Stream::Tcp),
                Io::Unix(s) => tokio::net::UnixStream::from_std(s).map(Stream::Unix),
            };
            let io = match io {
                Ok(io) => io,
                Err(e) => return tracing::warn!(target: "grpc", error = %e, "cannot register a connection"),
            };
            match (io, tls) {
                (Stream::Tcp(s), Some(acceptor)) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await {
                    Ok(Ok(s)) => serve_conn(s, Peer { address, tls: true }, shared, &builder, conn).await,
                    Ok(Err(e)) => tracing::debug!(target: "grpc", error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(target: "grpc", "TLS handshake timed out"),
                },
                (Stream::Tcp(s), None) => serve_conn(s, Peer { address, tls: false }, shared, &builder, conn).await,
                (Stream::Unix(s), _) => serve_conn(s, Peer { address, tls: false }, shared, &builder, conn).await,
            }
        };
        turn += 1;
        match homes.get(turn % homes.len().max(1)) {
            Some(home) => drop(home.spawn(serve)),
            None => drop(tokio::spawn(serve)),
        }
    }
    drop((listener, open));
    if tokio::time::timeout(drain, all_closed.recv()).await.is_err() {
        tracing::warn!(target: "grpc", "connections still open after {drain:?}; closing them");
    }
}

/// An accepted connection, free to move to the thread that will serve it.
enum Io {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Io, String)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, remote) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Io::Tcp(s.into_std()?), remote.to_string()))
        }
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((Io::Unix(s.into_std()?), "@".into()))
        }
    }
}

/// One connection; it is closed gracefully (GOAWAY, running calls finish) when the server stops,
/// once idle for `max_connection_idle` or older than `max_connection_age`; then its calls get
/// `max_connection_age_grace` to finish (the server's own drain bounds a stop).
/// A connection's ties to its listener: held open while it lives, told when the server stops.
struct Conn {
    open: tokio::sync::mpsc::Sender<()>,
    shutdown: CancellationToken,
}

async fn serve_conn<I>(io: I, peer: Peer, shared: Arc<Shared>, builder: &http2::Builder<TokioExecutor>, ties: Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = shared.cfg.clone();
    let active = Arc::new(AtomicUsize::new(0));
    let idle_changed = Arc::new(tokio::sync::Notify::new());
    let service = {
        let (active, idle_changed) = (active.clone(), idle_changed.clone());
        hyper::service::service_fn(move |req| {
            let (shared, peer, active, idle_changed) = (shared.clone(), peer.clone(), active.clone(), idle_changed.clone());
            active.fetch_add(1, Ordering::SeqCst);
            async move {
                // Boxed: hyper moves each stream's future into a task of its own, and a call's
                // state is large (copying it showed as 6 % of the instructions per call).
                let resp = Box::pin(handler::handle(shared, req, peer)).await;
                if active.fetch_sub(1, Ordering::SeqCst) == 1 {
                    idle_changed.notify_one();
                }
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let _open = ties.open;
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // A timer only when configured: the select below polls every branch on each wake-up.
    let aged = async {
        match cfg.max_connection_age {
            age if age.is_zero() => std::future::pending().await,
            age => tokio::time::sleep(age).await,
        }
    };
    tokio::pin!(aged);
    let idle = async {
        if cfg.max_connection_idle.is_zero() {
            return std::future::pending().await;
        }
        loop {
            if active.load(Ordering::SeqCst) == 0 && tokio::time::timeout(cfg.max_connection_idle, idle_changed.notified()).await.is_err() && active.load(Ordering::SeqCst) == 0 {
                return;
            }
            if active.load(Ordering::SeqCst) > 0 {
                idle_changed.notified().await;
            }
        }
    };
    tokio::pin!(idle);
    let closing = tokio::select! {
        r = conn.as_mut() => return log_end(r),
        _ = &mut aged => "max_connection_age",
        _ = &mut idle => "max_connection_idle",
        _ = ties.shutdown.cancelled() => "server stop",
    };
    tracing::debug!(target: "grpc", reason = closing, "closing a connection gracefully");
    conn.as_mut().graceful_shutdown();
    let grace = if cfg.max_connection_age_grace.is_zero() { Duration::from_secs(u64::MAX / 4) } else { cfg.max_connection_age_grace };
    if let Ok(r) = tokio::time::timeout(grace, conn).await {
        log_end(r)
    }
}

fn log_end(r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        tracing::debug!(target: "grpc", error = %e, "connection ended with an error");
    }
}

/// rustls settings from `grpc.tls`: ALPN h2; with `root_ca`, client certificates by
/// `client_auth_type` (RoadRunner's names; unknown ones mean no client certificate).
pub fn tls_acceptor(tls: &Tls) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &std::path::Path, key: &str| std::fs::read(path).map_err(|e| format!("config key `grpc.tls.{key}`: cannot read '{}': {e}", path.display()));
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &read(&tls.cert, "cert")?[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("config key `grpc.tls.cert`: invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("config key `grpc.tls.cert`: no certificate found in '{}'", tls.cert.display()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &read(&tls.key, "key")?[..])
        .map_err(|e| format!("config key `grpc.tls.key`: invalid PEM: {e}"))?
        .ok_or_else(|| format!("config key `grpc.tls.key`: no private key found in '{}'", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(rustls::DEFAULT_VERSIONS).map_err(|e| e.to_string())?;
    let mode = tls.client_auth_type.as_str();
    let builder = match tls.root_ca.as_ref().filter(|ca| !ca.as_os_str().is_empty()) {
        Some(ca) if mode != "no_client_cert" && !mode.is_empty() => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &read(ca, "root_ca")?[..]) {
                let cert = cert.map_err(|_| "could not append Certs from PEM".to_string())?;
                roots.add(cert).map_err(|_| "could not append Certs from PEM".to_string())?;
            }
            if roots.is_empty() {
                return Err("could not append Certs from PEM".into());
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match mode {
                "require_and_verify_client_cert" | "require_any_client_cert" => verifier,
                "request_client_cert" | "verify_client_cert_if_given" => verifier.allow_unauthenticated(),
                _ => return acceptor(builder.with_no_client_auth(), certs, key),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("config key `grpc.tls.root_ca`: {e}"))?)
        }
        _ => builder.with_no_client_auth(),
    };
    acceptor(builder, certs, key)
}

fn acceptor(
    builder: rustls::ConfigBuilder<rustls::ServerConfig, rustls::server::WantsServerCert>,
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let mut config = builder.with_single_cert(certs, key).map_err(|e| format!("config key `grpc.tls`: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
