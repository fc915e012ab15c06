//! The `memory` jobs driver: a priority queue in the server's memory (lower `priority` first,
//! then push order), delays, requeue with headers. Jobs do not survive a restart. Enabled when a
//! `jobs.pipelines.<name>.driver` is `memory`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use rr_runtime::jobs::queue::Queue;
use rr_runtime::jobs::{Acknowledger, DriverFactory, Inbox, Job, JobsResult, Pipeline, PipelineState};
use rr_runtime::{BoxError, InitContext};

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
pub fn int(config: &serde_json::Value, key: &str, default: i64) -> i64 {
    match config.get(key) {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

impl DriverFactory for Factory {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>> {
        let memory = Memory(Queue::new(pipeline, "memory", int(config, "priority", 10)));
        Box::pin(async move { Ok(Arc::new(memory) as Arc<dyn Pipeline>) })
    }
}

/// Settles a delivery of the in-memory queue.
struct Ack {
    queue: Arc<Queue>,
    job: Job,
}

impl Acknowledger for Ack {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        self.queue.settled();
        Box::pin(async { Ok(()) })
    }

    fn nack(self: Box<Self>, requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        self.queue.settled();
        if requeue {
            self.queue.push(0, self.job, delay);
        }
        Box::pin(async { Ok(()) })
    }

    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        self.queue.settled();
        let mut job = self.job;
        job.headers = headers;
        self.queue.push(0, job, delay);
        Box::pin(async { Ok(()) })
    }
}

pub struct Memory(Arc<Queue>);

impl Pipeline for Memory {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>> {
        let delay = job.delay;
        self.0.push(0, job, delay);
        Box::pin(async { Ok(()) })
    }

    fn resume(&self, out: Inbox) -> BoxFuture<'_, JobsResult<()>> {
        let queue = self.0.clone();
        self.0.resume(out, Arc::new(move |_, job| Box::new(Ack { queue: queue.clone(), job }) as Box<dyn Acknowledger>));
        Box::pin(async { Ok(()) })
    }

    fn pause(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.0.pause();
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.pause()
    }

    fn state(&self) -> PipelineState {
        self.0.state(&self.0.name)
    }
}
