//! The `beanstalk` jobs driver (beanstalkd, through a small client of our own). A pipeline puts
//! jobs into its `tube` as RoadRunner's gob `Item` (so RoadRunner servers and this one can share
//! a tube) and reserves them on a second connection that watches only that tube.
//!
//! Differences from RoadRunner, on purpose: a nack without requeue (or a worker error) buries
//! the job instead of deleting it (`kick-job` brings it back); a nack with requeue releases the
//! reservation instead of putting a copy beside it (no duplicate after the TTR); jobs reserved
//! longer than half the TTR (`beanstalk.timeout`) are `touch`ed, so a long job never runs twice;
//! a job's own priority, when set, is its beanstalkd priority (else `tube_priority`).
//!
//! Root section `beanstalk: { addr: tcp://127.0.0.1:11300, timeout: 30s }` (`timeout` is the dial
//! timeout and every job's TTR); pipeline keys `tube` (`default`), `tube_priority` (1),
//! `reserve_timeout` (5s), `priority` (10).

mod client;
mod consumer;
mod gob;
mod proto;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rr_runtime::jobs::{Acknowledger, DriverFactory, Inbox, Job, JobsResult, Pipeline, PipelineState};
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use client::Conn;
use consumer::{Cmd, Settle};
use proto::{Command, Reply};

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "jobs.beanstalk";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !ctx.config.has("jobs") {
            return Ok(None);
        }
        let global = ctx.config.section::<Global>("beanstalk")?;
        if let Some(g) = &global {
            client::parse_addr(&g.addr)?;
        }
        ctx.services.jobs_drivers.register("beanstalk", Arc::new(Factory { global }) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Global {
    addr: String,
    #[serde(with = "rr_runtime::config::duration")]
    timeout: Duration,
}

impl Default for Global {
    fn default() -> Self {
        Global { addr: "tcp://127.0.0.1:11300".into(), timeout: Duration::from_secs(30) }
    }
}

struct Factory {
    global: Option<Global>,
}

/// A pipeline key that may be a number (config) or a string (`jobs.Declare` sends only strings).
fn key<T: std::str::FromStr>(config: &serde_json::Value, name: &str, default: T) -> Result<T, String> {
    let bad = |v: &serde_json::Value| format!("`{name}` is {v}, expected a number in range");
    match config.get(name) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(serde_json::Value::String(s)) => s.trim().parse().map_err(|_| bad(&config[name])),
        Some(v @ serde_json::Value::Number(n)) => n.to_string().parse().map_err(|_| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

/// `reserve_timeout`: a Go duration (`5s`) or whole seconds; beanstalkd counts in seconds.
fn seconds(config: &serde_json::Value, name: &str, default: u32) -> Result<u32, String> {
    match config.get(name) {
        Some(serde_json::Value::String(s)) if s.contains(|c: char| c.is_ascii_alphabetic()) => {
            rr_runtime::config::duration::parse(s).map(|d| d.as_secs().min(u32::MAX as u64) as u32).map_err(|e| format!("`{name}`: {e}"))
        }
        _ => key(config, name, default),
    }
}

impl DriverFactory for Factory {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>> {
        let name = pipeline.to_string();
        let global = self.global.clone();
        let config = config.clone();
        Box::pin(async move {
            let global = global.ok_or_else(|| {
                format!("pipeline `{name}` uses the beanstalk driver but the config has no `beanstalk` section: add `beanstalk: {{ addr: tcp://127.0.0.1:11300 }}`")
            })?;
            let cfg = |e: String| format!("config of pipeline `{name}`: {e}");
            let tube = config.get("tube").and_then(|t| t.as_str()).filter(|t| !t.is_empty()).unwrap_or("default").to_string();
            let inner = Arc::new(Inner {
                priority: key(&config, "priority", 10).map_err(cfg)?,
                tube_priority: key(&config, "tube_priority", 1).map_err(cfg)?,
                reserve_timeout: seconds(&config, "reserve_timeout", 5).map_err(cfg)?,
                ttr: global.timeout.as_secs().clamp(1, u32::MAX as u64) as u32,
                dial_timeout: global.timeout.max(Duration::from_secs(1)),
                addr: global.addr,
                tube,
                name,
                producer: tokio::sync::Mutex::new(None),
                commands: Mutex::new(None),
                consuming: AtomicBool::new(false),
                stats: Mutex::default(),
                stopped: CancellationToken::new(),
            });
            // The first connection must work: a wrong address is a startup error, not a silent retry.
            inner
                .produce(&Command::StatsTube(&inner.tube))
                .await
                .map_err(|e| format!("pipeline `{}`: cannot reach beanstalkd at {} (check `beanstalk.addr`): {e}", inner.name, inner.addr))?;
            let (tx, rx) = mpsc::unbounded_channel();
            *inner.commands.lock().unwrap() = Some(tx);
            tokio::spawn(consumer::run(inner.clone(), rx));
            tokio::spawn(inner.clone().refresh_stats());
            Ok(Arc::new(Beanstalk(inner)) as Arc<dyn Pipeline>)
        })
    }
}

pub(crate) struct Inner {
    name: String,
    addr: String,
    tube: String,
    /// RoadRunner's pipeline priority, for jobs pushed without one.
    priority: i64,
    /// beanstalkd's priority of jobs pushed without one.
    tube_priority: u32,
    reserve_timeout: u32,
    /// Seconds a reservation lasts before beanstalkd gives the job to someone else.
    ttr: u32,
    dial_timeout: Duration,
    /// The connection that puts (`use <tube>`) and reads statistics.
    producer: tokio::sync::Mutex<Option<Conn>>,
    /// To the consumer task, which owns the reserving connection.
    commands: Mutex<Option<mpsc::UnboundedSender<Cmd>>>,
    consuming: AtomicBool,
    /// ready, reserved, delayed: `stats-tube`, refreshed every second.
    stats: Mutex<(i64, i64, i64)>,
    stopped: CancellationToken,
}

impl Inner {
    /// Send one command on the producer connection, dialling it (again) when needed.
    async fn produce(&self, cmd: &Command<'_>) -> std::io::Result<Reply> {
        let mut conn = self.producer.lock().await;
        let mut attempt = 0;
        loop {
            if conn.is_none() {
                let mut c = Conn::connect(&self.addr, self.dial_timeout).await?;
                c.expect(&Command::Use(&self.tube), "USING").await?;
                *conn = Some(c);
            }
            match conn.as_mut().expect("dialled").call(cmd).await {
                Ok(reply) => return Ok(reply),
                // A connection that broke since its last use (broker restart): dial once more.
                Err(e) => {
                    *conn = None;
                    attempt += 1;
                    if attempt == 2 {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn beanstalk_priority(&self, job: &Job) -> u32 {
        if job.priority > 0 { job.priority.min(u32::MAX as i64) as u32 } else { self.tube_priority }
    }

    async fn put(&self, job: &Job, delay: u64) -> JobsResult<()> {
        let item = gob::Item {
            job: job.name.clone(),
            ident: job.id.clone(),
            payload: job.payload.to_vec(),
            headers: job.headers.clone(),
            options: Some(gob::Options {
                priority: job.priority,
                pipeline: self.name.clone(),
                delay: delay as i64,
                auto_ack: job.auto_ack,
                queue: self.tube.clone(),
            }),
        };
        let body = gob::encode(&item);
        let cmd = Command::Put { pri: self.beanstalk_priority(job), delay: delay.min(u32::MAX as u64) as u32, ttr: self.ttr, body: &body };
        match self.produce(&cmd).await.map_err(|e| format!("beanstalk: cannot put job `{}` into tube `{}`: {e}", job.id, self.tube))? {
            Reply::Id(word, _) if word == "INSERTED" => Ok(()),
            Reply::Id(_, id) => Err(format!("beanstalkd is out of memory: it buried job `{}` (beanstalk id {id}) instead of queueing it", job.id).into()),
            Reply::Line(l) if l == "JOB_TOO_BIG" => {
                Err(format!("job `{}` is {} bytes encoded, more than beanstalkd's maximum job size (raise it with `beanstalkd -z`)", job.id, body.len()).into())
            }
            other => Err(format!("beanstalk: put of job `{}` answered {other:?}", job.id).into()),
        }
    }

    /// Settle a reservation through the consumer task (only the reserving connection may).
    async fn settle(&self, id: u64, how: Settle) -> JobsResult<()> {
        let (done, result) = oneshot::channel();
        let sender = self.commands.lock().unwrap().clone();
        sender.and_then(|s| s.send(Cmd::Settle { id, how, done }).ok()).ok_or("beanstalk: the pipeline is stopped")?;
        result.await.map_err(|_| "beanstalk: the pipeline stopped before the job was settled")?
    }

    fn command(&self, cmd: Cmd) {
        if let Some(s) = &*self.commands.lock().unwrap() {
            let _ = s.send(cmd);
        }
    }

    async fn refresh_stats(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.stopped.cancelled() => return,
            }
            match self.produce(&Command::StatsTube(&self.tube)).await {
                Ok(Reply::Ok(yaml)) => {
                    let s = |k| proto::stat(&yaml, k);
                    *self.stats.lock().unwrap() = (s("current-jobs-ready"), s("current-jobs-reserved"), s("current-jobs-delayed"));
                }
                // No tube yet (nothing put or watched) or no broker: nothing to count.
                _ => *self.stats.lock().unwrap() = (0, 0, 0),
            }
        }
    }
}

/// Settles one reservation.
struct Ack {
    inner: Arc<Inner>,
    id: u64,
    job: Job,
}

impl Acknowledger for Ack {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move { self.inner.settle(self.id, Settle::Delete).await })
    }

    fn nack(self: Box<Self>, requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move {
            if requeue {
                return self.inner.settle(self.id, Settle::Release { delay: delay.min(u32::MAX as u64) as u32 }).await;
            }
            tracing::warn!(target: "jobs", pipeline = %self.inner.name, id = %self.job.id, beanstalk_id = self.id, tube = %self.inner.tube, "beanstalk: job buried after a nack (`kick-job {}` runs it again)", self.id);
            self.inner.settle(self.id, Settle::Bury).await
        })
    }

    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move {
            // New headers mean a new body: put the new job first, then delete this one, so a
            // failure in between leaves a job twice rather than none.
            let mut job = self.job.clone();
            job.headers = headers;
            self.inner.put(&job, delay).await?;
            self.inner.settle(self.id, Settle::Delete).await
        })
    }
}

/// A job deleted when it was reserved (`auto_ack`): there is nothing left to settle.
struct AutoAcked;

impl Acknowledger for AutoAcked {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async { Ok(()) })
    }
    fn nack(self: Box<Self>, _: bool, _: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async { Ok(()) })
    }
    fn requeue(self: Box<Self>, _: BTreeMap<String, Vec<String>>, _: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async { Ok(()) })
    }
}

pub struct Beanstalk(Arc<Inner>);

impl Pipeline for Beanstalk {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move { self.0.put(&job, job.delay).await })
    }

    fn resume(&self, out: Inbox) -> BoxFuture<'_, JobsResult<()>> {
        self.0.consuming.store(true, Ordering::Relaxed);
        self.0.command(Cmd::Resume(out));
        Box::pin(async { Ok(()) })
    }

    fn pause(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.0.consuming.store(false, Ordering::Relaxed);
        self.0.command(Cmd::Pause);
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.0.consuming.store(false, Ordering::Relaxed);
        self.0.stopped.cancel();
        Box::pin(async { Ok(()) })
    }

    fn state(&self) -> PipelineState {
        let (active, reserved, delayed) = *self.0.stats.lock().unwrap();
        PipelineState {
            pipeline: self.0.name.clone(),
            driver: "beanstalk".into(),
            queue: self.0.tube.clone(),
            active,
            delayed,
            reserved,
            ready: self.0.consuming.load(Ordering::Relaxed),
            priority: self.0.priority.max(0) as u64,
        }
    }
}
