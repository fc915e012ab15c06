//! Application collectors (`metrics.collect` and the `metrics.*` RPC methods) with RoadRunner's
//! rules and error texts, and the worker pool metrics, read at scrape time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rr_runtime::Services;
use rr_runtime::metrics::{Collector, Family, Histogram, Kind, Value};
use rr_runtime::pool::WorkerState;
use serde::Deserialize;

use crate::summary::Summary;

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
    /// Summary objectives, quantile -> allowed error (`{"0.5": 0.05}`; YAML `0.5: 0.05`).
    pub objectives: serde_json::Value,
}

/// What each label set of a collector holds.
enum Shape {
    Counter,
    Gauge,
    Histogram(Vec<f64>),
    Summary(Vec<(f64, f64)>),
}

enum Cell {
    Number(f64),
    Histogram(Histogram),
    Summary(Summary),
}

impl Shape {
    fn kind(&self) -> Kind {
        match self {
            Shape::Counter => Kind::Counter,
            Shape::Gauge => Kind::Gauge,
            Shape::Histogram(_) => Kind::Histogram,
            Shape::Summary(_) => Kind::Summary,
        }
    }

    fn cell(&self, now: Instant) -> Cell {
        match self {
            Shape::Counter | Shape::Gauge => Cell::Number(0.0),
            Shape::Histogram(bounds) => Cell::Histogram(Histogram::new(bounds)),
            Shape::Summary(objectives) => Cell::Summary(Summary::new(objectives, now)),
        }
    }
}

struct App {
    full_name: String,
    help: String,
    labels: Vec<String>,
    shape: Shape,
    cells: BTreeMap<Vec<String>, Cell>,
}

/// The application collectors, by the name PHP uses.
#[derive(Default)]
pub struct AppCollectors {
    by_name: Mutex<BTreeMap<String, App>>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl Spec {
    /// client_golang's `BuildFQName`: the non-empty parts joined by `_`.
    fn full_name(&self, name: &str) -> String {
        [self.namespace.as_str(), self.subsystem.as_str(), name].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("_")
    }

    fn shape(&self, name: &str) -> Result<Shape, String> {
        let reserved = |label: &str, kind: &str| match self.labels.iter().any(|l| l == label) {
            true => Err(format!("collector `{name}`: \"{label}\" is not allowed as label name in {kind}")),
            false => Ok(()),
        };
        match self.kind.as_str() {
            "counter" => Ok(Shape::Counter),
            "gauge" => Ok(Shape::Gauge),
            "histogram" => {
                reserved("le", "histograms")?;
                let buckets = if self.buckets.is_empty() { Histogram::DEFAULT_BUCKETS.to_vec() } else { self.buckets.clone() };
                if let Some(w) = buckets.windows(2).find(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less)) {
                    return Err(format!("collector `{name}`: histogram buckets must be in increasing order: {} >= {}", w[0], w[1]));
                }
                Ok(Shape::Histogram(buckets))
            }
            "summary" => {
                reserved("quantile", "summaries")?;
                Ok(Shape::Summary(self.objectives(name)?))
            }
            other => Err(format!("unknown collector type `{other}` for `{name}`: expected counter, gauge, histogram or summary")),
        }
    }

    fn objectives(&self, name: &str) -> Result<Vec<(f64, f64)>, String> {
        let bad = |what: String| format!("collector `{name}`: {what}; objectives map quantiles to allowed errors, e.g. {{0.5: 0.05, 0.99: 0.001}}");
        let map = match &self.objectives {
            serde_json::Value::Null => return Ok(Vec::new()),
            serde_json::Value::Array(a) if a.is_empty() => return Ok(Vec::new()),
            serde_json::Value::Object(map) => map,
            other => return Err(bad(format!("objectives must be a map, got `{other}`"))),
        };
        map.iter()
            .map(|(q, e)| {
                let quantile = q.parse::<f64>().ok().filter(|q| (0.0..=1.0).contains(q));
                let error = e.as_f64().filter(|e| *e > 0.0 && *e < 1.0);
                match (quantile, error) {
                    (Some(q), Some(e)) => Ok((q, e)),
                    (None, _) => Err(bad(format!("quantile `{q}` is not a number from 0 to 1"))),
                    (_, None) => Err(bad(format!("the error for quantile {q} must be a number between 0 and 1, got `{e}`"))),
                }
            })
            .collect()
    }
}

impl AppCollectors {
    /// Declare; an existing name is left as it is (RoadRunner answers `true` then too).
    /// `taken` tells whether a family of that full name is exported already (by any collector).
    pub fn declare(&self, name: &str, spec: &Spec, taken: impl Fn(&str) -> bool) -> Result<(), String> {
        if self.by_name.lock().unwrap().contains_key(name) {
            return Ok(());
        }
        if !valid_name(name) {
            return Err(format!("invalid collector name `{name}`: it must match ^[a-zA-Z_:][a-zA-Z0-9_:]*$"));
        }
        let full_name = spec.full_name(name);
        if !valid_name(&full_name) {
            return Err(format!("collector `{name}`: invalid full name `{full_name}` (namespace and subsystem must be metric name parts)"));
        }
        if let Some(label) = spec.labels.iter().find(|l| !valid_label(l)) {
            return Err(format!("collector `{name}`: invalid label name `{label}`: it must match ^[a-zA-Z_][a-zA-Z0-9_]*$ and not start with __"));
        }
        let shape = spec.shape(name)?;
        // Asked before locking: `taken` may gather these very collectors.
        let taken = taken(&full_name);
        let mut map = self.by_name.lock().unwrap();
        if taken || map.values().any(|a| a.full_name == full_name) {
            return Err(format!("duplicate metrics collector registration attempted: `{full_name}` is already exported; declare `{name}` under another name or namespace"));
        }
        let mut cells = BTreeMap::new();
        // client_golang exports a collector without labels from the start, a vector once used.
        if spec.labels.is_empty() {
            cells.insert(Vec::new(), shape.cell(Instant::now()));
        }
        map.insert(name.to_string(), App { full_name, help: spec.help.clone(), labels: spec.labels.clone(), shape, cells });
        Ok(())
    }

