//! Real receivers the exporters talk to, started inside the tests: OTLP over HTTP/protobuf and
//! zipkin (one small hyper server that keeps every request), OTLP over gRPC (tonic serving the
//! collector's `TraceService`). Spans are decoded with the `opentelemetry-proto` types.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

/// One received span, flattened; ids in hex.
#[derive(Debug, Clone)]
pub struct Got {
    pub name: String,
    pub trace: String,
    pub span: String,
    pub parent: String,
    pub kind: i32,
    pub attrs: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
    pub scope: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

pub fn spans(request: &ExportTraceServiceRequest) -> Vec<Got> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let resource = rs.resource.as_ref().map(|r| attrs(&r.attributes)).unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            for s in &ss.spans {
                out.push(Got {
                    name: s.name.clone(),
                    trace: hex(&s.trace_id),
                    span: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    kind: s.kind,
                    attrs: attrs(&s.attributes),
                    resource: resource.clone(),
                    scope: scope.clone(),
                });
            }
        }
    }
    out
}

/// An HTTP request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: http::HeaderMap,
    /// gunzipped when sent with `Content-Encoding: gzip`.
    pub body: Bytes,
}

impl Received {
    pub fn otlp(&self) -> Vec<Got> {
        spans(&ExportTraceServiceRequest::decode(self.body.clone()).expect("an OTLP protobuf body"))
    }
}

pub type Log<T> = Arc<Mutex<Vec<T>>>;

/// An HTTP receiver on a free loopback port: keeps each request, answers 200 with an empty
/// OTLP response (zipkin ignores the body).
pub async fn http_receiver() -> (u16, Log<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log<Received> = Arc::default();
    let kept = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let kept = kept.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let kept = kept.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let mut body = body.collect().await?.to_bytes();
                        if parts.headers.get("content-encoding").is_some_and(|v| v == "gzip") {
                            let mut plain = Vec::new();
                            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
                            body = plain.into();
                        }
                        kept.lock().unwrap().push(Received { path: parts.uri.path().to_string(), headers: parts.headers, body });
                        let reply = ExportTraceServiceResponse::default().encode_to_vec();
                        Ok::<_, hyper::Error>(http::Response::builder().header("content-type", "application/x-protobuf").body(Full::new(Bytes::from(reply))).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
            });
        }
    });
    (port, log)
}

/// What the gRPC collector received: the request metadata and its spans.
#[derive(Clone, Default)]
pub struct GrpcCollector {
    pub exports: Log<(tonic::metadata::MetadataMap, Vec<Got>)>,
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(&self, request: tonic::Request<ExportTraceServiceRequest>) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let metadata = request.metadata().clone();
        self.exports.lock().unwrap().push((metadata, spans(request.get_ref())));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP gRPC collector on a free loopback port (accepts gzip).
pub async fn grpc_receiver() -> (u16, GrpcCollector) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let collector = GrpcCollector::default();
    let service = TraceServiceServer::new(collector.clone()).accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)));
    (port, collector)
}

/// The first span named `name`; panics listing what arrived.
pub fn named<'a>(spans: &'a [Got], name: &str) -> &'a Got {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span `{name}` among {:#?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()))
}
