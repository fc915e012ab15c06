//! The ceiling for bench/http: a plain hyper "Hello, World!" with no PHP behind it.
//! `cargo run --release -p rr-http --example hyper_hello -- 127.0.0.1:18084`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18084".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                let mut r = http::Response::new(Full::new(Bytes::from_static(b"Hello, World!\n")));
                r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
                Ok::<_, Infallible>(r)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
