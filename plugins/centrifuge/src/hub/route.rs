//! The hub's endpoints on the http plugin's listeners (`hub.http_path`), so that one port serves
//! the app and its sockets: registered at init as runtime `http_routes`, answered 503 until
//! the hub runs. The WebSocket is an HTTP/1.1 upgrade hyper hands over (plain or TLS); the
//! unidirectional endpoints are ordinary streamed responses.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::FutureExt;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rr_runtime::http::{Handler, Request, Response, Route};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::config::WEBSOCKET;
use super::sse::{self, Uni};
use super::{Hub, conn};

/// Where the routes find the hub once it runs.
pub type Slot = Arc<OnceLock<Arc<Hub>>>;

/// The routes for `http_path`: one per endpoint, so the app keeps every other path below it.
pub fn routes(http_path: &str, slot: Slot) -> Vec<(String, Route)> {
    let endpoints = [(WEBSOCKET, None), (Uni::Sse.endpoint(), Some(Uni::Sse)), (Uni::HttpStream.endpoint(), Some(Uni::HttpStream))];
    endpoints
        .into_iter()
        .map(|(endpoint, uni)| {
            let path = format!("{http_path}{endpoint}");
            let (slot, exact) = (slot.clone(), path.clone());
            let handler: Handler = Arc::new(move |req: Request| {
                let hub = slot.get().cloned();
                let exact = req.uri().path() == exact;
                async move {
                    match (hub, uni) {
                        _ if !exact => plain(http::StatusCode::NOT_FOUND, "not found"),
                        (None, _) => plain(http::StatusCode::SERVICE_UNAVAILABLE, "the centrifuge hub is not serving yet"),
                        (Some(hub), Some(uni)) => boxed(sse::handle(hub, uni, req).await),
                        (Some(hub), None) => websocket(hub, req),
                    }
                }
                .boxed()
            });
            (format!("centrifuge{endpoint}"), Route { prefix: path, handler })
        })
        .collect()
}

fn boxed(resp: http::Response<sse::Body>) -> Response {
    resp.map(|b| b.map_err(|never| match never {}).boxed_unsync())
}

fn plain(status: http::StatusCode, text: &str) -> Response {
    let mut resp = http::Response::new(http_body_util::Full::new(Bytes::from(text.to_string())).map_err(|never| match never {}).boxed_unsync());
    *resp.status_mut() = status;
    resp
}

/// Answer the upgrade (101) and run the session on the connection hyper hands over.
fn websocket(hub: Arc<Hub>, mut req: Request) -> Response {
    let h = req.headers();
    let has = |name: &str, token: &str| h.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token));
    let Some(key) = h.get("sec-websocket-key").filter(|_| req.method() == http::Method::GET && has("connection", "upgrade") && has("upgrade", "websocket")) else {
        return plain(http::StatusCode::BAD_REQUEST, "not a WebSocket upgrade request (HTTP/1.1 GET with `Connection: Upgrade`, `Upgrade: websocket`)");
    };
    if h.get("sec-websocket-version").is_none_or(|v| v != "13") {
        let mut resp = plain(http::StatusCode::UPGRADE_REQUIRED, "unsupported WebSocket version");
        resp.headers_mut().insert("sec-websocket-version", http::HeaderValue::from_static("13"));
        return resp;
    }
    let accept = derive_accept_key(key.as_bytes());
    let up = match conn::upgrade(&hub, req.uri(), req.headers()) {
        Ok(up) => up,
        Err((status, text)) => return plain(status, text),
    };
    let echo = up.echo;
    let upgraded = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match tokio::time::timeout(conn::HANDSHAKE_TIMEOUT, upgraded).await {
            Ok(Ok(io)) => TokioIo::new(io),
            Ok(Err(e)) => return tracing::debug!(target: "centrifuge", error = %e, "hub: websocket upgrade on the http listener failed"),
            Err(_) => return tracing::debug!(target: "centrifuge", "hub: websocket upgrade on the http listener not done in time"),
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, Some(conn::ws_config(&hub))).await;
        conn::session(hub, ws, up).await;
    });
    let mut resp = plain(http::StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = resp.headers_mut();
    headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("upgrade"));
    headers.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
    headers.insert("sec-websocket-accept", http::HeaderValue::from_str(&accept).unwrap_or_else(|_| http::HeaderValue::from_static("")));
    if let Some(chosen) = echo {
        headers.insert("sec-websocket-protocol", http::HeaderValue::from_static(chosen));
    }
    resp
}
