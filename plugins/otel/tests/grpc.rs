//! A gRPC call's server span reaches the collector with RoadRunner's name and attributes, as
//! the child of the client's span, and PHP's context carries that span.

mod support;

use bytes::Bytes;
use rr_runtime::testing::{TestServer, free_port};
use serde_json::Value;

#[path = "../../grpc/tests/support/raw_codec.rs"]
mod raw_codec;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_are_server_spans_under_the_clients_trace() {
    let (collector_port, received) = support::http_receiver().await;
    let port = free_port();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let yaml = format!(
        "version: '3'\notel:\n  endpoint: 127.0.0.1:{collector_port}\n  insecure: true\nserver:\n  command: \"php {}\"\ngrpc:\n  listen: tcp://127.0.0.1:{port}\n  proto: [\"{}\"]\n  pool:\n    num_workers: 1\n",
        root.join("tests/php/workers/grpc.php").display(),
        root.join("plugins/grpc/tests/proto/service.proto").display()
    );
    let build = rr_runtime::Build::new("rr", "test").plugin::<rr_otel::Plugin>().plugin::<rr_grpc::Plugin>();
    let mut server = TestServer::start(&build, &yaml);
    let channel = server
        .until("the grpc listener", || async { tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.ok() })
        .await;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    // `ctx` makes the worker answer with the context it received.
    let mut req = tonic::Request::new(Bytes::from_static(b"\x0a\x03ctx"));
    req.metadata_mut().insert("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01").parse().unwrap());
    let reply = client.unary(req, http::uri::PathAndQuery::from_static("/service.Echo/Ping"), raw_codec::Raw).await.unwrap();
    // service.Message{msg = 1}: the tag byte, a varint length, the text.
    let body = reply.get_ref();
    let text_at = 1 + body[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let context: Value = serde_json::from_slice(&body[text_at..]).unwrap();
    server.stop().await.unwrap();

    let spans: Vec<support::Got> = received.lock().unwrap().iter().flat_map(|r| r.otlp()).collect();
    let call = support::named(&spans, "service.Echo/Ping");
    assert_eq!((call.trace.as_str(), call.parent.as_str(), call.kind), (CALLER_TRACE, CALLER_SPAN, 2));
    assert_eq!(call.attrs["rpc.system"], "grpc");
    assert_eq!(call.attrs["rpc.service"], "service.Echo");
    assert_eq!(call.attrs["rpc.method"], "Ping");
    assert_eq!(call.attrs["rpc.grpc.status_code"], "0");
    assert_eq!(context["context"]["Traceparent"][0], format!("00-{CALLER_TRACE}-{}-01", call.span));
}
