//! The `http_metrics` middleware (RoadRunner's plugin of that name): every response counted and
//! timed by status into the metrics registry the `metrics` plugin serves, with RoadRunner's names:
//! `rr_http_request_total{status}`, `rr_http_request_duration_seconds{status}` (Prometheus'
//! default buckets) and `rr_http_uptime_seconds`. RoadRunner's `rr_http_requests_queue` and
//! `rr_http_no_free_workers_total` come from the http pool's own metrics (metrics plugin), so
//! they are there with or without this middleware. On when `http.middleware` lists it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use rr_runtime::http::{Handler, Middleware, Request};
use rr_runtime::{BoxError, InitContext};

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "http_metrics";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::http::middleware_listed(ctx.config, "http_metrics") {
            return Ok(None);
        }
        let metrics = HttpMetrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(DEFAULT_BUCKETS)),
        };
        {
            let mut registry = ctx.services.metrics.lock().unwrap_or_else(|p| p.into_inner());
            // Counters get OpenMetrics' `_total` suffix: `rr_http_request_total`.
            registry.register("rr_http_request", "Total number of handled http requests after server restart.", metrics.requests.clone());
            registry.register("rr_http_request_duration_seconds", "HTTP request duration.", metrics.durations.clone());
            registry.register_collector(Box::new(Uptime(Instant::now())));
        }
        ctx.services.http_middleware.register("http_metrics", Arc::new(metrics) as Arc<dyn Middleware>);
        Ok(Some(Plugin))
    }
}

/// Prometheus' default buckets (.005 … 10 s), as Go's client uses for RoadRunner's histogram.
const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: u16,
}

#[derive(Clone)]
struct HttpMetrics {
    requests: Family<Status, Counter<u64, AtomicU64>>,
    durations: Family<Status, Histogram, fn() -> Histogram>,
}

impl Middleware for HttpMetrics {
    fn wrap(&self, next: Handler) -> Handler {
        let metrics = self.clone();
        Arc::new(move |req: Request| {
            let (metrics, started) = (metrics.clone(), Instant::now());
            let response = next(req);
            Box::pin(async move {
                let response = response.await;
                // Measured to the response head: a streamed body may still be flowing.
                let status = Status { status: response.status().as_u16() };
                metrics.durations.get_or_create(&status).observe(started.elapsed().as_secs_f64());
                metrics.requests.get_or_create(&status).inc();
                response
            })
        })
    }
}

/// `rr_http_uptime_seconds`: whole seconds since start, read at scrape time (RoadRunner ticks a
/// counter once a second; exposed as a gauge so the name keeps no `_total` suffix).
#[derive(Debug)]
struct Uptime(Instant);

impl Collector for Uptime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(self.0.elapsed().as_secs() as i64);
        gauge.encode(encoder.encode_descriptor("rr_http_uptime_seconds", "Uptime in seconds", None, gauge.metric_type())?)
    }
}
