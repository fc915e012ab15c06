//! From a hyper request to the worker payload (PROTOCOL.md §3.1-3.5): the context (protobuf
//! `http.v1.Request` or legacy JSON) and the body (raw, or the parsed form as JSON); multipart
//! files go to temp files that live until the response is done.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Version};
use http_body_util::BodyExt;
use prost::Message;
use rr_runtime::frame;
use rr_runtime::http::{Attributes, ClientAddr, Request};
use rr_runtime::pool::Payload;
use serde_json::{Value, json};

use crate::config::{Codec, Config};
use crate::form::Tree;
use crate::proto;

/// Per-connection facts the server attaches to every request (the peer's address travels as
/// [`ClientAddr`], which middleware may replace).
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub tls: bool,
}

/// The peer's address with its port, for the access log's `remote_address` (Go's `RemoteAddr`):
/// the TCP peer, or FastCGI's `REMOTE_ADDR` and `REMOTE_PORT`.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Marks a request that came over FastCGI (its URI is absolute, built from `HTTP_HOST`).
#[derive(Debug, Clone, Copy)]
pub struct ViaFastCgi;

/// A request the client got wrong: both are 4xx, never a worker's time.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request body too large")]
    TooLarge,
    /// A body that cannot be read or parsed (broken chunked encoding, multipart without a boundary).
    #[error("{0}")]
    BadBody(String),
}

/// A payload ready for a worker, plus the upload files that must outlive the exec.
pub struct Prepared {
    pub payload: Payload,
    pub uploads: Vec<tempfile::TempPath>,
}

pub async fn prepare(req: Request, cfg: &Config) -> Result<Prepared, RequestError> {
    let (parts, body) = req.into_parts();
    let conn = parts.extensions.get::<ConnInfo>().copied();
    let attributes = parts.extensions.get::<Attributes>().cloned().unwrap_or_default();
    let remote_addr = parts.extensions.get::<ClientAddr>().map(|c| ip_text(c.0)).unwrap_or_default();
    let tls = conn.is_some_and(|c| c.tls);

    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body_bytes = if parts.method == Method::HEAD || parts.method == Method::OPTIONS {
        Bytes::new()
    } else {
        // Refused by its declared length before a byte is read (so `Expect: 100-continue` gets no 100).
        let limit = cfg.max_body_bytes();
        if let Some(len) = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            && len > limit as u64
        {
            return Err(RequestError::TooLarge);
        }
        read_limited(body, limit).await?
    };

    let mut parsed = false;
    let mut uploads_tree: Option<Value> = None;
    let mut temp_files = Vec::new();
    let form_method = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
    let body = if !cfg.raw_body && form_method && content_type.contains("application/x-www-form-urlencoded") {
        parsed = true;
        let mut tree = Tree::default();
        for (k, v) in form_urlencoded::parse(&body_bytes) {
            tree.push(&k, Value::String(v.into_owned())).map_err(|e| RequestError::BadBody(e.to_string()))?;
        }
        if tree.is_empty() { Bytes::new() } else { Bytes::from(serde_json::to_vec(&tree.into_value()).expect("json")) }
    } else if !cfg.raw_body && content_type.contains("multipart/form-data") {
        parsed = true;
        let (fields, files, temps) = multipart(&content_type, body_bytes, cfg).await?;
        temp_files = temps;
        if !files.is_empty() {
            uploads_tree = Some(files.into_value());
        }
        if fields.is_empty() { Bytes::new() } else { Bytes::from(serde_json::to_vec(&fields.into_value()).expect("json")) }
    } else {
        body_bytes
    };

    let uri = absolute_uri(&parts.uri, &parts.headers, tls);
    let raw_query = parts.uri.query().unwrap_or("").replace(['\r', '\n'], "");
    let protocol = match parts.version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    };
    let headers = header_list(&parts.headers);
    let cookies = cookies(&parts.headers);

    let (codec, context) = match cfg.codec {
        Codec::Proto | Codec::Auto => {
            let copied = |values: &[&HeaderValue]| values.iter().map(|v| text(v.as_bytes()).into_owned().into_bytes()).collect();
            let msg = proto::Request {
                remote_addr,
                protocol: protocol.into(),
                method: parts.method.as_str().into(),
                uri,
                header: headers.into_iter().map(|(name, values)| proto::Entry::new(name, copied(&values))).collect(),
                cookies: cookies.into_iter().map(|(k, v)| proto::Entry::new(k, vec![v.into_bytes()])).collect(),
                raw_query,
                parsed,
                uploads: uploads_tree.map(|t| serde_json::to_vec(&t).expect("json")).unwrap_or_default(),
                attributes: attributes.0.into_iter().map(|(k, v)| proto::Entry::new(k, v.into_iter().map(String::into_bytes).collect())).collect(),
            };
            (frame::CODEC_PROTO, Bytes::from(msg.encode_to_vec()))
        }
        Codec::Json => {
            let attributes: HashMap<String, Option<String>> = attributes.0.into_iter().map(|(k, v)| (k, v.into_iter().next())).collect();
            let ctx = JsonContext {
                remote_addr: &remote_addr,
                protocol,
                method: parts.method.as_str(),
                uri: &uri,
                headers: JsonHeaders(&headers),
                cookies: &cookies,
                raw_query: &raw_query,
                parsed,
                uploads: uploads_tree.as_ref(),
                attributes: &attributes,
            };
            (frame::CODEC_JSON, Bytes::from(serde_json::to_vec(&ctx).expect("json")))
        }
    };
    Ok(Prepared { payload: Payload { codec, context, body }, uploads: temp_files })
}

