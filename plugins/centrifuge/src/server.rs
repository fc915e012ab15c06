//! The proxy listener: plain HTTP/2 gRPC (no TLS, as RoadRunner's `grpc.NewServer()`) on TCP
//! or a unix socket, stopped gracefully.

use std::time::Duration;

use futures::StreamExt;
use rr_runtime::BoxError;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Listen};
use crate::proxy::ProxyService;

pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    pub async fn bind(cfg: &Config) -> Result<Listener, String> {
        let fail = |addr: &str, e: std::io::Error| format!("config key `centrifuge.proxy_address`: cannot listen on `{addr}`: {e}");
        match cfg.listen()? {
            Listen::Tcp(addr) => tokio::net::TcpListener::bind(&addr).await.map(Listener::Tcp).map_err(|e| fail(&addr, e)),
            Listen::Unix(path) => {
                // A socket file left by an earlier run is replaced, as RoadRunner does.
                let _ = std::fs::remove_file(&path);
                tokio::net::UnixListener::bind(&path).map(|l| Listener::Unix(l, path.clone())).map_err(|e| fail(&path.display().to_string(), e))
            }
        }
    }

    pub fn address(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(_, path) => format!("unix://{}", path.display()),
        }
    }
}

/// Serve until `shutdown`, then stop gracefully: running calls get `drain` to finish.
pub async fn run(listener: Listener, service: ProxyService, shutdown: CancellationToken, drain: Duration) -> Result<(), BoxError> {
    // One service, so no router: every path reaches ProxyService, which answers UNIMPLEMENTED
    // for other services.
    let server = tonic::transport::Server::builder();
    let stopped = shutdown.clone();
    let signal = async move { stopped.cancelled().await };
    let served = async move {
        match listener {
            Listener::Tcp(l) => {
                let incoming = futures::stream::unfold(l, |l| async move {
                    let accepted = l.accept().await.map(|(s, _)| {
                        let _ = s.set_nodelay(true);
                        s
                    });
                    Some((accepted, l))
                });
                server.serve_with_incoming_shutdown(service, incoming.boxed(), signal).await
            }
            Listener::Unix(l, _) => {
                let incoming = futures::stream::unfold(l, |l| async move { Some((l.accept().await.map(|(s, _)| s), l)) });
                server.serve_with_incoming_shutdown(service, incoming.boxed(), signal).await
            }
        }
    };
    tokio::pin!(served);
    tokio::select! {
        r = &mut served => return r.map_err(|e| format!("centrifugo proxy server: {e}").into()),
        _ = shutdown.cancelled() => {}
    }
    if tokio::time::timeout(drain, served).await.is_err() {
        tracing::warn!(target: "centrifuge", "proxy calls still running after {drain:?}; closing their connections");
    }
    Ok(())
}
