//! The `amqp` jobs driver (RabbitMQ, through lapin). A pipeline declares its exchange, queue and
//! binding, consumes with `prefetch`, and publishes pushed jobs with their priority. Delays use
//! a per-delay queue whose messages dead-letter into the pipeline's exchange when their TTL
//! ends (as RoadRunner does). Each pipeline keeps its own connection: when the broker goes away
//! it reconnects by itself (backoff up to 5 s), declares its topology again and, if it was
//! consuming, resumes (RoadRunner issues #2091, #1857). Deliveries unacknowledged at the break
//! are redelivered by the broker: at-least-once.
//!
//! Root section `amqp: { addr: "amqp://guest:guest@127.0.0.1:5672/" }`; pipeline keys:
//! `exchange` (`amqp.default`), `exchange_type` (`direct`), `queue` (the pipeline's name),
//! `routing_key` (the queue), `prefetch` (10), `priority` (10), `durable` (false),
//! `exchange_durable` (false), `consume_all` is implied (existing queues are consumed as they are).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use rr_runtime::jobs::{Acknowledger, Delivery, DriverFactory, Inbox, Job, JobsResult, Pipeline, PipelineState};
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "jobs.amqp";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !ctx.config.has("jobs") {
            return Ok(None);
        }
        let addr = ctx.config.value("amqp.addr").and_then(|v| v.as_str()).unwrap_or("amqp://guest:guest@127.0.0.1:5672/").to_string();
        ctx.services.jobs_drivers.register("amqp", Arc::new(Factory { addr }) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct Config {
    exchange: String,
    exchange_type: String,
    queue: String,
    routing_key: String,
    #[serde(deserialize_with = "number")]
    prefetch: u64,
    #[serde(deserialize_with = "number")]
    priority: u64,
    #[serde(deserialize_with = "boolean")]
    durable: bool,
    #[serde(deserialize_with = "boolean")]
    exchange_durable: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            exchange: "amqp.default".into(),
            exchange_type: "direct".into(),
            queue: String::new(),
            routing_key: String::new(),
            prefetch: 10,
            priority: 10,
            durable: false,
            exchange_durable: false,
        }
    }
}

/// Numbers may come as strings (`jobs.Declare` sends every value as a string).
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| serde::de::Error::custom("expected a positive integer")),
        serde_json::Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!("expected a number, found {other}"))),
    }
}

fn boolean<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!("expected a boolean, found {other}"))),
    }
}

struct Factory {
    addr: String,
}

/// `amqp://host:5672/` means the default vhost `/` (as Go's amqp library reads it); lapin reads
/// an empty path as the vhost "", so spell it out.
fn default_vhost(addr: &str) -> String {
    let after_scheme = addr.find("://").map(|i| i + 3).unwrap_or(0);
    match addr[after_scheme..].find('/') {
        None => format!("{addr}/%2f"),
        Some(i) if after_scheme + i + 1 == addr.len() => format!("{addr}%2f"),
        Some(_) => addr.to_string(),
    }
}

impl DriverFactory for Factory {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>> {
        let parsed: Result<Config, _> = rr_runtime::config::decode(config, &format!("jobs.pipelines.{pipeline}.config"));
        let (addr, name) = (default_vhost(&self.addr), pipeline.to_string());
        Box::pin(async move {
            let mut cfg = parsed.map_err(|e| e.to_string())?;
            if cfg.queue.is_empty() {
                cfg.queue = name.clone();
            }
            if cfg.routing_key.is_empty() {
                cfg.routing_key = cfg.queue.clone();
            }
            let (session_tx, session_rx) = watch::channel(None);
            let inner = Arc::new(Inner { name, addr, cfg, session: session_rx, consuming: Mutex::new(None), stopped: CancellationToken::new(), ready: AtomicBool::new(false), last_error: Mutex::default() });
            tokio::spawn(inner.clone().keep_connected(session_tx));
            // The first connection must work: a wrong address is a startup error, not a silent retry.
            let mut rx = inner.session.clone();
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.is_some()))
                .await
                .map_err(|_| format!("cannot connect to AMQP at {} within 10 s (check `amqp.addr`): {}", redact(&inner.addr), inner.last_error.lock().unwrap()))?
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(Amqp(inner)) as Arc<dyn Pipeline>)
        })
    }
}

fn redact(addr: &str) -> String {
    match (addr.find("://"), addr.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &addr[..s + 3], &addr[at..]),
        _ => addr.to_string(),
    }
}

/// One live connection and the channel used for publishing and consuming.
#[derive(Clone)]
struct Session {
    channel: Channel,
    /// Cancelled when this connection is lost.
    lost: CancellationToken,
}

