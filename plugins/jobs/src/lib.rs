//! The `jobs` plugin: pipelines from `jobs.pipelines` on driver plugins, consumed by a pool of
//! PHP workers (`RR_MODE=jobs`), pushed and managed over RPC with the `jobs.v1` messages.
//!
//! Flow: a consuming pipeline sends deliveries into one bounded inbox (`pipeline_size`
//! deliveries: backpressure reaches the drivers); whenever a worker is free the dispatcher takes
//! the most urgent delivery of all pipelines (lowest priority number, then oldest); each is
//! executed (PROTOCOL.md §5.1) and settled with its broker only after PHP answered (§5.2): ack,
//! nack with requeue and delay, or requeue.

mod metrics;
pub mod proto;
mod rpc;
mod trace;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use rr_runtime::frame;
use rr_runtime::jobs::{Delivery, Inbox, Pipeline};
use rr_runtime::pool::{Payload, Pool, PoolConfig};
use rr_runtime::{BoxError, InitContext, Services};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use metrics::{JobsMetrics, Outcome};

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub pool: PoolConfig,
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Pipelines consumed from the start; the others wait for `jobs.Resume`.
    pub consume: Vec<String>,
    pub pipeline_size: usize,
    /// Seconds for a push or a driver operation.
    pub timeout: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { pool: PoolConfig::default(), pipelines: BTreeMap::new(), consume: Vec::new(), pipeline_size: 1_000_000, timeout: 60 }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineConfig {
    pub driver: String,
    #[serde(default)]
    pub config: serde_json::Value,
}

/// What the RPC methods and the dispatcher share.
pub(crate) struct State {
    pub services: Arc<Services>,
    pub pipelines: RwLock<BTreeMap<String, Arc<dyn Pipeline>>>,
    /// Set when serving starts: where consuming pipelines deliver.
    pub deliveries: OnceLock<Inbox>,
    pub metrics: Arc<JobsMetrics>,
}

