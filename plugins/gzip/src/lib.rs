//! The `gzip` middleware: compresses responses with the best encoding the client accepts, brotli
//! (`br`) or gzip, by the `Accept-Encoding` q-values (brotli wins a tie: smaller output at a fast
//! setting). Streamed responses stay streamed: every chunk is compressed and flushed as it
//! arrives. Bodies that are already encoded, small (< 1 KiB with a known length) or of an
//! incompressible type pass untouched.

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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Brotli,
    Gzip,
}

/// The encoding to use for this request, if the client accepts one (RFC 9110 §12.5.3).
fn negotiate(req: &Request) -> Option<Encoding> {
    let (mut br, mut gzip, mut any) = (None, None, None);
    for value in req.headers().get_all(http::header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()) {
        for part in value.split(',') {
            let mut it = part.split(';');
            let name = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .next()
                .unwrap_or(1.0);
            match name.as_str() {
                "br" => br = Some(q),
                "gzip" | "x-gzip" => gzip = Some(q),
                "*" => any = Some(q),
                _ => {}
            }
        }
    }
    let (br, gzip) = (br.or(any).unwrap_or(0.0), gzip.or(any).unwrap_or(0.0));
    if br > 0.0 && br >= gzip {
        Some(Encoding::Brotli)
    } else if gzip > 0.0 {
        Some(Encoding::Gzip)
    } else {
        None
    }
}

/// A streaming encoder whose output is taken after every flushed chunk.
enum Encoder {
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Gzip(GzEncoder<Vec<u8>>),
}

impl Encoder {
    fn new(encoding: Encoding) -> Encoder {
        match encoding {
            // Quality 4 / 4 KiB buffer / 22-bit window: fast enough for dynamic responses.
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(Vec::new(), 4096, 4, 22))),
            Encoding::Gzip => Encoder::Gzip(GzEncoder::new(Vec::new(), Compression::fast())),
        }
    }

    /// Compress and flush `data`; the bytes ready to send.
    fn chunk(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                e.flush()?;
                e.get_mut()
            }
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                e.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// End the stream; its last bytes.
    fn finish(self) -> std::io::Result<Bytes> {
        Ok(Bytes::from(match self {
            Encoder::Brotli(e) => e.into_inner(),
            Encoder::Gzip(e) => e.finish()?,
        }))
    }
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
    !(ct.starts_with("image/") && !ct.contains("svg") || ct.starts_with("video/") || ct.starts_with("audio/") || ct.contains("zip") || ct.contains("gzip") || ct.contains("brotli"))
}

fn compress(resp: Response, encoding: Encoding) -> Response {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let name = if encoding == Encoding::Brotli { "br" } else { "gzip" };
    parts.headers.insert(http::header::CONTENT_ENCODING, http::HeaderValue::from_static(name));
    parts.headers.append(http::header::VARY, http::HeaderValue::from_static("Accept-Encoding"));
    let encoder = Some(Encoder::new(encoding));
    let frames = BodyStream::new(body).map(Some).chain(futures::stream::iter([None])).scan(encoder, |enc, item| {
        let out: Option<Result<http_body::Frame<Bytes>, BoxError>> = match item {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => enc.as_mut().map(|e| e.chunk(&data).map(http_body::Frame::data).map_err(Into::into)),
                Err(other) => Some(Ok(other)),
            },
            Some(Err(e)) => Some(Err(e)),
            None => enc.take().map(|e| e.finish().map(http_body::Frame::data).map_err(Into::into)),
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
                let encoding = negotiate(&req).filter(|_| req.method() != http::Method::HEAD);
                let resp = next(req).await;
                match encoding {
                    Some(encoding) if compressible(&resp) => compress(resp, encoding),
                    _ => resp,
                }
            })
        })
    }
}
