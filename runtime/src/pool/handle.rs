//! The pool handle and its exec path.
//!
//! Free workers wait in `slots`, which hands them to waiting requests in arrival order (a request
//! of the worker's own I/O thread first, see `slots`) within `allocate_timeout`. Every exec runs
//! in its own task, so a caller that goes away never leaves a worker mid-frame: the task finishes
//! the exchange (or sends STOP and drains a stream) and puts the worker back. A worker leaves circulation only through `retire`,
//! which also starts its replacement, so the pool keeps its size.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use rand::RngExt;
use tokio::runtime::Handle;
use tokio::sync::{RwLock, mpsc};
use tokio::time::Instant;

use super::slots::{self, Slots, Take};
use super::{Payload, PoolConfig, PoolError, Reply, WorkerInfo, WorkerState};
use crate::frame::{self, Frame};
use crate::relay::RelayError;
use crate::worker::{Shared, Spawner, Worker};

/// How long a stopped worker may take to exit before SIGKILL (§2.9).
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A cloneable handle over a pool of workers.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    name: String,
    pub(super) cfg: PoolConfig,
    spawner: Spawner,
    slots: Slots,
    /// Per-thread runtimes the workers are spread over (empty: spawned where asked).
    homes: Vec<Handle>,
    next_home: AtomicUsize,
    /// Every live worker (idle, busy or being stopped), for informer and supervisor.
    all: Mutex<Vec<Arc<Shared>>>,
    target: AtomicUsize,
    busy: AtomicUsize,
    queue: AtomicU64,
    no_free: AtomicU64,
    /// Held for writing by reset: new allocations wait while workers are replaced.
    gate: RwLock<()>,
    stopped: AtomicBool,
    resetting: AtomicBool,
}

/// The remaining frames of a streamed reply. Dropping it before the end sends STOP to the
/// worker and drains the stream in the background; the worker then returns to the pool.
pub struct ReplyStream {
    rx: mpsc::Receiver<Result<Payload, PoolError>>,
}

impl ReplyStream {
    /// The next chunk; `None` after the final (non-STREAM) frame was returned.
    pub async fn next(&mut self) -> Option<Result<Payload, PoolError>> {
        self.rx.recv().await
    }
}

impl Pool {
    /// Spawn the pool's workers (in parallel, spread over `homes` if any) and start its supervisor.
    pub(crate) async fn start(name: &str, cfg: PoolConfig, spawner: Spawner, homes: Vec<Handle>) -> Result<Pool, PoolError> {
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
        Ok(Pool { inner })
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
        self.inner.run(payload, queued).await
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
    fn reset(&self) -> futures::future::BoxFuture<'_, Result<(), crate::BoxError>> {
        Box::pin(async move { Pool::reset(self).await.map_err(Into::into) })
    }
}

/// Counts a request in `queue` until the first frame of its answer is ready.
struct QueueSlot {
    inner: Arc<Inner>,
    depth: u64,
}

