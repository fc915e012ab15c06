//! The job driver contract shared by the jobs plugin and its driver plugins (`memory`, ...).
//!
//! A driver creates pipelines. A pipeline stores pushed jobs and, while it is consuming,
//! hands them to the jobs plugin as deliveries; each delivery carries the acknowledger that
//! settles it with the broker once PHP has answered (PROTOCOL.md §5).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::BoxError;

pub type JobsResult<T> = Result<T, BoxError>;

/// One job as pushed (`jobs.v1.Job`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    /// The job name (usually a PHP class).
    pub name: String,
    pub payload: Bytes,
    pub headers: BTreeMap<String, Vec<String>>,
    pub pipeline: String,
    /// Lower runs first.
    pub priority: i64,
    /// Seconds before the job may run.
    pub delay: u64,
    pub auto_ack: bool,
    /// Kafka's per-job options; other drivers ignore them.
    pub kafka: KafkaOptions,
}

/// Where a Kafka job is produced (PHP's `KafkaOptions`: topic, partition, offset, metadata, as
/// in `jobs.v1.Options`). RoadRunner reads only `topic` and, with the `Manual` partitioner,
/// `partition`; `offset` and `metadata` travel unused there as here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaOptions {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: String,
}

/// Settles one delivery with its broker.
pub trait Acknowledger: Send {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>>;
    /// Negative acknowledgement: redeliver after `delay` seconds when `requeue`, else drop.
    fn nack(self: Box<Self>, requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>>;
    /// Put the job back with new headers, after `delay` seconds.
    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>>;
}

/// A job on its way to a worker.
pub struct Delivery {
    pub job: Job,
    pub driver: &'static str,
    pub queue: String,
    pub acker: Box<dyn Acknowledger>,
}

/// A snapshot for `jobs.Stat`, `informer.Jobs` and `rr jobs --list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineState {
    pub pipeline: String,
    pub driver: String,
    pub queue: String,
    pub active: i64,
    pub delayed: i64,
    pub reserved: i64,
    /// Consuming (false = paused).
    pub ready: bool,
    pub priority: u64,
}

pub trait Pipeline: Send + Sync {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>>;
    /// Push several jobs (`jobs.PushBatch`), in order; resolves once every job is pushed, with
    /// one result per job attempted. This default pushes one after the other and stops at the
    /// first failure; a driver whose broker acknowledges asynchronously sends them all before
    /// it waits, so that the acknowledgements overlap.
    fn push_batch(&self, jobs: Vec<Job>) -> BoxFuture<'_, Vec<JobsResult<()>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(jobs.len());
            for job in jobs {
                let pushed = self.push(job).await;
                let failed = pushed.is_err();
                results.push(pushed);
                if failed {
                    break;
                }
            }
            results
        })
    }
    /// Start (or resume) delivering jobs into `out`; a full inbox is backpressure.
    fn resume(&self, out: Inbox) -> BoxFuture<'_, JobsResult<()>>;
    /// Stop delivering; stored jobs stay.
    fn pause(&self) -> BoxFuture<'_, JobsResult<()>>;
    /// Stop for good (destroy or server stop).
    fn stop(&self) -> BoxFuture<'_, JobsResult<()>>;
    fn state(&self) -> PipelineState;
}

/// Creates pipelines of one driver kind from their config (`jobs.pipelines.<name>.config`).
pub trait DriverFactory: Send + Sync {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>>;
}

/// What `informer.Jobs` and the status plugin read: the state of every pipeline of a plugin.
pub trait JobsInformer: Send + Sync {
    fn states(&self) -> Vec<PipelineState>;
}

/// A heap entry ordered for `BinaryHeap` (which pops the greatest): the lowest priority number
/// first, then the oldest (`seq`). The drivers' local queues and the jobs plugin's inbox share it.
pub(crate) struct Ranked<T> {
    pub priority: i64,
    pub seq: u64,
    pub item: T,
}

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}
impl<T> Eq for Ranked<T> {}
impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.priority, other.seq).cmp(&(self.priority, self.seq))
    }
}

pub mod consuming;
pub mod inbox;
pub mod queue;

pub use consuming::Consuming;
pub use inbox::Inbox;
