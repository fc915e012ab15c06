//! The `kafka` jobs driver (librdkafka through rdkafka). A job is produced to its `topic` option
//! (PHP's KafkaOptions), else to the first of the pipeline's `consumer_options.topics` (key = job
//! id, RoadRunner's `rr_*` headers); a pipeline consumes its topics in a consumer group
//! (`group_options`) or from assigned partitions (`consume_partitions`, or no group). Acks move
//! each partition's commit point in order (see `offsets`); nack, a failed worker and requeue
//! produce a copy of the job before its record counts as settled, so no job is ever skipped.
//! Kafka cannot delay a record: a push with a delay is refused; a delayed requeue waits here.
//! A push returns once the brokers acknowledged its record (RoadRunner's ProduceSync); a batch
//! queues all its records before it waits, so librdkafka sends them in few requests.

mod config;
mod offsets;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rr_runtime::jobs::{Acknowledger, Consuming, Delivery, DriverFactory, Inbox, Job, JobsResult, KafkaOptions, Pipeline, PipelineState};
use rr_runtime::{BoxError, InitContext};
use tokio_util::sync::CancellationToken;

use config::{Global, PipelineConfig};
use offsets::Offsets;

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "jobs.kafka";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !ctx.config.has("jobs") {
            return Ok(None);
        }
        let global: Option<Global> = ctx.config.section("kafka")?;
        ctx.services.jobs_drivers.register("kafka", Arc::new(Factory { global }) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

/// The job name and pipeline of a record RoadRunner did not write.
const DEDUCED: &str = "deduced_by_rr";

/// How long a stopping pipeline waits for its consumer to close (leave the group).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

struct Factory {
    global: Option<Global>,
}

impl DriverFactory for Factory {
    fn create(&self, pipeline: &str, config: &serde_json::Value) -> BoxFuture<'static, JobsResult<Arc<dyn Pipeline>>> {
        let (global, name) = (self.global.clone(), pipeline.to_string());
        let parsed = serde_json::from_value::<PipelineConfig>(config::from_declare(config));
        Box::pin(async move {
            let fail = |e: String| format!("kafka pipeline `{name}`: {e}");
            let global = global.ok_or_else(|| fail("the root `kafka` section is missing: add `kafka: { brokers: [\"127.0.0.1:9092\"] }`".into()))?;
            let cfg = parsed.map_err(|e| fail(e.to_string()))?;
            Ok(Arc::new(Kafka(Arc::new(Inner::connect(name.clone(), global, cfg).await.map_err(fail)?))) as Arc<dyn Pipeline>)
        })
    }
}

struct Inner {
    name: String,
    cfg: PipelineConfig,
    client: ClientConfig,
    /// Where jobs without a `topic` option go: the first topic the pipeline consumes.
    topic: String,
    /// `partitioning_strategy: Manual`: a job goes to its `partition` option.
    manual_partition: bool,
    producer: FutureProducer,
    consumer: Mutex<Option<Arc<StreamConsumer>>>,
    offsets: Mutex<Offsets>,
    consuming: Consuming,
}

impl Inner {
    async fn connect(name: String, global: Global, cfg: PipelineConfig) -> Result<Inner, String> {
        let client = config::client(&global, cfg.sasl_options.as_ref())?;
        let topics = &cfg.consumer_options.topics;
        let topic = topics.first().or(cfg.consumer_options.consume_partitions.keys().next()).cloned();
        let topic = topic.ok_or("set `consumer_options.topics` (or `consumer_options.consume_partitions`)")?;
        let mut producer_config = client.clone();
        cfg.producer_options.apply(&mut producer_config)?;
        let producer: FutureProducer = producer_config.create().map_err(|e| format!("cannot create the producer: {e}"))?;
        // Ping: the brokers answer a metadata request within `kafka.ping.timeout`.
        let (probe, timeout, brokers) = (producer.clone(), global.ping.timeout, global.brokers.join(","));
        tokio::task::spawn_blocking(move || probe.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("no answer from the brokers {brokers} within {timeout:?} (`kafka.brokers`, `kafka.ping.timeout`): {e}"))?;
        if cfg.auto_create_topics_enable {
            let named = cfg.consumer_options.consume_partitions.keys();
            create_topics(&client, &topics.iter().chain(named).cloned().collect::<Vec<_>>()).await?;
        }
        Ok(Inner {
            name,
            manual_partition: cfg.producer_options.partitioning_strategy == "Manual",
            cfg,
            client,
            topic,
            producer,
            consumer: Mutex::new(None),
            offsets: Mutex::default(),
            consuming: Consuming::default(),
        })
    }

