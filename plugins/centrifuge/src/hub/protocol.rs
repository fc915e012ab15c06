//! The Centrifuge client protocol v2 (centrifugal/protocol `client.proto`, CENTRIFUGE.md §6): the
//! messages as prost structs, and both framings. Pure code, no I/O.
//!
//! JSON: one or more objects per text frame, separated by `\n`; `bytes` payload fields carry
//! raw JSON values (not base64). Protobuf (`centrifuge-protobuf`): one or more varint
//! length-delimited messages per binary frame.

use std::collections::HashMap;

use bytes::{Buf, Bytes};
use prost::Message;
use serde_json::{Map, Value};

// ---- Error and disconnect codes, as Centrifuge has them. ----
pub const ERROR_INTERNAL: u32 = 100;
pub const ERROR_UNAUTHORIZED: u32 = 101;
pub const ERROR_UNKNOWN_CHANNEL: u32 = 102;
pub const ERROR_PERMISSION_DENIED: u32 = 103;
pub const ERROR_METHOD_NOT_FOUND: u32 = 104;
pub const ERROR_ALREADY_SUBSCRIBED: u32 = 105;
pub const ERROR_LIMIT_EXCEEDED: u32 = 106;
pub const ERROR_BAD_REQUEST: u32 = 107;
pub const ERROR_NOT_AVAILABLE: u32 = 108;
pub const ERROR_TOKEN_EXPIRED: u32 = 109;
pub const ERROR_EXPIRED: u32 = 110;
pub const ERROR_TOO_MANY_REQUESTS: u32 = 111;

/// A WebSocket close: code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect(pub u16, pub &'static str);
pub const DISCONNECT_SHUTDOWN: Disconnect = Disconnect(3001, "shutdown");
pub const DISCONNECT_INTERNAL: Disconnect = Disconnect(3004, "internal server error");
pub const DISCONNECT_EXPIRED: Disconnect = Disconnect(3005, "connection expired");
pub const DISCONNECT_SUB_EXPIRED: Disconnect = Disconnect(3006, "subscription expired");
pub const DISCONNECT_SLOW: Disconnect = Disconnect(3008, "slow");
pub const DISCONNECT_NO_PONG: Disconnect = Disconnect(3012, "no pong");
pub const DISCONNECT_INVALID_TOKEN: Disconnect = Disconnect(3500, "invalid token");
pub const DISCONNECT_BAD_REQUEST: Disconnect = Disconnect(3501, "bad request");
pub const DISCONNECT_STALE: Disconnect = Disconnect(3502, "stale");
pub const DISCONNECT_FORCE: Disconnect = Disconnect(3503, "force disconnect");
pub const DISCONNECT_CONNECTION_LIMIT: Disconnect = Disconnect(3504, "connection limit");
pub const DISCONNECT_CHANNEL_LIMIT: Disconnect = Disconnect(3505, "channel limit");
/// The `unsubscribe` push of an expired subscription; the client subscribes again (>= 2500).
pub const UNSUBSCRIBE_EXPIRED: (u32, &str) = (2501, "subscription expired");
/// A frame over `max_message_size`: WebSocket's own code, as gorilla/websocket closes.
pub const DISCONNECT_MESSAGE_SIZE: Disconnect = Disconnect(1009, "message too big");

pub fn error_text(code: u32) -> &'static str {
    match code {
        ERROR_INTERNAL => "internal server error",
        ERROR_UNAUTHORIZED => "unauthorized",
        ERROR_UNKNOWN_CHANNEL => "unknown channel",
        ERROR_PERMISSION_DENIED => "permission denied",
        ERROR_METHOD_NOT_FOUND => "method not found",
        ERROR_ALREADY_SUBSCRIBED => "already subscribed",
        ERROR_LIMIT_EXCEEDED => "limit exceeded",
        ERROR_BAD_REQUEST => "bad request",
        ERROR_NOT_AVAILABLE => "not available",
        ERROR_TOKEN_EXPIRED => "token expired",
        ERROR_EXPIRED => "expired",
        ERROR_TOO_MANY_REQUESTS => "too many requests",
        _ => "error",
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Error {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(bool, tag = "3")]
    pub temporary: bool,
}