struct Inner {
    name: String,
    addr: String,
    cfg: Config,
    session: watch::Receiver<Option<Session>>,
    /// Where deliveries go while consuming.
    consuming: Mutex<Option<Inbox>>,
    stopped: CancellationToken,
    ready: AtomicBool,
    last_error: Mutex<String>,
}

impl Inner {
    /// Connect, declare, consume if asked; on loss, again, until stopped.
    async fn keep_connected(self: Arc<Self>, session_tx: watch::Sender<Option<Session>>) {
        let mut backoff = Duration::from_millis(100);
        while !self.stopped.is_cancelled() {
            match self.connect().await {
                Ok((conn, channel)) => {
                    backoff = Duration::from_millis(100);
                    let lost = CancellationToken::new();
                    let conn = Arc::new(conn);
                    tokio::spawn(watch_connection(conn.clone(), lost.clone()));
                    let _ = session_tx.send(Some(Session { channel: channel.clone(), lost: lost.clone() }));
                    tracing::info!(target: "jobs", pipeline = %self.name, "amqp connected");
                    let out = self.consuming.lock().unwrap().clone();
                    if let Some(out) = out {
                        self.clone().consume(channel.clone(), out, lost.clone());
                    }
                    tokio::select! {
                        _ = lost.cancelled() => {}
                        _ = self.stopped.cancelled() => {
                            let _ = conn.close(200, "bye".into()).await;
                            return;
                        }
                    }
                    let _ = session_tx.send(None);
                    self.ready.store(false, Ordering::Relaxed);
                }
                Err(e) => {
                    *self.last_error.lock().unwrap() = e.to_string();
                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %e, "amqp: cannot connect; retrying in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stopped.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel), lapin::Error> {
        let conn = Connection::connect(&self.addr, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        let c = &self.cfg;
        let kind = match c.exchange_type.as_str() {
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            _ => ExchangeKind::Direct,
        };
        channel
            .exchange_declare(c.exchange.as_str().into(), kind, ExchangeDeclareOptions { durable: c.exchange_durable, ..Default::default() }, FieldTable::default())
            .await?;
        let mut args = FieldTable::default();
        args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(c.priority.clamp(1, 255) as u8));
        channel.queue_declare(c.queue.as_str().into(), QueueDeclareOptions { durable: c.durable, ..Default::default() }, args).await?;
        channel
            .queue_bind(c.queue.as_str().into(), c.exchange.as_str().into(), c.routing_key.as_str().into(), QueueBindOptions::default(), FieldTable::default())
            .await?;
        channel.basic_qos(c.prefetch.min(u16::MAX as u64) as u16, BasicQosOptions::default()).await?;
        Ok((conn, channel))
    }

    /// Forward deliveries of this connection until it is lost or consuming stops.
    fn consume(self: Arc<Self>, channel: Channel, out: Inbox, lost: CancellationToken) {
        tokio::spawn(async move {
            let tag = format!("rr-{}-{}", self.name, std::process::id());
            let mut consumer = match channel.basic_consume(self.cfg.queue.as_str().into(), tag.as_str().into(), BasicConsumeOptions::default(), FieldTable::default()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(target: "jobs", pipeline = %self.name, error = %e, "amqp: cannot consume");
                    lost.cancel();
                    return;
                }
            };
            self.ready.store(true, Ordering::Relaxed);
            loop {
                let next = tokio::select! {
                    d = consumer.next() => d,
                    _ = lost.cancelled() => return,
                };
                let Some(Ok(d)) = next else {
                    lost.cancel();
                    return;
                };
                let job = decode(&self.name, &d.data, &d.properties);
                let ack = Ack { inner: self.clone(), delivery: d, job: job.clone() };
                if out.send(Delivery { job, driver: "amqp", queue: self.cfg.queue.clone(), acker: Box::new(ack) }).await.is_err() {
                    return;
                }
                if self.consuming.lock().unwrap().is_none() {
                    // Paused: stop taking new messages (unacked ones are redelivered later).
                    let _ = channel.basic_cancel(tag.as_str().into(), Default::default()).await;
                    self.ready.store(false, Ordering::Relaxed);
                    return;
                }
            }
        });
    }

    async fn channel(&self) -> JobsResult<Session> {
        let mut rx = self.session.clone();
        let s = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| s.is_some()))
            .await
            .map_err(|_| format!("amqp: not connected to {} (reconnecting)", redact(&self.addr)))??;
        Ok(s.clone().expect("connected"))
    }