    async fn produce(&self, job: &Job) -> JobsResult<()> {
        self.produce_all(std::slice::from_ref(job)).await.pop().unwrap_or(Ok(()))
    }

    /// Queue every job's record with librdkafka, then wait for the brokers' acknowledgements:
    /// one result per job. When librdkafka's queue is full, the oldest record in flight is
    /// awaited first (the queue, `queue.buffering.max.messages`, is the bound).
    async fn produce_all(&self, jobs: &[Job]) -> Vec<JobsResult<()>> {
        let mut results: Vec<Option<JobsResult<()>>> = jobs.iter().map(|_| None).collect();
        let mut in_flight: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
        for (i, job) in jobs.iter().enumerate() {
            let mut record = self.record(job);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => in_flight.push_back((i, delivery)),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) if !in_flight.is_empty() => {
                        record = back;
                        let (oldest, delivery) = in_flight.pop_front().expect("not empty");
                        results[oldest] = Some(self.delivered(&jobs[oldest], delivery).await);
                        continue;
                    }
                    Err((e, _)) => results[i] = Some(Err(format!("cannot produce to topic `{}`: {e}", self.topic_of(job)).into())),
                }
                break;
            }
        }
        for (i, delivery) in in_flight {
            results[i] = Some(self.delivered(&jobs[i], delivery).await);
        }
        results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
    }

    async fn delivered(&self, job: &Job, delivery: DeliveryFuture) -> JobsResult<()> {
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(format!("cannot produce to topic `{}`: {e}", self.topic_of(job)).into()),
            Err(_) => Err(format!("cannot produce to topic `{}`: the producer closed", self.topic_of(job)).into()),
        }
    }

    fn topic_of<'a>(&'a self, job: &'a Job) -> &'a str {
        if job.kafka.topic.is_empty() { &self.topic } else { &job.kafka.topic }
    }

    fn record<'a>(&'a self, job: &'a Job) -> FutureRecord<'a, String, [u8]> {
        let mut headers = OwnedHeaders::new();
        for (key, values) in &job.headers {
            if let Some(first) = values.first() {
                headers = headers.insert(Header { key, value: Some(first.as_bytes()) });
            }
        }
        // As RoadRunner writes them: the priority is a little-endian uint64.
        let priority = (job.priority as u64).to_le_bytes();
        headers = headers
            .insert(Header { key: "rr_job", value: Some(job.name.as_bytes()) })
            .insert(Header { key: "rr_pipeline", value: Some(self.name.as_bytes()) })
            .insert(Header { key: "rr_priority", value: Some(&priority[..]) });
        let mut record = FutureRecord::to(self.topic_of(job)).key(&job.id).payload(&job.payload[..]).headers(headers);
        if self.manual_partition {
            record = record.partition(job.kafka.partition);
        }
        record
    }

    /// A consumer of the pipeline's topics: a group member, or assigned partitions.
    async fn subscribe(&self) -> Result<StreamConsumer, String> {
        let options = &self.cfg.consumer_options;
        let mut c = self.client.clone();
        options.apply(&mut c, self.cfg.group_options.as_ref())?;
        let consumer: StreamConsumer = c.create().map_err(|e| format!("cannot create the consumer: {e}"))?;
        if options.consume_partitions.is_empty() && self.cfg.group_options.is_some() {
            // librdkafka reads a topic that starts with `^` as a regular expression.
            let topics: Vec<String> =
                options.topics.iter().map(|t| if options.consume_regexp && !t.starts_with('^') { format!("^{t}") } else { t.clone() }).collect();
            consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>()).map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
            return Ok(consumer);
        }
        let mut assignment = TopicPartitionList::new();
        if options.consume_partitions.is_empty() {
            let start = options.consumer_offset.clone().unwrap_or_default().offset()?;
            for topic in &options.topics {
                for partition in self.partitions(topic).await? {
                    assignment.add_partition_offset(topic, partition, start).map_err(|e| e.to_string())?;
                }
            }
        } else {
            for (topic, parts) in &options.consume_partitions {
                for (partition, at) in parts {
                    assignment.add_partition_offset(topic, *partition, at.offset()?).map_err(|e| e.to_string())?;
                }
            }
        }
        consumer.assign(&assignment).map_err(|e| format!("cannot assign {assignment:?}: {e}"))?;
        Ok(consumer)
    }

    /// The partitions of `topic` (a blocking metadata request: off the async threads).
    async fn partitions(&self, topic: &str) -> Result<Vec<i32>, String> {
        let (producer, name) = (self.producer.clone(), topic.to_string());
        let metadata = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(Some(&name), Duration::from_secs(10)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("no metadata for topic `{topic}`: {e}"))?;
        let found: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        if found.is_empty() {
            return Err(format!("topic `{topic}` has no partitions: create it, or set `auto_create_topics_enable: true`"));
        }
        Ok(found)
    }

    async fn consume(self: Arc<Self>, consumer: Arc<StreamConsumer>, out: Inbox, stop: CancellationToken) {
        loop {
            let received = tokio::select! {
                m = consumer.recv() => m.map(|m| m.detach()),
                _ = stop.cancelled() => return,
            };
            let record = match received {
                Ok(r) => r,
                Err(e) => {
                    // librdkafka reconnects by itself; errors here are reports, not the end.
                    tracing::warn!(target: "jobs", pipeline = %self.name, error = %e, "kafka: consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if !self.offsets.lock().unwrap().delivered(record.topic(), record.partition(), record.offset(), record.key().unwrap_or_default()) {
                continue;
            }
            let job = self.decode(&record);
            let queue = record.topic().to_string();
            let ack = Ack { inner: self.clone(), record, job: job.clone() };
            if out.send(Delivery { job, driver: "kafka", queue, acker: Box::new(ack) }).await.is_err() {
                return;
            }
        }
    }

    fn decode(&self, record: &OwnedMessage) -> Job {
        let mut job = Job {
            id: record.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_else(|| format!("{}-{}-{}", record.topic(), record.partition(), record.offset())),
            name: DEDUCED.into(),
            pipeline: DEDUCED.into(),
            payload: record.payload().map(bytes::Bytes::copy_from_slice).unwrap_or_default(),
            priority: self.cfg.priority,
            // A requeued copy goes back to the record's topic.
            kafka: KafkaOptions { topic: record.topic().into(), partition: record.partition(), offset: record.offset(), ..Default::default() },
            ..Default::default()
        };
        for h in record.headers().into_iter().flat_map(|h| h.iter()) {
            let value = h.value.unwrap_or_default();
            match h.key {
                "rr_job" => job.name = String::from_utf8_lossy(value).into_owned(),
                "rr_pipeline" => job.pipeline = String::from_utf8_lossy(value).into_owned(),
                "rr_priority" => {
                    let priority = value.try_into().map(u64::from_le_bytes).unwrap_or(0) as i64;
                    if priority != 0 {
                        job.priority = priority;
                    }
                }
                key => {
                    job.headers.insert(key.to_string(), vec![String::from_utf8_lossy(value).into_owned()]);
                }
            }
        }
        job
    }

    /// The record's job is done with: store the partition's new commit point, which librdkafka
    /// commits (group mode only). A partition revoked meanwhile is no longer ours to store: its
    /// new owner gets the record again.
    fn settle(&self, record: &OwnedMessage) -> JobsResult<()> {
        let next = self.offsets.lock().unwrap().settled(record.topic(), record.partition(), record.offset(), record.key().unwrap_or_default());
        let consumer = self.consumer.lock().unwrap().clone();
        if let (Some(next), Some(consumer), Some(_)) = (next, consumer, &self.cfg.group_options) {
            let mut commit = TopicPartitionList::new();
            commit.add_partition_offset(record.topic(), record.partition(), Offset::Offset(next))?;
            if let Err(e) = consumer.store_offsets(&commit) {
                tracing::warn!(target: "jobs", pipeline = %self.name, topic = record.topic(), partition = record.partition(), error = %e, "kafka: partition no longer assigned, its new owner runs the record again");
            }
        }
        Ok(())
    }
}

async fn create_topics(client: &ClientConfig, topics: &[String]) -> Result<(), String> {
    let admin: AdminClient<_> = client.create().map_err(|e| format!("cannot create the admin client: {e}"))?;
    // -1: the broker's default partition count and replication factor (KIP-464).
    let new: Vec<NewTopic> = topics.iter().map(|t| NewTopic::new(t, -1, TopicReplication::Fixed(-1))).collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await.map_err(|e| format!("cannot create topics {topics:?}: {e}"))? {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("cannot create topic `{topic}`: {code}")),
        }
    }
    Ok(())
}

