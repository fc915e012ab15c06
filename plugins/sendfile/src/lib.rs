//! The `sendfile` middleware: when PHP answers with `X-Sendfile: /path`, the server drops PHP's
//! body and streams that file itself (the worker is free at once). `..` in the path is refused
//! (403), a missing file is 404.

use std::sync::Arc;

use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use rr_runtime::http::{Handler, Middleware, Request, Response};
use rr_runtime::{BoxError, InitContext};

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "sendfile";

    /// On whenever `http.middleware` lists `sendfile`.
    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::http::middleware_listed(ctx.config, "sendfile") {
            return Ok(None);
        }
        ctx.services.http_middleware.register("sendfile", Arc::new(Sendfile) as Arc<dyn Middleware>);
        Ok(Some(Plugin))
    }
}

pub struct Sendfile;

fn empty(code: u16) -> Response {
    let mut r = http::Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync());
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::NOT_FOUND);
    r
}

impl Middleware for Sendfile {
    fn wrap(&self, next: Handler) -> Handler {
        Arc::new(move |req: Request| {
            let next = next.clone();
            Box::pin(async move {
                let mut resp = next(req).await;
                let Some(path) = resp.headers_mut().remove("x-sendfile") else { return resp };
                let path = String::from_utf8_lossy(path.as_bytes()).into_owned();
                if path.split('/').any(|seg| seg == "..") {
                    return empty(403);
                }
                let Ok(file) = tokio::fs::File::open(&path).await else { return empty(404) };
                let len = file.metadata().await.map(|m| m.len()).ok();
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map(|chunk| chunk.map(http_body::Frame::data).map_err(BoxError::from));
                let (mut parts, _) = resp.into_parts();
                parts.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/octet-stream"));
                match len {
                    Some(len) => parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len)),
                    None => parts.headers.remove(http::header::CONTENT_LENGTH),
                };
                Response::from_parts(parts, StreamBody::new(stream).boxed_unsync())
            })
        })
    }
}
