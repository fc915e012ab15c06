//! What a proxy event looks like to PHP, and how PHP's answer is read (CENTRIFUGE.md §2.1).
//! Pure code, no I/O: proxy mode builds its frames here, and so can anything else that turns a
//! client event into a proxy request (the embedded hub sends the same bytes, §7).
//!
//! Request: goridge flags `CODEC_PROTO`, context = JSON `map[string][]string` of the incoming
//! metadata plus `type` (keys sorted, Go's escaping), body = the proxy request message.
//! Reply: the worker's context is ignored; the body must parse as the method's response
//! message; an empty body is an empty (successful) response.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message;
use rr_runtime::frame::CODEC_PROTO;
use rr_runtime::pool::Payload;

use crate::proxy_proto as pb;

/// The unary methods of `centrifugal.centrifugo.proxy.CentrifugoProxy` that reach PHP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Connect,
    Refresh,
    Subscribe,
    Publish,
    Rpc,
    SubRefresh,
    NotifyChannelState,
}

impl Kind {
    pub const ALL: [Kind; 7] = [Kind::Connect, Kind::Refresh, Kind::Subscribe, Kind::Publish, Kind::Rpc, Kind::SubRefresh, Kind::NotifyChannelState];

    /// The gRPC method name.
    pub fn method(self) -> &'static str {
        match self {
            Kind::Connect => "Connect",
            Kind::Refresh => "Refresh",
            Kind::Subscribe => "Subscribe",
            Kind::Publish => "Publish",
            Kind::Rpc => "RPC",
            Kind::SubRefresh => "SubRefresh",
            Kind::NotifyChannelState => "NotifyChannelState",
        }
    }

    /// The `type` PHP reads from the context (`RequestType`).
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Refresh => "refresh",
            Kind::Subscribe => "subscribe",
            Kind::Publish => "publish",
            Kind::Rpc => "rpc",
            Kind::SubRefresh => "subrefresh",
            Kind::NotifyChannelState => "notifychannelstate",
        }
    }

    pub fn from_method(method: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.method() == method)
    }

    /// Does `body` parse as this method's response message?
    pub fn check_reply(self, body: &[u8]) -> Result<(), prost::DecodeError> {
        match self {
            Kind::Connect => pb::ConnectResponse::decode(body).map(drop),
            Kind::Refresh => pb::RefreshResponse::decode(body).map(drop),
            Kind::Subscribe => pb::SubscribeResponse::decode(body).map(drop),
            Kind::Publish => pb::PublishResponse::decode(body).map(drop),
            Kind::Rpc => pb::RpcResponse::decode(body).map(drop),
            Kind::SubRefresh => pb::SubRefreshResponse::decode(body).map(drop),
            Kind::NotifyChannelState => pb::NotifyChannelStateResponse::decode(body).map(drop),
        }
    }
}

/// Request metadata as grpc-go hands it to a handler: lower-case keys, values in arrival order,
/// `-bin` values decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(BTreeMap<String, Vec<String>>);

impl Metadata {
    pub fn new() -> Self {
        Metadata::default()
    }

    /// Append one value (`metadata.MD.Append`).
    pub fn append(&mut self, key: &str, value: impl Into<String>) {
        let key = key.to_ascii_lowercase();
        match self.0.get_mut(&key) {
            Some(values) => values.push(value.into()),
            None => {
                self.0.insert(key, vec![value.into()]);
            }
        }
    }

    /// The metadata of an incoming gRPC request: `:authority` and the headers grpc-go passes on
    /// (it keeps `te`, `grpc-timeout`, `grpc-encoding`, `grpc-message` and `grpc-status*` to itself).
    pub fn from_request(authority: Option<&str>, headers: &http::HeaderMap) -> Self {
        use base64::Engine;
        let mut md = Metadata::new();
        if let Some(authority) = authority {
            md.append(":authority", authority);
        }
        for (name, value) in headers {
            let key = name.as_str();
            if matches!(key, "te" | "connection" | "grpc-timeout" | "grpc-encoding" | "grpc-message" | "grpc-message-type") || key.starts_with("grpc-status") {
                continue;
            }
            let text = if key.ends_with("-bin") {
                // Sent unpadded or padded; a value that is not base64 is kept as it came.
                let raw = value.as_bytes().trim_ascii();
                let raw = raw.strip_suffix(b"==").or(raw.strip_suffix(b"=")).unwrap_or(raw);
                match base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw) {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(_) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
                }
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            md.append(key, text);
        }
        md
    }

