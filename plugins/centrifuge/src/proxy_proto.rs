//! The messages of `centrifugal.centrifugo.proxy` (roadrunner-server/api `proxy.proto`,
//! CENTRIFUGE.md §2.2), written as prost structs: the workspace compiles no .proto at build
//! time. Field numbers are the wire contract; Centrifugo v6's extra fields (labels, tags, ...)
//! are not declared here and pass through untouched, since requests and replies travel as raw
//! bytes and these types only check and build them.

use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Disconnect {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(bool, tag = "3")]
    pub temporary: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BoolValue {
    #[prost(bool, tag = "1")]
    pub value: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Int32Value {
    #[prost(int32, tag = "1")]
    pub value: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeOptionOverride {
    #[prost(message, optional, tag = "1")]
    pub presence: Option<BoolValue>,
    #[prost(message, optional, tag = "2")]
    pub join_leave: Option<BoolValue>,
    #[prost(message, optional, tag = "3")]
    pub force_recovery: Option<BoolValue>,
    #[prost(message, optional, tag = "4")]
    pub force_positioning: Option<BoolValue>,
    #[prost(message, optional, tag = "5")]
    pub force_push_join_leave: Option<BoolValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeOptions {
    #[prost(int64, tag = "1")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "2")]
    pub info: Vec<u8>,
    #[prost(string, tag = "3")]
    pub b64info: String,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
    #[prost(string, tag = "5")]
    pub b64data: String,
    #[prost(message, optional, tag = "6")]
    pub r#override: Option<SubscribeOptionOverride>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChannelsCapability {
    #[prost(string, repeated, tag = "1")]
    pub channels: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub allow: Vec<String>,
    #[prost(string, tag = "3")]
    pub r#match: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(bytes = "vec", tag = "10")]
    pub data: Vec<u8>,
    #[prost(string, tag = "11")]
    pub b64data: String,
    #[prost(string, tag = "12")]
    pub name: String,
    #[prost(string, tag = "13")]
    pub version: String,
    #[prost(string, repeated, tag = "14")]
    pub channels: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectResult {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(int64, tag = "2")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub info: Vec<u8>,
    #[prost(string, tag = "4")]
    pub b64info: String,
    #[prost(bytes = "vec", tag = "5")]
    pub data: Vec<u8>,
    #[prost(string, tag = "6")]
    pub b64data: String,
    #[prost(string, repeated, tag = "7")]
    pub channels: Vec<String>,
    #[prost(map = "string, message", tag = "8")]
    pub subs: HashMap<String, SubscribeOptions>,
    #[prost(bytes = "vec", tag = "9")]
    pub meta: Vec<u8>,
    #[prost(message, repeated, tag = "10")]
    pub caps: Vec<ChannelsCapability>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<ConnectResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(bytes = "vec", tag = "11")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshResult {
    #[prost(bool, tag = "1")]
    pub expired: bool,
    #[prost(int64, tag = "2")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub info: Vec<u8>,
    #[prost(string, tag = "4")]
    pub b64info: String,
    #[prost(bytes = "vec", tag = "5")]
    pub meta: Vec<u8>,
    #[prost(message, repeated, tag = "6")]
    pub caps: Vec<ChannelsCapability>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<RefreshResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(string, tag = "11")]
    pub channel: String,
    #[prost(string, tag = "12")]
    pub token: String,
    #[prost(bytes = "vec", tag = "13")]
    pub meta: Vec<u8>,
    #[prost(bytes = "vec", tag = "14")]
    pub data: Vec<u8>,
    #[prost(string, tag = "15")]
    pub b64data: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeResult {
    #[prost(int64, tag = "1")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "2")]
    pub info: Vec<u8>,
    #[prost(string, tag = "3")]
    pub b64info: String,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
    #[prost(string, tag = "5")]
    pub b64data: String,
    #[prost(message, optional, tag = "6")]
    pub r#override: Option<SubscribeOptionOverride>,
    #[prost(string, repeated, tag = "7")]
    pub allow: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<SubscribeResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(string, tag = "11")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "12")]
    pub data: Vec<u8>,
    #[prost(string, tag = "13")]
    pub b64data: String,
    #[prost(bytes = "vec", tag = "14")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResult {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    #[prost(string, tag = "2")]
    pub b64data: String,
    #[prost(bool, tag = "3")]
    pub skip_history: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<PublishResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(string, tag = "11")]
    pub method: String,
    #[prost(bytes = "vec", tag = "12")]
    pub data: Vec<u8>,
    #[prost(string, tag = "13")]
    pub b64data: String,
    #[prost(bytes = "vec", tag = "14")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcResult {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    #[prost(string, tag = "2")]
    pub b64data: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<RpcResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshRequest {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub transport: String,
    #[prost(string, tag = "3")]
    pub protocol: String,
    #[prost(string, tag = "4")]
    pub encoding: String,
    #[prost(string, tag = "10")]
    pub user: String,
    #[prost(string, tag = "11")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "12")]
    pub meta: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshResult {
    #[prost(bool, tag = "1")]
    pub expired: bool,
    #[prost(int64, tag = "2")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "3")]
    pub info: Vec<u8>,
    #[prost(string, tag = "4")]
    pub b64info: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SubRefreshResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<SubRefreshResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "3")]
    pub disconnect: Option<Disconnect>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChannelEvent {
    #[prost(int64, tag = "1")]
    pub time_ms: i64,
    #[prost(string, tag = "2")]
    pub channel: String,
    /// `occupied` or `vacated`.
    #[prost(string, tag = "3")]
    pub r#type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NotifyChannelStateRequest {
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<ChannelEvent>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NotifyChannelStateResult {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NotifyChannelStateResponse {
    #[prost(message, optional, tag = "1")]
    pub result: Option<NotifyChannelStateResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
}
