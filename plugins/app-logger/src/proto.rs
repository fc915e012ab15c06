//! `applogger.v1` protobuf messages (PLUGINS-MORE.md §C).

#[derive(Clone, PartialEq, prost::Message)]
pub struct LogEntry {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(message, repeated, tag = "2")]
    pub log_attrs: Vec<LogAttrs>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LogAttrs {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {}
