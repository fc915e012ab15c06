//! The `gzip` middleware: compresses responses for clients that accept gzip. Streamed responses
//! stay streamed: every chunk is compressed and flushed as it arrives. Bodies that are already
//! encoded, small (< 1 KiB with a known length) or of an incompressible type pass untouched.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use rr_runtime::http::{Handler, Middleware, Request, Response};
use rr_runtime::{BoxError, InitContext};

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "gzip";

    /// On whenever `http.middleware` lists `gzip` (it has no settings of its own).
    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::http::middleware_listed(ctx.config, "gzip") {
            return Ok(None);
        }
        ctx.services.http_middleware.register("gzip", Arc::new(Gzip) as Arc<dyn Middleware>);
        Ok(Some(Plugin))
    }
}

pub struct Gzip;

fn accepts_gzip(req: &Request) -> bool {
    req.headers().get_all(http::header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|part| {
            let mut it = part.trim().split(';');
            let name = it.next().unwrap_or("").trim();
            let q0 = it.any(|p| p.trim().replace(' ', "") == "q=0");
            (name == "gzip" || name == "*") && !q0
        })
    })
}

fn compressible(resp: &Response) -> bool {
    let h = resp.headers();
    if h.contains_key(http::header::CONTENT_ENCODING) || resp.status() == http::StatusCode::NO_CONTENT || resp.status() == http::StatusCode::NOT_MODIFIED {
        return false;
    }
    if let Some(len) = h.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len < 1024
    {
        return false;
    }
    let ct = h.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    !(ct.starts_with("image/") && !ct.contains("svg") || ct.starts_with("video/") || ct.starts_with("audio/") || ct.contains("zip") || ct.contains("gzip"))
}

fn compress(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.insert(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
    parts.headers.append(http::header::VARY, http::HeaderValue::from_static("Accept-Encoding"));
    let encoder = Some(GzEncoder::new(Vec::new(), Compression::fast()));
    let frames = BodyStream::new(body).map(Some).chain(futures::stream::iter([None])).scan(encoder, |enc, item| {
        let out: Option<Result<http_body::Frame<Bytes>, BoxError>> = match item {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => enc.as_mut().map(|e| {
                    let written = e.write_all(&data).and_then(|()| e.flush());
                    written.map(|()| http_body::Frame::data(Bytes::from(std::mem::take(e.get_mut())))).map_err(Into::into)
                }),
                Err(other) => Some(Ok(other)),
            },
            Some(Err(e)) => Some(Err(e)),
            None => enc.take().map(|e| e.finish().map(|tail| http_body::Frame::data(Bytes::from(tail))).map_err(Into::into)),
        };
        futures::future::ready(Some(out))
    });
    let frames = frames.filter_map(futures::future::ready);
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}

impl Middleware for Gzip {
    fn wrap(&self, next: Handler) -> Handler {
        Arc::new(move |req: Request| {
            let next = next.clone();
            Box::pin(async move {
                let wants = accepts_gzip(&req) && req.method() != http::Method::HEAD;
                let resp = next(req).await;
                if wants && compressible(&resp) { compress(resp) } else { resp }
            })
        })
    }
}
