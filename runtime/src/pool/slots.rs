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

/// What the slots hold: a worker, or a stand-in in tests.
pub(super) trait Homed {
    fn home(&self) -> usize;
    fn pid(&self) -> u32;
}

impl Homed for Worker {
    fn home(&self) -> usize {
        self.home
    }

    fn pid(&self) -> u32 {
        Worker::pid(self)
    }
}

pub(super) struct Slots<W = Worker> {
    state: Mutex<State<W>>,
}

impl<W> Default for Slots<W> {
    fn default() -> Self {
        Slots { state: Mutex::new(State { idle: VecDeque::new(), waiting: VecDeque::new(), closed: false }) }
    }
}

struct State<W> {
    idle: VecDeque<W>,
    waiting: VecDeque<Waiter<W>>,
    closed: bool,
}

struct Waiter<W> {
    home: usize,
    since: Instant,
    tx: oneshot::Sender<W>,
}

pub(super) enum Take<'a, W: Homed = Worker> {
    Now(W),
    Wait(Ticket<'a, W>),
}

/// A place in the queue. Dropped before its worker is collected (timeout, caller gone), it
/// hands the worker on instead of losing it.
pub(super) struct Ticket<'a, W: Homed = Worker> {
    slots: &'a Slots<W>,
    rx: oneshot::Receiver<W>,
}

impl<W: Homed> Ticket<'_, W> {
    /// The worker, or `None` once the pool is closed.
    pub(super) async fn worker(&mut self) -> Option<W> {
        (&mut self.rx).await.ok()
    }
}

impl<W: Homed> Drop for Ticket<'_, W> {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(worker) = self.rx.try_recv() {
            self.slots.put(worker);
        }
    }
}

impl<W: Homed> Slots<W> {
    /// An idle worker (one of `home`'s first), or a ticket to wait for one; `None` once closed.
    pub(super) fn take(&self, home: usize) -> Option<Take<'_, W>> {
        let mut st = self.state.lock().unwrap();
        if st.closed {
            return None;
        }
        let at = st.idle.iter().position(|w| w.home() == home).unwrap_or(0);
        if let Some(worker) = st.idle.remove(at) {
            return Some(Take::Now(worker));
        }
        let (tx, rx) = oneshot::channel();
        st.waiting.push_back(Waiter { home, since: Instant::now(), tx });
        Some(Take::Wait(Ticket { slots: self, rx }))
    }

    /// A free worker: to a waiting request (see the module docs for which), else idle.
    pub(super) fn put(&self, mut worker: W) {
        let mut st = self.state.lock().unwrap();
        while let Some(at) = st.pick(worker.home()) {
            let waiter = st.waiting.remove(at).expect("picked waiter");
            match waiter.tx.send(worker) {
                Ok(()) => return,
                Err(back) => worker = back, // that request gave up; the next one
            }
        }
        st.idle.push_back(worker);
    }

    /// Every idle worker, taken out of circulation.
    pub(super) fn drain_idle(&self) -> Vec<W> {
        self.state.lock().unwrap().idle.drain(..).collect()
    }

    /// The idle worker with this pid, taken out of circulation.
    pub(super) fn take_idle_pid(&self, pid: u32) -> Option<W> {
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

impl<W> State<W> {
    fn pick(&self, home: usize) -> Option<usize> {
        let oldest = self.waiting.front()?;
        if oldest.home == home || oldest.since.elapsed() >= LOCAL_FIRST_FOR {
            return Some(0);
        }
        Some(self.waiting.iter().position(|w| w.home == home).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct W(usize, u32);

    impl Homed for W {
        fn home(&self) -> usize {
            self.0
        }
        fn pid(&self) -> u32 {
            self.1
        }
    }

    fn wait(slots: &Slots<W>, home: usize) -> Ticket<'_, W> {
        match slots.take(home).expect("open") {
            Take::Wait(ticket) => ticket,
            Take::Now(w) => panic!("expected to wait, got {w:?}"),
        }
    }

    #[tokio::test]
    async fn an_idle_worker_of_the_own_home_is_taken_first_else_any() {
        let slots = Slots::default();
        slots.put(W(0, 10));
        slots.put(W(1, 11));
        assert!(matches!(slots.take(1), Some(Take::Now(W(1, 11)))));
        assert!(matches!(slots.take(1), Some(Take::Now(W(0, 10)))), "borrowed from the other home rather than waiting");
        assert!(matches!(slots.take(1), Some(Take::Wait(_))));
    }

    #[tokio::test]
    async fn a_free_worker_goes_to_its_home_first_until_the_oldest_has_waited_long_enough() {
        let slots = Slots::default();
        let mut first_home0 = wait(&slots, 0);
        let mut then_home1 = wait(&slots, 1);
        slots.put(W(1, 11));
        assert_eq!(then_home1.worker().await, Some(W(1, 11)), "the younger request of the worker's home goes first");
        let mut later_home1 = wait(&slots, 1);
        tokio::time::sleep(LOCAL_FIRST_FOR).await;
        slots.put(W(1, 11));
        assert_eq!(first_home0.worker().await, Some(W(1, 11)), "after LOCAL_FIRST_FOR the oldest request goes first");
        slots.put(W(0, 10));
        assert_eq!(later_home1.worker().await, Some(W(0, 10)), "no request of its home waits: the oldest");
    }

    #[tokio::test]
    async fn a_ticket_dropped_after_its_worker_arrived_hands_the_worker_on() {
        let slots = Slots::default();
        let gone = wait(&slots, 0);
        let mut next = wait(&slots, 0);
        slots.put(W(0, 10));
        drop(gone);
        assert_eq!(next.worker().await, Some(W(0, 10)));
        let gone = wait(&slots, 0);
        slots.put(W(0, 10));
        drop(gone);
        assert_eq!(slots.take_idle_pid(10), Some(W(0, 10)), "back to idle when nobody waits");
    }

    #[tokio::test]
    async fn closing_ends_every_wait() {
        let slots: Slots<W> = Slots::default();
        let mut waiting = wait(&slots, 0);
        slots.close();
        assert_eq!(waiting.worker().await, None);
        assert!(slots.take(0).is_none());
    }
}
