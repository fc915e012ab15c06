//! A local priority queue with delays and a consumer loop, for drivers that keep jobs in this
//! process (`memory`, the embedded persistent driver). Lower priority first, then push order.
//! Each job carries a driver-chosen `key` (a storage key, or 0) back to its acknowledger.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Acknowledger, Delivery, Inbox, Job, PipelineState, Ranked};

/// Builds the acknowledger of one delivery from the job's key and the job.
pub type MakeAcker = Arc<dyn Fn(u64, Job) -> Box<dyn Acknowledger> + Send + Sync>;

/// A stored job with the driver's key for it.
struct Entry {
    key: u64,
    job: Job,
}

pub struct Queue {
    pub name: String,
    pub driver: &'static str,
    pub default_priority: i64,
    heap: Mutex<BinaryHeap<Ranked<Entry>>>,
    notify: Notify,
    seq: AtomicU64,
    delayed: AtomicI64,
    reserved: AtomicI64,
    consumer: Mutex<Option<CancellationToken>>,
}

impl Queue {
    pub fn new(name: &str, driver: &'static str, default_priority: i64) -> Arc<Queue> {
        Arc::new(Queue {
            name: name.to_string(),
            driver,
            default_priority,
            heap: Mutex::new(BinaryHeap::new()),
            notify: Notify::new(),
            seq: AtomicU64::new(0),
            delayed: AtomicI64::new(0),
            reserved: AtomicI64::new(0),
            consumer: Mutex::new(None),
        })
    }

    /// Queue a job now, or after `delay` seconds.
    pub fn push(self: &Arc<Self>, key: u64, mut job: Job, delay: u64) {
        if delay == 0 {
            let priority = if job.priority != 0 { job.priority } else { self.default_priority };
            // Deliveries carry the effective priority: the jobs plugin orders all pipelines by it.
            job.priority = priority;
            self.heap.lock().unwrap().push(Ranked { priority, seq: self.seq.fetch_add(1, Ordering::Relaxed), item: Entry { key, job } });
            self.notify.notify_one();
            return;
        }
        self.delayed.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            this.delayed.fetch_sub(1, Ordering::Relaxed);
            this.push(key, job, 0);
        });
    }

    /// A delivery was settled (acked, nacked or requeued).
    pub fn settled(&self) {
        self.reserved.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn resume(self: &Arc<Self>, out: Inbox, make: MakeAcker) {
        let mut consumer = self.consumer.lock().unwrap();
        if consumer.is_none() {
            let stop = CancellationToken::new();
            tokio::spawn(self.clone().consume(out, make, stop.clone()));
            *consumer = Some(stop);
        }
    }

    pub fn pause(&self) {
        if let Some(stop) = self.consumer.lock().unwrap().take() {
            stop.cancel();
        }
    }

    pub fn state(&self, queue: &str) -> PipelineState {
        PipelineState {
            pipeline: self.name.clone(),
            driver: self.driver.into(),
            queue: queue.into(),
            active: self.heap.lock().unwrap().len() as i64,
            delayed: self.delayed.load(Ordering::Relaxed),
            reserved: self.reserved.load(Ordering::Relaxed),
            ready: self.consumer.lock().unwrap().is_some(),
            priority: self.default_priority.max(0) as u64,
        }
    }

    async fn consume(self: Arc<Self>, out: Inbox, make: MakeAcker, stop: CancellationToken) {
        loop {
            let next = self.heap.lock().unwrap().pop();
            let Some(entry) = next else {
                tokio::select! {
                    _ = self.notify.notified() => continue,
                    _ = stop.cancelled() => return,
                }
            };
            self.reserved.fetch_add(1, Ordering::Relaxed);
            let Entry { key, job } = &entry.item;
            let delivery = Delivery { job: job.clone(), driver: self.driver, queue: self.name.clone(), acker: make(*key, job.clone()) };
            let sent = tokio::select! {
                r = out.send(delivery) => r.is_ok(),
                _ = stop.cancelled() => false,
            };
            if !sent {
                // Paused or stopping while waiting for room: the job goes back, nothing is lost.
                self.settled();
                self.heap.lock().unwrap().push(entry);
                return;
            }
        }
    }
}
