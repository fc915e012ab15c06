//! One call between gRPC and PHP: the worker payload (GRPC.md §2) and the reading of the
//! worker's reply (§3).

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bytes::Bytes;
use http::HeaderMap;
use rr_runtime::frame::CODEC_JSON;
use rr_runtime::pool::{Payload, PoolError};

use crate::status::{self, Status};
use crate::wire;

/// Incoming metadata that grpc-go keeps out of the context.
fn forwarded(key: &str) -> bool {
    !matches!(key, "te" | "grpc-timeout" | "grpc-encoding" | "grpc-message") && !key.starts_with("grpc-status")
}

/// The worker payload: JSON context (sorted metadata keys, Go's escaping) ‖ raw request bytes.
pub fn payload(service: &str, method: &str, authority: Option<&str>, headers: &HeaderMap, peer: &str, tls: bool, body: Bytes) -> Payload {
    traced_payload(service, method, authority, headers, peer, tls, body, &BTreeMap::new())
}

/// [`payload`] whose context also carries the call's trace headers (`Traceparent`, ...), as
/// RoadRunner's does.
#[allow(clippy::too_many_arguments)]
pub fn traced_payload<'a>(service: &str, method: &str, authority: Option<&'a str>, headers: &'a HeaderMap, peer: &'a str, tls: bool, body: Bytes, trace: &'a BTreeMap<String, Vec<String>>) -> Payload {
    let mut context: Vec<(&str, Vec<Cow<str>>)> = Vec::with_capacity(headers.keys_len() + trace.len() + 3);
    context.extend(trace.iter().map(|(k, v)| (k.as_str(), v.iter().map(|v| Cow::Borrowed(v.as_str())).collect())));
    context.extend(authority.map(|a| (":authority", vec![Cow::Borrowed(a)])));
    context.push((":peer.address", vec![Cow::Borrowed(peer)]));
    if tls {
        context.push((":peer.auth-type", vec![Cow::Borrowed("tls")]));
    }
    // A HeaderMap yields the values of one name one after another.
    for (name, value) in headers.iter().filter(|(name, _)| forwarded(name.as_str())) {
        let key = name.as_str();
        let value = if key.ends_with("-bin") {
            let text = value.as_bytes().trim_ascii();
            let raw = STANDARD_NO_PAD.decode(text.strip_suffix(b"==").or(text.strip_suffix(b"=")).unwrap_or(text));
            Cow::Owned(String::from_utf8_lossy(&raw.unwrap_or_else(|_| value.as_bytes().to_vec())).into_owned())
        } else {
            String::from_utf8_lossy(value.as_bytes())
        };
        match context.last_mut() {
            Some((last, values)) if *last == key => values.push(value),
            _ => context.push((key, vec![value])),
        }
    }
    // Sorted by key, as Go marshals a map.
    context.sort_unstable_by_key(|(k, _)| *k);
    Payload::new(CODEC_JSON, context_json(service, method, &context), body)
}

/// The request context PHP's `CallContext` reads, fields in RoadRunner's order:
/// `{"service":..,"method":..,"context":{key:[values..]..}}`. Written by hand: serde_json's
/// string escaping and then Go's extra pass over the document cost more than the rest of the
/// payload (callgrind: 4.4k instructions per call).
fn context_json(service: &str, method: &str, context: &[(&str, Vec<Cow<str>>)]) -> String {
    let size: usize = context.iter().map(|(k, v)| k.len() + 6 + v.iter().map(|v| v.len() + 3).sum::<usize>()).sum();
    let mut out = String::with_capacity(48 + service.len() + method.len() + size);
    out.push_str(r#"{"service":"#);
    json_str(&mut out, service);
    out.push_str(r#","method":"#);
    json_str(&mut out, method);
    out.push_str(r#","context":{"#);
    for (i, (key, values)) in context.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, key);
        out.push_str(":[");
        for (j, value) in values.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json_str(&mut out, value);
        }
        out.push(']');
    }
    out.push_str("}}");
    out
}

