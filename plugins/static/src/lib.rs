//! The `static` middleware: serves files from `http.static.dir` before PHP. Paths cannot leave
//! the directory (`..` and symlinks pointing outside are refused); files without an extension,
//! with a forbidden (or not allowed) extension, directories and missing files fall through to
//! PHP, as in RoadRunner. Files are answered as Go's `ServeContent` does (`content`):
//! `Last-Modified`, conditional requests and byte ranges; the ETag is the optional CRC32 of
//! RoadRunner (`calculate_etag`, `weak`). Extra `request`/`response` headers on static hits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rr_runtime::http::{Handler, Middleware, Request, Response};
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;

mod content;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub dir: PathBuf,
    pub forbid: Vec<String>,
    pub allow: Vec<String>,
    pub calculate_etag: bool,
    pub weak: bool,
    pub request: BTreeMap<String, String>,
    pub response: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config { dir: ".".into(), forbid: vec![], allow: vec![], calculate_etag: false, weak: false, request: BTreeMap::new(), response: BTreeMap::new() }
    }
}

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "static";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(mut config) = ctx.section::<Config>("http.static")? else { return Ok(None) };
        config.dir = std::fs::canonicalize(&config.dir)
            .map_err(|e| format!("config key `http.static.dir`: `{}`: {e}; create it or point `dir` at your public files", config.dir.display()))?;
        ctx.services.http_middleware.register("static", Arc::new(Static(Arc::new(config))) as Arc<dyn Middleware>);
        Ok(Some(Plugin))
    }
}

pub struct Static(pub Arc<Config>);

fn ext_of(path: &Path) -> Option<String> {
    path.extension().map(|e| format!(".{}", e.to_string_lossy().to_lowercase()))
}

fn listed(list: &[String], ext: &str) -> bool {
    list.iter().any(|e| {
        let e = e.to_lowercase();
        e == ext || format!(".{e}") == ext
    })
}

impl Static {
    /// The file to serve for a request path, if any (None = fall through to PHP).
    fn resolve(&self, uri_path: &str) -> Result<Option<PathBuf>, u16> {
        let decoded = percent_decode(uri_path);
        if decoded.split('/').any(|seg| seg == "..") {
            return Err(403);
        }
        let candidate = self.0.dir.join(decoded.trim_start_matches('/'));
        let Ok(real) = std::fs::canonicalize(&candidate) else { return Ok(None) };
        if !real.starts_with(&self.0.dir) {
            return Err(403);
        }
        if !real.is_file() {
            return Ok(None);
        }
        let Some(ext) = ext_of(&real) else { return Ok(None) };
        if listed(&self.0.forbid, &ext) || (!self.0.allow.is_empty() && !listed(&self.0.allow, &ext)) {
            return Ok(None);
        }
        Ok(Some(real))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn full(bytes: Bytes) -> rr_runtime::http::Body {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

impl Middleware for Static {
    fn wrap(&self, next: Handler) -> Handler {
        let this = Static(self.0.clone());
        let this = Arc::new(this);
        Arc::new(move |mut req: Request| {
            let (this, next) = (this.clone(), next.clone());
            Box::pin(async move {
                if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
                    return next(req).await;
                }
                let path = match this.resolve(req.uri().path()) {
                    Err(code) => return status(code),
                    Ok(None) => {
                        for (k, v) in &this.0.request {
                            if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
                                req.headers_mut().insert(k, v);
                            }
                        }
                        return next(req).await;
                    }
                    Ok(Some(p)) => p,
                };
                let Ok(meta) = tokio::fs::metadata(&path).await else { return next(req).await };
                // RoadRunner's ETag is the CRC32 of the whole file: then it is read anyway.
                let whole = if this.0.calculate_etag {
                    let Ok(data) = tokio::fs::read(&path).await else { return next(req).await };
                    Some(Bytes::from(data))
                } else {
                    None
                };
                let etag = whole.as_ref().map(|data| format!("{}\"{:x}\"", if this.0.weak { "W/" } else { "" }, crc32fast::hash(data)));
                let mime = mime_guess::from_path(&path).first_or_octet_stream();
                let content_type = http::HeaderValue::from_str(mime.as_ref()).unwrap_or(http::HeaderValue::from_static("application/octet-stream"));
                let content = content::serve(req.method(), req.headers(), meta.len(), meta.modified().ok(), etag.as_deref(), content_type);
                let len = content.len();
                let body = if req.method() == http::Method::GET {
                    let Ok(body) = read(&path, content.body, whole).await else { return next(req).await };
                    body
                } else {
                    Bytes::new()
                };
                let mut resp = http::Response::new(full(Bytes::new()));
                *resp.status_mut() = content.status;
                let headers = resp.headers_mut();
                *headers = content.headers;
                if content.status.is_success() {
                    for (k, v) in &this.0.response {
                        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
                            headers.insert(k, v);
                        }
                    }
                }
                if content.status != http::StatusCode::NOT_MODIFIED {
                    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
                }
                *resp.body_mut() = full(body);
                resp
            })
        })
    }
}

/// The body from its pieces: file bytes sliced from `whole` when the file was read already,
/// else read at their offsets.
async fn read(path: &Path, pieces: Vec<content::Piece>, whole: Option<Bytes>) -> std::io::Result<Bytes> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = None;
    let mut out = bytes::BytesMut::new();
    for piece in pieces {
        let range = match piece {
            content::Piece::Text(text) => {
                out.extend_from_slice(&text);
                continue;
            }
            content::Piece::File(range) => *range.start() as usize..*range.end() as usize + 1,
        };
        if let Some(data) = &whole {
            out.extend_from_slice(data.get(range).ok_or(std::io::ErrorKind::UnexpectedEof)?);
            continue;
        }
        let file = match &mut file {
            Some(f) => f,
            None => file.insert(tokio::fs::File::open(path).await?),
        };
        file.seek(std::io::SeekFrom::Start(range.start as u64)).await?;
        let at = out.len();
        out.resize(at + range.len(), 0);
        file.read_exact(&mut out[at..]).await?;
    }
    Ok(out.freeze())
}

fn status(code: u16) -> Response {
    let mut r = http::Response::new(full(Bytes::new()));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::FORBIDDEN);
    r
}