impl Error {
    pub fn new(code: u32) -> Error {
        Error { code, message: error_text(code).into(), temporary: code == ERROR_INTERNAL || code == ERROR_TOO_MANY_REQUESTS }
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Command {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(message, optional, tag = "4")]
    pub connect: Option<ConnectRequest>,
    #[prost(message, optional, tag = "5")]
    pub subscribe: Option<SubscribeRequest>,
    #[prost(message, optional, tag = "6")]
    pub unsubscribe: Option<UnsubscribeRequest>,
    #[prost(message, optional, tag = "7")]
    pub publish: Option<PublishRequest>,
    #[prost(message, optional, tag = "8")]
    pub presence: Option<ChannelRequest>,
    #[prost(message, optional, tag = "9")]
    pub presence_stats: Option<ChannelRequest>,
    #[prost(message, optional, tag = "10")]
    pub history: Option<HistoryRequest>,
    #[prost(message, optional, tag = "11")]
    pub ping: Option<Empty>,
    #[prost(message, optional, tag = "12")]
    pub send: Option<SendRequest>,
    #[prost(message, optional, tag = "13")]
    pub rpc: Option<RpcRequest>,
    #[prost(message, optional, tag = "14")]
    pub refresh: Option<RefreshRequest>,
    #[prost(message, optional, tag = "15")]
    pub sub_refresh: Option<SubRefreshRequest>,
}

impl Command {
    /// An empty command is the client's pong.
    pub fn is_empty(&self) -> bool {
        *self == Command::default()
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, Message)]
pub struct Reply {
    #[prost(uint32, tag = "1")]
    pub id: u32,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(message, optional, tag = "4")]
    pub push: Option<Push>,
    #[prost(message, optional, tag = "5")]
    pub connect: Option<ConnectResult>,
    #[prost(message, optional, tag = "6")]
    pub subscribe: Option<SubscribeResult>,
    #[prost(message, optional, tag = "7")]
    pub unsubscribe: Option<Empty>,
    #[prost(message, optional, tag = "8")]
    pub publish: Option<Empty>,
    #[prost(message, optional, tag = "9")]
    pub presence: Option<PresenceResult>,
    #[prost(message, optional, tag = "10")]
    pub presence_stats: Option<PresenceStatsResult>,
    #[prost(message, optional, tag = "11")]
    pub history: Option<HistoryResult>,
    #[prost(message, optional, tag = "12")]
    pub ping: Option<Empty>,
    #[prost(message, optional, tag = "13")]
    pub rpc: Option<RpcResult>,
    #[prost(message, optional, tag = "14")]
    pub refresh: Option<RefreshResult>,
    #[prost(message, optional, tag = "15")]
    pub sub_refresh: Option<SubRefreshResult>,
}

