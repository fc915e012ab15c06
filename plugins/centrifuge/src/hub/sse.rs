//! Unidirectional SSE, as Centrifugo's `uni_sse`: `GET /connection/uni_sse?cf_connect=<JSON
//! connect request>` (or `POST` with the JSON as body) answers `text/event-stream`; each event
//! is one JSON push (`{"connect": ...}` first, `{}` pings, `{"disconnect": ...}` last).
//! Connect goes to PHP as for WebSocket clients, with `transport` "uni_sse".

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::conn::{Session, new_client};
use super::protocol::{self as cp, Protocol, Reply};
use super::{Hub, Out};
use crate::codec::Metadata;

pub const UNI_SSE_PATH: &str = "/connection/uni_sse";

type Body = BoxBody<Bytes, Infallible>;

fn plain(status: http::StatusCode, text: &str) -> http::Response<Body> {
    let mut resp = http::Response::new(Full::new(Bytes::from(text.to_string())).boxed());
    *resp.status_mut() = status;
    resp
}

/// Serve one HTTP connection whose requests go to the SSE endpoint.
pub async fn serve(hub: Arc<Hub>, stream: tokio::net::TcpStream) {
    let service = hyper::service::service_fn(move |req| {
        let hub = hub.clone();
        async move { Ok::<_, Infallible>(handle(hub, req).await) }
    });
    // Headers that never end would hold the connection forever: hyper's timeout needs a timer.
    let _ = hyper::server::conn::http1::Builder::new().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(super::conn::HANDSHAKE_TIMEOUT).serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
}

async fn handle(hub: Arc<Hub>, req: http::Request<hyper::body::Incoming>) -> http::Response<Body> {
    if req.uri().path() != UNI_SSE_PATH {
        return plain(http::StatusCode::NOT_FOUND, "not found");
    }
    let origin = req.headers().get("origin").and_then(|o| o.to_str().ok());
    if !hub.cfg.origin_allowed(origin) {
        return plain(http::StatusCode::FORBIDDEN, "request origin is not allowed");
    }
    let mut metadata = Metadata::new();
    for (name, value) in req.headers() {
        metadata.append(name.as_str(), String::from_utf8_lossy(value.as_bytes()));
    }
    let connect_json: Option<String> = match *req.method() {
        http::Method::GET => req.uri().query().and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "cf_connect").map(|(_, v)| v.into_owned())),
        http::Method::POST => {
            let limited = http_body_util::Limited::new(req.into_body(), hub.cfg.max_message_size);
            match limited.collect().await {
                Ok(body) => Some(String::from_utf8_lossy(&body.to_bytes()).into_owned()),
                Err(_) => return plain(http::StatusCode::PAYLOAD_TOO_LARGE, "request body over max_message_size"),
            }
        }
        _ => return plain(http::StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
    };
    let connect_json = connect_json.filter(|j| !j.trim().is_empty()).unwrap_or_else(|| "{}".into());
    // Read as the connect command of a bidirectional client.
    let command = format!("{{\"id\":1,\"connect\":{connect_json}}}");
    let Some(connect) = cp::decode_commands(Protocol::Json, command.as_bytes()).ok().and_then(|mut c| c.pop()).and_then(|c| c.connect) else {
        return plain(http::StatusCode::BAD_REQUEST, "cf_connect is not a JSON connect request");
    };
    let (client, rx) = new_client(&hub, Protocol::UniJson);
    let mut session = Session { hub: hub.clone(), client: client.clone(), metadata: Arc::new(metadata), pong_pending: Arc::new(AtomicBool::new(false)), transport: "uni_sse" };
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
    tokio::spawn(write(hub, client, rx, tx));
    let stream = tokio_stream_from(body_rx);
    let mut resp = http::Response::new(StreamBody::new(stream).boxed());
    let h = resp.headers_mut();
    h.insert("content-type", http::HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert("cache-control", http::HeaderValue::from_static("private, no-cache, no-store, must-revalidate, max-age=0"));
    resp
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn event(line: &str) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(Bytes::from(format!("data: {line}\n\n"))))
}

/// Queue → events; pings every `ping_interval`; the disconnect event last. A reader that went
/// away shows as a failed send.
async fn write(hub: Arc<Hub>, client: Arc<super::Client>, mut rx: mpsc::UnboundedReceiver<Out>, tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>) {
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
                        r = tx.send(event(line)) => r,
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
            let _ = tx.try_send(event(line));
        }
    }
    if let Some((code, reason)) = client.close_reason() {
        let push = serde_json::json!({"disconnect": {"code": code, "reason": reason}});
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tx.send(event(&push.to_string()))).await;
    }
    hub.remove(&client);
}
