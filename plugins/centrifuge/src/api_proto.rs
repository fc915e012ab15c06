//! Messages of `centrifugal.centrifugo.api` (roadrunner-server/api `api.proto`, CENTRIFUGE.md
//! §3) that roadrunner-php/centrifugo's `RPCCentrifugoApi` sends and reads. Forwarding needs
//! none of them (bytes pass through); they are for callers that build or read API messages in
//! Rust: tests, and the embedded hub that will answer these methods itself.

use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(string, tag = "3")]
    pub b64data: String,
    #[prost(bool, tag = "4")]
    pub skip_history: bool,
    #[prost(map = "string, string", tag = "5")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "6")]
    pub idempotency_key: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResult {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(string, tag = "2")]
    pub epoch: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<PublishResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BroadcastRequest {
    #[prost(string, repeated, tag = "1")]
    pub channels: Vec<String>,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(string, tag = "3")]
    pub b64data: String,
    #[prost(bool, tag = "4")]
    pub skip_history: bool,
    #[prost(map = "string, string", tag = "5")]
    pub tags: HashMap<String, String>,
    #[prost(string, tag = "6")]
    pub idempotency_key: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BroadcastResult {
    #[prost(message, repeated, tag = "1")]
    pub responses: Vec<PublishResponse>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BroadcastResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<BroadcastResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Disconnect {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DisconnectRequest {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(message, optional, tag = "2")]
    pub disconnect: Option<Disconnect>,
    #[prost(string, tag = "3")]
    pub client: String,
    #[prost(string, repeated, tag = "4")]
    pub whitelist: Vec<String>,
    #[prost(string, tag = "5")]
    pub session: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UnsubscribeRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(string, tag = "2")]
    pub user: String,
    #[prost(string, tag = "3")]
    pub client: String,
    #[prost(string, tag = "4")]
    pub session: String,
}

/// `DisconnectResponse`, `UnsubscribeResponse`, `RefreshResponse`, `BlockUserResponse`, ...:
/// an error or an empty result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EmptyResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<Empty>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientInfo {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub client: String,
    #[prost(bytes = "vec", tag = "3")]
    pub conn_info: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub chan_info: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceResult {
    #[prost(map = "string, message", tag = "1")]
    pub presence: HashMap<String, ClientInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<PresenceResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceStatsResult {
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
    #[prost(uint32, tag = "2")]
    pub num_users: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PresenceStatsResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<PresenceStatsResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamPosition {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(string, tag = "2")]
    pub epoch: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(int32, tag = "2")]
    pub limit: i32,
    #[prost(message, optional, tag = "3")]
    pub since: Option<StreamPosition>,
    #[prost(bool, tag = "4")]
    pub reverse: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Publication {
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub info: Option<ClientInfo>,
    #[prost(uint64, tag = "4")]
    pub offset: u64,
    #[prost(map = "string, string", tag = "5")]
    pub tags: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryResult {
    #[prost(message, repeated, tag = "1")]
    pub publications: Vec<Publication>,
    #[prost(string, tag = "2")]
    pub epoch: String,
    #[prost(uint64, tag = "3")]
    pub offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<HistoryResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChannelsRequest {
    #[prost(string, tag = "1")]
    pub pattern: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChannelInfo {
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChannelsResult {
    #[prost(map = "string, message", tag = "1")]
    pub channels: HashMap<String, ChannelInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ChannelsResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<ChannelsResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RefreshRequest {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub client: String,
    #[prost(bool, tag = "3")]
    pub expired: bool,
    #[prost(int64, tag = "4")]
    pub expire_at: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub info: Vec<u8>,
    #[prost(string, tag = "6")]
    pub session: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockUserRequest {
    #[prost(int64, tag = "1")]
    pub expire_at: i64,
    #[prost(string, tag = "2")]
    pub user: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UnblockUserRequest {
    #[prost(string, tag = "1")]
    pub user: String,
}