    /// The context JSON PHP decodes: this metadata with `type` appended, keys sorted bytewise,
    /// HTML characters and U+2028/U+2029 escaped as Go's `json.Marshal` does.
    pub fn context(&self, kind: Kind) -> String {
        let mut md = self.clone();
        md.append("type", kind.type_name());
        let json = serde_json::to_string(&md.0).expect("a map of strings serializes");
        go_escape(json)
    }
}

/// The goridge payload of one proxy event.
pub fn payload(kind: Kind, metadata: &Metadata, request: Bytes) -> Payload {
    Payload::new(CODEC_PROTO, metadata.context(kind), request)
}

/// Why a worker's answer is not a reply (texts as RoadRunner's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("streaming response not supported")]
    Stream,
    #[error("proto: cannot parse invalid wire-format data ({0})")]
    Invalid(String),
}

/// Check a worker's answer and return the response message bytes to send as they are.
pub fn reply(kind: Kind, answer: &Payload, streamed: bool) -> Result<Bytes, ReplyError> {
    if streamed {
        return Err(ReplyError::Stream);
    }
    kind.check_reply(&answer.body).map_err(|e| ReplyError::Invalid(e.to_string()))?;
    Ok(answer.body.clone())
}

fn go_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_sorted_with_type_appended_and_go_escaped() {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", "application/grpc".parse().unwrap());
        h.insert("user-agent", "grpc-go/1.70.0".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("grpc-timeout", "1S".parse().unwrap());
        h.append("x-a", "a<b".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        h.insert("x-raw-bin", "aGk".parse().unwrap());
        h.insert("type", "mine".parse().unwrap());
        let md = Metadata::from_request(Some("127.0.0.1:30000"), &h);
        let p = payload(Kind::Connect, &md, Bytes::from_static(b"\x0a\x01x"));
        assert_eq!(p.codec, CODEC_PROTO);
        assert_eq!(
            std::str::from_utf8(&p.context).unwrap(),
            r#"{":authority":["127.0.0.1:30000"],"content-type":["application/grpc"],"type":["mine","connect"],"user-agent":["grpc-go/1.70.0"],"x-a":["a\u003cb","2"],"x-raw-bin":["hi"]}"#
        );
        assert_eq!(&p.body[..], b"\x0a\x01x");
    }

    #[test]
    fn spec_example_reply_is_accepted_and_garbage_is_not() {
        // ConnectResponse{result{user:"42", data:`{"a":1}`}} as roadrunner-php/centrifugo writes it.
        let body = Bytes::from_static(b"\x0a\x0d\x0a\x0242\x2a\x07{\"a\":1}");
        let ok = reply(Kind::Connect, &Payload::new(0, "", body.clone()), false).unwrap();
        assert_eq!(ok, body);
        let decoded = pb::ConnectResponse::decode(ok).unwrap().result.unwrap();
        assert_eq!((decoded.user.as_str(), &decoded.data[..]), ("42", &b"{\"a\":1}"[..]));
        assert!(reply(Kind::Rpc, &Payload::new(0, "", Bytes::new()), false).unwrap().is_empty());
        assert!(matches!(reply(Kind::Rpc, &Payload::new(0, "", Bytes::from_static(b"\xff\xff")), false), Err(ReplyError::Invalid(_))));
        assert_eq!(reply(Kind::Rpc, &Payload::new(0, "", Bytes::new()), true), Err(ReplyError::Stream));
    }

    #[test]
    fn every_kind_round_trips_its_method_name() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_method(kind.method()), Some(kind));
        }
        assert_eq!(Kind::from_method("SubscribeUnidirectional"), None);
    }
}
