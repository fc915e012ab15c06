//! The gRPC service `centrifugal.centrifugo.proxy.CentrifugoProxy` Centrifugo calls on
//! `proxy_address`: each unary method becomes one worker exec (CENTRIFUGE.md §2).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use rr_runtime::pool::{Pool, PoolError};
use tonic::body::Body;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Status};

use crate::codec::{self, Kind, Metadata};
use crate::raw::Raw;

pub const SERVICE: &str = "centrifugal.centrifugo.proxy.CentrifugoProxy";

#[derive(Clone)]
pub struct ProxyService {
    pub pool: Pool,
}

impl tonic::server::NamedService for ProxyService {
    const NAME: &'static str = SERVICE;
}

impl tonic::codegen::Service<http::Request<Body>> for ProxyService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let Some(method) = req.uri().path().strip_prefix("/centrifugal.centrifugo.proxy.CentrifugoProxy/").map(str::to_string) else {
            let status = Status::unimplemented(format!("unknown service {}", req.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default()));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let Some(kind) = Kind::from_method(&method) else {
            // RoadRunner's streaming methods answer Go's `errors.New("not supported")`; methods
            // of newer Centrifugo protos are not in its service at all.
            let status = match method.as_str() {
                "SubscribeUnidirectional" | "SubscribeBidirectional" => Status::unknown("not supported"),
                _ => Status::unimplemented(format!("unknown method {method} for service {SERVICE}")),
            };
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let metadata = Metadata::from_request(req.uri().authority().map(|a| a.as_str()), req.headers());
        let deadline = req.headers().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_timeout).map(|t| Instant::now() + t);
        let call = Call { pool: self.pool.clone(), kind, metadata: Arc::new(metadata), deadline };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Raw)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                // grpc-go's default receive limit, which RoadRunner's server keeps.
                .max_decoding_message_size(4 * 1024 * 1024)
                .max_encoding_message_size(usize::MAX);
            Ok(grpc.unary(call, req).await)
        })
    }
}

/// One unary call on its way to PHP.
#[derive(Clone)]
struct Call {
    pool: Pool,
    kind: Kind,
    metadata: Arc<Metadata>,
    deadline: Option<Instant>,
}

impl tonic::codegen::Service<tonic::Request<Bytes>> for Call {
    type Response = tonic::Response<Bytes>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<tonic::Response<Bytes>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic::Request<Bytes>) -> Self::Future {
        let call = self.clone();
        Box::pin(async move {
            let log = CallLog { kind: call.kind, started: Instant::now(), done: false };
            let result = call.run(req.into_inner()).await;
            log.finish(result.as_ref().err());
            result.map(tonic::Response::new)
        })
    }
}

impl Call {
    async fn run(&self, request: Bytes) -> Result<Bytes, Status> {
        let payload = codec::payload(self.kind, &self.metadata, request);
        let answer = match self.deadline {
            // The deadline bounds the wait for a worker and the worker's answer: a worker still
            // silent then is killed and replaced (RoadRunner leaves it blocked).
            Some(deadline) => {
                let at = tokio::time::Instant::from_std(deadline);
                match tokio::time::timeout_at(at, self.pool.exec_until(payload, at)).await {
                    Ok(Err(PoolError::ExecTtl { pid })) if Instant::now() >= deadline => {
                        tracing::warn!(target: "centrifuge", pid, method = self.kind.method(), "the worker did not answer within the call's deadline; it was killed and is replaced");
                        return Err(Status::deadline_exceeded("context deadline exceeded"));
                    }
                    Ok(answer) => answer,
                    Err(_) => return Err(Status::deadline_exceeded("context deadline exceeded")),
                }
            }
            None => self.pool.exec(payload).await,
        };
        // Every failure is a plain Go error in RoadRunner, hence UNKNOWN with its text.
        let reply = answer.map_err(|e| Status::unknown(e.to_string()))?;
        codec::reply(self.kind, &reply.payload, reply.stream.is_some()).map_err(|e| Status::unknown(e.to_string()))
    }
}

/// One log line per call; a call dropped before its end (the client went away, or tonic's own
/// deadline fired) says so.
struct CallLog {
    kind: Kind,
    started: Instant,
    done: bool,
}

impl CallLog {
    fn finish(mut self, error: Option<&Status>) {
        self.done = true;
        let elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let (method, kind) = (self.kind.method(), self.kind.type_name());
        match error {
            None => tracing::debug!(target: "centrifuge", method, r#type = kind, elapsed_ms, "proxy call served"),
            Some(st) => tracing::error!(target: "centrifuge", method, r#type = kind, elapsed_ms, code = ?st.code(), error = %st.message(), "proxy call failed"),
        }
    }
}

impl Drop for CallLog {
    fn drop(&mut self) {
        if !self.done {
            let elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0;
            tracing::warn!(target: "centrifuge", method = self.kind.method(), elapsed_ms, code = ?Code::Cancelled, "proxy call cancelled before the worker answered");
        }
    }
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_timeout(text: &str) -> Option<Duration> {
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}
