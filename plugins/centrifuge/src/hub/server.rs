//! The hub's listener on `hub.address`: every accepted connection is one session. Without one
//! (`http_path` only) this still sweeps history and ends the sessions at shutdown.

use std::sync::Arc;

use rr_runtime::BoxError;
use tokio_util::sync::CancellationToken;

use super::{Hub, conn};

pub async fn bind(hub: &Hub) -> Result<tokio::net::TcpListener, String> {
    let address = &hub.cfg.address;
    tokio::net::TcpListener::bind(address).await.map_err(|e| format!("config key `centrifuge.hub.address`: cannot listen on `{address}`: {e}"))
}

/// Accept until `shutdown`; then every session is closed with 3001 "shutdown".
pub async fn run(hub: Arc<Hub>, listener: Option<tokio::net::TcpListener>, shutdown: CancellationToken) -> Result<(), BoxError> {
    let mut sessions = tokio::task::JoinSet::new();
    let every = if hub.cfg.history_ttl.is_zero() { std::time::Duration::from_secs(60) } else { hub.cfg.history_ttl.min(std::time::Duration::from_secs(60)) };
    let mut sweep = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sweep.tick() => hub.broker.sweep(),
            accepted = async { listener.as_ref().unwrap().accept().await }, if listener.is_some() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    sessions.spawn(dispatch(hub.clone(), stream));
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving the open sessions.
                    tracing::warn!(target: "centrifuge", error = %e, "hub: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    hub.shutdown.cancel();
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(6), drain).await.is_err() {
        tracing::warn!(target: "centrifuge", "hub: sessions still closing at shutdown; dropped");
    }
    Ok(())
}

/// WebSocket or a unidirectional transport: the request line decides (peeked, so the handshake
/// reads it again).
async fn dispatch(hub: Arc<Hub>, stream: tokio::net::TcpStream) {
    let mut buf = [0u8; 96];
    let mut seen = 0;
    for _ in 0..50 {
        seen = match tokio::time::timeout(std::time::Duration::from_secs(10), stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        if seen == buf.len() || buf[..seen].contains(&b'\n') {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let line = String::from_utf8_lossy(&buf[..seen]);
    let target = line.split(' ').nth(1).unwrap_or_default();
    let uni = super::sse::Uni::at(target.split('?').next().unwrap_or_default()).is_some();
    if uni { super::sse::serve(hub, stream).await } else { conn::serve(hub, stream).await }
}
