//! From a worker reply to a hyper response (PROTOCOL.md §3.6-3.8): status and headers from the
//! protobuf or JSON context, `Trailer` names moved to trailers, streamed frames forwarded as they
//! arrive. 1xx contexts (103 Early Hints) are sent to HTTP/1.1 clients with only their own
//! headers and never leak into the final response (the RoadRunner v6 rule); 101 is ignored, and
//! where no 1xx can be sent (HTTP/2, HTTP/1.0) they are dropped.

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use prost::Message;
use rr_runtime::frame;
use rr_runtime::http::{Body, Response};
use rr_runtime::pool::{Payload, PoolError, Reply, ReplyStream};

use crate::early_hints::EarlyHints;
use crate::proto;

/// Status and headers a worker sent in a frame's context.
#[derive(Debug, Default, PartialEq)]
pub struct Head {
    pub status: u16,
    pub headers: HeaderMap,
}

/// Decode a response context by the frame's codec flag; `Ok(None)` for an empty context.
/// Header names or values that HTTP does not allow are dropped (no header injection).
pub fn decode_head(payload: &Payload) -> Result<Option<Head>, String> {
    if payload.context.is_empty() {
        return Ok(None);
    }
    let (status, headers) = if payload.codec & frame::CODEC_PROTO != 0 || (payload.codec == 0 && payload.context[0] != b'{') {
        let r = proto::Response::decode(payload.context.clone()).map_err(|e| format!("invalid http.v1.Response from worker: {e}"))?;
        let mut headers = HeaderMap::with_capacity(r.headers.len());
        for entry in r.headers {
            let Ok(name) = HeaderName::from_bytes(&entry.key) else { continue };
            for v in entry.value.into_iter().flat_map(|values| values.value) {
                if let Ok(v) = HeaderValue::from_maybe_shared(v) {
                    headers.append(name.clone(), v);
                }
            }
        }
        (r.status, headers)
    } else {
        #[derive(serde::Deserialize)]
        struct JsonHead {
            status: i64,
            #[serde(default, deserialize_with = "json_headers::deserialize")]
            headers: HeaderMap,
        }
        let h: JsonHead = serde_json::from_slice(&payload.context).map_err(|e| format!("invalid JSON response context from worker: {e}"))?;
        (h.status, h.headers)
    };
    if !(100..=599).contains(&status) {
        return Err(format!("unknown status code from worker: {status}"));
    }
    Ok(Some(Head { status: status as u16, headers }))
}

/// `{"Name": ["value", ...], ...}` straight into a [`HeaderMap`], names and values borrowed from
/// the frame while they are checked (no intermediate strings). PHP's `json_encode([])` gives
/// `[]` for no headers, so an empty list is accepted too.
mod json_headers {
    use std::fmt;

    use http::{HeaderMap, HeaderName, HeaderValue};
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderMap, D::Error> {
        d.deserialize_any(Headers)
    }

    struct Headers;

    impl<'de> Visitor<'de> for Headers {
        type Value = HeaderMap;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of header names to lists of values")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderMap, A::Error> {
            let mut headers = HeaderMap::with_capacity(map.size_hint().unwrap_or(4));
            while let Some(Checked::<HeaderName>(name)) = map.next_key()? {
                let Values(values) = map.next_value()?;
                if let Some(name) = name {
                    for v in values {
                        headers.append(name.clone(), v);
                    }
                }
            }
            Ok(headers)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderMap, A::Error> {
            match seq.next_element::<de::IgnoredAny>()? {
                None => Ok(HeaderMap::new()),
                Some(_) => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
            }
        }
    }

    /// A header's values (a list, or one string), the ones HTTP does not allow dropped.
    struct Values(Vec<HeaderValue>);

    impl<'de> de::Deserialize<'de> for Values {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Values;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a list of header values")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Values, E> {
                    Ok(Values(HeaderValue::checked(s).into_iter().collect()))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
                    let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                    while let Some(Checked::<HeaderValue>(v)) = seq.next_element()? {
                        values.extend(v);
                    }
                    Ok(Values(values))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A header name or value read from a JSON string; `None` when HTTP does not allow it.
    struct Checked<T>(Option<T>);

    trait Check: Sized {
        const WHAT: &'static str;
        fn checked(s: &str) -> Option<Self>;
    }

    impl Check for HeaderName {
        const WHAT: &'static str = "a header name";
        fn checked(s: &str) -> Option<Self> {
            HeaderName::from_bytes(s.as_bytes()).ok()
        }
    }

    impl Check for HeaderValue {
        const WHAT: &'static str = "a header value";
        fn checked(s: &str) -> Option<Self> {
            HeaderValue::from_bytes(s.as_bytes()).ok()
        }
    }

