//! The `sqs` jobs driver (Amazon SQS through aws-sdk-sqs, TLS by rustls on ring). A pipeline
//! sends to `queue` (created unless `skip_queue_declaration`) with RoadRunner's `rr_*` message
//! attributes and receives up to `prefetch` messages per call while fewer than
//! `max_messages_in_flight` are with PHP. Ack deletes the message; nack without requeue keeps it
//! (`retain_failed_jobs`) or sends a copy; requeue sends a copy, then deletes the original.
//! Credentials: `sqs.key`/`secret`, else the `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
//! `AWS_SESSION_TOKEN` environment; region: `sqs.region`, else `AWS_REGION`.

mod config;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use aws_smithy_http_client::tls;
use futures::future::BoxFuture;
use rr_runtime::jobs::{Acknowledger, Consuming, Delivery, DriverFactory, Inbox, Job, JobsResult, Pipeline, PipelineState};
use rr_runtime::{BoxError, InitContext};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use config::{Global, PipelineConfig};

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "jobs.sqs";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !ctx.config.has("jobs") {
            return Ok(None);
        }
        let global: Global = ctx.config.section("sqs")?.unwrap_or_default();
        ctx.services.jobs_drivers.register("sqs", Arc::new(Factory { global }) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

/// The job name of a message RoadRunner did not send.
const DEDUCED: &str = "deduced_by_rr";
/// SQS's longest per-message delay.
const MAX_DELAY: u64 = 900;

struct Factory {
    global: Global,
}

fn client(global: &Global) -> Result<Client, String> {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let (key, secret, token) = if global.key.is_empty() || global.secret.is_empty() {
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN"))
    } else {
        (global.key.clone(), global.secret.clone(), global.session_token.clone())
    };
    if key.is_empty() || secret.is_empty() {
        return Err("no credentials: set `sqs.key` and `sqs.secret` (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into());
    }
    let region = if global.region.is_empty() { env("AWS_REGION") } else { global.region.clone() };
    if region.is_empty() {
        return Err("no region: set `sqs.region` (or AWS_REGION), e.g. us-east-1".into());
    }
    let https = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https();
    // RoadRunner's retryer: 60 attempts, at most 2 s apart, so a broker outage is ridden out.
    let mut config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(Credentials::new(key, secret, Some(token).filter(|t| !t.is_empty()), None, "rr-sqs"))
        .http_client(https)
        .retry_config(RetryConfig::standard().with_max_attempts(60).with_max_backoff(Duration::from_secs(2)));
    if !global.endpoint.is_empty() {
        config = config.endpoint_url(&global.endpoint);
    }
    Ok(Client::from_conf(config.build()))
}

impl DriverFactory for Factory {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>> {
        let (global, name, parsed) = (self.global.clone(), pipeline.to_string(), PipelineConfig::parse(config));
        Box::pin(async move {
            let fail = |e: String| format!("sqs pipeline `{name}`: {e}");
            let cfg = parsed.map_err(fail)?;
            let sqs = client(&global).map_err(fail)?;
            let inner = Inner { name: name.clone(), sqs, url: Mutex::default(), cfg, in_flight: AtomicUsize::new(0), settled: Notify::new(), consuming: Consuming::default(), stats: Mutex::default() };
            inner.declare().await.map_err(fail)?;
            Ok(Arc::new(Sqs(Arc::new(inner))) as Arc<dyn Pipeline>)
        })
    }
}

struct Inner {
    name: String,
    sqs: Client,
    url: Mutex<String>,
    cfg: PipelineConfig,
    /// Messages with PHP: receiving waits while `max_messages_in_flight` are.
    in_flight: AtomicUsize,
    settled: Notify,
    consuming: Consuming,
    /// The queue counts of the last `GetQueueAttributes` (`state` cannot wait for a call).
    stats: Mutex<(Option<Instant>, [i64; 3])>,
}

impl Inner {
    fn url(&self) -> String {
        self.url.lock().unwrap().clone()
    }

    /// Create the queue (with its attributes and tags) or find it.
    async fn declare(&self) -> Result<(), String> {
        let queue = &self.cfg.queue;
        if !self.cfg.skip_queue_declaration {
            let created = self
                .sqs
                .create_queue()
                .queue_name(queue)
                .set_attributes(Some(self.cfg.queue_attributes()?))
                .set_tags(Some(self.cfg.tags.clone()).filter(|t| !t.is_empty()))
                .send()
                .await;
            match created {
                Ok(out) => {
                    *self.url.lock().unwrap() = out.queue_url.unwrap_or_default();
                    return Ok(());
                }
                Err(e) if e.as_service_error().is_some_and(|e| e.is_queue_name_exists()) => {}
                Err(e) => return Err(format!("cannot create queue `{queue}`: {}", aws_sdk_sqs::error::DisplayErrorContext(e))),
            }
        }
        let found = self.sqs.get_queue_url().queue_name(queue).send().await.map_err(|e| {
            let hint = if self.cfg.skip_queue_declaration { " (skip_queue_declaration is on: create it first)" } else { "" };
            format!("cannot find queue `{queue}`{hint}: {}", aws_sdk_sqs::error::DisplayErrorContext(e))
        })?;
        *self.url.lock().unwrap() = found.queue_url.unwrap_or_default();
        Ok(())
    }

    /// SendMessage with RoadRunner's attributes. `dedup` names a FIFO copy: a requeued job
    /// keeps its id, which as deduplication id would make SQS drop the copy (sqs#864).
    async fn send(&self, job: &Job, delay: u64, dedup: Option<String>) -> JobsResult<()> {
        if delay > MAX_DELAY {
            return Err(format!("sqs cannot delay a job by {delay} s (pipeline `{}`): at most {MAX_DELAY} s", self.name).into());
        }
        let fifo = self.cfg.fifo();
        if fifo && delay > 0 {
            return Err(format!("sqs FIFO queues cannot delay single jobs (pipeline `{}`, delay {delay} s): set the queue's DelaySeconds attribute", self.name).into());
        }
        let text = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build();
        let mut send = self
            .sqs
            .send_message()
            .queue_url(self.url())
            .message_body(String::from_utf8_lossy(&job.payload))
            .delay_seconds(delay as i32)
            .message_attributes("rr_id", text(&job.id)?)
            .message_attributes("rr_job", text(&job.name)?)
            .message_attributes("rr_delay", text(&delay.to_string())?)
            .message_attributes("rr_headers", MessageAttributeValue::builder().data_type("Binary").binary_value(Blob::new(serde_json::to_vec(&job.headers)?)).build()?)
            .message_attributes("rr_priority", MessageAttributeValue::builder().data_type("Number").string_value(job.priority.to_string()).build()?)
            .message_attributes("rr_auto_ack", text(if job.auto_ack { "true" } else { "false" })?);
        if fifo {
            let group = if self.cfg.message_group_id.is_empty() { &self.cfg.queue } else { &self.cfg.message_group_id };
            send = send.message_group_id(group).message_deduplication_id(dedup.unwrap_or_else(|| job.id.clone()));
        }
        send.send().await.map_err(|e| format!("cannot send to queue `{}`: {}", self.cfg.queue, aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    async fn consume(self: Arc<Self>, out: Inbox, stop: CancellationToken) {
        let limit = self.cfg.max_messages_in_flight as usize;
        while !stop.is_cancelled() {
            let room = limit.saturating_sub(self.in_flight.load(Ordering::Acquire));
            if room == 0 {
                tokio::select! {
                    _ = self.settled.notified() => continue,
                    _ = stop.cancelled() => return,
                }
            }
            let mut receive = self
                .sqs
                .receive_message()
                .queue_url(self.url())
                .max_number_of_messages((self.cfg.prefetch as usize).min(room) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All");
            if self.cfg.visibility_timeout > 0 {
                receive = receive.visibility_timeout(self.cfg.visibility_timeout);
            }
            if self.cfg.wait_time_seconds > 0 {
                receive = receive.wait_time_seconds(self.cfg.wait_time_seconds);
            }
            let received = tokio::select! {
                r = receive.send() => r,
                _ = stop.cancelled() => return,
            };
            let messages = match received {
                Ok(r) => r.messages.unwrap_or_default(),
                Err(e) => {
                    let gone = e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist());
                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "sqs: cannot receive; retrying in 1s");
                    if gone && !self.cfg.skip_queue_declaration {
                        let _ = self.declare().await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for message in messages {
                let job = decode(&self.name, self.cfg.priority, &message);
                if job.auto_ack
                    && let Err(e) = self.delete(&message).await
                {
                    tracing::warn!(target: "jobs", pipeline = %self.name, id = %job.id, error = %e, "sqs: cannot delete an auto_ack job");
                }
                self.in_flight.fetch_add(1, Ordering::AcqRel);
                let ack = Ack { inner: self.clone(), message, job: job.clone() };
                let delivery = Delivery { job, driver: "sqs", queue: self.cfg.queue.clone(), acker: Box::new(ack) };
                if out.send(delivery).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn delete(&self, m: &Message) -> JobsResult<()> {
        let receipt = m.receipt_handle.clone().unwrap_or_default();
        self.sqs.delete_message().queue_url(self.url()).receipt_handle(receipt).send().await.map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        Ok(())
    }

    /// Refresh the counts `state` reports, at most once a second.
    fn refresh_stats(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        {
            let mut stats = self.stats.lock().unwrap();
            if stats.0.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return;
            }
            stats.0 = Some(Instant::now());
        }
        let inner = self.clone();
        runtime.spawn(async move {
            let names = [QueueAttributeName::ApproximateNumberOfMessages, QueueAttributeName::ApproximateNumberOfMessagesDelayed, QueueAttributeName::ApproximateNumberOfMessagesNotVisible];
            let Ok(out) = inner.sqs.get_queue_attributes().queue_url(inner.url()).set_attribute_names(Some(names.to_vec())).send().await else { return };
            let attrs = out.attributes.unwrap_or_default();
            let counts = names.map(|n| attrs.get(&n).and_then(|v| v.parse().ok()).unwrap_or(0));
            inner.stats.lock().unwrap().1 = counts;
        });
    }
}

/// A received message as a job: RoadRunner's `rr_*` attributes (v5 read the priority from the
/// system attributes and lost it), or a foreign message whose attributes become headers.
fn decode(pipeline: &str, priority: i64, m: &Message) -> Job {
    let attrs = m.message_attributes.clone().unwrap_or_default();
    let text = |k: &str| attrs.get(k).and_then(|v| v.string_value.clone());
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // RoadRunner hands PHP the system attributes (ApproximateReceiveCount, SentTimestamp, ...).
    for (k, v) in m.attributes.iter().flatten() {
        headers.insert(k.as_str().to_string(), vec![v.clone()]);
    }
    let mut job = Job {
        id: m.message_id.clone().unwrap_or_default(),
        name: DEDUCED.into(),
        payload: m.body.clone().unwrap_or_default().into(),
        pipeline: pipeline.to_string(),
        priority,
        ..Default::default()
    };
    match text("rr_id") {
        Some(id) => {
            job.id = id;
            job.name = text("rr_job").unwrap_or_default();
            job.auto_ack = text("rr_auto_ack").as_deref() == Some("true");
            if let Some(p) = text("rr_priority").and_then(|p| p.parse().ok()) {
                job.priority = p;
            }
            let pushed = attrs.get("rr_headers").and_then(|v| v.binary_value.as_ref()).and_then(|b| serde_json::from_slice::<BTreeMap<String, Vec<String>>>(b.as_ref()).ok());
            headers.extend(pushed.unwrap_or_default());
        }
        // A foreign message: its attributes become headers.
        None => {
            for (k, v) in &attrs {
                headers.insert(k.clone(), vec![v.string_value.clone().unwrap_or_default()]);
            }
        }
    }
    job.headers = headers;
    job
}

struct Ack {
    inner: Arc<Inner>,
    message: Message,
    job: Job,
}

impl Ack {
    /// Send a copy (new headers, delay), then delete this one.
    async fn again(&self, headers: BTreeMap<String, Vec<String>>, delay: u64) -> JobsResult<()> {
        let mut job = self.job.clone();
        job.headers = headers.into_iter().filter(|(k, _)| !is_system_attribute(k)).collect();
        self.inner.send(&job, delay, self.message.message_id.clone()).await?;
        if !job.auto_ack {
            self.inner.delete(&self.message).await?;
        }
        Ok(())
    }
}

/// System attributes are copied into the headers on receipt; they are not the job's to resend.
fn is_system_attribute(key: &str) -> bool {
    MessageSystemAttributeName::values().contains(&key)
}

/// Settled (or dropped with the inbox): one more message may be received.
impl Drop for Ack {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.inner.settled.notify_one();
    }
}

impl Acknowledger for Ack {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move { if self.job.auto_ack { Ok(()) } else { self.inner.delete(&self.message).await } })
    }

    fn nack(self: Box<Self>, requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move {
            let cfg = &self.inner.cfg;
            if self.job.auto_ack && !requeue {
                // Deleted on receipt: a failure drops it (a copy would fail again, forever).
                return Ok(());
            }
            if requeue || !cfg.retain_failed_jobs {
                return self.again(self.job.headers.clone(), delay).await;
            }
            if cfg.error_visibility_timeout > 0 && !self.job.auto_ack {
                // Back after error_visibility_timeout; a message no longer in flight is fine.
                let receipt = self.message.receipt_handle.clone().unwrap_or_default();
                let changed = self.inner.sqs.change_message_visibility().queue_url(self.inner.url()).receipt_handle(receipt).visibility_timeout(cfg.error_visibility_timeout).send().await;
                if let Err(e) = changed
                    && !e.as_service_error().is_some_and(|e| e.is_message_not_inflight())
                {
                    return Err(aws_sdk_sqs::error::DisplayErrorContext(e).to_string().into());
                }
            }
            // Otherwise back when the visibility timeout expires (or to the dead-letter queue).
            Ok(())
        })
    }

    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move { self.again(headers, delay).await })
    }
}

pub struct Sqs(Arc<Inner>);

impl Pipeline for Sqs {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move { self.0.send(&job, job.delay, None).await })
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
        self.0.refresh_stats();
        let [active, delayed, reserved] = self.0.stats.lock().unwrap().1;
        PipelineState {
            pipeline: self.0.name.clone(),
            driver: "sqs".into(),
            queue: self.0.url(),
            active,
            delayed,
            reserved,
            ready: self.0.consuming.is_running(),
            priority: self.0.cfg.priority as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::types::{Message, MessageAttributeValue};

    #[test]
    fn the_pushed_priority_is_read_from_the_message_attributes() {
        let number = |v: &str| MessageAttributeValue::builder().data_type("Number").string_value(v).build().unwrap();
        let text = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap();
        let m = Message::builder()
            .message_id("m-1")
            .body("x")
            .message_attributes("rr_id", text("j-1"))
            .message_attributes("rr_job", text("App\\Job"))
            .message_attributes("rr_priority", number("3"))
            .build();
        let job = super::decode("p", 10, &m);
        assert_eq!((job.id.as_str(), job.name.as_str(), job.priority), ("j-1", "App\\Job", 3));
        let foreign = super::decode("p", 10, &Message::builder().message_id("m-2").message_attributes("origin", text("cli")).build());
        assert_eq!((foreign.id.as_str(), foreign.name.as_str(), foreign.priority), ("m-2", "deduced_by_rr", 10));
        assert_eq!(foreign.headers["origin"], ["cli"]);
    }
}
