//! The pool's shared state and the circulation of its workers.
//!
//! Free workers wait in `slots`, which hands them to waiting requests in arrival order (a request
//! of the worker's own I/O thread first, see `slots`) within `allocate_timeout`. A worker leaves
//! circulation only through `retire`, which also starts its replacement, so the pool keeps its
//! size.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rand::RngExt;
use tokio::runtime::Handle;
use tokio::sync::RwLock;
use tokio::time::Instant;

use super::slots::{self, Slots, Take};
use super::{PoolConfig, PoolError, WorkerState};
use crate::worker::{Shared, Spawner, Worker};

/// How long a stopped worker may take to exit before SIGKILL (§2.9).
const STOP_GRACE: Duration = Duration::from_secs(10);
pub(super) struct Inner {
    pub(super) name: String,
    pub(super) cfg: PoolConfig,
    pub(super) spawner: Spawner,
    pub(super) slots: Slots,
    /// Per-thread runtimes the workers are spread over (empty: spawned where asked).
    pub(super) homes: Vec<Handle>,
    pub(super) next_home: AtomicUsize,
    /// Every live worker (idle, busy or being stopped), for informer and supervisor.
    pub(super) all: Mutex<Vec<Arc<Shared>>>,
    pub(super) target: AtomicUsize,
    pub(super) busy: AtomicUsize,
    pub(super) queue: AtomicU64,
    pub(super) no_free: AtomicU64,
    /// Held for writing by reset: new allocations wait while workers are replaced.
    pub(super) gate: RwLock<()>,
    pub(super) stopped: AtomicBool,
    pub(super) resetting: AtomicBool,
}

