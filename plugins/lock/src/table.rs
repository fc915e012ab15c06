//! The lock table. A resource has one exclusive holder or any number of shared holders; each
//! holder's TTL is a timer task that removes it. Callers that cannot take a lock wait for the
//! resource to change and try again until their wait runs out. A resource with no holders and
//! no waiters is dropped, so nothing stays behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A write lock: no other holder at all.
    Exclusive,
    /// A read lock: shared with other readers, never with a writer.
    Shared,
}

/// Cheap to clone; every clone is the same table.
#[derive(Clone, Default)]
pub struct Locks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    table: Mutex<Table>,
    /// Tells a holder's timer from the timer of an earlier lock with the same id.
    generation: AtomicU64,
}

#[derive(Default)]
struct Table {
    resources: HashMap<String, Resource>,
    /// After shutdown nothing is granted.
    closed: bool,
}

#[derive(Default)]
struct Resource {
    /// The exclusive holder; while set it is the only entry of `holders`.
    writer: Option<String>,
    holders: HashMap<String, Holder>,
    waiters: usize,
    changed: Arc<Notify>,
}

struct Holder {
    generation: u64,
    expiry: AbortHandle,
}

impl Resource {
    fn is_idle(&self) -> bool {
        self.holders.is_empty() && self.waiters == 0
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(holder) = self.holders.remove(id) else { return false };
        holder.expiry.abort();
        if self.writer.as_deref() == Some(id) {
            self.writer = None;
        }
        self.changed.notify_waiters();
        true
    }
}

impl Table {
    /// Drop `resource` if nobody holds or waits for it.
    fn tidy(&mut self, resource: &str) {
        if self.resources.get(resource).is_some_and(Resource::is_idle) {
            self.resources.remove(resource);
        }
    }
}

/// Counts a caller as waiting on a resource for as long as it lives (a timed-out wait drops it).
struct Waiting<'a> {
    inner: &'a Inner,
    resource: &'a str,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut table = self.inner.lock();
        if let Some(r) = table.resources.get_mut(self.resource) {
            r.waiters -= 1;
        }
        table.tidy(self.resource);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expire(&self, resource: &str, id: &str, generation: u64) {
        let mut table = self.lock();
        if let Some(r) = table.resources.get_mut(resource)
            && r.holders.get(id).is_some_and(|h| h.generation == generation)
        {
            r.remove(id);
            tracing::debug!(target: "lock", resource, id, "lock expired");
        }
        table.tidy(resource);
    }
}

impl Locks {
    /// Take a lock, waiting up to `wait` for it; false when the wait ran out (or on shutdown).
    /// Not re-entrant: an id that holds any lock waits like everyone else, except that the only
    /// reader of a resource may take the write lock (its read lock is given up).
    pub async fn lock(&self, resource: &str, id: &str, mode: Mode, ttl: Duration, wait: Duration) -> bool {
        let attempt = async {
            let mut waiting = None;
            loop {
                let changed;
                let notified;
                {
                    let mut table = self.inner.lock();
                    if table.closed {
                        return false;
                    }
                    let r = table.resources.entry(resource.to_string()).or_default();
                    if self.try_take(r, resource, id, mode, ttl) {
                        return true;
                    }
                    if waiting.is_none() {
                        r.waiters += 1;
                        waiting = Some(Waiting { inner: &self.inner, resource });
                    }
                    // Registered before the table is unlocked, so no change is missed.
                    changed = r.changed.clone();
                    notified = changed.notified();
                }
                notified.await;
            }
        };
        tokio::time::timeout(wait, attempt).await.unwrap_or(false)
    }

    fn try_take(&self, r: &mut Resource, resource: &str, id: &str, mode: Mode, ttl: Duration) -> bool {
        if r.writer.is_some() {
            return false;
        }
        if mode == Mode::Exclusive {
            let only_reader_is_caller = r.holders.len() == 1 && r.holders.contains_key(id);
            if !r.holders.is_empty() && !only_reader_is_caller {
                return false;
            }
            if let Some(read) = r.holders.remove(id) {
                read.expiry.abort();
            }
            r.writer = Some(id.to_string());
        }
        self.arm(r, resource, id, ttl);
        true
    }