/// The legacy JSON request context (§3.3), serialized straight from borrowed fields.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonContext<'a> {
    remote_addr: &'a str,
    protocol: &'a str,
    method: &'a str,
    uri: &'a str,
    headers: JsonHeaders<'a>,
    cookies: &'a HashMap<String, String>,
    raw_query: &'a str,
    parsed: bool,
    uploads: Option<&'a Value>,
    attributes: &'a HashMap<String, Option<String>>,
}

/// `{"Name": ["value", ...]}`, values as [`text`].
struct JsonHeaders<'a>(&'a [(String, Vec<&'a HeaderValue>)]);

impl serde::Serialize for JsonHeaders<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(name, values)| (name, values.iter().map(|v| text(v.as_bytes())).collect::<Vec<_>>())))
    }
}

/// Read the whole body, failing with `TooLarge` as soon as it passes `limit` bytes (the rest is
/// never read: hyper closes the connection after the 413).
async fn read_limited(mut body: rr_runtime::http::Body, limit: usize) -> Result<Bytes, RequestError> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RequestError::BadBody(format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if out.len() + data.len() > limit {
            return Err(RequestError::TooLarge);
        }
        out.extend_from_slice(&data);
    }
    Ok(out.freeze())
}

/// Bytes from the client as text PHP can always decode (every protobuf `string` must be UTF-8,
/// and PHP's protobuf runtime throws on one that is not): UTF-8 stays as it is; anything else
/// is read as ISO-8859-1, the historic charset of obs-text (RFC 9110 §5.5), so `caf\xE9` is
/// `café` and no byte is lost.
pub(crate) fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.into(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect::<String>().into(),
    }
}

/// The client address as text; IPv4 without `fmt`, which cost 4 % of the request path.
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push((b'0' + octet / 100) as char);
        }
        if octet >= 10 {
            out.push((b'0' + octet / 10 % 10) as char);
        }
        out.push((b'0' + octet % 10) as char);
    }
    out
}

/// The URI PHP sees. `Host` was checked by the server (crate::host); without one (HTTP/1.0)
/// it is `localhost`.
fn absolute_uri(uri: &http::Uri, headers: &HeaderMap, tls: bool) -> String {
    let text = if uri.scheme().is_some() && uri.authority().is_some() {
        uri.to_string()
    } else {
        let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).filter(|h| crate::host::valid(h.as_bytes())).unwrap_or("localhost");
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let scheme = if tls { "https://" } else { "http://" };
        let mut text = String::with_capacity(scheme.len() + host.len() + path.len());
        text.push_str(scheme);
        text.push_str(host);
        text.push_str(path);
        text
    };
    if text.contains(['\r', '\n']) { text.replace(['\r', '\n'], "") } else { text }
}

/// `content-type` → `Content-Type`, as Go's canonical MIME header keys.
pub fn canonical(name: &str) -> String {
    let mut out = name.as_bytes().to_vec();
    let mut upper = true;
    for b in &mut out {
        if upper { b.make_ascii_uppercase() } else { b.make_ascii_lowercase() }
        upper = *b == b'-';
    }
    String::from_utf8(out).expect("changing the case of ASCII bytes keeps UTF-8 valid")
}

/// All headers but `Host`, canonical names, every value kept, in arrival order. A `HeaderMap`
/// holds each (lower-case) name once with all its values, so nothing needs grouping here.
fn header_list(headers: &HeaderMap) -> Vec<(String, Vec<&HeaderValue>)> {
    headers.keys().filter(|name| *name != http::header::HOST).map(|name| (canonical(name.as_str()), headers.get_all(name).iter().collect())).collect()
}

