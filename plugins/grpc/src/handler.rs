//! One HTTP/2 request as a gRPC call: routed to health, reflection or a PHP worker, answered
//! with grpc-go's framing, counted in metrics and logged.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use hyper::body::{Frame, Incoming};
use rr_runtime::trace::{self, TraceContextExt};
use tokio::sync::mpsc;

use crate::call::{self, put_metadata, put_status};
use crate::metrics::Metrics;
use crate::status::{self, Status};
use crate::wire::{self, Messages};
use crate::{Shared, health};

/// A response body: a unary reply's frames, ready at once, or the frames a task sends. One
/// concrete type instead of boxed stream adapters: hyper polls it once per frame of every call.
pub enum Body {
    Ready { data: Option<Bytes>, trailers: Option<HeaderMap> },
    Stream(mpsc::Receiver<Frame<Bytes>>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Ready { data, trailers } => std::task::Poll::Ready(data.take().map(Frame::data).or_else(|| trailers.take().map(Frame::trailers)).map(Ok)),
            Body::Stream(rx) => rx.poll_recv(cx).map(|frame| frame.map(Ok)),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Ready { data: None, trailers: None })
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // Exact only without trailers, as `Full` and `Empty` were: hyper then sends a
        // content-length, which a gRPC reply did not carry.
        match self {
            Body::Ready { data, trailers: None } => http_body::SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            _ => http_body::SizeHint::default(),
        }
    }
}

/// What the connection knows about its peer.
#[derive(Clone)]
pub struct Peer {
    pub address: String,
    pub tls: bool,
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>, peer: Peer) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    if !req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("application/grpc")) {
        let mut resp = Response::new(body_of(Bytes::from_static(b"invalid gRPC request content-type\n")));
        *resp.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return resp;
    }
    let log = CallLog { shared: shared.clone(), method: path.clone(), started, span: None };
    let (size, max) = (header_list_size(&req), shared.cfg.max_header_list_size());
    if size > max {
        let st = Status::new(status::RESOURCE_EXHAUSTED, format!("grpc: received header list larger than max ({size} vs. {max})"));
        return log.finish(trailers_only(&st, &[]));
    }
    // Checked before routing, as grpc-go's transport does: HTTP 400 with INTERNAL.
    let deadline = match req.headers().get(wire::GRPC_TIMEOUT).map(|v| wire::parse_timeout(&String::from_utf8_lossy(v.as_bytes()))) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            let mut resp = trailers_only(&Status::new(status::INTERNAL, format!("malformed grpc-timeout: {e}")), &[]);
            *resp.status_mut() = http::StatusCode::BAD_REQUEST;
            return log.finish(resp);
        }
    };
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path.trim_start_matches('/'), ""));
    let (service, method) = (service.to_string(), method.to_string());
    match service.as_str() {
        health::SERVICE => health_call(shared, req, &method, log).await,
        crate::reflection::V1 | crate::reflection::V1ALPHA if shared.reflection.is_some() => crate::reflection::serve(shared, req, log),
        _ => match shared.protos.method(&service, &method) {
            Ok(m) => {
                let streaming = m.server_streaming;
                php_call(shared, req, &service, &method, streaming, deadline, &peer, log).await
            }
            Err(text) => log.finish(trailers_only(&Status::new(status::UNIMPLEMENTED, text), &[])),
        },
    }
}

/// A request's header list size as HTTP/2 counts it (RFC 9113 §6.5.2): name + value + 32 per
/// field, pseudo-headers included.
fn header_list_size(req: &Request<Incoming>) -> usize {
    let uri = req.uri();
    let pseudo = [(":method", req.method().as_str().len()), (":scheme", uri.scheme_str().map_or(0, str::len)), (":path", uri.path_and_query().map_or(0, |p| p.as_str().len()))];
    let authority = uri.authority().map_or(0, |a| ":authority".len() + a.as_str().len() + 32);
    let fields: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
    pseudo.iter().map(|(k, v)| k.len() + v + 32).sum::<usize>() + authority + fields
}

