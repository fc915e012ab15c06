//! Application collectors (`metrics.collect` and the `metrics.*` RPC methods), and the worker
//! pool metrics computed at scrape time, both encoded with prometheus-client.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use rr_runtime::Services;
use rr_runtime::pool::WorkerState;
use serde::Deserialize;

type Labels = Vec<(String, String)>;

/// One collector as `metrics.collect` and `metrics.Declare` describe it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Spec {
    pub namespace: String,
    pub subsystem: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub labels: Vec<String>,
    pub buckets: Vec<f64>,
    pub objectives: serde_json::Value,
}

#[derive(Clone)]
struct Buckets(Vec<f64>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.clone())
    }
}

enum Metric {
    Counter(Family<Labels, Counter<f64, AtomicU64>>),
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
    Histogram(Family<Labels, Histogram, Buckets>),
}

struct App {
    full_name: String,
    help: String,
    labels: Vec<String>,
    metric: Metric,
}

/// The application collectors, by the name PHP uses.
#[derive(Default)]
pub struct AppCollectors {
    by_name: Mutex<BTreeMap<String, App>>,
}

impl std::fmt::Debug for AppCollectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppCollectors")
    }
}

/// Default Prometheus buckets (.005 … 10 s).
const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl AppCollectors {
    /// Declare; an existing name is left as it is (RoadRunner answers `true` then too).
    pub fn declare(&self, name: &str, spec: &Spec) -> Result<(), String> {
        if !valid_name(name) {
            return Err(format!("invalid collector name `{name}`: it must match ^[a-zA-Z_:][a-zA-Z0-9_:]*$"));
        }
        let mut map = self.by_name.lock().unwrap();
        if map.contains_key(name) {
            return Ok(());
        }
        let metric = match spec.kind.as_str() {
            "counter" => Metric::Counter(Family::default()),
            "gauge" => Metric::Gauge(Family::default()),
            "histogram" => {
                let buckets = if spec.buckets.is_empty() { DEFAULT_BUCKETS.to_vec() } else { spec.buckets.clone() };
                Metric::Histogram(Family::new_with_constructor(Buckets(buckets)))
            }
            "summary" => return Err(format!("collector `{name}`: summaries are not supported by this server; declare a histogram instead")),
            other => return Err(format!("collector `{name}`: unknown type `{other}`; expected counter, gauge or histogram")),
        };
        let full_name = [spec.namespace.as_str(), spec.subsystem.as_str(), name].iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join("_");
        // OpenMetrics (and so prometheus-client) writes counters with a `_total` suffix; strip a
        // declared one so `orders_total` stays `orders_total`. A counter named without it gains it.
        let full_name = match (&metric, full_name.strip_suffix("_total")) {
            (Metric::Counter(_), Some(stem)) => stem.to_string(),
            _ => full_name,
        };
        map.insert(name.to_string(), App { full_name, help: spec.help.clone(), labels: spec.labels.clone(), metric });
        Ok(())
    }

    pub fn unregister(&self, name: &str) -> Result<(), String> {
        self.by_name.lock().unwrap().remove(name).map(|_| ()).ok_or_else(|| format!("undefined collector {name}"))
    }

    /// `Add`, `Sub`, `Set`, `Observe` with RoadRunner's error texts.
    pub fn apply(&self, method: &str, name: &str, value: f64, labels: &[String]) -> Result<(), String> {
        let map = self.by_name.lock().unwrap();
        let app = map.get(name).ok_or_else(|| format!("undefined collector {name}, try first Declare the desired collector"))?;
        if labels.len() != app.labels.len() {
            return Err(format!("required labels for collector {name}: {:?}, got {labels:?}", app.labels));
        }
        let set: Labels = app.labels.iter().cloned().zip(labels.iter().cloned()).collect();
        let unsupported = || format!("collector `{name}` does not support method `{method}`");
        match (&app.metric, method) {
            (Metric::Counter(f), "Add") => {
                if value < 0.0 {
                    return Err(format!("counter `{name}` cannot decrease (value {value})"));
                }
                f.get_or_create(&set).inc_by(value);
            }
            (Metric::Gauge(f), "Add") => {
                f.get_or_create(&set).inc_by(value);
            }
            (Metric::Gauge(f), "Sub") => {
                f.get_or_create(&set).dec_by(value);
            }
            (Metric::Gauge(f), "Set") => {
                f.get_or_create(&set).set(value);
            }
            (Metric::Histogram(f), "Observe") => f.get_or_create(&set).observe(value),
            _ => return Err(unsupported()),
        }
        Ok(())
    }
}

