//! The embedded persistent jobs driver, RoadRunner's `boltdb` role on redb: every pushed job is
//! committed to a file before `jobs.Push` returns and deleted only when PHP acknowledged it, so
//! jobs (including ones in flight) survive a server restart: at-least-once. Pipeline keys:
//! `file` (`rr.db`, relative to the working directory), `priority` (10). Several pipelines may
//! share a file: each has its own table.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use rr_runtime::jobs::queue::Queue;
use rr_runtime::jobs::{Acknowledger, DriverFactory, Inbox, Job, JobsResult, Pipeline, PipelineState};
use rr_runtime::{BoxError, InitContext};
use serde::{Deserialize, Serialize};

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "jobs.boltdb";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !ctx.config.has("jobs") {
            return Ok(None);
        }
        ctx.services.jobs_drivers.register("boltdb", Arc::new(Factory::default()) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

/// Open databases by path: a file is opened once per process and shared by its pipelines; it
/// closes when the last of them stops.
#[derive(Default)]
struct Factory {
    open: Arc<Mutex<HashMap<PathBuf, Weak<Database>>>>,
}

/// A stored job.
#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    name: String,
    payload: Vec<u8>,
    headers: BTreeMap<String, Vec<String>>,
    priority: i64,
}

impl Record {
    fn job(self, pipeline: &str) -> Job {
        Job { id: self.id, name: self.name, payload: self.payload.into(), headers: self.headers, pipeline: pipeline.into(), priority: self.priority, delay: 0, auto_ack: false, ..Default::default() }
    }
}

impl DriverFactory for Factory {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>> {
        let file = PathBuf::from(config.get("file").and_then(|v| v.as_str()).unwrap_or("rr.db"));
        let priority = match config.get("priority") {
            Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(10),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(10),
            _ => 10,
        };
        let (open, name) = (self.open.clone(), pipeline.to_string());
        Box::pin(async move {
            let path = std::path::absolute(&file).unwrap_or(file.clone());
            let db = {
                let mut open = open.lock().unwrap();
                match open.get(&path).and_then(Weak::upgrade) {
                    Some(db) => db,
                    None => {
                        let db = Arc::new(Database::create(&path).map_err(|e| format!("pipeline `{name}`: cannot open `{}`: {e}", path.display()))?);
                        open.insert(path.clone(), Arc::downgrade(&db));
                        db
                    }
                }
            };
            let store = Store { db: Mutex::new(Some(db)), table: format!("jobs.{name}") };
            let queue = Queue::new(&name, "boltdb", priority);
            // Everything stored comes back: unacknowledged jobs of the last run included.
            let stored = store.load()?;
            let next_key = stored.last().map(|(k, _)| k + 1).unwrap_or(1);
            for (key, record) in stored {
                queue.push(key, record.job(&name), 0);
            }
            Ok(Arc::new(Boltdb(Arc::new(Inner { queue, store, next_key: Mutex::new(next_key), path }))) as Arc<dyn Pipeline>)
        })
    }
}

struct Store {
    /// `None` once the pipeline stopped (the file is then closed).
    db: Mutex<Option<Arc<Database>>>,
    table: String,
}

impl Store {
    fn db(&self) -> JobsResult<Arc<Database>> {
        self.db.lock().unwrap().clone().ok_or_else(|| "the pipeline is stopped".into())
    }

    fn def(&self) -> TableDefinition<'_, u64, &'static [u8]> {
        TableDefinition::new(&self.table)
    }

    fn load(&self) -> JobsResult<Vec<(u64, Record)>> {
        let txn = self.db()?.begin_read()?;
        let table = match txn.open_table(self.def()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((k.value(), serde_json::from_slice(v.value())?));
        }
        Ok(out)
    }

    fn put(&self, key: u64, record: &Record) -> JobsResult<()> {
        let bytes = serde_json::to_vec(record)?;
        let txn = self.db()?.begin_write()?;
        txn.open_table(self.def())?.insert(key, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn delete(&self, key: u64) -> JobsResult<()> {
        let txn = self.db()?.begin_write()?;
        txn.open_table(self.def())?.remove(key)?;
        txn.commit()?;
        Ok(())
    }
}

struct Inner {
    queue: Arc<Queue>,
    store: Store,
    next_key: Mutex<u64>,
    path: PathBuf,
}

impl Inner {
    fn record(job: &Job) -> Record {
        Record { id: job.id.clone(), name: job.name.clone(), payload: job.payload.to_vec(), headers: job.headers.clone(), priority: job.priority }
    }
}

struct Ack {
    inner: Arc<Inner>,
    key: u64,
    job: Job,
}

impl Acknowledger for Ack {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        self.inner.queue.settled();
        Box::pin(async move { self.inner.store.delete(self.key) })
    }

    fn nack(self: Box<Self>, requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        self.inner.queue.settled();
        Box::pin(async move {
            if requeue {
                self.inner.queue.push(self.key, self.job, delay);
                Ok(())
            } else {
                self.inner.store.delete(self.key)
            }
        })
    }

    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        self.inner.queue.settled();
        Box::pin(async move {
            let mut job = self.job;
            job.headers = headers;
            self.inner.store.put(self.key, &Inner::record(&job))?;
            self.inner.queue.push(self.key, job, delay);
            Ok(())
        })
    }
}

pub struct Boltdb(Arc<Inner>);

impl Pipeline for Boltdb {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move {
            let key = {
                let mut next = self.0.next_key.lock().unwrap();
                *next += 1;
                *next - 1
            };
            self.0.store.put(key, &Inner::record(&job))?;
            let delay = job.delay;
            self.0.queue.push(key, job, delay);
            Ok(())
        })
    }

    fn resume(&self, out: Inbox) -> BoxFuture<'_, JobsResult<()>> {
        let inner = self.0.clone();
        self.0.queue.resume(out, Arc::new(move |key, job| Box::new(Ack { inner: inner.clone(), key, job }) as Box<dyn Acknowledger>));
        Box::pin(async { Ok(()) })
    }

    fn pause(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.0.queue.pause();
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.0.queue.pause();
        self.0.store.db.lock().unwrap().take();
        Box::pin(async { Ok(()) })
    }

    fn state(&self) -> PipelineState {
        self.0.queue.state(&self.0.path.display().to_string())
    }
}
