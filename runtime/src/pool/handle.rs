//! The pool handle: what plugins hold and call (`exec`, `reset`, `destroy`, worker management).
//! One request's exchange with a worker is in `exec`; the workers' circulation in `workers`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::exec::QueueSlot;
use super::workers::Inner;
use super::{Payload, PoolConfig, PoolError, Reply, WorkerInfo, WorkerState};
use crate::worker::Spawner;

/// A cloneable handle over a pool of workers.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// The remaining frames of a streamed reply. Dropping it before the end sends STOP to the
/// worker and drains the stream in the background; the worker then returns to the pool.
pub struct ReplyStream {
    pub(super) rx: mpsc::Receiver<Result<Payload, PoolError>>,
    pub(super) stop: Option<oneshot::Sender<()>>,
}

impl ReplyStream {
    /// The next chunk; `None` after the final (non-STREAM) frame was returned.
    pub async fn next(&mut self) -> Option<Result<Payload, PoolError>> {
        self.rx.recv().await
    }

    /// Ask the worker to end its stream (STOP, PROTOCOL.md §2.10) while its remaining frames,
    /// up to the final one, still come through [`ReplyStream::next`]: a server that stops lets
    /// the stream end the worker's way. Once only; later calls do nothing.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Pool {
    /// Spawn the pool's workers (in parallel, spread over `homes` if any) and start its supervisor.
    pub(crate) async fn start(name: &str, cfg: PoolConfig, spawner: Spawner, homes: Vec<Handle>) -> Result<Pool, PoolError> {
        Ok(Pool { inner: Inner::start(name, cfg, spawner, homes).await? })
    }

    /// Owning plugin name (`http`, `jobs`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.cfg
    }

    /// Run one request on a free worker. Cancellation-safe: dropping the future never leaves a
    /// worker mid-frame; the exec finishes in the background and the worker goes back.
    pub async fn exec(&self, payload: Payload) -> Result<Reply, PoolError> {
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(PoolError::Stopped);
        }
        let queued = QueueSlot::enter(&self.inner);
        let max = self.inner.cfg.max_queue_size;
        if max > 0 && queued.depth > max {
            return Err(PoolError::QueueFull);
        }
        self.inner.run(payload, queued, None).await
    }

    /// [`Pool::exec`] whose answer must arrive by `deadline` (a gRPC call's deadline): a worker
    /// still silent then is killed and replaced, and the call ends in [`PoolError::ExecTtl`].
    /// Bound the wait for a free worker by dropping the future (cancellation-safe, as `exec`).
    pub async fn exec_until(&self, payload: Payload, deadline: Instant) -> Result<Reply, PoolError> {
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(PoolError::Stopped);
        }
        let queued = QueueSlot::enter(&self.inner);
        let max = self.inner.cfg.max_queue_size;
        if max > 0 && queued.depth > max {
            return Err(PoolError::QueueFull);
        }
        self.inner.run(payload, queued, Some(deadline)).await
    }

    /// Replace every worker gracefully: in-flight requests finish, new ones wait.
    pub async fn reset(&self) -> Result<(), PoolError> {
        self.inner.reset().await
    }

    /// Stop every worker; waits for in-flight execs up to `destroy_timeout`.
    pub async fn destroy(&self) {
        self.inner.destroy().await
    }

    pub fn workers(&self) -> Vec<WorkerInfo> {
        let mut list: Vec<_> = self.inner.all.lock().unwrap().iter().map(|s| s.info()).collect();
        list.sort_by_key(|w| w.pid);
        list
    }

    pub async fn add_worker(&self) -> Result<(), PoolError> {
        if self.inner.cfg.debug {
            return Err(PoolError::Other("workers cannot be added in debug mode".into()));
        }
        let worker = self.inner.spawn_worker(self.inner.next_home()).await?;
        self.inner.target.fetch_add(1, Ordering::SeqCst);
        self.inner.slots.put(worker);
        Ok(())
    }

    pub async fn remove_worker(&self) -> Result<(), PoolError> {
        if self.inner.cfg.debug {
            return Err(PoolError::Other("workers cannot be removed in debug mode".into()));
        }
        if self.inner.target.load(Ordering::SeqCst) <= 1 {
            return Err(PoolError::Other("can't remove the last worker".into()));
        }
        let worker = self.inner.allocate(Instant::now() + self.inner.cfg.allocate_timeout).await?;
        self.inner.target.fetch_sub(1, Ordering::SeqCst);
        self.inner.busy.fetch_sub(1, Ordering::SeqCst);
        self.inner.retire(worker, WorkerState::Destroyed, false, true);
        Ok(())
    }

    /// Requests inside `exec` (waiting and executing).
    pub fn queue_size(&self) -> u64 {
        self.inner.queue.load(Ordering::Relaxed)
    }

    /// At least one worker is free right now (debug mode: always, workers are made on demand).
    pub fn has_free_worker(&self) -> bool {
        !self.inner.stopped.load(Ordering::Acquire) && (self.inner.cfg.debug || self.inner.slots.idle_count() > 0)
    }

    /// Times `exec` gave up for lack of a free worker.
    pub fn no_free_workers_total(&self) -> u64 {
        self.inner.no_free.load(Ordering::Relaxed)
    }
}

impl crate::services::Resettable for Pool {
    fn reset(&self) -> futures::future::BoxFuture<'_, Result<(), crate::error::BoxError>> {
        Box::pin(async move { Pool::reset(self).await.map_err(Into::into) })
    }
}
