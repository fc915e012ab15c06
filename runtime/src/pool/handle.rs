//! API surface of the pool handle (implementation in progress).

use super::{Payload, PoolConfig, PoolError, Reply, WorkerInfo};

/// A cloneable handle over a pool of workers.
#[derive(Clone)]
pub struct Pool {
    _todo: std::sync::Arc<()>,
}

/// The remaining frames of a streamed reply. Dropping it before the end sends STOP to the
/// worker and drains the stream in the background; the worker then returns to the pool.
pub struct ReplyStream {
    _todo: (),
}

impl ReplyStream {
    /// The next chunk; `None` after the final (non-STREAM) frame was returned.
    pub async fn next(&mut self) -> Option<Result<Payload, PoolError>> {
        todo!()
    }
}

impl Pool {
    /// Owning plugin name (`http`, `jobs`).
    pub fn name(&self) -> &str {
        todo!()
    }
    pub fn config(&self) -> &PoolConfig {
        todo!()
    }
    /// Run one request on a free worker. Cancellation-safe: dropping the future never leaves a
    /// worker mid-frame; the exec finishes in the background and the worker goes back.
    pub async fn exec(&self, _payload: Payload) -> Result<Reply, PoolError> {
        todo!()
    }
    /// Replace every worker gracefully: in-flight requests finish, new ones wait.
    pub async fn reset(&self) -> Result<(), PoolError> {
        todo!()
    }
    /// Stop every worker (waits for in-flight execs up to `destroy_timeout`).
    pub async fn destroy(&self) {
        todo!()
    }
    pub fn workers(&self) -> Vec<WorkerInfo> {
        todo!()
    }
    pub async fn add_worker(&self) -> Result<(), PoolError> {
        todo!()
    }
    pub async fn remove_worker(&self) -> Result<(), PoolError> {
        todo!()
    }
    /// Requests inside `exec` (waiting and executing).
    pub fn queue_size(&self) -> u64 {
        todo!()
    }
    /// At least one worker is free right now.
    pub fn has_free_worker(&self) -> bool {
        todo!()
    }
    /// Times `exec` gave up for lack of a free worker.
    pub fn no_free_workers_total(&self) -> u64 {
        todo!()
    }
}
