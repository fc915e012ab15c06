//! The `metrics` plugin: Prometheus text exposition on `metrics.address` `/metrics`: every
//! worker pool (RoadRunner's `rr_<plugin>_*` names), metrics other plugins register in
//! `services.metrics`, and application collectors from `metrics.collect` and the `metrics.*`
//! RPC methods (PROTOCOL.md §4.6.6).

pub mod collectors;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rr_runtime::rpc::RpcError;
use rr_runtime::{BoxError, InitContext, Services};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use collectors::{AppCollectors, Spec};

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    pub address: String,
    pub collect: BTreeMap<String, Spec>,
}

impl Default for Config {
    fn default() -> Self {
        Config { address: "127.0.0.1:2112".into(), collect: BTreeMap::new() }
    }
}

pub struct Plugin {
    address: String,
    services: Arc<Services>,
}

/// `metrics.Add/Sub/Observe/Set` argument.
#[derive(Debug, Default, Deserialize)]
struct Operation {
    name: String,
    #[serde(default)]
    value: f64,
    #[serde(default)]
    labels: Vec<String>,
}

/// `metrics.Declare` argument.
#[derive(Debug, Default, Deserialize)]
struct Declare {
    name: String,
    collector: Spec,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "metrics";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(config) = ctx.section::<Config>("metrics")? else { return Ok(None) };
        let apps = Arc::new(AppCollectors::default());
        for (name, spec) in &config.collect {
            apps.declare(name, spec).map_err(|e| format!("config key `metrics.collect.{name}`: {e}"))?;
        }
        {
            let mut registry = ctx.services.metrics.lock().unwrap();
            registry.register_collector(Box::new(apps.clone()));
            registry.register_collector(Box::new(collectors::Pools(ctx.services.clone())));
        }
        let rpc = &ctx.services.rpc;
        for method in ["Add", "Sub", "Observe", "Set"] {
            let apps = apps.clone();
            rpc.register_json(&format!("metrics.{method}"), move |op: Operation| {
                let result = apps.apply(method, &op.name, op.value, &op.labels).map(|()| true).map_err(RpcError::new);
                async move { result }
            });
        }
        let declaring = apps.clone();
        rpc.register_json("metrics.Declare", move |d: Declare| {
            let result = declaring.declare(&d.name, &d.collector).map(|()| true).map_err(RpcError::new);
            async move { result }
        });
        rpc.register_json("metrics.Unregister", move |name: String| {
            let result = apps.unregister(&name).map(|()| true).map_err(RpcError::new);
            async move { result }
        });
        Ok(Some(Plugin { address: config.address, services: ctx.services.clone() }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let listener = tokio::net::TcpListener::bind(&self.address)
            .await
            .map_err(|e| format!("config key `metrics.address`: cannot listen on `{}`: {e}", self.address))?;
        tracing::info!(target: "metrics", address = %self.address, "metrics server listening on /metrics");
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                _ = shutdown.cancelled() => return Ok(()),
            };
            let services = self.services.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let services = services.clone();
                async move { Ok::<_, Infallible>(respond(&services, req.uri().path())) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    }
}

fn respond(services: &Services, path: &str) -> http::Response<Full<Bytes>> {
    if path != "/metrics" {
        let mut r = http::Response::new(Full::new(Bytes::from_static(b"metrics are served on /metrics\n")));
        *r.status_mut() = http::StatusCode::NOT_FOUND;
        return r;
    }
    let mut text = String::new();
    let encoded = prometheus_client::encoding::text::encode(&mut text, &services.metrics.lock().unwrap());
    let mut r = http::Response::new(Full::new(Bytes::from(text)));
    if encoded.is_err() {
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    r
}