struct Ack {
    inner: Arc<Inner>,
    record: OwnedMessage,
    job: Job,
}

impl Ack {
    /// Produce a copy of the job (after `delay`), then settle the original: the job is never
    /// lost, and the wait does not hold a worker.
    fn again(self: Box<Self>, headers: Option<BTreeMap<String, Vec<String>>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        let mut job = self.job.clone();
        if let Some(h) = headers {
            job.headers = h;
        }
        let copy = async move {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            self.inner.produce(&job).await?;
            self.inner.settle(&self.record)
        };
        if delay == 0 {
            return Box::pin(copy);
        }
        tokio::spawn(async move {
            if let Err(e) = copy.await {
                tracing::error!(target: "jobs", error = %e, "kafka: delayed requeue failed; the job comes back when the group rebalances");
            }
        });
        Box::pin(async { Ok(()) })
    }
}

impl Acknowledger for Ack {
    fn ack(self: Box<Self>) -> BoxFuture<'static, JobsResult<()>> {
        Box::pin(async move { self.inner.settle(&self.record) })
    }

    /// RoadRunner leaves a nacked record unmarked and a later ack commits past it (#1325):
    /// here it always comes back, as a copy at the end of the topic.
    fn nack(self: Box<Self>, _requeue: bool, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        self.again(None, delay)
    }

    fn requeue(self: Box<Self>, headers: BTreeMap<String, Vec<String>>, delay: u64) -> BoxFuture<'static, JobsResult<()>> {
        self.again(Some(headers), delay)
    }
}

