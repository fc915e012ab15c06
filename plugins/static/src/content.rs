//! A file's response as Go's `http.ServeContent` (which RoadRunner serves static files with)
//! makes it: `Last-Modified`, conditional requests (`If-Match`, `If-Unmodified-Since` → 412;
//! `If-None-Match`, `If-Modified-Since` → 304; `If-Range`) and byte ranges (one → 206 with
//! `Content-Range`, several → 206 `multipart/byteranges`, none satisfiable → 416). Range syntax
//! is parsed by `http-range-header`.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_range_header::RangeUnsatisfiableError;

/// What to send for a file: status, the headers this module sets, and the body as pieces, so
/// only the requested bytes of a large file are ever read.
pub struct Content {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<Piece>,
}

#[derive(Debug, PartialEq)]
pub enum Piece {
    Text(Bytes),
    /// Bytes of the file.
    File(RangeInclusive<u64>),
}

/// Answer `method` with `request` headers for a file of `size` bytes, last modified at
/// `modified`, with `etag` if the plugin computes one; `content_type` goes on whole and
/// single-range bodies.
pub fn serve(method: &Method, request: &HeaderMap, size: u64, modified: Option<SystemTime>, etag: Option<&str>, content_type: HeaderValue) -> Content {
    // HTTP dates have whole seconds.
    let modified = modified.filter(|t| *t > SystemTime::UNIX_EPOCH).map(whole_seconds);
    let mut headers = HeaderMap::new();
    if let Some(t) = modified {
        headers.insert(header::LAST_MODIFIED, date(t));
    }
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(header::ETAG, tag);
    }
    let get_or_head = method == Method::GET || method == Method::HEAD;
    match precondition(request, modified, etag, get_or_head) {
        Some(StatusCode::NOT_MODIFIED) => {
            // As Go: an ETag makes Last-Modified redundant on a 304.
            if etag.is_some() {
                headers.remove(header::LAST_MODIFIED);
            }
            return Content { status: StatusCode::NOT_MODIFIED, headers, body: Vec::new() };
        }
        Some(status) => return Content { status, headers, body: Vec::new() },
        None => {}
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let ranges = match request.get(header::RANGE).filter(|_| range_applies(request, modified, etag)) {
        None => None,
        Some(value) => match requested(value, size) {
            Ok(ranges) => ranges,
            Err(()) => return unsatisfiable(headers, size),
        },
    };
    match ranges.as_deref() {
        None => {
            headers.insert(header::CONTENT_TYPE, content_type);
            let whole = (size > 0).then(|| Piece::File(0..=size - 1));
            Content { status: StatusCode::OK, headers, body: whole.into_iter().collect() }
        }
        Some([one]) => {
            headers.insert(header::CONTENT_TYPE, content_type);
            headers.insert(header::CONTENT_RANGE, content_range(one, size));
            Content { status: StatusCode::PARTIAL_CONTENT, headers, body: vec![Piece::File(one.clone())] }
        }
        Some(several) => {
            let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
            let boundary = format!("{:016x}", nanos ^ size.rotate_left(32));
            let mut body = Vec::with_capacity(several.len() * 2 + 1);
            for range in several {
                let mut part = BytesMut::new();
                part.put_slice(format!("\r\n--{boundary}\r\nContent-Type: ").as_bytes());
                part.put_slice(content_type.as_bytes());
                part.put_slice(b"\r\nContent-Range: ");
                part.put_slice(content_range(range, size).as_bytes());
                part.put_slice(b"\r\n\r\n");
                body.push(Piece::Text(part.freeze()));
                body.push(Piece::File(range.clone()));
            }
            body.push(Piece::Text(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
            let multipart = HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}")).expect("hex boundary");
            headers.insert(header::CONTENT_TYPE, multipart);
            Content { status: StatusCode::PARTIAL_CONTENT, headers, body }
        }
    }
}

impl Content {
    /// Bytes on the wire: what `Content-Length` says.
    pub fn len(&self) -> u64 {
        self.body.iter().map(|p| match p {
            Piece::Text(t) => t.len() as u64,
            Piece::File(r) => r.end() - r.start() + 1,
        }).sum()
    }
}

/// The ranges to send (`None`: the whole file), or `Err` for a 416: malformed or unsatisfiable,
/// as Go answers them. Ranges the parser rejects as abusive (over 100, overlapping) or adding up
/// to more than the file are served whole, as Go does with the latter.
fn requested(value: &HeaderValue, size: u64) -> Result<Option<Vec<RangeInclusive<u64>>>, ()> {
    let parsed = value.to_str().map_err(|_| ()).map(http_range_header::parse_range_header)?;
    match parsed.and_then(|p| p.validate(size)) {
        Ok(ranges) if !ranges.is_empty() && ranges.iter().map(|r| r.end() - r.start() + 1).sum::<u64>() <= size => Ok(Some(ranges)),
        Ok(_) | Err(RangeUnsatisfiableError::Rejected(_)) => Ok(None),
        Err(_) => Err(()),
    }
}

/// RFC 9110 §13.2.2's order, as Go's `checkPreconditions`: the status that ends the request, if any.
fn precondition(request: &HeaderMap, modified: Option<SystemTime>, etag: Option<&str>, get_or_head: bool) -> Option<StatusCode> {
    let text = |name| request.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(wanted) = text(header::IF_MATCH) {
        if !matches(wanted, etag, true) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let (Some(since), Some(t)) = (text(header::IF_UNMODIFIED_SINCE).and_then(parse_date), modified)
        && t > since
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if let Some(unwanted) = text(header::IF_NONE_MATCH) {
        if matches(unwanted, etag, false) {
            return Some(if get_or_head { StatusCode::NOT_MODIFIED } else { StatusCode::PRECONDITION_FAILED });
        }
    } else if let (true, Some(since), Some(t)) = (get_or_head, text(header::IF_MODIFIED_SINCE).and_then(parse_date), modified)
        && t <= since
    {
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
}

/// `If-Range`: the range applies only to the representation the client already has part of.
fn range_applies(request: &HeaderMap, modified: Option<SystemTime>, etag: Option<&str>) -> bool {
    let Some(value) = request.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else { return true };
    if value.starts_with('"') || value.starts_with("W/") {
        return matches(value, etag, true);
    }
    parse_date(value).is_some_and(|since| modified == Some(since))
}

/// Whether a list of entity tags (or `*`) matches `etag`; strong comparison refuses weak tags.
fn matches(list: &str, etag: Option<&str>, strong: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let Some(etag) = etag else { return false };
    let opaque = |t: &str| t.trim().strip_prefix("W/").unwrap_or(t.trim()).to_string();
    if strong && etag.starts_with("W/") {
        return false;
    }
    list.split(',').map(str::trim).any(|t| !(strong && t.starts_with("W/")) && opaque(t) == opaque(etag))
}

fn unsatisfiable(mut headers: HeaderMap, size: u64) -> Content {
    headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("digits"));
    Content { status: StatusCode::RANGE_NOT_SATISFIABLE, headers, body: Vec::new() }
}

fn content_range(range: &RangeInclusive<u64>, size: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start(), range.end())).expect("digits")
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
}

