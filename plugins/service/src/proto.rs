//! `service.v1` protobuf messages (PLUGINS-MORE.md §F), as spiral/roadrunner-services sends them.

use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Create {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub command: String,
    #[prost(int64, tag = "3")]
    pub process_num: i64,
    /// Seconds.
    #[prost(int64, tag = "4")]
    pub exec_timeout: i64,
    #[prost(bool, tag = "5")]
    pub remain_after_exit: bool,
    #[prost(map = "string, string", tag = "6")]
    pub env: HashMap<String, String>,
    #[prost(uint64, tag = "7")]
    pub restart_sec: u64,
    #[prost(bool, tag = "8")]
    pub service_name_in_logs: bool,
    #[prost(uint64, tag = "9")]
    pub timeout_stop_sec: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Service {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(bool, tag = "2")]
    pub ok: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(float, tag = "1")]
    pub cpu_percent: f32,
    #[prost(int32, tag = "2")]
    pub pid: i32,
    #[prost(uint64, tag = "3")]
    pub memory_usage: u64,
    #[prost(string, tag = "4")]
    pub command: String,
    /// Set only when the process could not be probed.
    #[prost(message, optional, tag = "5")]
    pub status: Option<CommonStatus>,
}

/// `common.v1.Status` (its `details` are never sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommonStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Statuses {
    #[prost(message, repeated, tag = "1")]
    pub status: Vec<Status>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct List {
    #[prost(string, repeated, tag = "1")]
    pub services: Vec<String>,
}
