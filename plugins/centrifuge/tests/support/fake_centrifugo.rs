//! A fake Centrifugo gRPC API (`centrifugal.centrifugo.api.CentrifugoApi`) served with tonic:
//! it records each call and answers as the tests expect.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use prost::Message;
use rr_centrifuge::api_proto as api;
use rr_centrifuge::raw::Raw;
use tonic::body::Body;
use tonic::codec::CompressionEncoding;

/// What the fake Centrifugo received: method, request bytes, `grpc-encoding`.
pub type Received = Arc<Mutex<Vec<(String, Bytes, Option<String>)>>>;

/// A fake `centrifugal.centrifugo.api.CentrifugoApi`: records each call; Publish answers an
/// offset, Presence on `missing` answers Centrifugo's error 102, History fails with a gRPC
/// status, everything else echoes `{result: <request bytes>}`.
#[derive(Clone)]
struct FakeCentrifugo {
    received: Received,
}

impl tonic::server::NamedService for FakeCentrifugo {
    const NAME: &'static str = "centrifugal.centrifugo.api.CentrifugoApi";
}

impl tonic::codegen::Service<http::Request<Body>> for FakeCentrifugo {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap().to_string();
        let encoding = req.headers().get("grpc-encoding").map(|v| v.to_str().unwrap().to_string());
        let handler = Handler { received: self.received.clone(), method, encoding };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Raw).accept_compressed(CompressionEncoding::Gzip).send_compressed(CompressionEncoding::Gzip);
            Ok(grpc.unary(handler, req).await)
        })
    }
}

#[derive(Clone)]
struct Handler {
    received: Received,
    method: String,
    encoding: Option<String>,
}

impl tonic::codegen::Service<tonic::Request<Bytes>> for Handler {
    type Response = tonic::Response<Bytes>;
    type Error = tonic::Status;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: tonic::Request<Bytes>) -> Self::Future {
        let body = req.into_inner();
        self.received.lock().unwrap().push((self.method.clone(), body.clone(), self.encoding.clone()));
        let method = self.method.clone();
        Box::pin(async move {
            let reply = match method.as_str() {
                "Publish" => api::PublishResponse { error: None, result: Some(api::PublishResult { offset: 7, epoch: "ep".into() }) }.encode_to_vec(),
                "Presence" if api::PresenceRequest::decode(body.clone()).unwrap().channel == "missing" => {
                    api::PresenceResponse { error: Some(api::Error { code: 102, message: "unknown channel".into() }), result: None }.encode_to_vec()
                }
                "History" => return Err(tonic::Status::permission_denied("no history for you")),
                _ => {
                    let mut out = vec![0x12];
                    prost::encoding::encode_varint(body.len() as u64, &mut out);
                    out.extend_from_slice(&body);
                    out
                }
            };
            Ok(tonic::Response::new(Bytes::from(reply)))
        })
    }
}

/// Serve the fake Centrifugo on a free port.
pub async fn fake_centrifugo(tls: Option<tonic::transport::ServerTlsConfig>) -> (u16, Received, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let service = FakeCentrifugo { received: received.clone() };
    let incoming = futures::stream::unfold(listener, |l| async move { Some((l.accept().await.map(|(s, _)| s), l)) });
    let task = tokio::spawn(async move {
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        builder.serve_with_incoming_shutdown(service, Box::pin(incoming), std::future::pending::<()>()).await.unwrap();
    });
    (port, received, task)
}


/// The fake Centrifugo on a unix socket.
#[allow(dead_code)]
pub async fn fake_centrifugo_unix(path: &std::path::Path) -> (Received, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    let received = Received::default();
    let service = FakeCentrifugo { received: received.clone() };
    let incoming = futures::stream::unfold(listener, |l| async move { Some((l.accept().await.map(|(s, _)| s), l)) });
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder().serve_with_incoming_shutdown(service, Box::pin(incoming), std::future::pending::<()>()).await.unwrap();
    });
    (received, task)
}
