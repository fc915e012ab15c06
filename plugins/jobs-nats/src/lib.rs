//! The `nats` jobs driver (NATS JetStream, through async-nats). A pipeline publishes to
//! `subject` in `stream` (created when missing) and consumes with a durable pull consumer
//! (`prefetch` messages in flight, pulled in batches of up to `prefetch`). `deliver_new` starts
//! from new messages only; `delete_after_ack` removes a message from the stream once PHP
//! acknowledged it. The client reconnects by itself. JetStream has no priorities: jobs arrive in
//! stream order.
//!
//! A push returns once JetStream acknowledged the message. A batch publishes all its jobs before
//! it waits for their acknowledgements, so they overlap; the client bounds how many are in flight
//! (5,000, then a publish waits for a slot, as nats.go's async publish does).
//!
//! Root section `nats: { addr: "nats://127.0.0.1:4222" }`; pipeline keys: `stream`, `subject`
//! (both default to the pipeline's name), `prefetch` (100), `deliver_new` (false),
//! `delete_after_ack` (false), `priority` (reported only).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, context::PublishAckFuture, response::Response, stream::Stream};
use futures::StreamExt;
use futures::future::BoxFuture;
use rr_runtime::jobs::{Acknowledger, Consuming, Delivery, DriverFactory, Inbox, Job, JobsResult, Pipeline, PipelineState};
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "jobs.nats";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !ctx.config.has("jobs") {
            return Ok(None);
        }
        let addr = ctx.config.value("nats.addr").and_then(|v| v.as_str()).unwrap_or("nats://127.0.0.1:4222").to_string();
        ctx.services.jobs_drivers.register("nats", Arc::new(Factory { addr }) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Config {
    stream: String,
    subject: String,
    prefetch: Option<serde_json::Value>,
    deliver_new: Option<serde_json::Value>,
    delete_after_ack: Option<serde_json::Value>,
    priority: Option<serde_json::Value>,
}

/// Values may be numbers/booleans (config) or strings (`jobs.Declare`).
fn num(v: &Option<serde_json::Value>, default: u64) -> u64 {
    match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(default),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

fn flag(v: &Option<serde_json::Value>) -> bool {
    match v {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    }
}

struct Factory {
    addr: String,
}

impl DriverFactory for Factory {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>> {
        let parsed: Result<Config, _> = rr_runtime::config::decode(config, &format!("jobs.pipelines.{pipeline}.config"));
        let (addr, name) = (self.addr.clone(), pipeline.to_string());
        Box::pin(async move {
            let cfg = parsed.map_err(|e| e.to_string())?;
            let stream_name = if cfg.stream.is_empty() { name.clone() } else { cfg.stream.clone() };
            let subject = if cfg.subject.is_empty() { name.clone() } else { cfg.subject.clone() };
            let client = tokio::time::timeout(Duration::from_secs(10), async_nats::connect(&addr))
                .await
                .map_err(|_| format!("cannot connect to NATS at {addr} within 10 s (check `nats.addr`)"))?
                .map_err(|e| format!("cannot connect to NATS at {addr}: {e}"))?;
            let js = jetstream::new(client);
            // Servers sharing a stream may start together: one's create can lose the race to
            // another's (NATS answers "subjects overlap"), and the stream is then there to get.
            let stream = match js.get_or_create_stream(jetstream::stream::Config { name: stream_name.clone(), subjects: vec![subject.clone()], ..Default::default() }).await {
                Ok(stream) => stream,
                Err(e) => js.get_stream(&stream_name).await.map_err(|_| format!("pipeline `{name}`: cannot create stream `{stream_name}`: {e}"))?,
            };
            let durable = format!("rr-{name}");
            let consumer = stream
                .get_or_create_consumer::<jetstream::consumer::pull::Config>(
                    &durable,
                    jetstream::consumer::pull::Config {
                        durable_name: Some(durable.clone()),
                        filter_subject: subject.clone(),
                        deliver_policy: if flag(&cfg.deliver_new) { jetstream::consumer::DeliverPolicy::New } else { jetstream::consumer::DeliverPolicy::All },
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        max_ack_pending: num(&cfg.prefetch, 100) as i64,
                        ..Default::default()
                    },
                )
                .await;
            let consumer = match consumer {
                Ok(consumer) => consumer,
                // The same race as for the stream, on the shared durable consumer.
                Err(e) => stream.get_consumer(&durable).await.map_err(|_| format!("pipeline `{name}`: cannot create consumer: {e}"))?,
            };
            let prefetch = num(&cfg.prefetch, 100).max(1) as usize;
            Ok(Arc::new(Nats(Arc::new(Inner {
                name,
                subject,
                js,
                stream,
                consumer,
                prefetch,
                deletes: Arc::new(Semaphore::new(prefetch)),
                delete_after_ack: flag(&cfg.delete_after_ack),
                priority: num(&cfg.priority, 10),
                consuming: Consuming::default(),
            }))) as Arc<dyn Pipeline>)
        })
    }
}

struct Inner {
    name: String,
    subject: String,
    js: jetstream::Context,
    stream: Stream,
    consumer: PullConsumer,
    /// Messages delivered and not yet acknowledged (the consumer's `max_ack_pending`), and the
    /// most one pull request asks for.
    prefetch: usize,
    /// Bounds the stream deletes in flight (`delete_after_ack`) to `prefetch`.
    deletes: Arc<Semaphore>,
    delete_after_ack: bool,
    priority: u64,
    consuming: Consuming,
}

impl Inner {
    /// Publish without waiting for JetStream's acknowledgement: the returned future is it.
    async fn send(&self, job: &Job) -> JobsResult<PublishAckFuture> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("x-rr-id", job.id.as_str());
        headers.insert("x-rr-job", job.name.as_str());
        headers.insert("x-rr-headers", serde_json::to_string(&job.headers)?.as_str());
        Ok(self.js.publish_with_headers(self.subject.clone(), headers, job.payload.clone()).await?)
    }

    async fn publish(&self, job: &Job) -> JobsResult<()> {
        self.send(job).await?.await?;
        Ok(())
    }

    /// `STREAM.MSG.DELETE` as nats.go's `DeleteMsg` (RoadRunner's) sends it, with `no_erase`:
    /// the server drops the message. async-nats' `delete_message` asks for a secure erase, which
    /// overwrites the message on disk and holds the stream (publishes queue behind it).
    async fn delete(&self, seq: u64) -> JobsResult<()> {
        let subject = format!("STREAM.MSG.DELETE.{}", self.stream.cached_info().config.name);
        let answer: Response<serde_json::Value> = self.js.request(subject, &serde_json::json!({ "seq": seq, "no_erase": true })).await?;
        match answer {
            Response::Ok(_) => Ok(()),
            Response::Err { error } => Err(error.to_string().into()),
        }
    }

    /// A job with a delay is published after it, from here (JetStream cannot delay a message).
    fn publish_later(self: &Arc<Self>, job: Job) {
        let inner = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(job.delay)).await;
            if let Err(e) = inner.publish(&job).await {
                tracing::error!(target: "jobs", id = %job.id, error = %e, "nats: delayed publish failed");
            }
        });
    }

    async fn consume(self: Arc<Self>, out: Inbox, stop: CancellationToken) {
        while !stop.is_cancelled() {
            // One pull request asks for up to `prefetch` messages; the heartbeat as `messages()`.
            let pull = self.consumer.stream().max_messages_per_batch(self.prefetch).heartbeat(Duration::from_secs(15));
            let mut messages = match pull.messages().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %e, "nats: cannot consume; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    m = messages.next() => m,
                    _ = stop.cancelled() => return,
                };
                let msg = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        tracing::warn!(target: "jobs", pipeline = %self.name, error = %e, "nats: consumer error");
                        continue;
                    }
                    None => break,
                };
                let header = |k: &str| msg.headers.as_ref().and_then(|h| h.get(k)).map(|v| v.as_str().to_string()).unwrap_or_default();
                let job = Job {
                    id: header("x-rr-id"),
                    name: header("x-rr-job"),
                    payload: msg.payload.clone(),
                    headers: serde_json::from_str(&header("x-rr-headers")).unwrap_or_default(),
                    pipeline: self.name.clone(),
                    ..Default::default()
                };
                let ack = Ack { inner: self.clone(), msg, job: job.clone() };
                if out.send(Delivery { job, driver: "nats", queue: self.subject.clone(), acker: Box::new(ack) }).await.is_err() {
                    return;
                }
            }
        }
    }
}