fn date(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("an HTTP date is ASCII")
}

fn parse_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer for the file `0123456789`, its body read from the pieces.
    struct Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    fn get(headers: &[(&str, &str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let content = serve(&Method::GET, &map, 10, Some(modified), Some("\"abc\""), HeaderValue::from_static("text/plain"));
        let len = content.len();
        let file = b"0123456789";
        let body: Vec<u8> = content
            .body
            .into_iter()
            .flat_map(|p| match p {
                Piece::Text(t) => t.to_vec(),
                Piece::File(r) => file[*r.start() as usize..=*r.end() as usize].to_vec(),
            })
            .collect();
        assert_eq!(body.len() as u64, len);
        Answer { status: content.status, headers: content.headers, body }
    }

    const LAST_MODIFIED: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    #[test]
    fn ranges() {
        let whole = get(&[]);
        assert_eq!((whole.status, &whole.body[..]), (StatusCode::OK, &b"0123456789"[..]));
        assert_eq!(whole.headers[header::LAST_MODIFIED], LAST_MODIFIED);
        assert_eq!(whole.headers[header::ACCEPT_RANGES], "bytes");
        let one = get(&[("range", "bytes=2-4")]);
        assert_eq!((one.status, &one.body[..]), (StatusCode::PARTIAL_CONTENT, &b"234"[..]));
        assert_eq!(one.headers[header::CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(&get(&[("range", "bytes=-3")]).body[..], b"789");
        assert_eq!(&get(&[("range", "bytes=8-")]).body[..], b"89");
        assert_eq!(&get(&[("range", "bytes=8-100")]).body[..], b"89");
        let two = get(&[("range", "bytes=0-1,5-6")]);
        assert_eq!(two.status, StatusCode::PARTIAL_CONTENT);
        let ct = two.headers[header::CONTENT_TYPE].to_str().unwrap();
        let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
        let text = String::from_utf8(two.body).unwrap();
        assert_eq!(
            text,
            format!("\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-6/10\r\n\r\n56\r\n--{boundary}--\r\n")
        );
        for bad in ["bytes=20-30", "bytes=5-2", "items=0-1", "bytes=x"] {
            let r = get(&[("range", bad)]);
            assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
            assert_eq!(r.headers[header::CONTENT_RANGE], "bytes */10");
        }
        assert_eq!(get(&[("range", "bytes=0-5,2-8")]).status, StatusCode::OK, "more than the file: served whole");
        assert_eq!(get(&[("range", &"bytes=0-0,".repeat(200)[..1799])]).status, StatusCode::OK, "too many ranges: served whole");
    }

    #[test]
    fn conditionals() {
        assert_eq!(get(&[("if-none-match", "\"abc\"")]).status, StatusCode::NOT_MODIFIED);
        assert_eq!(get(&[("if-none-match", "W/\"abc\", \"x\"")]).status, StatusCode::NOT_MODIFIED, "weak comparison");
        assert_eq!(get(&[("if-none-match", "\"other\"")]).status, StatusCode::OK);
        assert_eq!(get(&[("if-modified-since", LAST_MODIFIED)]).status, StatusCode::NOT_MODIFIED);
        assert_eq!(get(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]).status, StatusCode::OK);
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(get(&[("if-none-match", "\"other\""), ("if-modified-since", LAST_MODIFIED)]).status, StatusCode::OK);
        assert_eq!(get(&[("if-match", "\"other\"")]).status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(get(&[("if-match", "\"abc\"")]).status, StatusCode::OK);
        assert_eq!(get(&[("if-unmodified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]).status, StatusCode::PRECONDITION_FAILED);
        // If-Range: the range only for the same representation.
        assert_eq!(get(&[("range", "bytes=0-1"), ("if-range", "\"abc\"")]).status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(get(&[("range", "bytes=0-1"), ("if-range", "\"old\"")]).status, StatusCode::OK);
        assert_eq!(get(&[("range", "bytes=0-1"), ("if-range", LAST_MODIFIED)]).status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(get(&[("range", "bytes=0-1"), ("if-range", "Tue, 14 Nov 2023 22:13:19 GMT")]).status, StatusCode::OK);
    }
}
