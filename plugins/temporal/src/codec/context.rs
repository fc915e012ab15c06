//! The JSON context of every batch (TEMPORAL.md §3.1): Go `internal.Context`, keys in its order.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Absent: PHP's factory router handles the batch (only `GetWorkerInfo`).
    #[serde(rename = "taskQueue", default, skip_serializing_if = "String::is_empty")]
    pub task_queue: String,
    /// RFC3339, whole seconds (the workflow clock).
    #[serde(rename = "tickTime", default, skip_serializing_if = "String::is_empty")]
    pub tick_time: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_length: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_size: i64,
    /// RoadRunner's id of the workflow instance; empty for activities and the handshake.
    #[serde(default)]
    pub rr_id: String,
    #[serde(default)]
    pub continue_as_new_suggested: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Context {
    /// The handshake's: `{"rr_id":"","continue_as_new_suggested":false}`.
    pub fn handshake() -> Context {
        Context::default()
    }

    /// An activity task's: its task queue, no instance.
    pub fn activity(task_queue: impl Into<String>) -> Context {
        Context { task_queue: task_queue.into(), ..Context::default() }
    }

    /// A workflow instance's: task queue, its rr_id, the workflow clock (`tickTime`).
    pub fn workflow(task_queue: impl Into<String>, rr_id: impl Into<String>, now: std::time::SystemTime) -> Context {
        Context { task_queue: task_queue.into(), rr_id: rr_id.into(), tick_time: super::json::rfc3339_seconds(now), ..Context::default() }
    }

    /// A fresh rr_id: one per workflow instance, new again after an eviction.
    pub fn new_rr_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the context always serializes")
    }
}