    impl<'de, T: Check> de::Deserialize<'de> for Checked<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(std::marker::PhantomData<T>);
            impl<T: Check> Visitor<'_> for V<T> {
                type Value = Checked<T>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str(T::WHAT)
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Checked<T>, E> {
                    Ok(Checked(T::checked(s)))
                }
            }
            d.deserialize_str(V(std::marker::PhantomData))
        }
    }
}

/// PHP's stream terminator: no codec, empty context and body.
fn is_terminator(p: &Payload) -> bool {
    p.codec == 0 && p.context.is_empty() && p.body.is_empty()
}

pub fn error_response(code: u16, text: Option<String>) -> Response {
    let mut resp = http::Response::new(full(text.map(Bytes::from).unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// Build the response; `guard` (upload temp files) lives until the last frame was read.
pub async fn build<G: Send + 'static>(reply: Reply, guard: G, hints: Option<EarlyHints>, head_request: bool) -> Result<Response, String> {
    let Reply { mut payload, mut stream } = reply;
    // Informational heads of a stream go out on their own until the final status arrives.
    let head = loop {
        match decode_head(&payload)? {
            Some(h) if h.status < 200 => {
                if !payload.body.is_empty() {
                    tracing::warn!(status = h.status, "body of an informational response from the worker dropped");
                }
                match (&hints, h.status) {
                    (_, 101) => tracing::warn!("101 Switching Protocols from a worker is not supported; ignored"),
                    (Some(hints), status) => {
                        let status = StatusCode::from_u16(status).map_err(|e| e.to_string())?;
                        hints.send(status, &h.headers).await.map_err(str::to_string)?;
                    }
                    (None, status) => tracing::debug!(status, "informational response dropped: the client's protocol cannot receive it"),
                }
                let Some(s) = stream.as_mut() else { return Err(format!("worker ended the response with status {}", h.status)) };
                payload = match s.next().await {
                    Some(Ok(p)) => p,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("worker ended the stream after an informational status".into()),
                };
            }
            other => break other.unwrap_or(Head { status: 200, headers: HeaderMap::new() }),
        }
    };
    let (mut headers, trailers) = split_trailers(head.headers);
    let first = if is_terminator(&payload) { Bytes::new() } else { payload.body };
    // HEAD and bodiless statuses send no body: their Content-Length is only information.
    let bodiless = head_request || head.status < 200 || head.status == 204 || head.status == 304;
    let declared = declared_length(&mut headers).filter(|_| !bodiless);
    let body = match stream {
        None if trailers.is_empty() => match declared {
            Some(n) if n < first.len() as u64 => full(first.slice(..n as usize)),
            Some(n) if n > first.len() as u64 => exactly(full(first), n),
            _ => full(first),
        },
        stream => {
            let body = streamed(first, stream, trailers, guard);
            match declared {
                Some(n) => exactly(body, n),
                None => body,
            }
        }
    };
    let mut resp = http::Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(head.status).map_err(|e| e.to_string())?;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The `Content-Length` a worker declared, the one the client will be sent. A body longer than it
/// is cut there; a shorter one makes hyper close the connection when it ends (as Go's net/http
/// does): either way the client reads exactly one response, and the next one on a kept-alive
/// connection is never mixed with this one's bytes. Values that are not one number are dropped.
fn declared_length(headers: &mut HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter().map(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let first = values.next()?;
    if first.is_some() && values.all(|v| v == first) {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(first?));
        return first;
    }
    tracing::warn!(target: "http", values = ?headers.get_all(http::header::CONTENT_LENGTH), "invalid Content-Length from the worker dropped");
    headers.remove(http::header::CONTENT_LENGTH);
    None
}

/// `body` cut to `declared` bytes; one that ends short ends in an error, on which hyper closes
/// the connection (the client sees a truncated response, never the next one as its rest).
fn exactly(body: Body, declared: u64) -> Body {
    let frames = futures::stream::unfold(Some((http_body_util::BodyStream::new(body), declared)), |state| async move {
        let (mut frames, mut left) = state?;
        match frames.next().await {
            Some(Ok(frame)) => {
                let frame = match frame.into_data() {
                    Ok(mut data) => {
                        let keep = (data.len() as u64).min(left);
                        data.truncate(keep as usize);
                        left -= keep;
                        http_body::Frame::data(data)
                    }
                    Err(other) => other,
                };
                Some((Ok(frame), Some((frames, left))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None if left > 0 => {
                // Pending once first, so hyper flushes what it has before it aborts the connection.
                tokio::task::yield_now().await;
                Some((Err(format!("the worker's body is {left} bytes short of its Content-Length").into()), None))
            }
            None => None,
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// Body of a streamed (or trailer-carrying) response: chunks as the worker sends them, then
/// trailers. A worker error after the first chunk cuts the stream.
fn streamed<G: Send + 'static>(first: Bytes, stream: Option<ReplyStream>, trailers: HeaderMap, guard: G) -> Body {
    type Item = Result<http_body::Frame<Bytes>, rr_runtime::BoxError>;
    let head = futures::stream::iter((!first.is_empty()).then(|| Ok::<_, rr_runtime::BoxError>(http_body::Frame::data(first))));
    let rest = futures::stream::unfold(Some((stream, guard)), |state| async move {
        let (mut stream, guard) = state?;
        let s = stream.as_mut()?;
        loop {
            match s.next().await {
                Some(Ok(p)) if p.body.is_empty() => continue,
                Some(Ok(p)) => return Some((Ok(http_body::Frame::data(p.body)), Some((stream, guard)))),
                Some(Err(PoolError::SoftError(m))) | Some(Err(PoolError::Other(m))) => {
                    return Some((Err(m.into()), None));
                }
                Some(Err(e)) => return Some((Err(e.to_string().into()), None)),
                None => {
                    drop(guard);
                    return None;
                }
            }
        }
    });
    let tail = futures::stream::iter((!trailers.is_empty()).then(|| Ok(http_body::Frame::trailers(trailers))));
    let all = head.chain(rest).chain(tail).map(|item: Item| item);
    StreamBody::new(all).boxed_unsync()
}

/// Headers for the response and those the `Trailer` header moves to trailers (§3.6 step 3).
fn split_trailers(mut map: HeaderMap) -> (HeaderMap, HeaderMap) {
    let mut trailers = HeaderMap::new();
    let listed: Vec<String> = map
        .get_all(http::header::TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split([',', ' ']).filter(|n| !n.is_empty()).map(str::to_string).collect::<Vec<_>>())
        .collect();
    if !listed.is_empty() {
        map.remove(http::header::TRAILER);
        for name in listed {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { continue };
            let values: Vec<_> = map.get_all(&name).iter().cloned().collect();
            if values.is_empty() {
                continue;
            }
            map.remove(&name);
            for v in values {
                trailers.append(name.clone(), v);
            }
        }
    }
    (map, trailers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_proto_heads() {
        let json = Payload::new(frame::CODEC_JSON, &br#"{"status":201,"headers":{"X-A":["1","2"],"bad name":["x"],"X-B":"one","X-U":["caf\u00e9"]}}"#[..], &b""[..]);
        let head = decode_head(&json).unwrap().unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(head.headers.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(head.headers["x-b"], "one");
        assert_eq!(head.headers["x-u"].as_bytes(), "café".as_bytes(), "UTF-8 values pass as obs-text");
        assert_eq!(head.headers.len(), 4, "the invalid name is dropped");
        // PHP's json_encode([]) for no headers.
        let empty = Payload::new(frame::CODEC_JSON, &br#"{"status":204,"headers":[]}"#[..], &b""[..]);
        assert!(decode_head(&empty).unwrap().unwrap().headers.is_empty());
        let values = proto::SlicedValue { value: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")] };
        let headers = vec![proto::SlicedEntry { key: Bytes::from_static(b"X-P"), value: Some(values) }];
        let msg = proto::Response { status: 404, headers }.encode_to_vec();
        let head = decode_head(&Payload::new(frame::CODEC_PROTO, msg, &b""[..])).unwrap().unwrap();
        assert_eq!((head.status, head.headers.get_all("x-p").iter().count()), (404, 2));
        let bad = Payload::new(frame::CODEC_JSON, &br#"{"status":999}"#[..], &b""[..]);
        assert_eq!(decode_head(&bad).unwrap_err(), "unknown status code from worker: 999");
        let broken = Payload::new(frame::CODEC_JSON, &br#"{"status":200,"headers":{"X":[1]}}"#[..], &b""[..]);
        assert!(decode_head(&broken).unwrap_err().starts_with("invalid JSON response context from worker"));
        assert_eq!(decode_head(&Payload::new(0, &b""[..], &b"x"[..])).unwrap(), None);
    }

    #[test]
    fn trailer_header_moves_listed_headers() {
        let mut map = HeaderMap::new();
        map.insert("trailer", HeaderValue::from_static("X-Checksum, X-Missing"));
        map.insert("x-checksum", HeaderValue::from_static("abc"));
        map.insert("content-type", HeaderValue::from_static("text/plain"));
        let (h, t) = split_trailers(map);
        assert!(h.get("trailer").is_none() && h.get("x-checksum").is_none());
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(t["x-checksum"], "abc");
        assert_eq!(t.len(), 1);
    }
}
