//! The unidirectional transports, as Centrifugo's `uni_sse` and `uni_http_stream`: one HTTP
//! request carries a JSON connect request, the response is a stream of JSON pushes
//! (`{"connect": ...}` first, `{}` pings, `{"disconnect": ...}` last), one per SSE event or per
//! line. SSE: `GET /connection/uni_sse?cf_connect=<JSON>` or `POST` with the JSON as body;
//! HTTP streaming: `POST /connection/uni_http_stream` with the JSON as body. Connect goes to PHP
//! as for WebSocket clients, with `transport` "uni_sse" / "uni_http_stream".

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::config::{CONNECTION_PREFIX, UNI_HTTP_STREAM, UNI_SSE};
use super::conn::{Session, new_client};
use super::protocol::{self as cp, Protocol, Reply};
use super::{Hub, Out};
use crate::codec::Metadata;

pub type Body = BoxBody<Bytes, Infallible>;

/// Which unidirectional transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uni {
    Sse,
    HttpStream,
}

impl Uni {
    /// The endpoint below the hub's prefix.
    pub fn endpoint(self) -> &'static str {
        match self {
            Uni::Sse => UNI_SSE,
            Uni::HttpStream => UNI_HTTP_STREAM,
        }
    }

    fn transport(self) -> &'static str {
        match self {
            Uni::Sse => "uni_sse",
            Uni::HttpStream => "uni_http_stream",
        }
    }

    /// One push on the wire: an SSE event, or a line.
    fn frame(self, push: &str) -> Result<Frame<Bytes>, Infallible> {
        Ok(Frame::data(Bytes::from(match self {
            Uni::Sse => format!("data: {push}\n\n"),
            Uni::HttpStream => format!("{push}\n"),
        })))
    }

    /// The transport a path on the hub's own listener names.
    pub fn at(path: &str) -> Option<Uni> {
        let endpoint = path.strip_prefix(CONNECTION_PREFIX)?;
        [Uni::Sse, Uni::HttpStream].into_iter().find(|u| u.endpoint() == endpoint)
    }
}

fn plain(status: http::StatusCode, text: &str) -> http::Response<Body> {
    let mut resp = http::Response::new(Full::new(Bytes::from(text.to_string())).boxed());
    *resp.status_mut() = status;
    resp
}

/// Serve one HTTP connection of the hub's own listener whose requests go to these endpoints.
pub async fn serve(hub: Arc<Hub>, stream: tokio::net::TcpStream) {
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let hub = hub.clone();
        async move {
            Ok::<_, Infallible>(match Uni::at(req.uri().path()) {
                Some(uni) => handle(hub, uni, req.map(|b| b.map_err(rr_runtime::BoxError::from).boxed_unsync())).await,
                None => plain(http::StatusCode::NOT_FOUND, "not found"),
            })
        }
    });
    // Headers that never end would hold the connection forever: hyper's timeout needs a timer.
    let _ = hyper::server::conn::http1::Builder::new().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(super::conn::HANDSHAKE_TIMEOUT).serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
}