impl Reply {
    pub fn error(id: u32, error: Error) -> Reply {
        Reply { id, error: Some(error), ..Default::default() }
    }
    pub fn push(push: Push) -> Reply {
        Reply { push: Some(push), ..Default::default() }
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct Push {
    #[prost(string, tag = "2")]
    pub channel: String,
    #[prost(message, optional, tag = "4")]
    pub r#pub: Option<Publication>,
    #[prost(message, optional, tag = "5")]
    pub join: Option<Join>,
    #[prost(message, optional, tag = "6")]
    pub leave: Option<Join>,
    #[prost(message, optional, tag = "7")]
    pub unsubscribe: Option<Unsubscribe>,
    #[prost(message, optional, tag = "8")]
    pub message: Option<MessagePush>,
    #[prost(message, optional, tag = "9")]
    pub subscribe: Option<SubscribePush>,
    #[prost(message, optional, tag = "11")]
    pub disconnect: Option<DisconnectPush>,
}

#[derive(Clone, PartialEq, Message)]
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

#[derive(Clone, PartialEq, Message)]
pub struct Publication {
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub info: Option<ClientInfo>,
    #[prost(uint64, tag = "6")]
    pub offset: u64,
    #[prost(map = "string, string", tag = "7")]
    pub tags: HashMap<String, String>,
    #[prost(int64, tag = "9")]
    pub time: i64,
    #[prost(string, tag = "10")]
    pub channel: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Join {
    #[prost(message, optional, tag = "1")]
    pub info: Option<ClientInfo>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Unsubscribe {
    #[prost(uint32, tag = "2")]
    pub code: u32,
    #[prost(string, tag = "3")]
    pub reason: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct SubscribePush {
    #[prost(bool, tag = "1")]
    pub recoverable: bool,
    #[prost(string, tag = "4")]
    pub epoch: String,
    #[prost(uint64, tag = "5")]
    pub offset: u64,
    #[prost(bool, tag = "6")]
    pub positioned: bool,
    #[prost(bytes = "vec", tag = "7")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct MessagePush {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct DisconnectPush {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ConnectRequest {
    #[prost(string, tag = "1")]
    pub token: String,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(map = "string, message", tag = "3")]
    pub subs: HashMap<String, SubscribeRequest>,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub version: String,
    #[prost(map = "string, string", tag = "6")]
    pub headers: HashMap<String, String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ConnectResult {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(bool, tag = "3")]
    pub expires: bool,
    #[prost(uint32, tag = "4")]
    pub ttl: u32,
    #[prost(bytes = "vec", tag = "5")]
    pub data: Vec<u8>,
    #[prost(map = "string, message", tag = "6")]
    pub subs: HashMap<String, SubscribeResult>,
    #[prost(uint32, tag = "7")]
    pub ping: u32,
    #[prost(bool, tag = "8")]
    pub pong: bool,
    #[prost(string, tag = "9")]
    pub session: String,
    #[prost(string, tag = "10")]
    pub node: String,
    #[prost(int64, tag = "11")]
    pub time: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct SubscribeRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(string, tag = "2")]
    pub token: String,
    #[prost(bool, tag = "3")]
    pub recover: bool,
    #[prost(string, tag = "6")]
    pub epoch: String,
    #[prost(uint64, tag = "7")]
    pub offset: u64,
    #[prost(bytes = "vec", tag = "8")]
    pub data: Vec<u8>,
    #[prost(bool, tag = "9")]
    pub positioned: bool,
    #[prost(bool, tag = "10")]
    pub recoverable: bool,
    #[prost(bool, tag = "11")]
    pub join_leave: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct SubscribeResult {
    #[prost(bool, tag = "1")]
    pub expires: bool,
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
    #[prost(bool, tag = "3")]
    pub recoverable: bool,
    #[prost(string, tag = "6")]
    pub epoch: String,
    #[prost(message, repeated, tag = "7")]
    pub publications: Vec<Publication>,
    #[prost(bool, tag = "8")]
    pub recovered: bool,
    #[prost(uint64, tag = "9")]
    pub offset: u64,
    #[prost(bool, tag = "10")]
    pub positioned: bool,
    #[prost(bytes = "vec", tag = "11")]
    pub data: Vec<u8>,
    #[prost(bool, tag = "12")]
    pub was_recovering: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct UnsubscribeRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct PublishRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// Presence and presence-stats requests: just the channel.
#[derive(Clone, PartialEq, Message)]
pub struct ChannelRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct PresenceResult {
    #[prost(map = "string, message", tag = "1")]
    pub presence: HashMap<String, ClientInfo>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PresenceStatsResult {
    #[prost(uint32, tag = "1")]
    pub num_clients: u32,
    #[prost(uint32, tag = "2")]
    pub num_users: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct StreamPosition {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(string, tag = "2")]
    pub epoch: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct HistoryRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(int32, tag = "7")]
    pub limit: i32,
    #[prost(message, optional, tag = "8")]
    pub since: Option<StreamPosition>,
    #[prost(bool, tag = "9")]
    pub reverse: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct HistoryResult {
    #[prost(message, repeated, tag = "1")]
    pub publications: Vec<Publication>,
    #[prost(string, tag = "2")]
    pub epoch: String,
    #[prost(uint64, tag = "3")]
    pub offset: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct SendRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RpcRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    #[prost(string, tag = "2")]
    pub method: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RpcResult {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RefreshRequest {
    #[prost(string, tag = "1")]
    pub token: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RefreshResult {
    #[prost(string, tag = "1")]
    pub client: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(bool, tag = "3")]
    pub expires: bool,
    #[prost(uint32, tag = "4")]
    pub ttl: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct SubRefreshRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(string, tag = "2")]
    pub token: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct SubRefreshResult {
    #[prost(bool, tag = "1")]
    pub expires: bool,
    #[prost(uint32, tag = "2")]
    pub ttl: u32,
}

// ---- Framing. ----

/// Which framing a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Protobuf,
    /// Unidirectional JSON (SSE): pushes without the reply wrapper, `{"connect": ...}` first.
    UniJson,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Json | Protocol::UniJson => "json",
            Protocol::Protobuf => "protobuf",
        }
    }
}

/// Why a frame is not a batch of commands (the client is disconnected with 3501).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad frame: {0}")]
pub struct FrameError(pub String);

/// The commands of one frame.
pub fn decode_commands(protocol: Protocol, frame: &[u8]) -> Result<Vec<Command>, FrameError> {
    match protocol {
        Protocol::Protobuf => {
            let mut buf = frame;
            let mut out = Vec::new();
            while buf.has_remaining() {
                out.push(Command::decode_length_delimited(&mut buf).map_err(|e| FrameError(e.to_string()))?);
            }
            Ok(out)
        }
        Protocol::Json | Protocol::UniJson => {
            let text = std::str::from_utf8(frame).map_err(|e| FrameError(e.to_string()))?;
            text.split('\n').filter(|l| !l.trim().is_empty()).map(|line| serde_json::from_str::<Value>(line).map_err(|e| FrameError(e.to_string())).and_then(|v| command_from_json(&v))).collect()
        }
    }
}

/// One frame holding `replies`.
pub fn encode_replies(protocol: Protocol, replies: &[Reply]) -> Bytes {
    match protocol {
        Protocol::Protobuf => {
            let mut out = Vec::new();
            for r in replies {
                r.encode_length_delimited(&mut out).expect("a Vec grows");
            }
            out.into()
        }
        Protocol::Json => {
            let lines: Vec<String> = replies.iter().map(|r| reply_to_json(r).to_string()).collect();
            lines.join("\n").into()
        }
        Protocol::UniJson => {
            let lines: Vec<String> = replies.iter().map(|r| uni_json(r).to_string()).collect();
            lines.join("\n").into()
        }
    }
}

// ---- JSON mapping: field names as protojson's `OrigName`, zero values left out (as Centrifuge's
// own JSON encoder does), `bytes` payloads embedded as JSON. ----

fn command_from_json(v: &Value) -> Result<Command, FrameError> {
    let obj = v.as_object().ok_or_else(|| FrameError("a command must be a JSON object".into()))?;
    let bad = |field: &str| FrameError(format!("field `{field}` has the wrong type"));
    // A uint32, as protojson reads it: 2^32 + 1 must not wrap to a valid id 1.
    let id = get_u64(obj, "id").and_then(|id| u32::try_from(id).ok()).ok_or_else(|| bad("id"))?;
    let mut c = Command { id, ..Default::default() };
    if let Some(o) = sub(obj, "connect")? {
        let mut subs = HashMap::new();
        if let Some(m) = o.get("subs").and_then(Value::as_object) {
            for (ch, s) in m {
                subs.insert(ch.clone(), subscribe_from_json(s.as_object().ok_or_else(|| bad("subs"))?, ch));
            }
        }
        let headers = o.get("headers").and_then(Value::as_object).map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()).unwrap_or_default();
        c.connect = Some(ConnectRequest { token: get_str(o, "token"), data: raw(o, "data"), subs, name: get_str(o, "name"), version: get_str(o, "version"), headers });
    }
    if let Some(o) = sub(obj, "subscribe")? {
        c.subscribe = Some(subscribe_from_json(o, &get_str(o, "channel")));
    }
    if let Some(o) = sub(obj, "unsubscribe")? {
        c.unsubscribe = Some(UnsubscribeRequest { channel: get_str(o, "channel") });
    }
    if let Some(o) = sub(obj, "publish")? {
        c.publish = Some(PublishRequest { channel: get_str(o, "channel"), data: raw(o, "data") });
    }
    if let Some(o) = sub(obj, "presence")? {
        c.presence = Some(ChannelRequest { channel: get_str(o, "channel") });
    }
    if let Some(o) = sub(obj, "presence_stats")? {
        c.presence_stats = Some(ChannelRequest { channel: get_str(o, "channel") });
    }
    if let Some(o) = sub(obj, "history")? {
        let since = o.get("since").and_then(Value::as_object).map(|s| StreamPosition { offset: get_u64(s, "offset").unwrap_or(0), epoch: get_str(s, "epoch") });
        c.history = Some(HistoryRequest { channel: get_str(o, "channel"), limit: o.get("limit").and_then(Value::as_i64).unwrap_or(0) as i32, since, reverse: get_bool(o, "reverse") });
    }
    if sub(obj, "ping")?.is_some() {
        c.ping = Some(Empty {});
    }
    if let Some(o) = sub(obj, "send")? {
        c.send = Some(SendRequest { data: raw(o, "data") });
    }
    if let Some(o) = sub(obj, "rpc")? {
        c.rpc = Some(RpcRequest { data: raw(o, "data"), method: get_str(o, "method") });
    }
    if let Some(o) = sub(obj, "refresh")? {
        c.refresh = Some(RefreshRequest { token: get_str(o, "token") });
    }
    if let Some(o) = sub(obj, "sub_refresh")? {
        c.sub_refresh = Some(SubRefreshRequest { channel: get_str(o, "channel"), token: get_str(o, "token") });
    }
    Ok(c)
}

fn subscribe_from_json(o: &Map<String, Value>, channel: &str) -> SubscribeRequest {
    SubscribeRequest {
        channel: channel.to_string(),
        token: get_str(o, "token"),
        recover: get_bool(o, "recover"),
        epoch: get_str(o, "epoch"),
        offset: get_u64(o, "offset").unwrap_or(0),
        data: raw(o, "data"),
        positioned: get_bool(o, "positioned"),
        recoverable: get_bool(o, "recoverable"),
        join_leave: get_bool(o, "join_leave"),
    }
}

fn sub<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Map<String, Value>>, FrameError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(FrameError(format!("field `{key}` must be an object"))),
    }
}

fn get_str(o: &Map<String, Value>, key: &str) -> String {
    o.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn get_bool(o: &Map<String, Value>, key: &str) -> bool {
    o.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// A number, or (protojson's 64-bit form) a string of digits; absent is 0.
fn get_u64(o: &Map<String, Value>, key: &str) -> Option<u64> {
    match o.get(key) {
        None | Some(Value::Null) => Some(0),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    }
}

/// A payload field: the JSON value's text, as Centrifuge keeps it (`json.RawMessage`).
fn raw(o: &Map<String, Value>, key: &str) -> Vec<u8> {
    o.get(key).map(|v| v.to_string().into_bytes()).unwrap_or_default()
}

/// Embed payload bytes as JSON; bytes that are not JSON (a protobuf publisher's) go as a string.
fn embed(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Obj {
        Obj(Map::new())
    }
    fn str(mut self, k: &str, v: &str) -> Obj {
        if !v.is_empty() {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    fn num(mut self, k: &str, v: u64) -> Obj {
        if v != 0 {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    fn int(mut self, k: &str, v: i64) -> Obj {
        if v != 0 {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    fn bool(mut self, k: &str, v: bool) -> Obj {
        if v {
            self.0.insert(k.into(), true.into());
        }
        self
    }
    fn bytes(mut self, k: &str, v: &[u8]) -> Obj {
        if !v.is_empty() {
            self.0.insert(k.into(), embed(v));
        }
        self
    }
    fn val(mut self, k: &str, v: Option<Value>) -> Obj {
        if let Some(v) = v {
            self.0.insert(k.into(), v);
        }
        self
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn info_json(i: &ClientInfo) -> Value {
    Obj::new().str("user", &i.user).str("client", &i.client).bytes("conn_info", &i.conn_info).bytes("chan_info", &i.chan_info).done()
}

fn publication_json(p: &Publication) -> Value {
    let tags = (!p.tags.is_empty()).then(|| Value::Object(p.tags.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect()));
    Obj::new().bytes("data", &p.data).val("info", p.info.as_ref().map(info_json)).num("offset", p.offset).val("tags", tags).int("time", p.time).str("channel", &p.channel).done()
}

fn subscribe_result_json(s: &SubscribeResult) -> Value {
    let pubs = (!s.publications.is_empty()).then(|| Value::Array(s.publications.iter().map(publication_json).collect()));
    Obj::new()
        .bool("expires", s.expires)
        .num("ttl", s.ttl.into())
        .bool("recoverable", s.recoverable)
        .str("epoch", &s.epoch)
        .val("publications", pubs)
        .bool("recovered", s.recovered)
        .num("offset", s.offset)
        .bool("positioned", s.positioned)
        .bytes("data", &s.data)
        .bool("was_recovering", s.was_recovering)
        .done()
}

fn push_json(p: &Push) -> Value {
    Obj::new()
        .str("channel", &p.channel)
        .val("pub", p.r#pub.as_ref().map(publication_json))
        .val("join", p.join.as_ref().map(|j| Obj::new().val("info", j.info.as_ref().map(info_json)).done()))
        .val("leave", p.leave.as_ref().map(|j| Obj::new().val("info", j.info.as_ref().map(info_json)).done()))
        .val("unsubscribe", p.unsubscribe.as_ref().map(|u| Obj::new().num("code", u.code.into()).str("reason", &u.reason).done()))
        .val("message", p.message.as_ref().map(|m| Obj::new().bytes("data", &m.data).done()))
        .val(
            "subscribe",
            p.subscribe.as_ref().map(|s| Obj::new().bool("recoverable", s.recoverable).str("epoch", &s.epoch).num("offset", s.offset).bool("positioned", s.positioned).bytes("data", &s.data).done()),
        )
        .val("disconnect", p.disconnect.as_ref().map(|d| Obj::new().num("code", d.code.into()).str("reason", &d.reason).bool("reconnect", false).done()))
        .done()
}

/// What a unidirectional client reads: a push as it is, the connect result as
/// `{"connect": ...}`, the ping as `{}`.
fn uni_json(r: &Reply) -> Value {
    if let Some(p) = &r.push {
        return push_json(p);
    }
    let mut v = reply_to_json(r);
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
    }
    v
}

pub fn reply_to_json(r: &Reply) -> Value {
    let empty = |e: &Option<Empty>| e.as_ref().map(|_| Value::Object(Map::new()));
    let connect = r.connect.as_ref().map(|c| {
        let subs = (!c.subs.is_empty()).then(|| Value::Object(c.subs.iter().map(|(k, v)| (k.clone(), subscribe_result_json(v))).collect()));
        Obj::new()
            .str("client", &c.client)
            .str("version", &c.version)
            .bool("expires", c.expires)
            .num("ttl", c.ttl.into())
            .bytes("data", &c.data)
            .val("subs", subs)
            .num("ping", c.ping.into())
            .bool("pong", c.pong)
            .str("session", &c.session)
            .str("node", &c.node)
            .int("time", c.time)
            .done()
    });
    let presence = r.presence.as_ref().map(|p| Obj::new().val("presence", Some(Value::Object(p.presence.iter().map(|(k, v)| (k.clone(), info_json(v))).collect()))).done());
    let history = r.history.as_ref().map(|h| {
        Obj::new().val("publications", Some(Value::Array(h.publications.iter().map(publication_json).collect()))).str("epoch", &h.epoch).num("offset", h.offset).done()
    });
    Obj::new()
        .num("id", r.id.into())
        .val("error", r.error.as_ref().map(|e| Obj::new().num("code", e.code.into()).str("message", &e.message).bool("temporary", e.temporary).done()))
        .val("push", r.push.as_ref().map(push_json))
        .val("connect", connect)
        .val("subscribe", r.subscribe.as_ref().map(subscribe_result_json))
        .val("unsubscribe", empty(&r.unsubscribe))
        .val("publish", empty(&r.publish))
        .val("presence", presence)
        .val("presence_stats", r.presence_stats.as_ref().map(|s| Obj::new().num("num_clients", s.num_clients.into()).num("num_users", s.num_users.into()).done()))
        .val("history", history)
        .val("ping", empty(&r.ping))
        .val("rpc", r.rpc.as_ref().map(|x| Obj::new().bytes("data", &x.data).done()))
        .val("refresh", r.refresh.as_ref().map(|x| Obj::new().str("client", &x.client).str("version", &x.version).bool("expires", x.expires).num("ttl", x.ttl.into()).done()))
        .val("sub_refresh", r.sub_refresh.as_ref().map(|x| Obj::new().bool("expires", x.expires).num("ttl", x.ttl.into()).done()))
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_batch_of_commands_is_read_with_raw_payloads() {
        let frame = br#"{"id":1,"connect":{"data":{"token":"t"},"name":"js","subs":{"news":{"recover":true,"offset":"5","epoch":"e"}}}}
{"id":2,"subscribe":{"channel":"chat","data":[1,2]}}
{}"#;
        let cmds = decode_commands(Protocol::Json, frame).unwrap();
        assert_eq!(cmds.len(), 3);
        let connect = cmds[0].connect.as_ref().unwrap();
        assert_eq!((cmds[0].id, connect.data.as_slice(), connect.name.as_str()), (1, &br#"{"token":"t"}"#[..], "js"));
        assert_eq!(connect.subs["news"], SubscribeRequest { channel: "news".into(), recover: true, offset: 5, epoch: "e".into(), ..Default::default() });
        assert_eq!(cmds[1].subscribe.as_ref().unwrap().data, b"[1,2]");
        assert!(cmds[2].is_empty(), "an empty object is the pong");
        for bad in [&b"{"[..], b"[1]", b"{\"id\":\"x\"}", b"{\"id\":1,\"publish\":3}", b"\xff"] {
            assert!(decode_commands(Protocol::Json, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_replies_embed_payloads_and_leave_out_zero_values() {
        let connect = ConnectResult { client: "c1".into(), version: "1".into(), data: br#"{"a":1}"#.to_vec(), ping: 25, pong: true, ..Default::default() };
        let publication = Push { channel: "chat".into(), r#pub: Some(Publication { data: b"{\"x\":true}".to_vec(), offset: 3, ..Default::default() }), ..Default::default() };
        let frame = encode_replies(Protocol::Json, &[Reply { id: 1, connect: Some(connect), ..Default::default() }, Reply::push(publication), Reply::default(), Reply::error(2, Error::new(103))]);
        assert_eq!(
            std::str::from_utf8(&frame).unwrap(),
            r#"{"connect":{"client":"c1","data":{"a":1},"ping":25,"pong":true,"version":"1"},"id":1}
{"push":{"channel":"chat","pub":{"data":{"x":true},"offset":3}}}
{}
{"error":{"code":103,"message":"permission denied"},"id":2}"#
        );
    }

    #[test]
    fn protobuf_frames_are_varint_delimited_and_round_trip() {
        let cmds = vec![
            Command { id: 1, connect: Some(ConnectRequest { token: "t".into(), ..Default::default() }), ..Default::default() },
            Command { id: 2, publish: Some(PublishRequest { channel: "c".into(), data: vec![0, 1] }), ..Default::default() },
            Command::default(),
        ];
        let mut frame = Vec::new();
        for c in &cmds {
            c.encode_length_delimited(&mut frame).unwrap();
        }
        // Command{id:1, connect{token:"t"}} is 7 bytes: 08 01 22 03 0a 01 74.
        assert_eq!(&frame[..8], b"\x07\x08\x01\x22\x03\x0a\x01\x74");
        assert_eq!(*frame.last().unwrap(), 0, "the pong is an empty message");
        assert_eq!(decode_commands(Protocol::Protobuf, &frame).unwrap(), cmds);
        assert!(decode_commands(Protocol::Protobuf, b"\x05\x08").is_err(), "truncated");
        // The server's ping: an empty Reply, the single byte 0.
        assert_eq!(&encode_replies(Protocol::Protobuf, &[Reply::default()])[..], b"\x00");
        let replies = [Reply { id: 7, rpc: Some(RpcResult { data: b"\x01".to_vec() }), ..Default::default() }, Reply::error(8, Error::new(100))];
        let mut buf = encode_replies(Protocol::Protobuf, &replies);
        let a = Reply::decode_length_delimited(&mut buf).unwrap();
        let b = Reply::decode_length_delimited(&mut buf).unwrap();
        assert_eq!([a, b], replies);
        assert!(replies[1].error.as_ref().unwrap().temporary);
    }

    #[test]
    fn unidirectional_json_drops_the_reply_wrapper() {
        let connect = Reply { id: 1, connect: Some(ConnectResult { client: "c".into(), ping: 25, ..Default::default() }), ..Default::default() };
        let publication = Reply::push(Push { channel: "a".into(), r#pub: Some(Publication { data: b"1".to_vec(), ..Default::default() }), ..Default::default() });
        let frame = encode_replies(Protocol::UniJson, &[connect, publication, Reply::default()]);
        assert_eq!(std::str::from_utf8(&frame).unwrap(), "{\"connect\":{\"client\":\"c\",\"ping\":25}}\n{\"channel\":\"a\",\"pub\":{\"data\":1}}\n{}");
    }
}