impl QueueSlot {
    fn enter(inner: &Arc<Inner>) -> Self {
        let depth = inner.queue.fetch_add(1, Ordering::AcqRel) + 1;
        QueueSlot { inner: inner.clone(), depth }
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.inner.queue.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A worker between allocation and the end of its first answer frame. Dropped early (the
/// caller went away), it makes sure the worker is not lost: a half-written request kills it,
/// an answer still to come is read in the background.
struct InFlight {
    inner: Arc<Inner>,
    worker: Option<Worker>,
    phase: Phase,
    deadline: Option<Instant>,
}

enum Phase {
    Writing,
    Reading,
}

impl InFlight {
    /// The exchange completed normally: hand the worker back to the caller's logic.
    fn land(mut self) -> Worker {
        self.worker.take().expect("worker in flight")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(worker) = self.worker.take() else { return };
        match self.phase {
            Phase::Writing => {
                self.inner.busy.fetch_sub(1, Ordering::SeqCst);
                self.inner.retire(worker, WorkerState::Errored, true, false);
            }
            Phase::Reading => {
                tokio::spawn(self.inner.clone().finish_abandoned(worker, self.deadline));
            }
        }
    }
}

/// What the first response frame of an exec turned out to be.
enum First {
    Reply(Payload),
    Stream(Payload),
    Soft(String),
    StopRequest,
    /// The worker broke without reading any of the request: it can go to another worker.
    Unread(String),
    Broken(String),
    ExecTtl,
}

/// How one frame read during an exec is to be treated.
enum Read {
    Data { payload: Payload, more: bool },
    Soft(String),
    StopRequest,
    Broken(String),
    ExecTtl,
}

impl Inner {
    async fn spawn_worker(self: &Arc<Self>, home: usize) -> Result<Worker, PoolError> {
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
    fn next_home(&self) -> usize {
        if self.homes.is_empty() { 0 } else { self.next_home.fetch_add(1, Ordering::Relaxed) % self.homes.len() }
    }

    /// Take a free worker (or, in debug mode, spawn one), waiting until `deadline`.
    async fn allocate(self: &Arc<Self>, deadline: Instant) -> Result<Worker, PoolError> {
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
    fn has_waiters(&self) -> bool {
        self.queue.load(Ordering::Acquire) > self.busy.load(Ordering::Acquire) as u64 + 1
    }

    /// Give a worker back after an exec: to the idle queue, or out if a limit says so.
    fn release(self: &Arc<Self>, worker: Worker) {
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
    async fn replace(self: Arc<Self>, home: usize) {
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

    /// Allocate, send, read the answer; retry on a worker's stop request. Runs in the caller's
    /// task; if the caller goes away mid-exec, [`InFlight`] finishes the exchange in the
    /// background so the worker is never left mid-frame.
    async fn run(self: &Arc<Self>, payload: Payload, queued: QueueSlot) -> Result<Reply, PoolError> {
        let request = Frame::data(payload.codec, &payload.context, &payload.body);
        let request_len = request.encoded_len();
        // Retries share one allocation deadline, so workers that keep dying cannot hold a
        // request forever.
        let allocate_by = Instant::now() + self.cfg.allocate_timeout;
        loop {
            let worker = self.allocate(allocate_by).await?;
            let deadline = self.cfg.exec_ttl().map(|ttl| Instant::now() + ttl);
            worker.shared.execs.fetch_add(1, Ordering::Relaxed);
            let mut flight = InFlight { inner: self.clone(), worker: Some(worker), phase: Phase::Writing, deadline };
            let w = flight.worker.as_mut().expect("worker in flight");
            let first = match w.relay.send(&request).await {
                // The worker's end is closed: it is gone and never had the request.
                Err(e) => First::Unread(e.to_string()),
                Ok(()) => {
                    flight.phase = Phase::Reading;
                    let w = flight.worker.as_mut().expect("worker in flight");
                    match read_frame(w, deadline).await {
                        Read::Data { payload, more: false } => First::Reply(payload),
                        Read::Data { payload, more: true } => First::Stream(payload),
                        Read::Soft(m) => First::Soft(m),
                        Read::StopRequest => First::StopRequest,
                        // Still all in the pipe: it died (typically exiting after its last
                        // answer) without reading a byte of this request.
                        Read::Broken(m) if w.relay.unread_sent().is_some_and(|n| n >= request_len) => First::Unread(m),
                        Read::Broken(m) => First::Broken(m),
                        Read::ExecTtl => First::ExecTtl,
                    }
                }
            };
            let worker = flight.land();
            let pid = worker.pid();
            return match first {
                First::Reply(payload) => {
                    self.release(worker);
                    if self.has_waiters() {
                        // Let the request woken by the release reach this worker before we
                        // answer our client: the worker starts on it while our response is sent.
                        yield_once().await;
                    }
                    Ok(Reply { payload, stream: None })
                }
                First::Soft(message) => {
                    self.release(worker);
                    Err(PoolError::SoftError(message))
                }
                First::StopRequest => {
                    tracing::debug!(pool = %self.name, pid, "worker asked to stop; retrying the request on another worker");
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    self.retire(worker, WorkerState::Invalid, true, true);
                    continue;
                }
                First::Unread(message) => {
                    let tail = worker.shared.stderr_tail();
                    tracing::warn!(pool = %self.name, pid, error = %message, stderr = %tail, "worker exited without reading the request; sending it to another worker");
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    self.retire(worker, WorkerState::Errored, true, false);
                    continue;
                }
                First::Broken(message) => {
                    let shared = worker.shared.clone();
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    self.retire(worker, WorkerState::Errored, true, false);
                    let tail = shared.final_stderr_tail().await;
                    let message = if tail.is_empty() { message } else { format!("{message}; its stderr:\n{tail}") };
                    tracing::error!(pool = %self.name, pid, error = %message, "worker failed; replacing it");
                    Err(PoolError::Network { pid, message })
                }
                First::ExecTtl => {
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    self.retire(worker, WorkerState::ExecTtlReached, true, false);
                    tracing::warn!(pool = %self.name, pid, "execTTL timeout elapsed; worker killed");
                    Err(PoolError::ExecTtl { pid })
                }
                First::Stream(payload) => {
                    let (stx, srx) = mpsc::channel(8);
                    drop(queued);
                    tokio::spawn(self.clone().pump(worker, stx, deadline));
                    Ok(Reply { payload, stream: Some(ReplyStream { rx: srx }) })
                }
            };
        }
    }

    /// Finish an exec whose caller went away after the request was sent.
    async fn finish_abandoned(self: Arc<Self>, mut worker: Worker, deadline: Option<Instant>) {
        match read_frame(&mut worker, deadline).await {
            Read::Data { more: false, .. } | Read::Soft(_) => self.release(worker),
            Read::Data { more: true, .. } => {
                let (stx, srx) = mpsc::channel(1);
                drop(srx);
                self.pump(worker, stx, deadline).await
            }
            Read::StopRequest => {
                self.busy.fetch_sub(1, Ordering::SeqCst);
                self.retire(worker, WorkerState::Invalid, true, true)
            }
            Read::Broken(_) | Read::ExecTtl => {
                self.busy.fetch_sub(1, Ordering::SeqCst);
                self.retire(worker, WorkerState::Errored, true, false)
            }
        }
    }

    /// Forward stream frames to the consumer; if it goes away, send STOP and drain (§2.10).
    async fn pump(self: Arc<Self>, mut worker: Worker, stx: mpsc::Sender<Result<Payload, PoolError>>, deadline: Option<Instant>) {
        let pid = worker.pid();
        loop {
            let read = tokio::select! {
                read = read_frame(&mut worker, deadline) => read,
                _ = stx.closed() => break,
            };
            let (item, done) = match read {
                Read::Data { payload, more } => (Ok(payload), !more),
                Read::Soft(message) => {
                    // An error after the first chunk ends the stream; the worker is replaced.
                    let _ = stx.send(Err(PoolError::SoftError(message))).await;
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    return self.retire(worker, WorkerState::Invalid, true, true);
                }
                Read::StopRequest | Read::Broken(_) | Read::ExecTtl => {
                    let _ = stx.send(Err(PoolError::Network { pid, message: "the worker failed in the middle of a stream".into() })).await;
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    return self.retire(worker, WorkerState::Errored, true, false);
                }
            };
            if stx.send(item).await.is_err() {
                if done {
                    return self.release(worker);
                }
                break;
            }
            if done {
                return self.release(worker);
            }
        }
        // The consumer went away mid-stream: STOP, then drain until the final frame.
        let drained = async {
            worker.relay.send(&Frame::signal(frame::STOP)).await.ok()?;
            loop {
                match read_frame(&mut worker, None).await {
                    Read::Data { more: false, .. } | Read::Soft(_) => return Some(()),
                    Read::Data { more: true, .. } => continue,
                    _ => return None,
                }
            }
        };
        match tokio::time::timeout(self.cfg.stream_timeout, drained).await {
            Ok(Some(())) => self.release(worker),
            _ => {
                tracing::warn!(pool = %self.name, pid, "worker did not end its stream after STOP within stream_timeout; killing it");
                self.busy.fetch_sub(1, Ordering::SeqCst);
                self.retire(worker, WorkerState::Errored, true, false);
            }
        }
    }

    async fn reset(self: &Arc<Self>) -> Result<(), PoolError> {
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
    async fn replace_all(self: &Arc<Self>) -> Result<(), PoolError> {
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
    async fn destroy_worker(&self, worker: Worker) {
        let shared = worker.shared.clone();
        shared.set_state(WorkerState::Destroyed);
        worker.stop(STOP_GRACE).await;
        self.all.lock().unwrap().retain(|s| !Arc::ptr_eq(s, &shared));
    }

    /// Remove every idle worker (only under the write gate or when stopped).
    fn take_idle(&self) -> Vec<Worker> {
        self.slots.drain_idle()
    }

    async fn destroy(self: &Arc<Self>) {
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

/// Read one answer frame, answering PINGs, within the exec deadline.
async fn read_frame(worker: &mut Worker, deadline: Option<Instant>) -> Read {
    loop {
        let received = match deadline {
            Some(at) => match tokio::time::timeout_at(at, worker.relay.receive()).await {
                Ok(r) => r,
                Err(_) => return Read::ExecTtl,
            },
            None => worker.relay.receive().await,
        };
        let frame = match received {
            Ok(f) => f,
            Err(RelayError::Closed) => return Read::Broken("the worker exited in the middle of a request".into()),
            Err(e) => return Read::Broken(e.to_string()),
        };
        if frame.has_bit(frame::PING) {
            if let Err(e) = worker.relay.send(&Frame::signal(frame::PONG)).await {
                return Read::Broken(e.to_string());
            }
        }
        if frame.is(frame::ERROR) {
            return Read::Soft(String::from_utf8_lossy(&frame.payload).into_owned());
        }
        if frame.is(frame::CONTROL) {
            continue; // a late pid reply; not an answer
        }
        if frame.options.len() != 1 {
            return Read::Broken("options length should be equal 1 (body offset)".into());
        }
        let split = frame.options[0] as usize;
        if split > frame.payload.len() {
            return Read::Broken("bad payload: context length exceeds the frame".into());
        }
        let context: Bytes = frame.payload.slice(..split);
        let body = frame.payload.slice(split..);
        if body.is_empty() && &context[..] == b"{\"stop\":true}" {
            return Read::StopRequest;
        }
        return Read::Data { payload: Payload { codec: frame.flags, context, body }, more: frame.has_bit(frame::STREAM) };
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

/// Reschedule the current task behind those already woken. Unlike `tokio::task::yield_now`,
/// it does not wait for the I/O driver to be polled first (an extra `epoll_wait` per request).
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}