/// One request to a unidirectional endpoint (the path is the caller's to check).
pub async fn handle(hub: Arc<Hub>, uni: Uni, req: rr_runtime::http::Request) -> http::Response<Body> {
    let post = match (uni, req.method()) {
        (Uni::HttpStream, &http::Method::OPTIONS) => {
            let mut resp = plain(http::StatusCode::NO_CONTENT, "");
            resp.headers_mut().insert("access-control-max-age", http::HeaderValue::from_static("300"));
            resp.headers_mut().insert("access-control-allow-methods", http::HeaderValue::from_static("POST, OPTIONS"));
            return resp;
        }
        (_, &http::Method::POST) => true,
        (Uni::Sse, &http::Method::GET) => false,
        _ => return plain(http::StatusCode::METHOD_NOT_ALLOWED, if uni == Uni::Sse { "use GET or POST" } else { "use POST" }),
    };
    let origin = req.headers().get("origin").and_then(|o| o.to_str().ok());
    if !hub.cfg.origin_allowed(origin) {
        return plain(http::StatusCode::FORBIDDEN, "request origin is not allowed");
    }
    if let Err((status, text)) = hub.limits.admit(&hub) {
        return plain(status, text);
    }
    let mut metadata = Metadata::new();
    for (name, value) in req.headers() {
        metadata.append(name.as_str(), String::from_utf8_lossy(value.as_bytes()));
    }
    let connect_json: Option<String> = if post {
        match read_body(req.into_body(), hub.cfg.max_message_size).await {
            Some(body) => Some(String::from_utf8_lossy(&body).into_owned()),
            None => return plain(http::StatusCode::PAYLOAD_TOO_LARGE, "request body over max_message_size"),
        }
    } else {
        req.uri().query().and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "cf_connect").map(|(_, v)| v.into_owned()))
    };
    // Empty or `null`: an empty connect request, as Centrifugo.
    let connect_json = connect_json.filter(|j| !j.trim().is_empty() && j.trim() != "null").unwrap_or_else(|| "{}".into());
    // Read as the connect command of a bidirectional client.
    let command = format!("{{\"id\":1,\"connect\":{connect_json}}}");
    let Some(connect) = cp::decode_commands(Protocol::Json, command.as_bytes()).ok().and_then(|mut c| c.pop()).and_then(|c| c.connect) else {
        return plain(http::StatusCode::BAD_REQUEST, "the body (or cf_connect) is not a JSON connect request");
    };
    let (client, rx) = new_client(&hub, Protocol::UniJson);
    let mut session = Session::new(hub.clone(), client.clone(), metadata, Arc::new(AtomicBool::new(false)), uni.transport());
    let (tx, body_rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    match session.connect(1, connect).await {
        Ok(None) => {}
        Ok(Some(reply)) => {
            // A refused connect: the error's code as a disconnect event.
            let e = reply.error.unwrap_or_default();
            client.disconnect(u16::try_from(e.code).ok().filter(|c| (3000..=4999).contains(c)).unwrap_or(3501), &e.message);
        }
        Err((code, reason)) => client.disconnect(code, &reason),
    }
    tokio::spawn(write(hub, uni, client, rx, tx));
    let stream = tokio_stream_from(body_rx);
    let mut resp = http::Response::new(StreamBody::new(stream).boxed());
    let h = resp.headers_mut();
    // HTTP streaming: what Go's net/http sniffs from Centrifugo's first JSON line.
    let content_type = if uni == Uni::Sse { "text/event-stream; charset=utf-8" } else { "text/plain; charset=utf-8" };
    h.insert("content-type", http::HeaderValue::from_static(content_type));
    h.insert("cache-control", http::HeaderValue::from_static("private, no-cache, no-store, must-revalidate, max-age=0"));
    h.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    resp
}

/// The body, or None past `max` bytes. (`http_body_util::Limited` over this boxed body makes
/// rustc fail to prove the route's future general enough to spawn.)
async fn read_body(mut body: rr_runtime::http::Body, max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > max {
                return None;
            }
            out.extend_from_slice(data);
        }
    }
    Some(out)
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Queue → pushes; pings every `ping_interval`; the disconnect push last. A reader that went
/// away shows as a failed send.
async fn write(hub: Arc<Hub>, uni: Uni, client: Arc<super::Client>, mut rx: mpsc::UnboundedReceiver<Out>, tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>) {
    let ping = hub.cfg.ping_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    loop {
        tokio::select! {
            biased;
            _ = client.closing.cancelled() => break,
            _ = hub.shutdown.cancelled() => { client.disconnect(cp::DISCONNECT_SHUTDOWN.0, cp::DISCONNECT_SHUTDOWN.1); break }
            _ = ticker.tick() => client.send_replies(&[Reply::default()]),
            out = rx.recv() => {
                let Some(Out::Frame(frame)) = out else { break };
                let n = frame.len();
                let text = String::from_utf8_lossy(&frame).into_owned();
                let mut gone = false;
                for line in text.split('\n') {
                    let sent = tokio::select! {
                        r = tx.send(uni.frame(line)) => r,
                        _ = client.closing.cancelled() => Ok(()),
                    };
                    gone |= sent.is_err();
                }
                client.written(n);
                if gone {
                    client.closing.cancel();
                    break;
                }
            }
        }
    }
    // Pending pushes (the connect result before a refusal) go out before the disconnect event.
    while let Ok(Out::Frame(frame)) = rx.try_recv() {
        if client.close_reason().is_some_and(|(code, _)| code == cp::DISCONNECT_SLOW.0) {
            break;
        }
        for line in String::from_utf8_lossy(&frame).split('\n') {
            let _ = tx.try_send(uni.frame(line));
        }
    }
    if let Some((code, reason)) = client.close_reason() {
        let push = serde_json::json!({"disconnect": {"code": code, "reason": reason}});
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tx.send(uni.frame(&push.to_string()))).await;
    }
    hub.remove(&client);
}
