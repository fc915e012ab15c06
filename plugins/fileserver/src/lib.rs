//! The `fileserver` plugin: serves folders on a listener of its own, without PHP, with
//! RoadRunner's keys (PLUGINS-MORE.md §D, docs/HTTP.md "fileserver").
//!
//! A request picks the first `serve` entry whose prefix matches, `resolve` finds the file inside
//! that entry's root, and tower-http's `ServeFile` answers it (ranges, `If-Modified-Since`,
//! content type), gzip-compressed by tower-http when the entry says `compress`.

pub mod config;
mod resolve;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rr_runtime::{BoxError, InitContext};
use tokio_util::sync::CancellationToken;
use tower::{Layer, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeFile;

pub use config::Config;

type Body = UnsyncBoxBody<Bytes, BoxError>;

pub struct Plugin {
    cfg: Config,
    address: String,
    /// Each entry's root, canonical.
    roots: Vec<PathBuf>,
    /// Said once its listeners are bound (systemd `READY=1` waits for it).
    serving: rr_runtime::services::Starting,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "fileserver";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(cfg) = ctx.section::<Config>("fileserver")? else { return Ok(None) };
        let address = cfg.validate()?.to_string();
        let mut roots = Vec::new();
        for (i, s) in cfg.serve.iter().enumerate() {
            let root = s.root.canonicalize().map_err(|e| format!("config key `fileserver.serve[{i}].root`: `{}`: {e}", s.root.display()))?;
            roots.push(root);
        }
        Ok(Some(Plugin { cfg, address, roots, serving: ctx.services.lifecycle.starting() }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let address = self.address.strip_prefix("tcp://").unwrap_or(&self.address);
        let address = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_string() };
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|e| format!("config key `fileserver.address`: cannot listen on `{address}`: {e}"))?;
        tracing::info!(target: "fileserver", address = %listener.local_addr()?, "file server started");
        self.serving.serving();
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                _ = shutdown.cancelled() => return Ok(()),
            };
            let this = self.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let this = this.clone();
                async move { Ok::<_, Infallible>(this.respond(req.map(|_| ())).await) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    }
}

impl Plugin {
    async fn respond(&self, mut req: Request<()>) -> Response<Body> {
        let not_found = |req: &Request<()>| text(StatusCode::NOT_FOUND, format!("Cannot {} {}", req.method(), req.uri().path()));
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return not_found(&req);
        }
        let path = req.uri().path();
        let found = self.cfg.serve.iter().zip(&self.roots).find_map(|(entry, root)| Some((entry, root, resolve::strip_prefix(path, &entry.prefix)?)));
        let Some((entry, root, rest)) = found else { return not_found(&req) };
        // Path lookups block; a slow disk must not stall the other connections.
        let (root, rest) = (root.clone(), rest.to_string());
        let Ok(Some(file)) = tokio::task::spawn_blocking(move || resolve::resolve(&root, &rest)).await else { return not_found(&req) };
        if !entry.bytes_range {
            req.headers_mut().remove(header::RANGE);
        }
        let etag = match self.cfg.calculate_etag {
            true => etag(&file, self.cfg.weak).await,
            false => None,
        };
        let fresh = etag.as_ref().is_some_and(|tag| if_none_match(&req, tag));
        let mut resp = if fresh {
            Response::builder().status(StatusCode::NOT_MODIFIED).body(empty()).unwrap()
        } else if entry.compress {
            let service = CompressionLayer::new().gzip(true).layer(ServeFile::new(&file));
            boxed(service.oneshot(req).await)
        } else {
            boxed(ServeFile::new(&file).oneshot(req).await)
        };
        let status = resp.status();
        let headers = resp.headers_mut();
        if !entry.bytes_range {
            headers.remove(header::ACCEPT_RANGES);
        }
        if let Some(tag) = etag.filter(|_| fresh || status == StatusCode::OK) {
            headers.insert(header::ETAG, tag);
        }
        if entry.max_age > 0 && !matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(&format!("public, max-age={}", entry.max_age)).expect("digits are a valid header"));
        }
        resp
    }
}

/// `"<length>-<crc32 of length and modification time>"`: it changes whenever the file does,
/// without reading the file (Fiber hashes the whole body).
async fn etag(file: &std::path::Path, weak: bool) -> Option<HeaderValue> {
    let meta = tokio::fs::metadata(file).await.ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&meta.len().to_le_bytes());
    hasher.update(&modified.to_le_bytes());
    let tag = format!("{}\"{}-{}\"", if weak { "W/" } else { "" }, meta.len(), hasher.finalize());
    HeaderValue::from_str(&tag).ok()
}

/// `If-None-Match` lists `tag` (compared weakly, as RFC 9110 says for this header) or is `*`.
fn if_none_match(req: &Request<()>, tag: &HeaderValue) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let tag = opaque(tag.to_str().unwrap_or_default());
    req.headers().get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| t.trim() == "*" || opaque(t) == tag)
}

fn boxed<B>(resp: Result<Response<B>, Infallible>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Ok(resp) = resp;
    resp.map(|b| b.map_err(Into::into).boxed_unsync())
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed_unsync()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
