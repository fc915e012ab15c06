//! `rr_grpc_request_total{grpc_method,status_code}`, `rr_grpc_request_duration_seconds{grpc_method}`
//! and `rr_grpc_requests_queue` (GRPC.md §6) in the registry the `metrics` plugin serves. The
//! worker gauges come from the pool's own metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_runtime::Services;
use rr_runtime::metrics::{Collector, Family, Histogram, Kind, Value};

#[derive(Clone)]
pub struct Metrics {
    services: Arc<Services>,
    /// Durations per method and status code; each histogram's count is that pair's total.
    calls: Arc<Mutex<BTreeMap<String, BTreeMap<u32, Histogram>>>>,
}

impl Metrics {
    pub fn register(services: &Arc<Services>) -> Metrics {
        let metrics = Metrics { services: services.clone(), calls: Arc::default() };
        services.metrics.register(Arc::new(metrics.clone()));
        metrics
    }

    pub fn record(&self, method: &str, code: u32, elapsed: Duration) {
        let mut calls = self.calls.lock().unwrap();
        // Looked up by `&str`: a known method costs no allocation per call.
        let codes = match calls.get_mut(method) {
            Some(codes) => codes,
            None => calls.entry(method.to_string()).or_default(),
        };
        codes.entry(code).or_insert_with(|| Histogram::new(&Histogram::DEFAULT_BUCKETS)).observe(elapsed.as_secs_f64());
    }
}

impl Collector for Metrics {
    fn collect(&self, out: &mut Vec<Family>) {
        let mut requests = Family::new("rr_grpc_request_total", "Total number of handled grpc requests after server restart.", Kind::Counter);
        // RoadRunner's histogram is by method alone: merge the status codes of each method.
        let mut by_method: BTreeMap<&str, Histogram> = BTreeMap::new();
        let calls = self.calls.lock().unwrap();
        for (method, codes) in calls.iter() {
            for (code, histogram) in codes {
                let labels = vec![("grpc_method".to_string(), method.clone()), ("status_code".to_string(), crate::status::code_name(*code))];
                requests = requests.with(labels, Value::Single(histogram.count() as f64));
                by_method.entry(method).and_modify(|h| h.merge(histogram)).or_insert_with(|| histogram.clone());
            }
        }
        let mut durations = Family::new("rr_grpc_request_duration_seconds", "GRPC request duration.", Kind::Histogram);
        for (method, histogram) in by_method {
            durations = durations.with(vec![("grpc_method".to_string(), method.to_string())], histogram.value());
        }
        // The pool's queue (waiting or running) stands for RoadRunner's in-flight gauge.
        let queue = self.services.pools.get("grpc").map_or(0, |p| p.queue_size());
        out.extend([requests, durations, Family::single("rr_grpc_requests_queue", "Total number of queued requests.", Kind::Gauge, queue as f64)]);
    }
}
