//! The jobs plugin's inbox: every consuming pipeline sends its deliveries here, and the
//! dispatcher takes the lowest priority number first across all pipelines (RoadRunner keeps one
//! priority queue for all of them), the oldest first within a priority. It holds at most
//! `pipeline_size` deliveries: when full, `send` waits, which is backpressure on the drivers.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

use super::{Delivery, Ranked};

struct Inner {
    heap: Mutex<BinaryHeap<Ranked<Delivery>>>,
    /// Free places; closed when the inbox closes.
    room: Semaphore,
    arrived: Notify,
    seq: AtomicU64,
}

/// A cloneable handle: drivers send, the jobs plugin receives.
#[derive(Clone)]
pub struct Inbox(Arc<Inner>);

impl Inbox {
    pub fn new(capacity: usize) -> Inbox {
        Inbox(Arc::new(Inner { heap: Mutex::default(), room: Semaphore::new(capacity.max(1)), arrived: Notify::new(), seq: AtomicU64::new(0) }))
    }

    /// Wait for room, then queue `delivery`; it comes back when the inbox is closed. Dropping
    /// the future while it waits queues nothing.
    pub async fn send(&self, delivery: Delivery) -> Result<(), Delivery> {
        match self.0.room.acquire().await {
            Ok(place) => place.forget(),
            Err(_) => return Err(delivery),
        }
        let ranked = Ranked { priority: delivery.job.priority, seq: self.0.seq.fetch_add(1, Ordering::Relaxed), item: delivery };
        self.0.heap.lock().unwrap_or_else(|p| p.into_inner()).push(ranked);
        self.0.arrived.notify_one();
        Ok(())
    }

    /// The most urgent delivery; `None` once the inbox is closed and empty.
    pub async fn recv(&self) -> Option<Delivery> {
        loop {
            // Created before the checks so that neither `send` nor `close` can slip between.
            let arrived = self.0.arrived.notified();
            if let Some(r) = self.0.heap.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                self.0.room.add_permits(1);
                return Some(r.item);
            }
            if self.0.room.is_closed() {
                return None;
            }
            arrived.await;
        }
    }

    /// Refuse further deliveries; those queued can still be received.
    pub fn close(&self) {
        self.0.room.close();
        self.0.arrived.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{Acknowledger, Job, JobsResult};
    use futures::future::BoxFuture;

    struct NoAck;
    impl Acknowledger for NoAck {
        fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
            Box::pin(async { Ok(()) })
        }
        fn nack(self: Box<Self>, _: bool, _: u64) -> BoxFuture<'static, JobsResult<()>> {
            Box::pin(async { Ok(()) })
        }
        fn requeue(self: Box<Self>, _: std::collections::BTreeMap<String, Vec<String>>, _: u64) -> BoxFuture<'static, JobsResult<()>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn delivery(id: &str, priority: i64) -> Delivery {
        Delivery { job: Job { id: id.into(), priority, ..Default::default() }, driver: "test", queue: "q".into(), acker: Box::new(NoAck) }
    }

    #[tokio::test]
    async fn lowest_priority_first_then_oldest_and_bounded() {
        let inbox = Inbox::new(3);
        for (id, p) in [("a", 10), ("b", 1), ("c", 10)] {
            inbox.send(delivery(id, p)).await.map_err(|_| "closed").unwrap();
        }
        let full = tokio::time::timeout(std::time::Duration::from_millis(50), inbox.send(delivery("d", 0))).await;
        assert!(full.is_err(), "a full inbox makes send wait");
        let order: Vec<String> = [inbox.recv().await, inbox.recv().await, inbox.recv().await].into_iter().map(|d| d.unwrap().job.id).collect();
        assert_eq!(order, ["b", "a", "c"]);
        inbox.send(delivery("e", 5)).await.map_err(|_| "closed").unwrap();
        inbox.close();
        assert!(inbox.send(delivery("f", 0)).await.is_err(), "closed: the delivery comes back");
        assert_eq!(inbox.recv().await.unwrap().job.id, "e", "queued deliveries survive close");
        assert!(inbox.recv().await.is_none());
    }
}