    pub fn unregister(&self, name: &str) -> Result<(), String> {
        self.by_name.lock().unwrap().remove(name).map(|_| ()).ok_or_else(|| format!("undefined collector {name}"))
    }

    /// `Add`, `Sub`, `Set`, `Observe` with RoadRunner's error texts.
    pub fn apply(&self, method: &str, name: &str, value: f64, labels: &[String]) -> Result<(), String> {
        let mut map = self.by_name.lock().unwrap();
        let app = map.get_mut(name).ok_or_else(|| format!("undefined collector {name}, try first Declare the desired collector"))?;
        // Like RoadRunner, a collector without labels takes the value and ignores labels sent.
        let labels = if app.labels.is_empty() { &[] } else { labels };
        if labels.len() != app.labels.len() {
            return Err(format!("required labels for collector {name}: {:?}, got {labels:?}", app.labels));
        }
        let supported = matches!(
            (&app.shape, method),
            (Shape::Counter, "Add") | (Shape::Gauge, "Add" | "Sub" | "Set") | (Shape::Histogram(_) | Shape::Summary(_), "Observe")
        );
        if !supported {
            return Err(format!("collector `{name}` does not support method `{method}`"));
        }
        if matches!(app.shape, Shape::Counter) && value < 0.0 {
            return Err(format!("counter cannot decrease in value: {name}"));
        }
        let now = Instant::now();
        let cell = app.cells.entry(labels.to_vec()).or_insert_with(|| app.shape.cell(now));
        match (cell, method) {
            (Cell::Number(n), "Add") => *n += value,
            (Cell::Number(n), "Sub") => *n -= value,
            (Cell::Number(n), _) => *n = value,
            (Cell::Histogram(h), _) => h.observe(value),
            (Cell::Summary(s), _) => s.observe(value, now),
        }
        Ok(())
    }
}

impl Collector for AppCollectors {
    fn collect(&self, out: &mut Vec<Family>) {
        let now = Instant::now();
        for app in self.by_name.lock().unwrap().values_mut() {
            let mut family = Family::new(&app.full_name, &app.help, app.shape.kind());
            for (values, cell) in &mut app.cells {
                let labels = app.labels.iter().cloned().zip(values.iter().cloned()).collect();
                let value = match cell {
                    Cell::Number(n) => Value::Single(*n),
                    Cell::Histogram(h) => h.value(),
                    Cell::Summary(s) => {
                        let (quantiles, sum, count) = s.read(now);
                        Value::Summary { quantiles, sum, count }
                    }
                };
                family = family.with(labels, value);
            }
            out.push(family);
        }
    }
}

/// Worker pool metrics with RoadRunner's names and help texts (`rr_<plugin>_*`; the http
/// plugin's say "HTTP workers", as roadrunner-server/http's do).
pub struct Pools(pub Arc<Services>);

impl Collector for Pools {
    fn collect(&self, out: &mut Vec<Family>) {
        for plugin in self.0.pools.names() {
            let (of_plugin, workers_lc, workers_cap) =
                if plugin == "http" { ("HTTP plugin", "HTTP workers", "HTTP workers") } else { ("plugin", "workers", "Workers") };
            let workers = self.0.plugin_workers(&plugin).unwrap_or_default();
            let count = |pred: &dyn Fn(WorkerState) -> bool| workers.iter().filter(|w| pred(w.state)).count() as f64;
            // RoadRunner's centrifuge plugin names its metrics after Centrifugo.
            let prefix = if plugin == "centrifuge" { "centrifugo" } else { plugin.as_str() };
            let gauge = |name: &str, help: String, value: f64| Family::single(format!("rr_{prefix}_{name}"), help, Kind::Gauge, value);
            out.extend([
                gauge("total_workers", format!("Total number of workers used by the {of_plugin}"), workers.len() as f64),
                gauge("workers_memory_bytes", format!("Memory usage by {workers_lc}."), workers.iter().map(|w| w.memory as f64).sum()),
                gauge("workers_ready", format!("{workers_cap} currently in ready state"), count(&|s| s == WorkerState::Ready)),
                gauge("workers_working", format!("{workers_cap} currently in working state"), count(&|s| s == WorkerState::Working)),
                gauge(
                    "workers_invalid",
                    format!("{workers_cap} currently in invalid,killing,destroyed,errored,inactive states"),
                    count(&|s| s != WorkerState::Ready && s != WorkerState::Working),
                ),
            ]);
            let mut memory = Family::new(format!("rr_{prefix}_worker_memory_bytes"), "Worker current memory usage", Kind::Gauge);
            let mut state = Family::new(format!("rr_{prefix}_worker_state"), "Worker current state", Kind::Gauge);
            for w in &workers {
                let pid = ("pid".to_string(), w.pid.to_string());
                memory = memory.with(vec![pid.clone()], Value::Single(w.memory as f64));
                state = state.with(vec![("state".into(), w.state.as_str().into()), pid], Value::Single(0.0));
            }
            out.extend([memory, state]);
        }
    }
}