/// Cookies by name, values query-unescaped (`+` is a space), names and values as [`text`]; a
/// value with a broken escape (`%zz`) drops the cookie, as Go's `url.QueryUnescape` fails on it.
fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for header in headers.get_all(http::header::COOKIE) {
        for pair in header.as_bytes().split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else { continue };
            let (name, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
            let value = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value);
            let broken_escape = value.iter().enumerate().any(|(i, &b)| b == b'%' && !value.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
            if broken_escape {
                continue;
            }
            let value: Vec<u8> = value.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
            let decoded: Vec<u8> = percent_encoding::percent_decode(&value).collect();
            out.entry(text(name).into_owned()).or_insert_with(|| text(&decoded).into_owned());
        }
    }
    out
}

/// PHP upload error codes (§3.5).
const UPLOAD_ERR_OK: i64 = 0;
const UPLOAD_ERR_NO_TMP_DIR: i64 = 6;
const UPLOAD_ERR_CANT_WRITE: i64 = 7;
const UPLOAD_ERR_EXTENSION: i64 = 8;

async fn multipart(content_type: &str, body: Bytes, cfg: &Config) -> Result<(Tree, Tree, Vec<tempfile::TempPath>), RequestError> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| RequestError::BadBody(format!("multipart: {e}")))?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let (mut fields, mut files, mut temps) = (Tree::default(), Tree::default(), Vec::new());
    while let Some(field) = parts.next_field().await.map_err(|e| RequestError::BadBody(format!("multipart: {e}")))? {
        let name = field.name().unwrap_or("").to_string();
        match field.file_name().map(str::to_string) {
            None => {
                let text = field.text().await.map_err(|e| RequestError::BadBody(format!("multipart: {e}")))?;
                fields.push(&name, Value::String(text)).map_err(|e| RequestError::BadBody(e.to_string()))?;
            }
            Some(file_name) => {
                let mime = field.content_type().map(|m| m.to_string()).unwrap_or_default();
                let data = field.bytes().await.map_err(|e| RequestError::BadBody(format!("multipart: {e}")))?;
                let (error, size, tmp_name) = if !extension_allowed(&file_name, cfg) {
                    (UPLOAD_ERR_EXTENSION, 0, String::new())
                } else {
                    match store(&data, cfg.uploads.dir.as_deref()) {
                        Ok(path) => {
                            let shown = path.display().to_string();
                            temps.push(path);
                            (UPLOAD_ERR_OK, data.len(), shown)
                        }
                        Err(code) => (code, 0, String::new()),
                    }
                };
                let entry = json!({"name": file_name, "mime": mime, "size": size, "error": error, "tmpName": tmp_name});
                // A single-key field holds one file: the first.
                if crate::form::keys(&name).is_some_and(|k| k.len() == 1) && files.contains(&name) {
                    continue;
                }
                files.push(&name, entry).map_err(|e| RequestError::BadBody(e.to_string()))?;
            }
        }
    }
    Ok((fields, files, temps))
}

fn extension_allowed(file_name: &str, cfg: &Config) -> bool {
    let ext = Path::new(file_name).extension().map(|e| format!(".{}", e.to_string_lossy().to_lowercase())).unwrap_or_default();
    let norm = |s: &String| {
        let s = s.to_lowercase();
        if s.starts_with('.') { s } else { format!(".{s}") }
    };
    if cfg.uploads.forbid.iter().map(norm).any(|f| f == ext) {
        return false;
    }
    cfg.uploads.allow.is_empty() || cfg.uploads.allow.iter().map(norm).any(|a| a == ext)
}

fn store(data: &[u8], dir: Option<&Path>) -> Result<tempfile::TempPath, i64> {
    use std::io::Write;
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("upload");
        b
    };
    let mut file = match dir {
        Some(dir) => builder.tempfile_in(dir),
        None => builder.tempfile(),
    }
    .map_err(|_| UPLOAD_ERR_NO_TMP_DIR)?;
    file.write_all(data).map_err(|_| UPLOAD_ERR_CANT_WRITE)?;
    Ok(file.into_temp_path())
}

#[cfg(test)]
mod tests {
    use super::ip_text;

    #[test]
    fn ip_text_matches_display() {
        for ip in ["0.0.0.0", "127.0.0.1", "10.20.100.255", "192.168.9.99", "::1", "2001:db8::7"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }
}
