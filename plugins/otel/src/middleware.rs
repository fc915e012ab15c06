//! The `otel` HTTP middleware (listed in `http.middleware`): continues the caller's trace, opens
//! RoadRunner's two server spans (the request URI, then `http` under it) and hands PHP the
//! `http` span's context in the request headers, so the app's own spans join the same trace.

use std::sync::Arc;

use rr_runtime::Services;
use rr_runtime::http::{ClientAddr, Handler, Middleware, Request};
use rr_runtime::trace::{HeaderMapCarrier, HeaderMapReader, KeyValue, SpanKind, Status, TraceContextExt};

pub struct Otel {
    pub services: Arc<Services>,
}

/// The header names the propagators write; values a client sent are replaced.
const PROPAGATED: [&str; 4] = ["traceparent", "tracestate", "baggage", "uber-trace-id"];

impl Middleware for Otel {
    fn wrap(&self, next: Handler) -> Handler {
        let services = self.services.clone();
        Arc::new(move |mut req: Request| {
            let (services, next) = (services.clone(), next.clone());
            Box::pin(async move {
                let tracing = &services.tracing;
                let parent = tracing.extract(&HeaderMapReader(req.headers()));
                let uri = req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |pq| pq.as_str().to_string());
                let request = tracing.start("http", uri, SpanKind::Server, &parent);
                request.span().set_attributes(request_attributes(&req));
                let handler = tracing.start("http", "http", SpanKind::Server, &request);
                for name in PROPAGATED {
                    req.headers_mut().remove(name);
                }
                tracing.inject(&handler, &mut HeaderMapCarrier(req.headers_mut()));
                let resp = next(req).await;
                let status = resp.status();
                handler.span().end();
                let span = request.span();
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
                if status.is_server_error() {
                    span.set_status(Status::error(""));
                }
                span.end();
                resp
            })
        })
    }
}

/// otelhttp's semantic-convention attributes for a server request.
fn request_attributes(req: &Request) -> Vec<KeyValue> {
    let header = |name: http::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut attrs = vec![
        KeyValue::new("http.request.method", req.method().as_str().to_string()),
        KeyValue::new("url.path", req.uri().path().to_string()),
        KeyValue::new("url.scheme", req.uri().scheme_str().unwrap_or("http").to_string()),
        KeyValue::new("network.protocol.version", protocol_version(req.version())),
    ];
    if let Some(host) = header(http::header::HOST).or_else(|| req.uri().host().map(str::to_string)) {
        let host = host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host.clone(), |(h, _)| h.to_string());
        attrs.push(KeyValue::new("server.address", host));
    }
    if let Some(query) = req.uri().query() {
        attrs.push(KeyValue::new("url.query", query.to_string()));
    }
    if let Some(ClientAddr(ip)) = req.extensions().get::<ClientAddr>() {
        attrs.push(KeyValue::new("network.peer.address", ip.to_string()));
    }
    if let Some(agent) = header(http::header::USER_AGENT) {
        attrs.push(KeyValue::new("user_agent.original", agent));
    }
    attrs
}

fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