struct Ack {
    inner: Arc<Inner>,
    msg: jetstream::Message,
    job: Job,
}

impl Ack {
    /// Acknowledge, then (`delete_after_ack`) delete the message from the stream. The delete is
    /// a request of its own that the acknowledgement does not depend on (an acknowledged message
    /// is not delivered again): it runs beside the next jobs instead of holding this worker for
    /// a round trip, at most `prefetch` deletes at once.
    async fn done(&self) -> JobsResult<()> {
        self.msg.ack().await?;
        if self.inner.delete_after_ack {
            let seq = self.msg.info()?.stream_sequence;
            let permit = self.inner.deletes.clone().acquire_owned().await?;
            let inner = self.inner.clone();
            tokio::spawn(async move {
                if let Err(e) = inner.delete(seq).await {
                    tracing::warn!(target: "jobs", pipeline = %inner.name, seq, error = %e, "nats: cannot delete an acknowledged message (delete_after_ack)");
                }
                drop(permit);
            });
        }
        Ok(())
    }
}

impl Acknowledger for Ack {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move { self.done().await })
    }

    fn nack(self: Box<Self>, requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move {
            if requeue {
                self.msg.ack_with(AckKind::Nak(Some(Duration::from_secs(delay)))).await?;
            } else {
                self.msg.ack_with(AckKind::Term).await?;
            }
            Ok(())
        })
    }

    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move {
            // New headers mean a new message: publish it (after the delay), then settle this one.
            let mut job = self.job.clone();
            job.headers = headers;
            if delay > 0 {
                tokio::time::sleep(Duration::from_secs(delay)).await;
            }
            self.inner.publish(&job).await?;
            self.done().await
        })
    }
}