#[allow(clippy::too_many_arguments)]
async fn php_call(shared: Arc<Shared>, req: Request<Incoming>, service: &str, method: &str, streaming: bool, deadline: Option<Duration>, peer: &Peer, mut log: CallLog) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let traced = log.trace(&parts.headers, service, method);
    let gzip = match request_gzip(&parts.headers) {
        Ok(gzip) => gzip,
        Err(st) => return log.finish(trailers_only(&st, &[])),
    };
    let max_recv = shared.cfg.max_recv_bytes();
    let message = match Messages::new(body, gzip, max_recv, shared.shutdown.clone()).next().await {
        Ok(Some(m)) => m,
        Ok(None) => return log.finish(trailers_only(&Status::new(status::INTERNAL, "grpc: the request has no message"), &[])),
        Err(st) => return log.finish(trailers_only(&st, &[])),
    };
    let authority = parts.uri.authority().map(|a| a.as_str().to_string()).or_else(|| parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    let payload = call::traced_payload(service, method, authority.as_deref(), &parts.headers, &peer.address, peer.tls, message, &traced);
    // The deadline bounds the wait for a worker; an exec already running in PHP finishes in
    // the background (the pool never cuts it) and its late answer is dropped.
    let exec = shared.pool.exec(payload);
    let reply = match deadline {
        Some(d) => match tokio::time::timeout(d, exec).await {
            Ok(r) => r,
            Err(_) => return log.finish(trailers_only(&Status::new(status::DEADLINE_EXCEEDED, "context deadline exceeded"), &[])),
        },
        None => exec.await,
    };
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return log.finish(trailers_only(&call::pool_error(&e), &[])),
    };
    let first = call::reply_metadata(&reply.payload.context);
    let max_send = shared.cfg.max_send_bytes();
    match reply.stream {
        Some(_) if !streaming => log.finish(trailers_only(&Status::new(status::UNKNOWN, "streaming is not supported"), &first.headers)),
        Some(stream) => stream_reply(first, reply.payload.body, stream, gzip, max_send, shared.shutdown.clone(), log),
        None => {
            if let Some(st) = &first.error {
                // Trailers-only: PHP's headers and trailers travel together with the status.
                let md: Vec<_> = first.headers.iter().chain(&first.trailers).cloned().collect();
                return log.finish(trailers_only(st, &md));
            }
            match wire::encode_message(&reply.payload.body, gzip, max_send) {
                Ok(data) => log.finish(reply_with(&first.headers, gzip, data, &first.trailers, None)),
                Err(st) => log.finish(trailers_only(&st, &first.headers)),
            }
        }
    }
}

/// `grpc-encoding` of the request: identity or gzip.
fn request_gzip(headers: &HeaderMap) -> Result<bool, Status> {
    match headers.get(wire::GRPC_ENCODING).map(|v| v.to_str().unwrap_or("?")) {
        None | Some("identity") => Ok(false),
        Some("gzip") => Ok(true),
        Some(other) => Err(Status::new(status::UNIMPLEMENTED, format!("grpc: Decompressor is not installed for grpc-encoding \"{other}\""))),
    }
}

/// How long a server stream may take to end once the server stops and the worker was told.
const STREAM_DRAIN: Duration = Duration::from_secs(5);