    /// Publish a job to the pipeline's exchange, or through a delay queue.
    async fn publish(&self, job: &Job, delay: u64) -> JobsResult<()> {
        let session = self.channel().await?;
        let c = &self.cfg;
        let mut headers = FieldTable::default();
        headers.insert("x-rr-id".into(), AMQPValue::LongString(job.id.as_str().into()));
        headers.insert("x-rr-job".into(), AMQPValue::LongString(job.name.as_str().into()));
        headers.insert("x-rr-headers".into(), AMQPValue::LongString(serde_json::to_string(&job.headers)?.as_str().into()));
        let priority = if job.priority > 0 { job.priority } else { c.priority as i64 };
        let props = BasicProperties::default().with_headers(headers).with_priority(priority.clamp(0, 255) as u8).with_delivery_mode(if c.durable { 2 } else { 1 });
        let (exchange, routing): (ShortString, ShortString) = if delay == 0 {
            (c.exchange.as_str().into(), c.routing_key.as_str().into())
        } else {
            let ms = delay * 1000;
            let name = format!("delay.{ms}.{}.{}", c.exchange, c.queue);
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms as i64));
            args.insert("x-expires".into(), AMQPValue::LongLongInt((ms * 2) as i64));
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(c.exchange.as_str().into()));
            args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(c.routing_key.as_str().into()));
            session.channel.queue_declare(name.as_str().into(), QueueDeclareOptions { durable: c.durable, ..Default::default() }, args).await?;
            ("".into(), name.as_str().into())
        };
        session.channel.basic_publish(exchange, routing, BasicPublishOptions::default(), &job.payload, props).await?.await?;
        Ok(())
    }
}

/// Cancel `lost` when the connection reports an error or stops being connected.
async fn watch_connection(conn: Arc<Connection>, lost: CancellationToken) {
    let mut events = Box::pin(conn.events_listener());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::Error(e)) => {
                    tracing::warn!(target: "jobs", error = %e, "amqp connection lost");
                    break;
                }
                Some(_) => continue,
                None => break,
            },
            _ = tick.tick() => if !conn.status().connected() { break },
            _ = lost.cancelled() => return,
        }
    }
    lost.cancel();
}

fn decode(pipeline: &str, data: &[u8], props: &BasicProperties) -> Job {
    let get = |k: &str| -> String {
        props
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(k))
            .and_then(|v| match v {
                AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
                AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
                _ => None,
            })
            .unwrap_or_default()
    };
    Job {
        id: get("x-rr-id"),
        name: get("x-rr-job"),
        payload: data.to_vec().into(),
        headers: serde_json::from_str::<BTreeMap<String, Vec<String>>>(&get("x-rr-headers")).unwrap_or_default(),
        pipeline: pipeline.to_string(),
        priority: props.priority().unwrap_or(0) as i64,
        delay: 0,
        auto_ack: false,
        ..Default::default()
    }
}

struct Ack {
    inner: Arc<Inner>,
    delivery: lapin::message::Delivery,
    job: Job,
}

impl Acknowledger for Ack {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move {
            self.delivery.ack(BasicAckOptions::default()).await?;
            Ok(())
        })
    }

    fn nack(self: Box<Self>, requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move {
            if requeue && delay > 0 {
                self.inner.publish(&self.job, delay).await?;
                self.delivery.ack(BasicAckOptions::default()).await?;
                return Ok(());
            }
            self.delivery.nack(BasicNackOptions { requeue, multiple: false }).await?;
            Ok(())
        })
    }

    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move {
            let mut job = self.job.clone();
            job.headers = headers;
            self.inner.publish(&job, delay).await?;
            self.delivery.ack(BasicAckOptions::default()).await?;
            Ok(())
        })
    }
}

pub struct Amqp(Arc<Inner>);

impl Pipeline for Amqp {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move { self.0.publish(&job, job.delay).await })
    }

    fn resume(&self, out: Inbox) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move {
            let was = self.0.consuming.lock().unwrap().replace(out.clone());
            if was.is_none() {
                let session = self.0.channel().await?;
                self.0.clone().consume(session.channel, out, session.lost);
            }
            Ok(())
        })
    }

    fn pause(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.0.consuming.lock().unwrap().take();
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, JobsResult<()>> {
        self.0.consuming.lock().unwrap().take();
        self.0.stopped.cancel();
        Box::pin(async { Ok(()) })
    }

    fn state(&self) -> PipelineState {
        PipelineState {
            pipeline: self.0.name.clone(),
            driver: "amqp".into(),
            queue: self.0.cfg.queue.clone(),
            ready: self.0.consuming.lock().unwrap().is_some() && self.0.ready.load(Ordering::Relaxed),
            priority: self.0.cfg.priority,
            ..Default::default()
        }
    }
}
