//! The `http_metrics` middleware (RoadRunner's plugin of that name, roadrunner-server/prometheus):
//! every response counted and timed by status into the registry the `metrics` plugin serves,
//! with RoadRunner's names, types, help texts and buckets: `rr_http_request_total{status}`,
//! `rr_http_request_duration_seconds{status}`, `rr_http_requests_queue`,
//! `rr_http_no_free_workers_total` (the last two read from the http pool) and the counter
//! `rr_http_uptime_seconds`. On when `http.middleware` lists it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rr_runtime::Services;
use rr_runtime::http::{Handler, Middleware, Request};
use rr_runtime::metrics::{Collector, Family, Histogram, Kind, Value};
use rr_runtime::{BoxError, InitContext};

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "http_metrics";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::http::middleware_listed(ctx.config, "http_metrics") {
            return Ok(None);
        }
        let metrics = HttpMetrics { services: ctx.services.clone(), started: Instant::now(), by_status: Arc::default() };
        ctx.services.metrics.register(Arc::new(metrics.clone()));
        ctx.services.http_middleware.register("http_metrics", Arc::new(metrics) as Arc<dyn Middleware>);
        Ok(Some(Plugin))
    }
}

/// RoadRunner's buckets for `rr_http_request_duration_seconds`: the defaults up to 60 s.
const BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];

#[derive(Clone)]
struct HttpMetrics {
    services: Arc<Services>,
    started: Instant,
    /// Durations per status code; each histogram's count is that status' request total.
    by_status: Arc<Mutex<BTreeMap<u16, Histogram>>>,
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
                let elapsed = started.elapsed().as_secs_f64();
                metrics.by_status.lock().unwrap().entry(response.status().as_u16()).or_insert_with(|| Histogram::new(&BUCKETS)).observe(elapsed);
                response
            })
        })
    }
}

impl Collector for HttpMetrics {
    fn collect(&self, out: &mut Vec<Family>) {
        let mut requests = Family::new("rr_http_request_total", "Total number of handled http requests after server restart.", Kind::Counter);
        let mut durations = Family::new("rr_http_request_duration_seconds", "HTTP request duration.", Kind::Histogram);
        for (status, histogram) in self.by_status.lock().unwrap().iter() {
            let label = vec![("status".to_string(), status.to_string())];
            requests = requests.with(label.clone(), Value::Single(histogram.count() as f64));
            durations = durations.with(label, histogram.value());
        }
        // The pool's queue (waiting or running) and no-free-worker count stand for RoadRunner's
        // in-flight gauge and `No-Workers` counter.
        let pool = self.services.pools.get("http");
        let (queue, no_free) = pool.map_or((0, 0), |p| (p.queue_size(), p.no_free_workers_total()));
        out.extend([
            requests,
            durations,
            Family::single("rr_http_requests_queue", "Total number of queued requests.", Kind::Gauge, queue as f64),
            Family::single("rr_http_no_free_workers_total", "Total number of NoFreeWorkers occurrences.", Kind::Counter, no_free as f64),
            // RoadRunner ticks this counter once a second.
            Family::single("rr_http_uptime_seconds", "Uptime in seconds", Kind::Counter, self.started.elapsed().as_secs() as f64),
        ]);
    }
}
