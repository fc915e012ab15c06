//! PHP → Centrifugo: the `centrifuge.*` RPC methods, forwarded to Centrifugo's gRPC API
//! `centrifugal.centrifugo.api.CentrifugoApi` (CENTRIFUGE.md §3).
//!
//! Requests and replies travel as the bytes PHP and Centrifugo wrote (`ProtobufCodec` on the
//! PHP side): RoadRunner decodes the request, calls the API and copies the reply's `error` and
//! `result` (Batch: `replies`) into its answer, which on the wire is the API's reply itself.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rr_runtime::Services;
use rr_runtime::rpc::{Codec, RpcError};
use tonic::codec::CompressionEncoding;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::{ApiTarget, Config};
use crate::raw::{self, Raw};

/// The API methods, as roadrunner-server/centrifuge v5.1.9 registers them.
pub const METHODS: [&str; 34] = [
    "Batch",
    "Publish",
    "Broadcast",
    "Subscribe",
    "Unsubscribe",
    "Disconnect",
    "Presence",
    "PresenceStats",
    "History",
    "HistoryRemove",
    "Info",
    "RPC",
    "Refresh",
    "Channels",
    "Connections",
    "UpdateUserStatus",
    "GetUserStatus",
    "DeleteUserStatus",
    "BlockUser",
    "UnblockUser",
    "RevokeToken",
    "InvalidateUserTokens",
    "DeviceRegister",
    "DeviceUpdate",
    "DeviceRemove",
    "DeviceList",
    "DeviceTopicList",
    "DeviceTopicUpdate",
    "UserTopicList",
    "UserTopicUpdate",
    "SendPushNotification",
    "UpdatePushStatus",
    "CancelPush",
    "RateLimit",
];

pub const SERVICE: &str = "centrifugal.centrifugo.api.CentrifugoApi";

/// The connection to Centrifugo's API; made when the plugin serves (RoadRunner dials after its
/// proxy server is up), lazily: a Centrifugo that is down shows on the first call.
#[derive(Clone)]
pub struct Api {
    channel: Channel,
    gzip: bool,
}

impl Api {
    pub fn connect(cfg: &Config) -> Result<Api, String> {
        let target = cfg.api_target()?;
        let uri = match &target {
            ApiTarget::Tcp(uri) => uri.clone(),
            // The authority is not dialled: the connector below opens the socket.
            ApiTarget::Unix(_) => "http://localhost".to_string(),
        };
        let mut endpoint = Endpoint::from_shared(uri).map_err(|e| format!("config key `centrifuge.grpc_api_address`: `{}` is not a valid address: {e}", cfg.grpc_api_address))?;
        if let Some(tls) = &cfg.tls {
            let read = |path: &std::path::Path, key: &str| std::fs::read(path).map_err(|e| format!("config key `centrifuge.tls.{key}`: cannot read '{}': {e}", path.display()));
            let identity = Identity::from_pem(read(&tls.cert, "cert")?, read(&tls.key, "key")?);
            let tls = ClientTlsConfig::new().identity(identity).with_native_roots();
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("config key `centrifuge.tls`: {e}"))?;
        }
        let channel = match target {
            ApiTarget::Tcp(_) => endpoint.connect_lazy(),
            ApiTarget::Unix(path) => endpoint.connect_with_connector_lazy(UnixConnector(Arc::new(path))),
        };
        Ok(Api { channel, gzip: cfg.use_compressor })
    }

    /// One API call; a gRPC failure reads as grpc-go prints it.
    pub async fn call(&self, method: &str, request: Bytes) -> Result<Bytes, RpcError> {
        let mut client = tonic::client::Grpc::new(self.channel.clone());
        if self.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Gzip);
        }
        let path = http::uri::PathAndQuery::try_from(format!("/{SERVICE}/{method}")).map_err(RpcError::new)?;
        client.ready().await.map_err(|e| RpcError::new(go_status(&tonic::Status::from_error(e.into()))))?;
        match client.unary(tonic::Request::new(request), path, Raw).await {
            Ok(reply) => Ok(reply.into_inner()),
            Err(status) => Err(RpcError::new(go_status(&status))),
        }
    }
}

/// Dials Centrifugo's API on a unix socket.
#[derive(Clone)]
struct UnixConnector(Arc<std::path::PathBuf>);

impl tonic::codegen::Service<http::Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = futures::future::BoxFuture<'static, std::io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(&*path).await?)) })
    }
}

/// `rpc error: code = Unavailable desc = ...`, grpc-go's `status.Error` text.
pub fn go_status(status: &tonic::Status) -> String {
    use tonic::Code::*;
    let code = match status.code() {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    };
    // A connection failure's reason (refused, a certificate not trusted) is in the sources.
    let mut desc = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        let text = e.to_string();
        if !desc.contains(&text) {
            desc = if desc.is_empty() { text } else { format!("{desc}: {text}") };
        }
        source = e.source();
    }
    format!("rpc error: code = {code} desc = {desc}")
}

/// Who answers the API methods: Centrifugo, or the embedded hub.
#[derive(Clone)]
pub enum Backend {
    Centrifugo(Api),
    Hub(Arc<crate::hub::Hub>),
}

/// Register `centrifuge.<Method>` for every API method; `api` is empty until the plugin serves.
pub fn register(services: &Arc<Services>, api: Arc<OnceLock<Backend>>) {
    for method in METHODS {
        let api = api.clone();
        services.rpc.register_raw(
            &format!("centrifuge.{method}"),
            Arc::new(move |codec, body: Bytes| {
                let api = api.get().cloned();
                Box::pin(async move {
                    if codec != Codec::Proto {
                        return Err(RpcError::new(format!("centrifuge.{method}: message type is not a proto (use goridge's ProtobufCodec, as roadrunner-php/centrifugo does)")));
                    }
                    if !raw::well_formed(&body) {
                        return Err(RpcError::new(format!("centrifuge.{method}: proto: cannot parse invalid wire-format data")));
                    }
                    let Some(api) = api else {
                        return Err(RpcError::new("RoadRunner is not ready yet, try in a few seconds"));
                    };
                    let api = match api {
                        Backend::Centrifugo(api) => api,
                        Backend::Hub(hub) => {
                            let result = crate::hub::api::call(&hub, method, body).await;
                            if let Err(e) = &result {
                                tracing::error!(target: "centrifuge", method, error = %e, "hub: api call failed");
                            }
                            return result;
                        }
                    };
                    let started = std::time::Instant::now();
                    let result = api.call(method, body).await;
                    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                    match &result {
                        Ok(_) => tracing::debug!(target: "centrifuge", method, elapsed_ms, "api call forwarded to centrifugo"),
                        Err(e) => tracing::error!(target: "centrifuge", method, elapsed_ms, error = %e, "api call to centrifugo failed"),
                    }
                    result
                })
            }),
        );
    }
}
