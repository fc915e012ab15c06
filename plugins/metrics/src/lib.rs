//! The `metrics` plugin: Prometheus exposition on `metrics.address` `/metrics` of every family
//! in `services.metrics`: the worker pools (RoadRunner's `rr_<plugin>_*`), the rr process
//! (`process_*`, as RoadRunner's registry has them), what other plugins register, and
//! application collectors from `metrics.collect` and the `metrics.*` RPC methods
//! (PROTOCOL.md §4.6.6).
//!
//! The output is what RoadRunner's Go client_golang writes for the same collectors, because
//! dashboards and alerts match on it: the text format 0.0.4 by default, OpenMetrics 1.0.0 when
//! `Accept` prefers it, names exactly as declared, Go's float formatting, summaries. Neither
//! Rust client can write that: prometheus-client writes only OpenMetrics (every counter gains
//! `_total`) and has no summary; the `prometheus` crate writes 0.0.4 with Rust's floats (`inf`,
//! `1000000`) and has neither summaries nor OpenMetrics. So the runtime keeps a plain registry
//! of families (`rr_runtime::metrics`), [`exposition`] writes both formats the way Go's expfmt
//! does, and the one algorithm worth a library, the summary's quantile estimate, comes from the
//! `quantiles` crate ([`summary`]).

pub mod collectors;
pub mod exposition;
#[cfg(target_os = "linux")]
pub mod process;
pub mod summary;

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
use exposition::Format;

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
    /// Said once its listeners are bound (systemd `READY=1` waits for it).
    serving: rr_runtime::services::Starting,
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
            apps.declare(name, spec, |_| false).map_err(|e| format!("config key `metrics.collect.{name}`: {e}"))?;
        }
        ctx.services.metrics.register(apps.clone());
        ctx.services.metrics.register(Arc::new(collectors::Pools(ctx.services.clone())));
        #[cfg(target_os = "linux")]
        ctx.services.metrics.register(Arc::new(process::ProcessCollector));
        let rpc = &ctx.services.rpc;
        for method in ["Add", "Sub", "Observe", "Set"] {
            let apps = apps.clone();
            rpc.register_json(&format!("metrics.{method}"), move |op: Operation| {
                let result = apps.apply(method, &op.name, op.value, &op.labels).map(|()| true).map_err(RpcError::new);
                async move { result }
            });
        }
        let (declaring, services) = (apps.clone(), ctx.services.clone());
        rpc.register_json("metrics.Declare", move |d: Declare| {
            let taken = |full: &str| services.metrics.gather().iter().any(|f| f.name == full);
            let result = declaring.declare(&d.name, &d.collector, taken).map(|()| true).map_err(RpcError::new);
            async move { result }
        });
        rpc.register_json("metrics.Unregister", move |name: String| {
            let result = apps.unregister(&name).map(|()| true).map_err(RpcError::new);
            async move { result }
        });
        Ok(Some(Plugin { address: config.address, services: ctx.services.clone(), serving: ctx.services.lifecycle.starting() }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let listener = tokio::net::TcpListener::bind(&self.address)
            .await
            .map_err(|e| format!("config key `metrics.address`: cannot listen on `{}`: {e}", self.address))?;
        tracing::info!(target: "metrics", address = %self.address, "metrics server listening on /metrics");
        self.serving.serving();
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                _ = shutdown.cancelled() => return Ok(()),
            };
            let services = self.services.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let services = services.clone();
                let accept = req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
                let response = respond(&services, req.uri().path(), Format::negotiate(accept));
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    }
}

fn respond(services: &Services, path: &str, format: Format) -> http::Response<Full<Bytes>> {
    if path != "/metrics" {
        let mut r = http::Response::new(Full::new(Bytes::from_static(b"metrics are served on /metrics\n")));
        *r.status_mut() = http::StatusCode::NOT_FOUND;
        return r;
    }
    let mut r = http::Response::new(Full::new(Bytes::from(exposition::encode(&services.metrics.gather(), format))));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(format.content_type()));
    r
}
