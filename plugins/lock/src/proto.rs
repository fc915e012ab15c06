//! `lock.v1beta1` protobuf messages (PLUGINS-MORE.md §B). `ttl` and `wait` are microseconds.

#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(string, tag = "1")]
    pub resource: String,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(int64, optional, tag = "3")]
    pub ttl: Option<i64>,
    #[prost(int64, optional, tag = "4")]
    pub wait: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(bool, tag = "1")]
    pub ok: bool,
}