pub struct Nats(Arc<Inner>);

impl Pipeline for Nats {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move {
            if job.delay > 0 {
                self.0.publish_later(job);
                return Ok(());
            }
            self.0.publish(&job).await
        })
    }

    /// Every job published, in order, before any acknowledgement is awaited; then all of them.
    fn push_batch(&self, jobs: Vec<Job>) -> BoxFuture<'_, Vec<JobsResult<()>>> {
        Box::pin(async move {
            let mut sent = Vec::with_capacity(jobs.len());
            for job in jobs {
                sent.push(if job.delay > 0 {
                    self.0.publish_later(job);
                    Ok(None)
                } else {
                    self.0.send(&job).await.map(Some)
                });
            }
            futures::future::join_all(sent.into_iter().map(|sent| async move {
                match sent? {
                    Some(ack) => ack.await.map(drop).map_err(Into::into),
                    None => Ok(()),
                }
            }))
            .await
        })
    }

    fn resume(&self, out: Inbox) -> BoxFuture<'_, JobsResult<()>> {
        self.0.consuming.start(|stop| self.0.clone().consume(out, stop));
        Box::pin(async { Ok(()) })
    }

    fn pause(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.0.consuming.stop();
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.pause()
    }

    fn state(&self) -> PipelineState {
        PipelineState {
            pipeline: self.0.name.clone(),
            driver: "nats".into(),
            queue: self.0.subject.clone(),
            ready: self.0.consuming.is_running(),
            priority: self.0.priority,
            ..Default::default()
        }
    }
}
