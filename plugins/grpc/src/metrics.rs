//! `rr_grpc_request_total{grpc_method,status_code}` and
//! `rr_grpc_request_duration_seconds{grpc_method}` (GRPC.md §6). The worker gauges and
//! `rr_grpc_requests_queue` come from the pool's own metrics (metrics plugin).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Prometheus' default buckets, as Go's client uses.
const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Call {
    grpc_method: String,
    status_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    grpc_method: String,
}

#[derive(Clone)]
pub struct Metrics {
    requests: Family<Call, Counter<u64, AtomicU64>>,
    durations: Family<Method, Histogram, fn() -> Histogram>,
}

impl Metrics {
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Metrics {
        let m = Metrics { requests: Family::default(), durations: Family::new_with_constructor(|| Histogram::new(DEFAULT_BUCKETS)) };
        // Counters get OpenMetrics' `_total` suffix: `rr_grpc_request_total`.
        registry.register("rr_grpc_request", "Total number of handled grpc requests after server restart.", m.requests.clone());
        registry.register("rr_grpc_request_duration_seconds", "GRPC request duration.", m.durations.clone());
        m
    }

    pub fn record(&self, method: &str, code: u32, elapsed: Duration) {
        let grpc_method = method.to_string();
        self.requests.get_or_create(&Call { grpc_method: grpc_method.clone(), status_code: crate::status::code_name(code) }).inc();
        self.durations.get_or_create(&Method { grpc_method }).observe(elapsed.as_secs_f64());
    }
}