/// Server streaming: every worker frame with a body is one message; the final frame's `error`
/// or `trailers` end the call. A client that goes away drops the stream: the pool sends STOP.
/// When the server stops, the worker is told (STOP) and its stream, still forwarded, gets
/// [`STREAM_DRAIN`] to end; a stream that ends without an error then is UNAVAILABLE, so the
/// client knows it was cut short.
#[allow(clippy::too_many_arguments)]
fn stream_reply(first: call::Reply, body: Bytes, mut stream: rr_runtime::pool::ReplyStream, gzip: bool, max: usize, shutdown: tokio_util::sync::CancellationToken, log: CallLog) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Frame<Bytes>>(4);
    let resp = streaming_response(&first.headers, gzip, rx);
    let mut trailers = first.trailers;
    let mut pending = Some(match first.error {
        Some(st) => Err(st),
        None => Ok(body),
    });
    tokio::spawn(async move {
        let mut end = None;
        // Set when the server stops: the stream's time to end.
        let mut drain: Option<tokio::time::Instant> = None;
        let drained = |drain: Option<tokio::time::Instant>| async move {
            match drain {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let stopped = || Status::new(status::UNAVAILABLE, wire::SERVER_STOPPING);
        loop {
            let chunk = match pending.take() {
                Some(chunk) => chunk,
                None => {
                    let next = tokio::select! {
                        next = stream.next() => next,
                        _ = tx.closed() => {
                            end = Some(Status::new(status::CANCELLED, "the client cancelled the call"));
                            break;
                        }
                        _ = shutdown.cancelled(), if drain.is_none() => {
                            stream.stop();
                            drain = Some(tokio::time::Instant::now() + STREAM_DRAIN);
                            continue;
                        }
                        _ = drained(drain) => {
                            end = Some(stopped());
                            break;
                        }
                    };
                    match next {
                        None => break,
                        Some(Err(e)) => Err(call::pool_error(&e)),
                        Some(Ok(p)) => {
                            let md = call::reply_metadata(&p.context);
                            trailers.extend(md.trailers);
                            match md.error {
                                Some(st) => Err(st),
                                None => Ok(p.body),
                            }
                        }
                    }
                }
            };
            match chunk {
                Ok(body) if !body.is_empty() => match wire::encode_message(&body, gzip, max) {
                    Ok(data) => {
                        // A client that stops reading holds this send: bounded by the drain too.
                        let sent = tokio::select! {
                            sent = tx.send(Frame::data(data)) => sent.is_ok(),
                            _ = drained(drain) => {
                                end = Some(stopped());
                                break;
                            }
                        };
                        if !sent {
                            end = Some(Status::new(status::CANCELLED, "the client cancelled the call"));
                            break;
                        }
                    }
                    Err(st) => {
                        end = Some(st);
                        break;
                    }
                },
                Ok(_) => {}
                Err(st) => {
                    end = Some(st);
                    break;
                }
            }
        }
        if drain.is_some() && end.is_none() {
            end = Some(stopped());
        }
        drop(stream);
        let mut map = HeaderMap::new();
        put_metadata(&mut map, &trailers);
        put_status(&mut map, end.as_ref());
        log.record(end.as_ref().map_or(status::OK, |s| s.code));
        let last = tx.send(Frame::trailers(map));
        let _ = match drain {
            Some(at) => tokio::time::timeout_at(at + Duration::from_secs(1), last).await.ok(),
            None => Some(last.await),
        };
    });
    resp
}

async fn health_call(shared: Arc<Shared>, req: Request<Incoming>, method: &str, log: CallLog) -> Response<Body> {
    if method == "Watch" {
        let mut watch = shared.health.subscribe();
        let (tx, rx) = mpsc::channel::<Frame<Bytes>>(1);
        let resp = streaming_response(&[], false, rx);
        let shutdown = shared.shutdown.clone();
        drop(req);
        tokio::spawn(async move {
            loop {
                let status = *watch.borrow_and_update();
                let msg = prost::Message::encode_to_vec(&health::CheckResponse { status });
                let data = wire::encode_message(&msg, false, usize::MAX).unwrap_or_default();
                if tx.send(Frame::data(data)).await.is_err() {
                    return;
                }
                tokio::select! {
                    changed = watch.changed() => if changed.is_err() { break },
                    _ = shutdown.cancelled() => break,
                    _ = tx.closed() => return,
                }
            }
            let mut map = HeaderMap::new();
            let end = Status::new(status::CANCELLED, "Stream has ended");
            put_status(&mut map, Some(&end));
            log.record(end.code);
            let _ = tx.send(Frame::trailers(map)).await;
        });
        return resp;
    }
    match shared.health.answer(method) {
        Some(msg) => log.finish(reply_with(&[], false, wire::encode_message(&msg, false, usize::MAX).unwrap_or_default(), &[], None)),
        None => log.finish(trailers_only(&Status::new(status::UNIMPLEMENTED, format!("unknown method {method} for service {}", health::SERVICE)), &[])),
    }
}

fn head(headers: &[(String, String)], gzip: bool) -> http::response::Builder {
    let mut b = Response::builder().header(http::header::CONTENT_TYPE, "application/grpc");
    if gzip {
        b = b.header(wire::GRPC_ENCODING, "gzip");
    }
    if let Some(map) = b.headers_mut() {
        put_metadata(map, headers);
    }
    b
}

/// An error with no message: status in the one HEADERS frame (trailers-only).
pub fn trailers_only(st: &Status, headers: &[(String, String)]) -> Response<Body> {
    let mut resp = head(headers, false).body(Body::Ready { data: None, trailers: None }).expect("valid response");
    put_status(resp.headers_mut(), Some(st));
    resp
}

/// Headers, the message, then trailers with the status.
pub fn reply_with(headers: &[(String, String)], gzip: bool, message: Bytes, trailers: &[(String, String)], st: Option<&Status>) -> Response<Body> {
    let mut map = HeaderMap::new();
    put_metadata(&mut map, trailers);
    put_status(&mut map, st);
    head(headers, gzip).body(Body::Ready { data: Some(message), trailers: Some(map) }).expect("valid response")
}

/// A response whose frames (messages, then trailers) come from `rx`.
pub fn streaming_response(headers: &[(String, String)], gzip: bool, rx: mpsc::Receiver<Frame<Bytes>>) -> Response<Body> {
    head(headers, gzip).body(Body::Stream(rx)).expect("valid response")
}

fn body_of(bytes: Bytes) -> Body {
    Body::Ready { data: Some(bytes), trailers: None }
}

/// The request headers the propagators read (W3C TraceContext and Baggage, Jaeger).
const TRACE_HEADERS: [http::HeaderName; 4] = [
    http::HeaderName::from_static("traceparent"),
    http::HeaderName::from_static("tracestate"),
    http::HeaderName::from_static("baggage"),
    http::HeaderName::from_static("uber-trace-id"),
];

/// The trace headers the worker's context starts with, from the propagators.
fn propagated(tracing: &rr_runtime::trace::Tracing, span: &trace::Context) -> BTreeMap<String, Vec<String>> {
    let mut context = BTreeMap::new();
    tracing.inject(span, &mut trace::MultiMap(&mut context));
    context
}

/// [`propagated`] for a span with no remote parent and so no baggage: `Traceparent` and
/// `Uber-Trace-Id` written straight from its ids, unless its trace state has entries.
fn root_trace_headers(tracing: &rr_runtime::trace::Tracing, span: &trace::Context) -> BTreeMap<String, Vec<String>> {
    let span_ref = span.span();
    let sc = span_ref.span_context();
    if !sc.is_valid() || !sc.trace_state().header().is_empty() {
        return propagated(tracing, span);
    }
    let (trace_id, span_id, sampled) = (sc.trace_id().to_bytes(), sc.span_id().to_bytes(), sc.is_sampled());
    let (trace_id, span_id) = (hex(&trace_id), hex(&span_id));
    let (trace_id, span_id) = (std::str::from_utf8(&trace_id).unwrap_or_default(), std::str::from_utf8(&span_id).unwrap_or_default());
    let flag = if sampled { "1" } else { "0" };
    let parent = ["00-", trace_id, "-", span_id, "-0", flag].concat();
    let jaeger = [trace_id, ":", span_id, ":0:", flag].concat();
    BTreeMap::from([("Traceparent".to_string(), vec![parent]), ("Uber-Trace-Id".to_string(), vec![jaeger])])
}

/// Lower-case hex digits of an id.
fn hex<const N: usize>(bytes: &[u8; N]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]).collect()
}