/// A JSON string as Go's `json.Marshal` writes it: serde_json's escapes, and also `<`, `>`, `&`
/// and the JS line separators U+2028 / U+2029 (they can only occur inside strings).
fn json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // The bytes that may need an escape; the rest are copied in runs.
    const SPECIAL: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            t[b] = true;
            b += 1;
        }
        t[b'"' as usize] = true;
        t[b'\\' as usize] = true;
        t[b'<' as usize] = true;
        t[b'>' as usize] = true;
        t[b'&' as usize] = true;
        t[0xE2] = true;
        t
    };
    out.push('"');
    let bytes = s.as_bytes();
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if !SPECIAL[usize::from(b)] {
            i += 1;
            continue;
        }
        let (escaped, len) = match b {
            b'"' => (r#"\""#, 1),
            b'\\' => (r"\\", 1),
            b'\n' => (r"\n", 1),
            b'\r' => (r"\r", 1),
            b'\t' => (r"\t", 1),
            0x08 => (r"\b", 1),
            0x0c => (r"\f", 1),
            b'<' => (r"\u003c", 1),
            b'>' => (r"\u003e", 1),
            b'&' => (r"\u0026", 1),
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => (r"\u2028", 3),
            0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => (r"\u2029", 3),
            0..0x20 => {
                out.push_str(&s[start..i]);
                out.push_str(r"\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
                i += 1;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        out.push_str(escaped);
        i += len;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Metadata PHP asked for: response headers, trailers, and the outcome.
#[derive(Debug, Default)]
pub struct Reply {
    pub headers: Vec<(String, String)>,
    pub trailers: Vec<(String, String)>,
    /// The status that ends the call (none for an `error` with code 0: a success).
    pub error: Option<Status>,
}

/// Read the context of a worker frame (§3 `responseMetadata`).
pub fn reply_metadata(context: &[u8]) -> Reply {
    let mut reply = Reply::default();
    if context.is_empty() {
        return reply;
    }
    let map: BTreeMap<String, String> = match serde_json::from_slice(context) {
        Ok(map) => map,
        Err(e) => {
            reply.error = Some(Status::new(status::UNKNOWN, format!("the worker's reply metadata is not a JSON object of strings: {e}")));
            return reply;
        }
    };
    let lower = |k: &str| k.to_ascii_lowercase();
    if !map.contains_key("headers") && !map.contains_key("trailers") {
        // The flat form of roadrunner-grpc < 3.4: every key is a header (`error` too, as RoadRunner).
        reply.headers = map.iter().map(|(k, v)| (lower(k), v.clone())).collect();
    } else {
        for (key, list) in [("headers", &mut reply.headers), ("trailers", &mut reply.trailers)] {
            if let Some(text) = map.get(key) {
                match serde_json::from_str::<BTreeMap<String, serde_json::Value>>(text) {
                    Ok(values) => {
                        for (k, v) in values {
                            match v {
                                serde_json::Value::String(s) => list.push((lower(&k), s)),
                                other => tracing::warn!(target: "grpc", key = %k, value = %other, "the worker's {key} value is not a string; skipped"),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(target: "grpc", error = %e, "the worker's `{key}` is not a JSON object; ignored"),
                }
            }
        }
    }
    if let Some(error) = map.get("error") {
        reply.error = Status::from_base64(error).unwrap_or_else(Some);
    }
    reply
}

/// A pool failure as the client sees it: worker error frames are parsed, the rest is INTERNAL
/// with RoadRunner's text.
pub fn pool_error(e: &PoolError) -> Status {
    match e {
        PoolError::SoftError(text) => Status::from_worker_error(text),
        other => Status::new(status::INTERNAL, other.to_string()),
    }
}

/// The reserved keys grpc-go drops from user metadata.
fn reserved(key: &str) -> bool {
    key.starts_with(':') || key.starts_with("grpc-") || matches!(key, "content-type" | "user-agent" | "te")
}

/// Append user metadata to a header map; `*-bin` values are base64 on the wire.
pub fn put_metadata(map: &mut HeaderMap, md: &[(String, String)]) {
    for (k, v) in md.iter().filter(|(k, _)| !reserved(k)) {
        let value = if k.ends_with("-bin") { STANDARD_NO_PAD.encode(v) } else { v.clone() };
        match (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(&value)) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            _ => tracing::warn!(target: "grpc", key = %k, "the worker's metadata `{k}` is not a valid HTTP/2 header; skipped"),
        }
    }
}

/// The trailers (or trailers-only headers) that end a call.
pub fn put_status(map: &mut HeaderMap, st: Option<&Status>) {
    use http::HeaderValue;
    let Some(st) = st else {
        // The common case, without allocations: grpc-go sends an empty message too.
        map.insert(wire::GRPC_STATUS, HeaderValue::from_static("0"));
        map.insert(wire::GRPC_MESSAGE, HeaderValue::from_static(""));
        return;
    };
    map.insert(wire::GRPC_STATUS, st.code.into());
    if let Ok(v) = HeaderValue::from_str(&status::encode_message(&st.message)) {
        map.insert(wire::GRPC_MESSAGE, v);
    }
    if let Some(bin) = st.details_bin().and_then(|b| HeaderValue::from_str(&b).ok()) {
        map.insert(wire::GRPC_STATUS_DETAILS_BIN, bin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_sorted_go_escaped_and_bin_decoded() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc".parse().unwrap());
        h.insert("content-type", "application/grpc".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("grpc-timeout", "1S".parse().unwrap());
        h.append("x-multi", "a<b".parse().unwrap());
        h.append("x-multi", "2".parse().unwrap());
        h.insert("x-raw-bin", "aGk".parse().unwrap());
        let p = payload("service.Echo", "Ping", Some("127.0.0.1:9001"), &h, "127.0.0.1:51234", false, Bytes::from_static(b"\x0a\x01x"));
        assert_eq!(p.codec, CODEC_JSON);
        assert_eq!(
            std::str::from_utf8(&p.context).unwrap(),
            r#"{"service":"service.Echo","method":"Ping","context":{":authority":["127.0.0.1:9001"],":peer.address":["127.0.0.1:51234"],"content-type":["application/grpc"],"x-multi":["a\u003cb","2"],"x-raw-bin":["hi"],"x-request-id":["abc"]}}"#
        );
        assert_eq!(&p.body[..], b"\x0a\x01x");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_and_go_do() {
        let text = "q\"b\\s\nr\rt\tb\u{8}f\u{c}c\u{1}\u{1f}<>&\u{2028}\u{2029}é\u{7f}€\u{2027}";
        let mut ours = String::new();
        json_str(&mut ours, text);
        let go = serde_json::to_string(text).unwrap().replace('<', r"\u003c").replace('>', r"\u003e").replace('&', r"\u0026").replace('\u{2028}', r"\u2028").replace('\u{2029}', r"\u2029");
        assert_eq!(ours, go);
        assert_eq!(ours, "\"q\\\"b\\\\s\\nr\\rt\\tb\\bf\\fc\\u0001\\u001f\\u003c\\u003e\\u0026\\u2028\\u2029é\u{7f}€\u{2027}\"");
    }

    #[test]
    fn both_header_formats() {
        let new = reply_metadata(br#"{"headers":"{\"X-Id\":\"42\",\"n\":1}","trailers":"{\"x-t\":\"1\"}"}"#);
        assert_eq!(new.headers, vec![("x-id".to_string(), "42".to_string())]);
        assert_eq!(new.trailers, vec![("x-t".to_string(), "1".to_string())]);
        assert!(new.error.is_none());
        let legacy = reply_metadata(br#"{"x-id":"42"}"#);
        assert_eq!(legacy.headers, vec![("x-id".to_string(), "42".to_string())]);
        assert_eq!(reply_metadata(br#"{"x":1}"#).error.unwrap().code, status::UNKNOWN);
        assert_eq!(reply_metadata(br#"{"error":"CA0SDUZPT09PT09PT09PT08="}"#).error.unwrap().code, 13);
        assert!(reply_metadata(b"").headers.is_empty());
    }
}