pub struct Kafka(Arc<Inner>);

impl Pipeline for Kafka {
    fn push(&self, job: Job) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move {
            if job.delay > 0 {
                return Err(format!("kafka cannot delay jobs (pipeline `{}`, delay {} s): push with delay 0", self.0.name, job.delay).into());
            }
            self.0.produce(&job).await
        })
    }

    fn push_batch(&self, jobs: Vec<Job>) -> BoxFuture<'_, Vec<JobsResult<()>>> {
        Box::pin(async move {
            if let Some(delayed) = jobs.iter().position(|j| j.delay > 0) {
                // As one push after the other: the jobs before the delayed one go, it fails.
                let mut results = self.0.produce_all(&jobs[..delayed]).await;
                results.push(self.push(jobs[delayed].clone()).await);
                return results;
            }
            self.0.produce_all(&jobs).await
        })
    }

    fn resume(&self, out: Inbox) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move {
            if self.0.consuming.is_running() {
                return Ok(());
            }
            let existing = self.0.consumer.lock().unwrap().clone();
            let consumer = match existing {
                Some(c) => {
                    c.resume(&c.assignment()?)?;
                    c
                }
                None => {
                    let c = Arc::new(self.0.subscribe().await.map_err(|e| format!("kafka pipeline `{}`: {e}", self.0.name))?);
                    *self.0.consumer.lock().unwrap() = Some(c.clone());
                    c
                }
            };
            self.0.consuming.start(|stop| self.0.clone().consume(consumer, out, stop));
            Ok(())
        })
    }

    fn pause(&self) -> BoxFuture<'_, JobsResult<()>> {
        if self.0.consuming.stop() {
            // Stop fetching too; the consumer stays in its group so jobs in flight still commit.
            if let Some(c) = self.0.consumer.lock().unwrap().as_ref() {
                let _ = c.assignment().and_then(|a| c.pause(&a));
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn stop(&self) -> BoxFuture<'_, JobsResult<()>> {
        Box::pin(async move {
            self.pause().await?;
            let consumer = self.0.consumer.lock().unwrap().take();
            // The consumer closes when its last handle drops, and closing blocks: let the
            // cancelled consume task let go of its handle first, so that the close happens below.
            let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
            while consumer.as_ref().is_some_and(|c| Arc::strong_count(c) > 1) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let producer = self.0.producer.clone();
            // Leaving the group (it commits what is stored) and flushing block, and a consumer's
            // close can wait forever on a coordinator that does not answer (seen after a broker
            // restart): on a thread of its own, waited for until the deadline.
            let (done, closed) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                drop(consumer);
                let _ = done.send(producer.flush(Duration::from_secs(5)));
            });
            match tokio::time::timeout_at(deadline, closed).await {
                Ok(Ok(flushed)) => flushed?,
                _ => tracing::warn!(target: "jobs", pipeline = %self.0.name, "kafka: the consumer did not leave its group within {CLOSE_TIMEOUT:?}; stopping without it (uncommitted jobs run again)"),
            }
            Ok(())
        })
    }

    fn state(&self) -> PipelineState {
        let topics = &self.0.cfg.consumer_options.topics;
        PipelineState {
            pipeline: self.0.name.clone(),
            driver: "kafka".into(),
            queue: if topics.is_empty() { self.0.topic.clone() } else { topics.join(",") },
            ready: self.0.consuming.is_running(),
            priority: self.0.cfg.priority as u64,
            ..Default::default()
        }
    }
}
