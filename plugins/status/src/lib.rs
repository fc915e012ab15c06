//! The `status` plugin: `/health` (liveness) and `/ready` (readiness) on `status.address`,
//! `?plugin=NAME` repeatable, `unavailable_status_code` (503) when a checked plugin is not
//! healthy / not ready. A plugin with a worker pool is healthy while it has workers and ready
//! while one of them is free; other plugins report through `services.health`. During shutdown
//! `/ready` answers unavailable while `/health` stays up. RPC: `status.Status`, `status.Ready`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rr_runtime::services::Health;
use rr_runtime::{BoxError, InitContext, Services};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    pub address: Option<String>,
    pub unavailable_status_code: u16,
    pub check_timeout: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { address: None, unavailable_status_code: 503, check_timeout: 60 }
    }
}

pub struct Plugin {
    address: String,
    unavailable: u16,
    services: Arc<Services>,
    /// Said once its listeners are bound (systemd `READY=1` waits for it).
    serving: rr_runtime::services::Starting,
}

/// One plugin's report, as the JSON body lists them.
#[derive(Debug, Serialize)]
pub struct Report {
    pub plugin_name: String,
    pub error_message: String,
    pub status_code: u16,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusRequest {
    plugin: String,
}

#[derive(Debug, Serialize)]
struct StatusReply {
    code: u16,
    message: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Probe {
    Health,
    Ready,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "status";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(config) = ctx.section::<Config>("status")? else { return Ok(None) };
        let address = config.address.ok_or("config key `status.address`: required, e.g. `status: {address: 127.0.0.1:2114}`")?;
        let unavailable = config.unavailable_status_code;
        if !(100..=599).contains(&unavailable) {
            return Err(format!("config key `status.unavailable_status_code`: {unavailable} is not an HTTP status code").into());
        }
        for (method, probe) in [("status.Status", Probe::Health), ("status.Ready", Probe::Ready)] {
            let services = ctx.services.clone();
            ctx.services.rpc.register_json(method, move |req: StatusRequest| {
                let r = check(&services, &req.plugin, probe, unavailable);
                async move { Ok(StatusReply { code: r.status_code, message: r.error_message }) }
            });
        }
        Ok(Some(Plugin { address, unavailable, services: ctx.services.clone(), serving: ctx.services.lifecycle.starting() }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let listener = tokio::net::TcpListener::bind(&self.address)
            .await
            .map_err(|e| format!("config key `status.address`: cannot listen on `{}`: {e}", self.address))?;
        tracing::info!(target: "status", address = %self.address, "status server listening on /health and /ready");
        self.serving.serving();
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                _ = shutdown.cancelled() => return Ok(()),
            };
            let this = self.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let this = this.clone();
                async move { Ok::<_, Infallible>(this.respond(&req)) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    }
}

impl Plugin {
    fn respond<B>(&self, req: &hyper::Request<B>) -> http::Response<Full<Bytes>> {
        let probe = match req.uri().path() {
            "/health" => Probe::Health,
            "/ready" => Probe::Ready,
            "/jobs" => return self.jobs(),
            _ => return response(404, b"use /health, /ready or /jobs\n".to_vec()),
        };
        let mut plugins: Vec<String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.strip_prefix("plugin="))
            .map(str::to_string)
            .collect();
        if plugins.is_empty() {
            plugins = self.services.enabled.names().into_iter().filter(|p| p != "status").collect();
        }
        let reports: Vec<Report> = plugins.iter().map(|p| check(&self.services, p, probe, self.unavailable)).collect();
        let code = reports.iter().map(|r| r.status_code).find(|c| *c != 200).unwrap_or(200);
        response(code, serde_json::to_vec(&reports).unwrap_or_default())
    }
}

impl Plugin {
    /// `/jobs`: every pipeline's state; unavailable while stopping or when one is not ready.
    fn jobs(&self) -> http::Response<Full<Bytes>> {
        let states: Vec<serde_json::Value> = self
            .services
            .jobs_informers
            .all()
            .into_iter()
            .flat_map(|(_, informer)| informer.states())
            .map(|s| {
                serde_json::json!({
                    "pipeline": s.pipeline, "driver": s.driver, "queue": s.queue, "active": s.active,
                    "delayed": s.delayed, "reserved": s.reserved, "ready": s.ready, "priority": s.priority,
                })
            })
            .collect();
        let ok = !self.services.lifecycle.is_stopping() && states.iter().all(|s| s["ready"] == true);
        response(if ok { 200 } else { self.unavailable }, serde_json::to_vec(&states).unwrap_or_default())
    }
}

fn response(code: u16, body: Vec<u8>) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// One plugin's state for a probe.
fn check(services: &Services, plugin: &str, probe: Probe, unavailable: u16) -> Report {
    let report = |ok: bool, message: String| Report {
        plugin_name: plugin.to_string(),
        status_code: if ok { 200 } else { unavailable },
        error_message: if ok { String::new() } else { message },
    };
    if probe == Probe::Ready && services.lifecycle.is_stopping() {
        return report(false, "the server is stopping".into());
    }
    let health = if let Some(pool) = services.pools.get(plugin) {
        let workers = pool.workers().len();
        Health {
            healthy: workers > 0 || pool.config().debug,
            ready: pool.has_free_worker(),
            message: if workers == 0 && !pool.config().debug { "no workers".into() } else { "all workers are busy".into() },
        }
    } else if let Some(checker) = services.health.get(plugin) {
        checker.health()
    } else if services.enabled.get(plugin).is_some() {
        Health { healthy: true, ready: true, message: String::new() }
    } else {
        return report(false, format!("plugin `{plugin}` is not running or not compiled into this server"));
    };
    match probe {
        Probe::Health => report(health.healthy, health.message),
        Probe::Ready => report(health.healthy && health.ready, health.message),
    }
}
