//! The `memory` jobs driver: a priority queue in the server's memory (lower `priority` first,
//! then push order), delays, requeue with headers. Jobs do not survive a restart. Enabled when a
//! `jobs.pipelines.<name>.driver` is `memory`.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rr_runtime::jobs::{Acknowledger, Delivery, DriverFactory, Job, JobsResult, Pipeline, PipelineState};
use rr_runtime::{BoxError, InitContext};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "jobs.memory";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        // Pipelines may also be declared at runtime over RPC, so any `jobs` section enables it.
        if !ctx.config.has("jobs") {
            return Ok(None);
        }
        ctx.services.jobs_drivers.register("memory", Arc::new(Factory) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

struct Factory;

/// `priority` may come as a number (config) or a string (`jobs.Declare`).
fn int(config: &serde_json::Value, key: &str, default: i64) -> i64 {
    match config.get(key) {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

impl DriverFactory for Factory {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>> {
        let memory = Memory(Arc::new(Inner {
            name: pipeline.to_string(),
            priority: int(config, "priority", 10),
            heap: Mutex::new(BinaryHeap::new()),
            notify: Notify::new(),
            seq: AtomicU64::new(0),
            delayed: AtomicI64::new(0),
            reserved: AtomicI64::new(0),
            consumer: Mutex::new(None),
        }));
        Box::pin(async move { Ok(Arc::new(memory) as Arc<dyn Pipeline>) })
    }
}

struct Entry {
    priority: i64,
    seq: u64,
    job: Job,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// The heap pops the greatest: the lowest priority number, then the oldest.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.priority, other.seq).cmp(&(self.priority, self.seq))
    }
}

struct Inner {
    name: String,
    priority: i64,
    heap: Mutex<BinaryHeap<Entry>>,
    notify: Notify,
    seq: AtomicU64,
    delayed: AtomicI64,
    reserved: AtomicI64,
    consumer: Mutex<Option<CancellationToken>>,
}

impl Inner {
    fn enqueue(self: &Arc<Self>, job: Job, delay: u64) {
        if delay == 0 {
            let priority = if job.priority != 0 { job.priority } else { self.priority };
            self.heap.lock().unwrap().push(Entry { priority, seq: self.seq.fetch_add(1, Ordering::Relaxed), job });
            self.notify.notify_one();
            return;
        }
        self.delayed.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            this.delayed.fetch_sub(1, Ordering::Relaxed);
            this.enqueue(job, 0);
        });
    }

    async fn consume(self: Arc<Self>, out: mpsc::Sender<Delivery>, stop: CancellationToken) {
        loop {
            let next = self.heap.lock().unwrap().pop();
            let Some(entry) = next else {
                tokio::select! {
                    _ = self.notify.notified() => continue,
                    _ = stop.cancelled() => return,
                }
            };
            self.reserved.fetch_add(1, Ordering::Relaxed);
            let delivery = Delivery {
                job: entry.job.clone(),
                driver: "memory",
                queue: self.name.clone(),
                acker: Box::new(Ack { inner: self.clone(), job: entry.job.clone() }),
            };
            let sent = tokio::select! {
                r = out.send(delivery) => r.is_ok(),
                _ = stop.cancelled() => false,
            };
            if !sent {
                // Paused or stopping while waiting for room: the job goes back, nothing is lost.
                self.reserved.fetch_sub(1, Ordering::Relaxed);
                self.heap.lock().unwrap().push(entry);
                return;
            }
        }
    }
}

struct Ack {
    inner: Arc<Inner>,
    job: Job,
}

impl Acknowledger for Ack {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        self.inner.reserved.fetch_sub(1, Ordering::Relaxed);
        Box::pin(async { Ok(()) })
    }

    fn nack(self: Box<Self>, requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        self.inner.reserved.fetch_sub(1, Ordering::Relaxed);
        if requeue {
            self.inner.enqueue(self.job, delay);
        }
        Box::pin(async { Ok(()) })
    }

    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        self.inner.reserved.fetch_sub(1, Ordering::Relaxed);
        let mut job = self.job;
        job.headers = headers;
        self.inner.enqueue(job, delay);
        Box::pin(async { Ok(()) })
    }
}

pub struct Memory(Arc<Inner>);

impl Pipeline for Memory {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>> {
        let delay = job.delay;
        self.0.enqueue(job, delay);
        Box::pin(async { Ok(()) })
    }

    fn resume(&self, out: mpsc::Sender<Delivery>) -> BoxFuture<'_, JobsResult<()>> {
        let mut consumer = self.0.consumer.lock().unwrap();
        if consumer.is_none() {
            let stop = CancellationToken::new();
            tokio::spawn(self.0.clone().consume(out, stop.clone()));
            *consumer = Some(stop);
        }
        Box::pin(async { Ok(()) })
    }

    fn pause(&self) -> BoxFuture<'_, JobsResult<()>> {
        if let Some(stop) = self.0.consumer.lock().unwrap().take() {
            stop.cancel();
        }
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.pause()
    }

    fn state(&self) -> PipelineState {
        PipelineState {
            pipeline: self.0.name.clone(),
            driver: "memory".into(),
            queue: self.0.name.clone(),
            active: self.0.heap.lock().unwrap().len() as i64,
            delayed: self.0.delayed.load(Ordering::Relaxed),
            reserved: self.0.reserved.load(Ordering::Relaxed),
            ready: self.0.consumer.lock().unwrap().is_some(),
            priority: self.0.priority.max(0) as u64,
        }
    }
}