impl Inner {
    /// Spawn the pool's workers (in parallel, spread over `homes` if any) and start its supervisor.
    pub(super) async fn start(name: &str, cfg: PoolConfig, spawner: Spawner, homes: Vec<Handle>) -> Result<Arc<Inner>, PoolError> {
        let n = cfg.effective_workers();
        if n > 500 {
            return Err(PoolError::Other("number of workers can't be more than 500".into()));
        }
        let inner = Arc::new(Inner {
            name: name.to_string(),
            target: AtomicUsize::new(n),
            cfg,
            spawner,
            slots: Slots::default(),
            homes,
            next_home: AtomicUsize::new(0),
            all: Mutex::new(Vec::new()),
            busy: AtomicUsize::new(0),
            queue: AtomicU64::new(0),
            no_free: AtomicU64::new(0),
            gate: RwLock::new(()),
            stopped: AtomicBool::new(false),
            resetting: AtomicBool::new(false),
        });
        let spawned = futures::future::join_all((0..n).map(|_| inner.spawn_worker(inner.next_home()))).await;
        let mut workers = Vec::with_capacity(n);
        let mut failure = None;
        for result in spawned {
            match result {
                Ok(w) => workers.push(w),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(err) = failure {
            inner.stopped.store(true, Ordering::SeqCst);
            futures::future::join_all(workers.into_iter().map(|w| w.stop(STOP_GRACE))).await;
            return Err(err);
        }
        for w in workers {
            inner.slots.put(w);
        }
        if let Some(sup) = inner.cfg.supervisor.clone() {
            tokio::spawn(super::supervisor::run(Arc::downgrade(&inner), sup));
        }
        Ok(inner)
    }

    pub(super) async fn spawn_worker(self: &Arc<Self>, home: usize) -> Result<Worker, PoolError> {
        let spawned = match self.homes.get(home) {
            // Started on its home thread, so that its pipes are registered with that reactor.
            Some(rt) => {
                let (spawner, timeout) = (self.spawner.clone(), self.cfg.allocate_timeout);
                rt.spawn(async move { spawner.spawn(timeout).await }).await.map_err(|e| PoolError::Spawn(e.to_string()))?
            }
            None => self.spawner.spawn(self.cfg.allocate_timeout).await,
        };
        let mut worker = spawned.map_err(|e| PoolError::Spawn(e.to_string()))?;
        worker.home = home;
        let max_jobs = if self.cfg.debug { 1 } else { self.cfg.max_jobs };
        worker.max_execs = if max_jobs == 0 { 0 } else { max_jobs + rand::rng().random_range(0..=max_jobs * 14 / 100) };
        self.all.lock().unwrap().push(worker.shared.clone());
        tokio::spawn(watch_exit(Arc::downgrade(self), worker.shared.clone()));
        Ok(worker)
    }

    /// Homes in turn, for workers that have none yet.
    pub(super) fn next_home(&self) -> usize {
        if self.homes.is_empty() { 0 } else { self.next_home.fetch_add(1, Ordering::Relaxed) % self.homes.len() }
    }

    /// Take a free worker (or, in debug mode, spawn one), waiting until `deadline`.
    pub(super) async fn allocate(self: &Arc<Self>, deadline: Instant) -> Result<Worker, PoolError> {
        if self.cfg.debug {
            if Instant::now() >= deadline {
                return Err(PoolError::NoFreeWorkers);
            }
            let worker = self.spawn_worker(slots::current_home()).await?;
            worker.shared.set_state(WorkerState::Working);
            self.busy.fetch_add(1, Ordering::SeqCst);
            return Ok(worker);
        }
        loop {
            let taken = tokio::time::timeout_at(deadline, async {
                let _gate = self.gate.read().await;
                match self.slots.take(slots::current_home())? {
                    Take::Now(worker) => Some(worker),
                    Take::Wait(mut ticket) => ticket.worker().await,
                }
            })
            .await;
            let worker = match taken {
                Err(_) => {
                    self.no_free.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(pool = %self.name, "no free workers in the pool, wait timeout exceed");
                    return Err(PoolError::NoFreeWorkers);
                }
                Ok(None) => return Err(PoolError::Stopped),
                Ok(Some(worker)) => worker,
            };
            if !worker.shared.has_exited() && worker.shared.transition(WorkerState::Ready, WorkerState::Working) {
                self.busy.fetch_add(1, Ordering::SeqCst);
                return Ok(worker);
            }
            let state = match worker.shared.state() {
                WorkerState::Ready => WorkerState::Errored,
                other => other,
            };
            self.retire(worker, state, true, !matches!(state, WorkerState::Errored));
        }
    }

    /// Requests waiting for a worker (in `exec` but not holding one).
    pub(super) fn has_waiters(&self) -> bool {
        self.queue.load(Ordering::Acquire) > self.busy.load(Ordering::Acquire) as u64 + 1
    }

    /// Give a worker back after an exec: to the idle queue, or out if a limit says so.
    pub(super) fn release(self: &Arc<Self>, worker: Worker) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
        worker.shared.mark_used();
        let execs = worker.shared.execs.load(Ordering::Relaxed);
        if self.stopped.load(Ordering::Acquire) || self.cfg.debug {
            return self.retire(worker, WorkerState::Stopped, false, true);
        }
        if worker.max_execs > 0 && execs >= worker.max_execs {
            return self.retire(worker, WorkerState::MaxJobsReached, true, true);
        }
        if worker.shared.transition(WorkerState::Working, WorkerState::Ready) {
            self.slots.put(worker);
        } else {
            // The supervisor marked it while it was busy (soft limits), or reset gave up on it.
            let replace = worker.shared.state() != WorkerState::Destroyed;
            self.retire(worker, WorkerState::Invalid, replace, true);
        }
    }

    /// Take a worker out of circulation: stop it (gracefully or by SIGKILL) and, unless the pool
    /// is shrinking or stopping, start its replacement.
    pub(super) fn retire(self: &Arc<Self>, worker: Worker, state: WorkerState, replace: bool, graceful: bool) {
        if worker.shared.state() != WorkerState::Destroyed {
            worker.shared.set_state(state);
        }
        let home = worker.home;
        let inner = self.clone();
        tokio::spawn(async move {
            let shared = worker.shared.clone();
            if graceful {
                worker.stop(STOP_GRACE).await;
            } else {
                shared.kill();
                drop(worker);
                shared.wait_exit().await;
            }
            if shared.state() != WorkerState::Destroyed {
                shared.set_state(WorkerState::Stopped);
            }
            inner.all.lock().unwrap().retain(|s| !Arc::ptr_eq(s, &shared));
        });
        if replace && !self.cfg.debug {
            tokio::spawn(self.clone().replace(home));
        }
    }

    /// Spawn one replacement worker, retrying every second while the pool runs.
    pub(super) async fn replace(self: Arc<Self>, home: usize) {
        loop {
            if self.stopped.load(Ordering::Acquire) || self.resetting.load(Ordering::Acquire) {
                return;
            }
            match self.spawn_worker(home).await {
                Ok(worker) => return self.slots.put(worker),
                Err(e) => {
                    tracing::error!(pool = %self.name, error = %e, "cannot replace a worker; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    pub(super) async fn reset(self: &Arc<Self>) -> Result<(), PoolError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(PoolError::Stopped);
        }
        let _gate = self.gate.write().await;
        self.resetting.store(true, Ordering::SeqCst);
        let result = self.replace_all().await;
        self.resetting.store(false, Ordering::SeqCst);
        // Top up what crashed or failed to spawn while resetting.
        let live = self.slots.idle_count() + self.busy.load(Ordering::SeqCst);
        for _ in live..self.target.load(Ordering::SeqCst) {
            tokio::spawn(self.clone().replace(self.next_home()));
        }
        result
    }

    /// With allocation gated: wait for busy workers, stop every worker, start fresh ones.
    pub(super) async fn replace_all(self: &Arc<Self>) -> Result<(), PoolError> {
        let drained = tokio::time::timeout(self.cfg.reset_timeout, async {
            while self.busy.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(pool = %self.name, "reset_timeout elapsed with workers still busy; they are stopped after their current request");
            for shared in self.all.lock().unwrap().iter() {
                if shared.state() == WorkerState::Working {
                    shared.set_state(WorkerState::Destroyed);
                }
            }
        }
        let old = self.take_idle();
        let n = self.target.load(Ordering::SeqCst);
        let stopping = futures::future::join_all(old.into_iter().map(|w| self.destroy_worker(w)));
        let spawning = futures::future::join_all((0..n).map(|_| self.spawn_worker(self.next_home())));
        let (_, spawned) = tokio::join!(stopping, spawning);
        let mut first_error = None;
        for result in spawned {
            match result {
                Ok(w) => self.slots.put(w),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stop a worker on purpose (reset, destroy): no replacement.
    pub(super) async fn destroy_worker(&self, worker: Worker) {
        let shared = worker.shared.clone();
        shared.set_state(WorkerState::Destroyed);
        worker.stop(STOP_GRACE).await;
        self.all.lock().unwrap().retain(|s| !Arc::ptr_eq(s, &shared));
    }

    /// Remove every idle worker (only under the write gate or when stopped).
    pub(super) fn take_idle(&self) -> Vec<Worker> {
        self.slots.drain_idle()
    }

    pub(super) async fn destroy(self: &Arc<Self>) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.slots.close();
        let busy_done = tokio::time::timeout(self.cfg.destroy_timeout, async {
            while self.busy.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let idle = self.take_idle();
        futures::future::join_all(idle.into_iter().map(|w| self.destroy_worker(w))).await;
        if busy_done.is_err() {
            tracing::warn!(pool = %self.name, "destroy_timeout elapsed with workers still busy; killing them");
        } else {
            // Workers released during the wait are stopping gracefully; give them the usual grace.
            let _ = tokio::time::timeout(STOP_GRACE, async {
                while !self.all.lock().unwrap().is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
        }
        let rest: Vec<_> = self.all.lock().unwrap().clone();
        for shared in &rest {
            shared.set_state(WorkerState::Destroyed);
            shared.kill();
        }
        for shared in rest {
            shared.wait_exit().await;
        }
        self.all.lock().unwrap().clear();
    }

    /// Pull an idle worker out by pid (supervisor verdicts, exits while idle).
    pub(super) fn take_idle_worker(&self, pid: u32) -> Option<Worker> {
        self.slots.take_idle_pid(pid)
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn live(&self) -> Vec<Arc<Shared>> {
        self.all.lock().unwrap().clone()
    }
}

/// Replace a worker that exits while idle (a busy one is handled by its exec).
async fn watch_exit(pool: Weak<Inner>, shared: Arc<Shared>) {
    shared.wait_exit().await;
    let Some(inner) = pool.upgrade() else { return };
    if inner.stopped.load(Ordering::Acquire) {
        return;
    }
    if let Some(worker) = inner.take_idle_worker(shared.pid) {
        tracing::warn!(pool = %inner.name, pid = shared.pid, stderr = %shared.stderr_tail(), "worker exited while idle; replacing it");
        inner.retire(worker, WorkerState::Errored, true, false);
    }
}
