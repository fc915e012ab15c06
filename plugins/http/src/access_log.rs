//! The record every request leaves at INFO, named and shaped as RoadRunner 2025.1's http plugin
//! writes it (its log middleware, roadrunner-server/http v5): `http log` with `status`, `method`,
//! `URI`, `URL`, `remote_address`, `read_bytes`, `write_bytes`, `start`, `elapsed`; with
//! `http.access_logs`, `http access log` with those and `query`, `content_len`, `host`,
//! `user_agent`, `referer`, `time_local`, `request_time`. Laravel Octane prints a request from
//! each `http log` line it reads on rr's stdout.
//!
//! As Go's handler returns once the body is written, the record is written when the response
//! body has been sent or given up (the body wrapper is dropped): `write_bytes` counts the bytes
//! the app sent (before any gzip middleware), `read_bytes` the request body bytes read.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use rr_runtime::BoxError;
use rr_runtime::http::{Body, ClientAddr, Request, Response};

use crate::request::{PeerAddr, ViaFastCgi};

/// What the record says of the request, taken before the request is handed on (cheap copies:
/// the text is made only when the record is written at a level the logs let through).
pub struct Record {
    started: Instant,
    /// Unix nanoseconds: zap's time encoding in RoadRunner's production logger.
    start: u64,
    method: http::Method,
    uri: http::Uri,
    /// Go's `RequestURI` is the target as sent: HTTP/2 and 3 send only the path, HTTP/1 a proxy's
    /// absolute form too. Go's FastCGI leaves it empty: ours gives `REQUEST_URI`.
    path_only: bool,
    /// Go's `URL` is absolute over FastCGI (built from `HTTP_HOST`), else the target.
    fcgi: bool,
    client: Option<IpAddr>,
    peer: Option<std::net::SocketAddr>,
    /// `None` for a request without a body (nothing to count).
    read: Option<Arc<AtomicU64>>,
    /// Only for `access_logs`.
    extra: Option<Box<Extra>>,
}

struct Extra {
    query: String,
    content_len: i64,
    host: String,
    user_agent: String,
    referer: String,
}

impl Record {
    /// Start the record of `req`; the request comes back with its body counted.
    pub fn begin(req: Request, access: bool) -> (Record, Request) {
        let started = Instant::now();
        let start = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let fcgi = req.extensions().get::<ViaFastCgi>().is_some();
        let extra = access.then(|| {
            let header = |name: http::header::HeaderName| req.headers().get(name).map(|v| strip_crlf(&String::from_utf8_lossy(v.as_bytes()))).unwrap_or_default();
            Box::new(Extra {
                query: strip_crlf(req.uri().query().unwrap_or("")),
                content_len: req.body().size_hint().exact().map_or(-1, |n| n as i64),
                host: req.uri().authority().map(|a| a.to_string()).unwrap_or_else(|| header(http::header::HOST)),
                user_agent: header(http::header::USER_AGENT),
                referer: header(http::header::REFERER),
            })
        });
        let record = Record {
            started,
            start,
            method: req.method().clone(),
            uri: req.uri().clone(),
            path_only: fcgi || req.version() >= http::Version::HTTP_2,
            fcgi,
            client: req.extensions().get::<ClientAddr>().map(|c| c.0),
            peer: req.extensions().get::<PeerAddr>().map(|p| p.0),
            read: (req.body().size_hint().exact() != Some(0)).then(|| Arc::new(AtomicU64::new(0))),
            extra,
        };
        let req = match record.read.clone() {
            Some(read) => req.map(|body| Counted { inner: body, read }.boxed_unsync()),
            None => req,
        };
        (record, req)
    }

    /// The response, whose body writes the record once it is done with.
    pub fn finish(self, resp: Response) -> Response {
        let status = resp.status().as_u16();
        resp.map(|body| Logged { inner: body, written: 0, status, record: Some(self) }.boxed_unsync())
    }

    fn write(&self, status: u16, written: u64) {
        if !tracing::enabled!(target: "http", tracing::Level::INFO) {
            return;
        }
        let read = self.read.as_ref().map_or(0, |r| r.load(Ordering::Relaxed));
        let elapsed = self.started.elapsed().as_millis() as u64;
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = if self.path_only { path.to_string() } else { self.uri.to_string() };
        let url = if self.fcgi { self.uri.to_string() } else { uri.clone() };
        let remote = remote_address(self.client, self.peer);
        let (method, uri, url, remote) = (self.method.as_str(), uri.as_str(), url.as_str(), remote.as_str());
        match &self.extra {
            None => tracing::info!(target: "http", status, method, URI = uri, URL = url, remote_address = remote, read_bytes = read, write_bytes = written, start = self.start, elapsed, "http log"),
            Some(x) => {
                let now = chrono::Local::now();
                // Go's layout `02/Jan/06:15:04:05 -0700`, as RoadRunner writes it.
                let time_local = now.format("%d/%b/%y:%H:%M:%S %z").to_string();
                let request_time = now.timestamp_nanos_opt().unwrap_or_default();
                tracing::info!(
                    target: "http",
                    read_bytes = read,
                    write_bytes = written,
                    status,
                    method,
                    URI = uri,
                    URL = url,
                    remote_address = remote,
                    query = x.query.as_str(),
                    content_len = x.content_len,
                    host = x.host.as_str(),
                    user_agent = x.user_agent.as_str(),
                    referer = x.referer.as_str(),
                    time_local = time_local.as_str(),
                    request_time,
                    start = self.start,
                    elapsed,
                    "http access log"
                )
            }
        }
    }
}

/// `host:port` as Go's `RemoteAddr`; the address alone when middleware (proxy-ip-parser) put
/// another client address in its place, or no port is known.
fn remote_address(client: Option<IpAddr>, peer: Option<std::net::SocketAddr>) -> String {
    match (client, peer) {
        (Some(ip), Some(peer)) if ip != peer.ip() => ip.to_string(),
        (_, Some(peer)) => peer.to_string(),
        (Some(ip), None) => ip.to_string(),
        (None, None) => String::new(),
    }
}

/// RoadRunner strips CR and LF from these fields (CWE-117); the log encoders escape the rest.
fn strip_crlf(text: &str) -> String {
    text.replace(['\r', '\n'], "")
}

/// The request body, its bytes counted as they are read.
struct Counted {
    inner: Body,
    read: Arc<AtomicU64>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.read.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body; the record is written when it is dropped (sent, or the client left).
struct Logged {
    inner: Body,
    written: u64,
    status: u16,
    record: Option<Record>,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.written += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.write(self.status, self.written);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_address_has_its_port_as_go_writes_it() {
        let peer = |s: &str| Some(s.parse::<std::net::SocketAddr>().unwrap());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(remote_address(ip("127.0.0.1"), peer("127.0.0.1:50123")), "127.0.0.1:50123");
        assert_eq!(remote_address(ip("::1"), peer("[::1]:8080")), "[::1]:8080");
        assert_eq!(remote_address(ip("203.0.113.7"), peer("127.0.0.1:50123")), "203.0.113.7", "replaced by proxy-ip-parser");
        assert_eq!(remote_address(ip("10.0.0.1"), None), "10.0.0.1");
    }
}