/// Counts and logs one call when it ends.
pub struct CallLog {
    shared: Arc<Shared>,
    method: String,
    started: Instant,
    /// The call's server span (PHP calls), ended with the call's status.
    span: Option<trace::Context>,
}

impl CallLog {
    /// Record the status a unary response carries.
    pub fn finish(self, resp: Response<Body>) -> Response<Body> {
        let code = resp.headers().get(wire::GRPC_STATUS).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(status::OK);
        self.record(code);
        resp
    }

    /// Open the call's span (`package.Service/Method`, continuing the client's trace) and return
    /// the trace headers the worker's context starts with; RoadRunner traces every call, with
    /// or without the otel plugin.
    fn trace(&mut self, headers: &HeaderMap, service: &str, method: &str) -> BTreeMap<String, Vec<String>> {
        let tracing = &self.shared.services.tracing;
        // Without trace headers the propagators would extract nothing (nothing attaches a
        // context on these threads): the span starts a new trace, and its headers are written
        // without them (their lookups and formatting were a sixth of a call's instructions).
        let incoming = TRACE_HEADERS.iter().any(|name| headers.contains_key(name));
        let parent = if incoming { tracing.extract(&trace::HeaderMapReader(headers)) } else { trace::Context::new() };
        let span = tracing.start("grpc", [service, "/", method].concat(), trace::SpanKind::Server, &parent);
        span.span().set_attributes([
            trace::KeyValue::new("rpc.system", "grpc"),
            trace::KeyValue::new("rpc.service", service.to_string()),
            trace::KeyValue::new("rpc.method", method.to_string()),
        ]);
        let context = if incoming { propagated(tracing, &span) } else { root_trace_headers(tracing, &span) };
        self.span = Some(span);
        context
    }

    pub fn record(self, code: u32) {
        if let Some(span) = &self.span {
            span.span().set_attribute(trace::KeyValue::new("rpc.grpc.status_code", i64::from(code)));
            if code != status::OK {
                span.span().set_status(trace::Status::error(status::code_name(code)));
            }
            span.span().end();
        }
        let elapsed = self.started.elapsed();
        Metrics::record(&self.shared.metrics, &self.method, code, elapsed);
        let ms = elapsed.as_secs_f64() * 1000.0;
        if code == status::OK {
            tracing::debug!(target: "grpc", method = %self.method, elapsed_ms = ms, "method was called successfully");
        } else {
            tracing::error!(target: "grpc", method = %self.method, code = %status::code_name(code), elapsed_ms = ms, "method call was finished with error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_trace_headers_are_what_the_propagators_write() {
        let tracing = rr_runtime::trace::Tracing::default();
        for _ in 0..20 {
            let span = tracing.start("grpc", "service.Echo/Ping", trace::SpanKind::Server, &trace::Context::new());
            let ours = root_trace_headers(&tracing, &span);
            assert_eq!(ours, propagated(&tracing, &span));
            assert_eq!(ours.keys().collect::<Vec<_>>(), ["Traceparent", "Uber-Trace-Id"]);
        }
    }
}
