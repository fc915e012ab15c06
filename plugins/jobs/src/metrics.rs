//! RoadRunner's `rr_jobs_*` series (roadrunner-server/jobs `metrics.go`), served by the `metrics`
//! plugin: pushes and job outcomes as counters named as Go declares them (no `_total`), and per
//! pipeline, driver and source (`single`, `batch`) the push requests and the latency of the
//! successful ones. The pool's own `rr_jobs_*workers*` series come from the metrics plugin.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rr_runtime::metrics::{Collector, Family, Histogram, Kind, Value};

/// What became of a job a worker ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Err,
    Requeue,
}

/// `job` (the pipeline, as RoadRunner labels it), `driver`, `source`.
type PushKey = (String, String, &'static str);

#[derive(Default)]
pub(crate) struct JobsMetrics {
    push_ok: AtomicU64,
    push_err: AtomicU64,
    jobs_ok: AtomicU64,
    jobs_err: AtomicU64,
    jobs_requeue: AtomicU64,
    requests: Mutex<BTreeMap<PushKey, u64>>,
    latency: Mutex<BTreeMap<PushKey, Histogram>>,
}

impl JobsMetrics {
    /// A push request reached a pipeline; `took` is `Some` when the driver accepted the job.
    pub fn pushed(&self, pipeline: &str, driver: &str, source: &'static str, took: Option<Duration>) {
        let key = (pipeline.to_string(), driver.to_string(), source);
        *self.requests.lock().unwrap().entry(key.clone()).or_default() += 1;
        match took {
            Some(took) => {
                self.push_ok.fetch_add(1, Ordering::Relaxed);
                let mut latency = self.latency.lock().unwrap();
                latency.entry(key).or_insert_with(|| Histogram::new(&Histogram::DEFAULT_BUCKETS)).observe(took.as_secs_f64());
            }
            None => {
                self.push_err.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn ran(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Ok => &self.jobs_ok,
            Outcome::Err => &self.jobs_err,
            Outcome::Requeue => &self.jobs_requeue,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn labels((job, driver, source): &PushKey) -> Vec<(String, String)> {
    vec![("job".into(), job.clone()), ("driver".into(), driver.clone()), ("source".into(), source.to_string())]
}

impl Collector for JobsMetrics {
    fn collect(&self, out: &mut Vec<Family>) {
        let counter = |name: &str, help: &str, n: &AtomicU64| Family::single(format!("rr_jobs_{name}"), help, Kind::Counter, n.load(Ordering::Relaxed) as f64);
        out.extend([
            counter("push_ok", "Number of job push", &self.push_ok),
            counter("push_err", "Number of jobs push which was failed", &self.push_err),
            counter("jobs_ok", "Number of successfully processed jobs", &self.jobs_ok),
            counter("jobs_err", "Number of jobs error while processing in the worker", &self.jobs_err),
            counter("jobs_requeue", "Number of re-queued jobs", &self.jobs_requeue),
        ]);
        let mut requests = Family::new("rr_jobs_requests_total", "The total number of requests sent to the JOBS plugin", Kind::Counter);
        for (key, n) in self.requests.lock().unwrap().iter() {
            requests = requests.with(labels(key), Value::Single(*n as f64));
        }
        let mut latency = Family::new("rr_jobs_push_latency", "Histogram represents latency for pushed operation", Kind::Histogram);
        for (key, h) in self.latency.lock().unwrap().iter() {
            latency = latency.with(labels(key), h.value());
        }
        out.extend([requests, latency]);
    }
}
