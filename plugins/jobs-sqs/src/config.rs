//! The root `sqs` section and the pipeline keys, with RoadRunner's names and defaults.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Global {
    pub key: String,
    pub secret: String,
    pub region: String,
    pub session_token: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    pub queue: String,
    pub priority: i64,
    pub prefetch: i32,
    pub max_messages_in_flight: i32,
    pub visibility_timeout: i32,
    pub error_visibility_timeout: i32,
    pub retain_failed_jobs: bool,
    /// `wait_time` in `jobs.Declare`.
    #[serde(alias = "wait_time")]
    pub wait_time_seconds: i32,
    pub message_group_id: String,
    pub skip_queue_declaration: bool,
    pub attributes: HashMap<String, serde_json::Value>,
    pub tags: HashMap<String, String>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue: "default".into(),
            priority: 10,
            prefetch: 10,
            max_messages_in_flight: 0,
            visibility_timeout: 0,
            error_visibility_timeout: 0,
            retain_failed_jobs: false,
            wait_time_seconds: 0,
            message_group_id: String::new(),
            skip_queue_declaration: false,
            attributes: HashMap::new(),
            tags: HashMap::new(),
        }
    }
}

/// The queue attributes RoadRunner passes to CreateQueue (YAML keys arrive in any case).
const ATTRIBUTES: [&str; 15] = [
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "Policy",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "SqsManagedSseEnabled",
];

impl PipelineConfig {
    /// Read the keys `jobs.Declare` sends as strings (numbers, booleans, JSON maps).
    pub fn parse(config: &serde_json::Value) -> Result<PipelineConfig, String> {
        let mut config = config.clone();
        if let Some(map) = config.as_object_mut() {
            for (key, value) in map.iter_mut() {
                let text_keys = ["queue", "message_group_id", "driver", "name"];
                if let Some(parsed) = value.as_str().filter(|_| !text_keys.contains(&key.as_str())).and_then(|s| serde_json::from_str(s).ok()) {
                    *value = parsed;
                }
            }
        }
        let mut cfg: PipelineConfig = serde_json::from_value(config).map_err(|e| e.to_string())?;
        cfg.prefetch = cfg.prefetch.clamp(1, 10);
        if cfg.max_messages_in_flight <= 0 {
            cfg.max_messages_in_flight = cfg.prefetch;
        }
        for (key, max) in [("visibility_timeout", cfg.visibility_timeout), ("error_visibility_timeout", cfg.error_visibility_timeout)] {
            if !(0..=43200).contains(&max) {
                return Err(format!("`{key}: {max}` is out of range: SQS accepts 0 to 43200 seconds"));
            }
        }
        if !(0..=20).contains(&cfg.wait_time_seconds) {
            return Err(format!("`wait_time_seconds: {}` is out of range: SQS long polls 0 to 20 seconds", cfg.wait_time_seconds));
        }
        Ok(cfg)
    }

    pub fn fifo(&self) -> bool {
        self.queue.ends_with(".fifo")
    }

    /// CreateQueue's attributes; a `.fifo` name makes a FIFO queue.
    pub fn queue_attributes(&self) -> Result<HashMap<QueueAttributeName, String>, String> {
        let mut out = HashMap::new();
        for (key, value) in &self.attributes {
            let name = ATTRIBUTES
                .iter()
                .find(|a| a.eq_ignore_ascii_case(key))
                .ok_or_else(|| format!("`attributes.{key}` is not an SQS queue attribute: use one of {}", ATTRIBUTES.join(", ")))?;
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(QueueAttributeName::from(*name), text);
        }
        if self.fifo() {
            out.insert(QueueAttributeName::FifoQueue, "true".into());
        }
        Ok(out)
    }
}
