//! The root `kafka` section and the pipeline keys, with RoadRunner's names and defaults, turned
//! into librdkafka properties.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Offset;
use rr_runtime::config::duration;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Global {
    pub brokers: Vec<String>,
    pub ping: Ping,
    pub tls: Option<Tls>,
    pub sasl: Option<Sasl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Ping {
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for Ping {
    fn default() -> Self {
        Ping { timeout: Duration::from_secs(10) }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Tls {
    pub key: String,
    pub cert: String,
    pub root_ca: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Sasl {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    pub priority: i64,
    pub auto_create_topics_enable: bool,
    pub sasl_options: Option<Sasl>,
    pub producer_options: ProducerOptions,
    pub consumer_options: ConsumerOptions,
    pub group_options: Option<GroupOptions>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            priority: 10,
            auto_create_topics_enable: false,
            sasl_options: None,
            producer_options: ProducerOptions::default(),
            consumer_options: ConsumerOptions::default(),
            group_options: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProducerOptions {
    pub disable_idempotent: bool,
    pub required_acks: String,
    pub max_message_bytes: Option<i64>,
    #[serde(with = "opt_duration")]
    pub request_timeout: Option<Duration>,
    #[serde(with = "opt_duration")]
    pub delivery_timeout: Option<Duration>,
    pub compression_codec: String,
    pub partitioning_strategy: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConsumerOptions {
    pub topics: Vec<String>,
    pub consume_regexp: bool,
    pub max_fetch_message_size: Option<i64>,
    pub min_fetch_message_size: Option<i64>,
    /// topic -> partition -> where to start.
    pub consume_partitions: BTreeMap<String, BTreeMap<i32, StartAt>>,
    pub consumer_offset: Option<StartAt>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StartAt {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GroupOptions {
    pub group_id: String,
    pub instance_id: String,
    pub block_rebalance_on_poll: bool,
    /// rr-rs: how long the group waits for a silent member (franz-go's and Kafka's default).
    #[serde(with = "duration")]
    pub session_timeout: Duration,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions { group_id: String::new(), instance_id: String::new(), block_rebalance_on_poll: false, session_timeout: Duration::from_secs(45) }
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        rr_runtime::config::duration::deserialize(d).map(Some)
    }
}

/// `jobs.Declare` sends every value as a string, the option groups as JSON: read those strings
/// as the JSON they hold, so one set of structs serves both.
pub fn from_declare(config: &serde_json::Value) -> serde_json::Value {
    let mut config = config.clone();
    if let Some(map) = config.as_object_mut() {
        for value in map.values_mut() {
            if let Some(parsed) = value.as_str().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) {
                *value = parsed;
            }
        }
    }
    config
}

impl StartAt {
    /// Where an assigned partition starts (`consume_partitions` or no group).
    pub fn offset(&self) -> Result<Offset, String> {
        match self.kind.as_str() {
            "" | "AtStart" => Ok(Offset::Beginning),
            "AtEnd" => Ok(Offset::End),
            "At" => Ok(Offset::Offset(self.value)),
            "Relative" if self.value < 0 => Ok(Offset::OffsetTail(-self.value)),
            other => Err(format!("offset type `{other}` (value {}) is not supported: use AtStart, AtEnd, At or a negative Relative", self.value)),
        }
    }
}

/// Brokers, TLS and SASL: what producers, consumers and the admin client share.
pub fn client(global: &Global, sasl_override: Option<&Sasl>) -> Result<ClientConfig, String> {
    if global.brokers.is_empty() {
        return Err("`kafka.brokers` is empty: list the brokers, e.g. brokers: [\"127.0.0.1:9092\"]".into());
    }
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", global.brokers.join(","));
    let tls = global.tls.as_ref().filter(|t| (!t.key.is_empty() && !t.cert.is_empty()) || !t.root_ca.is_empty());
    if let Some(t) = tls {
        if !t.root_ca.is_empty() {
            c.set("ssl.ca.location", &t.root_ca);
        }
        if !t.key.is_empty() {
            c.set("ssl.key.location", &t.key).set("ssl.certificate.location", &t.cert);
        }
    }
    let sasl = sasl_override.or(global.sasl.as_ref()).filter(|s| !s.mechanism.is_empty());
    if let Some(s) = sasl {
        let mechanism = match s.mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => "PLAIN",
            "SCRAM-SHA-256" => "SCRAM-SHA-256",
            "SCRAM-SHA-512" => "SCRAM-SHA-512",
            _ => return Err(format!("`kafka.sasl.mechanism: {}` is not supported: use plain, SCRAM-SHA-256 or SCRAM-SHA-512", s.mechanism)),
        };
        c.set("sasl.mechanisms", mechanism).set("sasl.username", &s.username).set("sasl.password", &s.password);
    }
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    Ok(c)
}

impl ProducerOptions {
    pub fn apply(&self, c: &mut ClientConfig) -> Result<(), String> {
        let acks = match self.required_acks.as_str() {
            "" | "AllISRAck" => "all",
            "LeaderAck" => "1",
            "NoAck" => "0",
            other => return Err(format!("`producer_options.required_acks: {other}`: use NoAck, LeaderAck or AllISRAck")),
        };
        // Idempotence needs acks from all in-sync replicas.
        c.set("acks", acks).set("enable.idempotence", (!self.disable_idempotent && acks == "all").to_string());
        // A push waits for its record (ProduceSync): send at once, as franz-go does (linger 0).
        c.set("linger.ms", "0");
        if let Some(n) = self.max_message_bytes {
            c.set("message.max.bytes", n.to_string());
        }
        if let Some(t) = self.request_timeout {
            c.set("request.timeout.ms", t.as_millis().to_string());
        }
        if let Some(t) = self.delivery_timeout {
            c.set("message.timeout.ms", t.as_millis().to_string());
        }
        match self.compression_codec.as_str() {
            "" => {}
            codec @ ("gzip" | "snappy" | "lz4" | "zstd") => {
                c.set("compression.codec", codec);
            }
            other => return Err(format!("`producer_options.compression_codec: {other}`: use gzip, snappy, lz4 or zstd")),
        }
        // Keys are job ids, unique: hashing them spreads jobs evenly, as franz-go's strategies do.
        let partitioner = match self.partitioning_strategy.as_str() {
            "" | "Uniform" | "Sticky" | "LeastBackup" | "Manual" => "consistent_random",
            "RoundRobin" => "random",
            other => return Err(format!("`producer_options.partitioning_strategy: {other}`: use Manual, Uniform, RoundRobin, LeastBackup or Sticky")),
        };
        c.set("partitioner", partitioner);
        Ok(())
    }
}

impl ConsumerOptions {
    pub fn apply(&self, c: &mut ClientConfig, group: Option<&GroupOptions>) -> Result<(), String> {
        // The driver stores each partition's commit point itself (see `offsets`); librdkafka
        // commits what is stored every second, when partitions are revoked and on close, and
        // retries a commit that failed (a broker down) at the next tick.
        let commit = group.is_some().to_string();
        c.set("enable.auto.commit", &commit).set("auto.commit.interval.ms", "1000").set("enable.auto.offset.store", "false");
        if let Some(n) = self.max_fetch_message_size {
            c.set("fetch.max.bytes", n.to_string());
        }
        if let Some(n) = self.min_fetch_message_size {
            c.set("fetch.min.bytes", n.to_string());
        }
        // A fetch that finds nothing new waits at most this long at the broker. Kafka answers it
        // as soon as records arrive, but not every broker does (tansu holds it for the whole
        // wait): with librdkafka's 500 ms, jobs pushed to an idle pipeline waited 250 ms on
        // average before their first fetch (docs/BENCHMARKS.md). An idle consumer asks 50
        // times a second instead of twice.
        c.set("fetch.wait.max.ms", "20");
        let start = self.consumer_offset.clone().unwrap_or_default();
        if let Some(g) = group {
            if g.group_id.is_empty() {
                return Err("`group_options.group_id` is empty: name the consumer group".into());
            }
            c.set("group.id", &g.group_id).set("session.timeout.ms", g.session_timeout.as_millis().to_string());
            if !g.instance_id.is_empty() {
                c.set("group.instance.id", &g.instance_id);
            }
            // A group resumes from its committed offsets; a new group starts at the start or the end.
            let reset = match start.offset()? {
                rdkafka::Offset::End => "latest",
                rdkafka::Offset::Beginning => "earliest",
                _ => return Err(format!("`consumer_offset.type: {}` needs consume_partitions: a group starts from its commits, or AtStart/AtEnd", start.kind)),
            };
            c.set("auto.offset.reset", reset);
        } else {
            // librdkafka needs a group id even to only assign; nothing is ever committed with it.
            c.set("group.id", "rr-assign-only");
        }
        Ok(())
    }
}
