//! The metrics registry plugins fill and the `metrics` plugin serves.
//!
//! A [`Collector`] reports metric families at scrape time, in the data model of Go's
//! client_golang (the names exactly as declared, the types counter, gauge, histogram and
//! summary); [`Registry::gather`] puts them in the order client_golang's registry gathers them,
//! so the `metrics` plugin can write them byte for byte as RoadRunner does.

use std::sync::{Arc, Mutex};

/// What kind of metric a family holds: its `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

/// One metric of a family: its labels (in any order; gathering sorts them by name) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub labels: Vec<(String, String)>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's or a gauge's value.
    Single(f64),
    /// Cumulative counts per upper bound (without `+Inf`: the count is that bucket).
    Histogram { buckets: Vec<(f64, u64)>, sum: f64, count: u64 },
    /// The value at each quantile (NaN before the first observation).
    Summary { quantiles: Vec<(f64, f64)>, sum: f64, count: u64 },
}

/// A named metric family: `# HELP`, `# TYPE` and its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub metrics: Vec<Metric>,
}

impl Family {
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: Kind) -> Self {
        Family { name: name.into(), help: help.into(), kind, metrics: Vec::new() }
    }

    /// A family of one unlabelled counter or gauge.
    pub fn single(name: impl Into<String>, help: impl Into<String>, kind: Kind, value: f64) -> Self {
        Family::new(name, help, kind).with(Vec::new(), Value::Single(value))
    }

    pub fn with(mut self, labels: Vec<(String, String)>, value: Value) -> Self {
        self.metrics.push(Metric { labels, value });
        self
    }
}

/// Reports families when `/metrics` is scraped.
pub trait Collector: Send + Sync {
    fn collect(&self, out: &mut Vec<Family>);
}

/// Every collector the plugins registered.
#[derive(Default)]
pub struct Registry {
    collectors: Mutex<Vec<Arc<dyn Collector>>>,
}

impl Registry {
    pub fn register(&self, collector: Arc<dyn Collector>) {
        self.collectors.lock().unwrap().push(collector);
    }

    /// All families as client_golang's registry gathers them: sorted by name, labels sorted by
    /// name, metrics sorted by label values, families without metrics left out.
    pub fn gather(&self) -> Vec<Family> {
        // Collect outside the lock: a collector may itself look at the registry.
        let collectors = self.collectors.lock().unwrap().clone();
        let mut families = Vec::new();
        for collector in collectors {
            collector.collect(&mut families);
        }
        families.retain(|f| !f.metrics.is_empty());
        for family in &mut families {
            for metric in &mut family.metrics {
                metric.labels.sort_by(|a, b| a.0.cmp(&b.0));
            }
            family.metrics.sort_by(|a, b| a.labels.iter().map(|l| &l.1).cmp(b.labels.iter().map(|l| &l.1)));
        }
        families.sort_by(|a, b| a.name.cmp(&b.name));
        families
    }
}

/// A histogram with fixed upper bounds, as client_golang's (`le` buckets, `_sum`, `_count`).
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Prometheus' default buckets (client_golang `DefBuckets`).
    pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

    /// `bounds` must increase strictly; a last `+Inf` is dropped (it is always written).
    pub fn new(bounds: &[f64]) -> Self {
        let bounds: Vec<f64> = bounds.iter().copied().filter(|b| *b != f64::INFINITY).collect();
        Histogram { counts: vec![0; bounds.len()], bounds, sum: 0.0, count: 0 }
    }

    pub fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds another histogram's observations (same bounds).
    pub fn merge(&mut self, other: &Histogram) {
        debug_assert_eq!(self.bounds, other.bounds);
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn value(&self) -> Value {
        let cumulative = self.counts.iter().scan(0, |acc, c| {
            *acc += c;
            Some(*acc)
        });
        Value::Histogram { buckets: self.bounds.iter().copied().zip(cumulative).collect(), sum: self.sum, count: self.count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<Family>);
    impl Collector for Fixed {
        fn collect(&self, out: &mut Vec<Family>) {
            out.extend(self.0.iter().cloned());
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn gather_sorts_like_client_golang_and_drops_empty_families() {
        let registry = Registry::default();
        let state = Family::new("b_state", "", Kind::Gauge)
            .with(labels(&[("state", "ready"), ("pid", "9")]), Value::Single(0.0))
            .with(labels(&[("state", "ready"), ("pid", "10")]), Value::Single(0.0));
        registry.register(Arc::new(Fixed(vec![state, Family::new("a_empty", "", Kind::Counter)])));
        registry.register(Arc::new(Fixed(vec![Family::single("a_up", "", Kind::Gauge, 1.0)])));
        let families = registry.gather();
        assert_eq!(families.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["a_up", "b_state"]);
        // Labels by name, metrics by label values compared as strings ("10" < "9").
        assert_eq!(families[1].metrics[0].labels, labels(&[("pid", "10"), ("state", "ready")]));
        assert_eq!(families[1].metrics[1].labels, labels(&[("pid", "9"), ("state", "ready")]));
    }

    #[test]
    fn histogram_counts_cumulatively_and_drops_a_given_inf_bound() {
        let mut h = Histogram::new(&[1.0, 2.0, f64::INFINITY]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.value(), Value::Histogram { buckets: vec![(1.0, 2), (2.0, 3)], sum: 6.0, count: 4 });
    }
}