impl Collector for AppCollectors {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A collector without labels is encoded as its single metric (no `{}` in the output).
        fn one<M: EncodeMetric + prometheus_client::metrics::TypedMetric, C: MetricConstructor<M>>(
            encoder: &mut DescriptorEncoder,
            app: &App,
            family: &Family<Labels, M, C>,
        ) -> Result<(), std::fmt::Error> {
            let descriptor = encoder.encode_descriptor(&app.full_name, &app.help, None, family.metric_type())?;
            if app.labels.is_empty() { family.get_or_create(&Vec::new()).encode(descriptor) } else { family.encode(descriptor) }
        }
        for app in self.by_name.lock().unwrap().values() {
            match &app.metric {
                Metric::Counter(f) => one(&mut encoder, app, f)?,
                Metric::Gauge(f) => one(&mut encoder, app, f)?,
                Metric::Histogram(f) => one(&mut encoder, app, f)?,
            }
        }
        Ok(())
    }
}

/// Worker pool metrics with RoadRunner's names (`rr_<plugin>_*`), read at scrape time.
pub struct Pools(pub Arc<Services>);

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pools")
    }
}

impl Collector for Pools {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (plugin, pool) in self.0.pools.all() {
            let workers = pool.workers();
            let gauge = |v: f64| {
                let g = Gauge::<f64, AtomicU64>::default();
                g.set(v);
                g
            };
            let count = |pred: &dyn Fn(WorkerState) -> bool| workers.iter().filter(|w| pred(w.state)).count() as f64;
            let scalars = [
                ("total_workers", "Total number of workers used by the plugin", workers.len() as f64),
                ("workers_memory_bytes", "Memory usage by workers", workers.iter().map(|w| w.memory as f64).sum()),
                ("workers_ready", "Workers currently in ready state", count(&|s| s == WorkerState::Ready)),
                ("workers_working", "Workers currently in working state", count(&|s| s == WorkerState::Working)),
                ("workers_invalid", "Workers currently in invalid, killing, destroyed, errored, inactive states", count(&|s| s != WorkerState::Ready && s != WorkerState::Working)),
                ("requests_queue", "Requests waiting for or running on a worker", pool.queue_size() as f64),
            ];
            for (name, help, value) in scalars {
                let g = gauge(value);
                g.encode(encoder.encode_descriptor(&format!("rr_{plugin}_{name}"), help, None, g.metric_type())?)?;
            }
            let no_free = Counter::<f64, AtomicU64>::default();
            no_free.inc_by(pool.no_free_workers_total() as f64);
            no_free.encode(encoder.encode_descriptor(&format!("rr_{plugin}_no_free_workers"), "Times a request found no free worker within allocate_timeout", None, no_free.metric_type())?)?;

            let memory: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
            let state: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
            for w in &workers {
                memory.get_or_create(&vec![("pid".into(), w.pid.to_string())]).set(w.memory as f64);
                state.get_or_create(&vec![("pid".into(), w.pid.to_string()), ("state".into(), w.state.as_str().into())]).set(0.0);
            }
            memory.encode(encoder.encode_descriptor(&format!("rr_{plugin}_worker_memory_bytes"), "Worker current memory usage", None, memory.metric_type())?)?;
            state.encode(encoder.encode_descriptor(&format!("rr_{plugin}_worker_state"), "Worker current state", None, state.metric_type())?)?;
        }
        Ok(())
    }
}