    /// (Re)start the holder's TTL timer; a read lock taken again with the same id is renewed.
    fn arm(&self, r: &mut Resource, resource: &str, id: &str, ttl: Duration) {
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        let (inner, res, owner) = (self.inner.clone(), resource.to_string(), id.to_string());
        let expiry = tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            inner.expire(&res, &owner, generation);
        })
        .abort_handle();
        if let Some(old) = r.holders.insert(id.to_string(), Holder { generation, expiry }) {
            old.expiry.abort();
        }
    }

    /// Release the lock `id` holds; false when it holds none.
    pub fn release(&self, resource: &str, id: &str) -> bool {
        let mut table = self.inner.lock();
        let released = table.resources.get_mut(resource).is_some_and(|r| r.remove(id));
        table.tidy(resource);
        released
    }

    /// Release every lock on the resource; false when there was none.
    pub fn force_release(&self, resource: &str) -> bool {
        let mut table = self.inner.lock();
        let Some(r) = table.resources.get_mut(resource) else { return false };
        let ids: Vec<String> = r.holders.keys().cloned().collect();
        let released = !ids.is_empty();
        for id in ids {
            r.remove(&id);
        }
        table.tidy(resource);
        released
    }

    /// Whether `id` holds a lock on the resource; `*` asks whether anyone does.
    pub fn exists(&self, resource: &str, id: &str) -> bool {
        let table = self.inner.lock();
        table.resources.get(resource).is_some_and(|r| if id == "*" { !r.holders.is_empty() } else { r.holders.contains_key(id) })
    }

    /// Give the lock `id` holds a new TTL counted from now; false when it holds none.
    pub fn update_ttl(&self, resource: &str, id: &str, ttl: Duration) -> bool {
        let mut table = self.inner.lock();
        match table.resources.get_mut(resource) {
            Some(r) if r.holders.contains_key(id) => {
                self.arm(r, resource, id, ttl);
                true
            }
            _ => false,
        }
    }

    /// Shutdown: drop every lock and turn every waiter away.
    pub fn close(&self) {
        let mut table = self.inner.lock();
        table.closed = true;
        for r in table.resources.values_mut() {
            for (_, holder) in r.holders.drain() {
                holder.expiry.abort();
            }
            r.writer = None;
            r.changed.notify_waiters();
        }
        table.resources.retain(|_, r| !r.is_idle());
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.inner.lock().resources.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    /// Many tasks taking and releasing read and write locks on a few resources; the table is
    /// empty at the end, holders and waiters alike.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_stays_behind_after_contention() {
        let locks = Locks::default();
        let tasks: Vec<_> = (0..32)
            .map(|n| {
                let locks = locks.clone();
                tokio::spawn(async move {
                    let (resource, id) = (format!("r{}", n % 3), format!("id{n}"));
                    let mode = if n % 4 == 0 { Mode::Shared } else { Mode::Exclusive };
                    for _ in 0..50 {
                        // Short waits time out under contention, long TTLs never run out here.
                        if locks.lock(&resource, &id, mode, LONG, Duration::from_micros(200)).await {
                            tokio::task::yield_now().await;
                            assert!(locks.release(&resource, &id));
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn an_expired_lock_leaves_nothing_behind() {
        let locks = Locks::default();
        assert!(locks.lock("r", "a", Mode::Shared, Duration::from_millis(20), LONG).await);
        assert!(locks.lock("r", "b", Mode::Exclusive, LONG, LONG).await, "granted once the read lock expired");
        assert!(locks.update_ttl("r", "b", Duration::from_millis(20)));
        assert!(locks.lock("r", "c", Mode::Exclusive, LONG, LONG).await, "granted once b's new TTL ran out");
        assert!(locks.release("r", "c"));
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn close_turns_waiters_away() {
        let locks = Locks::default();
        assert!(locks.lock("r", "a", Mode::Exclusive, LONG, LONG).await);
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move { locks.lock("r", "b", Mode::Shared, LONG, LONG).await }
        });
        while locks.inner.lock().resources["r"].waiters == 0 {
            tokio::task::yield_now().await;
        }
        locks.close();
        assert!(!waiter.await.unwrap());
        assert!(locks.is_empty());
        assert!(!locks.lock("r", "a", Mode::Exclusive, LONG, LONG).await, "nothing is granted after shutdown");
    }
}
