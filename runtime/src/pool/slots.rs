//! Free workers and the requests waiting for one.
//!
//! A worker has a home: the I/O thread whose reactor its pipes are registered with (a sharded
//! server runs one thread per core, each with its own listener and share of the workers; see
//! [`set_home`]). A request takes an idle worker of its own thread first, and a worker that comes
//! free goes to the oldest waiting request of its home, so a request and its worker stay on one
//! thread and no thread has to wake another. The oldest request overall is served first once it
//! has waited [`LOCAL_FIRST_FOR`]: a busy thread borrows the others' workers rather than
//! queueing behind its own. With one home (the default) this is a plain FIFO hand-off.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::worker::Worker;

/// How long a waiting request yields to younger ones of the worker's home thread.
const LOCAL_FIRST_FOR: Duration = Duration::from_millis(2);

thread_local! {
    static HOME: Cell<usize> = const { Cell::new(0) };
}

/// Mark the calling thread as home `index` of the pools given per-thread runtimes: its requests
/// prefer the workers spawned on it. Threads never marked are home 0.
pub fn set_home(index: usize) {
    HOME.with(|h| h.set(index));
}

pub(super) fn current_home() -> usize {
    HOME.with(Cell::get)
}

#[derive(Default)]
pub(super) struct Slots {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    idle: VecDeque<Worker>,
    waiting: VecDeque<Waiter>,
    closed: bool,
}

struct Waiter {
    home: usize,
    since: Instant,
    tx: oneshot::Sender<Worker>,
}

pub(super) enum Take<'a> {
    Now(Worker),
    Wait(Ticket<'a>),
}

/// A place in the queue. Dropped before its worker is collected (timeout, caller gone), it
/// hands the worker on instead of losing it.
pub(super) struct Ticket<'a> {
    slots: &'a Slots,
    rx: oneshot::Receiver<Worker>,
}

impl Ticket<'_> {
    /// The worker, or `None` once the pool is closed.
    pub(super) async fn worker(&mut self) -> Option<Worker> {
        (&mut self.rx).await.ok()
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(worker) = self.rx.try_recv() {
            self.slots.put(worker);
        }
    }
}

impl Slots {
    /// An idle worker (one of `home`'s first), or a ticket to wait for one; `None` once closed.
    pub(super) fn take(&self, home: usize) -> Option<Take<'_>> {
        let mut st = self.state.lock().unwrap();
        if st.closed {
            return None;
        }
        let at = st.idle.iter().position(|w| w.home == home).unwrap_or(0);
        if let Some(worker) = st.idle.remove(at) {
            return Some(Take::Now(worker));
        }
        let (tx, rx) = oneshot::channel();
        st.waiting.push_back(Waiter { home, since: Instant::now(), tx });
        Some(Take::Wait(Ticket { slots: self, rx }))
    }

    /// A free worker: to a waiting request (see the module docs for which), else idle.
    pub(super) fn put(&self, mut worker: Worker) {
        let mut st = self.state.lock().unwrap();
        while let Some(at) = st.pick(worker.home) {
            let waiter = st.waiting.remove(at).expect("picked waiter");
            match waiter.tx.send(worker) {
                Ok(()) => return,
                Err(back) => worker = back, // that request gave up; the next one
            }
        }
        st.idle.push_back(worker);
    }

    /// Every idle worker, taken out of circulation.
    pub(super) fn drain_idle(&self) -> Vec<Worker> {
        self.state.lock().unwrap().idle.drain(..).collect()
    }

    /// The idle worker with this pid, taken out of circulation.
    pub(super) fn take_idle_pid(&self, pid: u32) -> Option<Worker> {
        let mut st = self.state.lock().unwrap();
        let at = st.idle.iter().position(|w| w.pid() == pid)?;
        st.idle.remove(at)
    }

    pub(super) fn idle_count(&self) -> usize {
        self.state.lock().unwrap().idle.len()
    }

    /// No more takes; waiting requests get `None`.
    pub(super) fn close(&self) {
        let mut st = self.state.lock().unwrap();
        st.closed = true;
        st.waiting.clear();
    }
}

impl State {
    fn pick(&self, home: usize) -> Option<usize> {
        let oldest = self.waiting.front()?;
        if oldest.home == home || oldest.since.elapsed() >= LOCAL_FIRST_FOR {
            return Some(0);
        }
        Some(self.waiting.iter().position(|w| w.home == home).unwrap_or(0))
    }
}