impl State {
    pub async fn create(&self, name: &str, driver: &str, config: &serde_json::Value) -> Result<Arc<dyn Pipeline>, String> {
        let factory = self.services.jobs_drivers.get(driver).ok_or_else(|| {
            format!("no associated driver with the pipeline `{name}`: driver `{driver}` is not compiled into this server; add its plugin (e.g. rr-jobs-{driver}) to velox.toml")
        })?;
        let pipeline = factory.create(name, config).await.map_err(|e| format!("pipeline `{name}` ({driver}): {e}"))?;
        self.pipelines.write().unwrap().insert(name.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    pub async fn resume(&self, pipeline: &Arc<dyn Pipeline>) -> Result<(), String> {
        let out = self.deliveries.get().ok_or("the jobs plugin is not serving yet")?.clone();
        pipeline.resume(out).await.map_err(|e| e.to_string())
    }
}

impl rr_runtime::jobs::JobsInformer for State {
    fn states(&self) -> Vec<rr_runtime::jobs::PipelineState> {
        self.pipelines.read().unwrap().values().map(|p| p.state()).collect()
    }
}

pub struct Plugin {
    config: Config,
    state: Arc<State>,
    pool: OnceLock<Pool>,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "jobs";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(config) = ctx.section::<Config>("jobs")? else { return Ok(None) };
        for name in &config.consume {
            if !config.pipelines.contains_key(name) {
                return Err(format!("config key `jobs.consume`: `{name}` is not a pipeline in `jobs.pipelines`").into());
            }
        }
        let metrics = Arc::new(JobsMetrics::default());
        ctx.services.metrics.register(metrics.clone());
        let state = Arc::new(State { services: ctx.services.clone(), pipelines: RwLock::default(), deliveries: OnceLock::new(), metrics });
        rpc::register(&state);
        ctx.services.jobs_informers.register("jobs", state.clone() as Arc<dyn rr_runtime::jobs::JobsInformer>);
        Ok(Some(Plugin { config, state, pool: OnceLock::new() }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let pool = self.state.services.new_pool("jobs", "jobs", self.config.pool.clone()).await?;
        let _ = self.pool.set(pool.clone());
        let inbox = Inbox::new(self.config.pipeline_size.clamp(1, 100_000));
        let _ = self.state.deliveries.set(inbox.clone());
        for (name, p) in &self.config.pipelines {
            let mut config = p.config.clone();
            if config.is_null() {
                config = serde_json::json!({});
            }
            let pipeline = self.state.create(name, &p.driver, &config).await?;
            if self.config.consume.contains(name) {
                self.state.resume(&pipeline).await?;
            }
        }
        let slots = Arc::new(Semaphore::new(self.config.pool.effective_workers().max(1)));
        loop {
            // A free worker first, then the delivery: until a worker is free, every delivery
            // waits in the inbox where a more urgent one can still overtake it.
            let (permit, delivery) = tokio::select! {
                next = async {
                    let permit = slots.clone().acquire_owned().await.expect("semaphore open");
                    (permit, inbox.recv().await)
                } => match next { (permit, Some(d)) => (permit, d), (_, None) => break },
                _ = shutdown.cancelled() => break,
            };
            let (pool, services) = (pool.clone(), self.state.services.clone());
            let metrics = self.state.metrics.clone();
            tokio::spawn(async move {
                metrics.ran(execute(&pool, &services.tracing, delivery).await);
                drop(permit);
            });
        }
        // Stop consuming; jobs still in the channel go back to their pipelines; jobs in flight
        // finish and are settled; then the pipelines close.
        let pipelines: Vec<_> = self.state.pipelines.read().unwrap().values().cloned().collect();
        for p in &pipelines {
            let _ = p.pause().await;
        }
        inbox.close();
        while let Some(d) = inbox.recv().await {
            let _ = d.acker.nack(true, 0).await;
        }
        let _ = slots.acquire_many(self.config.pool.effective_workers().max(1) as u32).await;
        for p in pipelines {
            let _ = p.stop().await;
        }
        Ok(())
    }

    async fn stop(&self) -> Result<(), BoxError> {
        if let Some(pool) = self.pool.get() {
            pool.destroy().await;
        }
        Ok(())
    }
}

/// The worker's answer (§5.2).
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Details {
    message: String,
    requeue: bool,
    delay_seconds: u64,
    headers: Option<BTreeMap<String, Vec<String>>>,
}

/// Run one job on a worker and settle it with the broker.
async fn execute(pool: &Pool, tracing: &rr_runtime::trace::Tracing, delivery: Delivery) -> Outcome {
    let Delivery { job, driver, queue, acker } = delivery;
    let (_spans, headers) = trace::Consumed::start(tracing, driver, &job.headers);
    let context = serde_json::json!({
        "id": job.id,
        "job": job.name,
        "driver": driver,
        "headers": headers,
        "pipeline": job.pipeline,
        "queue": queue,
    });
    let payload = Payload { codec: frame::CODEC_RAW, context: Bytes::from(serde_json::to_vec(&context).expect("json")), body: job.payload.clone() };
    let (outcome, settled) = match pool.exec(payload).await {
        Ok(reply) if reply.stream.is_some() => {
            tracing::error!(target: "jobs", id = %job.id, "a job answered with a stream; streaming is not supported for jobs (nack)");
            (Outcome::Err, acker.nack(false, 0).await)
        }
        Ok(reply) => match serde_json::from_slice::<Answer>(&reply.payload.body) {
            Err(e) => {
                tracing::error!(target: "jobs", id = %job.id, error = %e, "the worker's answer is not the jobs protocol; acknowledging to avoid a loop");
                (Outcome::Err, acker.ack().await)
            }
            Ok(answer) => {
                let d: Details = serde_json::from_value(answer.data.clone()).unwrap_or_default();
                match answer.kind {
                    0 | 2 => (Outcome::Ok, acker.ack().await),
                    1 if d.requeue => (Outcome::Requeue, acker.requeue(d.headers.unwrap_or(job.headers), d.delay_seconds).await),
                    1 => {
                        tracing::error!(target: "jobs", id = %job.id, message = %d.message, "job failed");
                        (Outcome::Err, acker.ack().await)
                    }
                    3 => {
                        if !d.requeue {
                            tracing::warn!(target: "jobs", id = %job.id, message = %d.message, "job nacked without requeue: dropped");
                        }
                        (if d.requeue { Outcome::Requeue } else { Outcome::Err }, acker.nack(d.requeue, d.delay_seconds).await)
                    }
                    4 => (Outcome::Requeue, acker.requeue(d.headers.unwrap_or(job.headers), d.delay_seconds).await),
                    other => {
                        tracing::warn!(target: "jobs", id = %job.id, kind = other, "unknown answer type; acknowledging");
                        (Outcome::Err, acker.ack().await)
                    }
                }
            }
        },
        Err(e) => {
            tracing::error!(target: "jobs", id = %job.id, error = %e, "job failed in the worker (nack)");
            (Outcome::Err, acker.nack(false, 0).await)
        }
    };
    match settled {
        Ok(()) => outcome,
        Err(e) => {
            tracing::error!(target: "jobs", id = %job.id, error = %e, "cannot settle the job with its broker");
            Outcome::Err
        }
    }
}
