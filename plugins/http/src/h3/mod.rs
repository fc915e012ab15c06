//! HTTP/3: a QUIC endpoint (quinn, h3) in front of the same handler chain as the TCP listeners,
//! so a request takes the same path to PHP whatever its protocol. The TCP listeners advertise
//! the endpoint with `Alt-Svc` ([`advertise`]).
//!
//! Stop: the endpoint takes no new connections, each connection sends GOAWAY and answers what it
//! accepted (up to the pool's `destroy_timeout`, as the TCP listeners), then the endpoint closes.

mod body;
mod connection;
mod quic;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use rr_runtime::http::{Handler, Request};
use rustls::server::ResolvesServerCert;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Http3;

pub use tls::resolver;

/// How long browsers may remember the endpoint (quic-go's `Alt-Svc` value).
const ALT_SVC_MAX_AGE: u32 = 2_592_000;

/// The UDP socket of `http.http3`, serving `certificates`, driven by the current tokio runtime.
pub fn bind(cfg: &Http3, certificates: Arc<dyn ResolvesServerCert>) -> Result<quinn::Endpoint, String> {
    use std::net::ToSocketAddrs;
    let server = tls::server_config(certificates)?;
    let text = if cfg.address.starts_with(':') { format!("0.0.0.0{}", cfg.address) } else { cfg.address.clone() };
    let bad = |e: &dyn std::fmt::Display| format!("config key `http.http3.address`: cannot listen on `{text}`: {e}");
    let address = text.to_socket_addrs().map_err(|e| bad(&e))?.next().ok_or_else(|| bad(&"no address"))?;
    quinn::Endpoint::server(server, address).map_err(|e| bad(&e))
}

/// Serve connections until `shutdown`, then let them finish their requests (up to `drain`).
pub async fn run(endpoint: quinn::Endpoint, handler: Handler, head_bytes: usize, shutdown: CancellationToken, drain: Duration) {
    let connections = TaskTracker::new();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
            _ = shutdown.cancelled() => break,
        };
        connections.spawn(connection::serve(incoming, handler.clone(), head_bytes, shutdown.clone()));
    }
    connections.close();
    if tokio::time::timeout(drain, connections.wait()).await.is_err() {
        tracing::warn!("http3: connections still open after {drain:?}; closing them");
    }
    endpoint.close(quinn::VarInt::from_u32(connection::H3_NO_ERROR), b"server stopped");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

/// `handler` with `Alt-Svc: h3=":port"` on every response that has none of its own.
pub fn advertise(handler: Handler, port: u16) -> Handler {
    let value = http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma={ALT_SVC_MAX_AGE}")).expect("ascii");
    Arc::new(move |req: Request| {
        let (next, value) = (handler(req), value.clone());
        Box::pin(async move {
            let mut resp = next.await;
            resp.headers_mut().entry(http::header::ALT_SVC).or_insert(value);
            resp
        })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rr_runtime::http::{Handler, Request};

    /// A handler whose response carries `alt_svc`, if any.
    fn app(alt_svc: Option<&'static str>) -> Handler {
        Arc::new(move |_req: Request| {
            let mut resp = crate::response::error_response(200, None);
            if let Some(value) = alt_svc {
                resp.headers_mut().insert(http::header::ALT_SVC, http::HeaderValue::from_static(value));
            }
            Box::pin(async move { resp })
        })
    }

    async fn alt_svc(handler: Handler) -> String {
        let req = http::Request::new(crate::response::full(bytes::Bytes::new()));
        handler(req).await.headers()[http::header::ALT_SVC].to_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn responses_advertise_the_endpoint_unless_the_app_advertises_its_own() {
        assert_eq!(alt_svc(super::advertise(app(None), 8443)).await, "h3=\":8443\"; ma=2592000");
        assert_eq!(alt_svc(super::advertise(app(Some("clear")), 8443)).await, "clear");
    }
}
