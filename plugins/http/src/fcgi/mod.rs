//! `fcgi.address`: the http plugin as a FastCGI responder (nginx's `fastcgi_pass`), as RoadRunner
//! serves Go's net/http/fcgi: requests take the same middleware and workers as HTTP ones.
//!
//! Each connection is served by one task: it reads records and, beside that, drives the requests
//! whose STDIN is complete, so requests multiplexed on one connection do not wait for each other
//! and none costs a task of its own. `FCGI_KEEP_CONN` keeps the connection for the next.

mod record;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use http::{HeaderName, HeaderValue, Uri, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use rr_runtime::BoxError;
use rr_runtime::http::{ClientAddr, Handler, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::request::{ConnInfo, PeerAddr, ViaFastCgi};

/// A bound `fcgi.address`.
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    /// The socket file is removed again when the listener stops.
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// `tcp://host:port` (or `host:port`) or `unix:///path`; a stale unix socket file is replaced,
    /// as RoadRunner does.
    pub async fn bind(address: &str) -> Result<Listener, BoxError> {
        let err = |e: std::io::Error| format!("config key `http.fcgi.address`: cannot listen on `{address}`: {e}");
        if let Some(path) = address.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
            return Ok(Listener::Unix(tokio::net::UnixListener::bind(path).map_err(err)?, path.into()));
        }
        let host_port = address.strip_prefix("tcp://").unwrap_or(address);
        if host_port.contains("://") {
            return Err(format!("config key `http.fcgi.address`: `{address}` is neither `tcp://host:port` nor `unix:///path`").into());
        }
        let host_port = if host_port.starts_with(':') { format!("0.0.0.0{host_port}") } else { host_port.to_string() };
        Ok(Listener::Tcp(tokio::net::TcpListener::bind(&host_port).await.map_err(err)?))
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map_or_else(|e| e.to_string(), |a| format!("tcp://{a}")),
            Listener::Unix(_, path) => format!("unix://{}", path.display()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Serve until `shutdown`, then let open connections finish their requests (up to `drain`).
pub async fn run(listener: Listener, handler: Handler, limits: Limits, shutdown: CancellationToken, drain: Duration) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener) => accepted,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((Stream::Tcp(s), peer)) => {
                let _ = s.set_nodelay(true);
                conns.spawn(connection(s, peer, handler.clone(), limits, shutdown.clone()));
            }
            Ok((Stream::Unix(s), peer)) => {
                conns.spawn(connection(s, peer, handler.clone(), limits, shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!(target: "http", error = %e, "fcgi: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(target: "http", "fcgi: connections still open after {drain:?}; closing them");
    }
}

/// What one request may bring: `http.max_request_size` for the body, `http.max_header_bytes` for
/// the CGI variables; `http.read_header_timeout` for how long a connection with a request partly
/// received may send nothing (`None`: no limit).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body: usize,
    pub params: usize,
    pub stall: Option<Duration>,
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, Option<IpAddr>)> {
    Ok(match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, a)| (Stream::Tcp(s), Some(a.ip())))?,
        Listener::Unix(l, _) => (Stream::Unix(l.accept().await?.0), None),
    })
}

/// A request being received: its params, then its body.
#[derive(Default)]
struct Incoming {
    keep_conn: bool,
    params: BytesMut,
    body: BytesMut,
}

/// Read records until the web server closes the connection (or, without `FCGI_KEEP_CONN`, its
/// request is in). Complete requests are answered in this task, beside the reading (no task or
/// thread hop per request); their records come back through a channel and leave in one write per
/// wake-up, however many requests answered meanwhile.
async fn connection<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S, peer: Option<IpAddr>, handler: Handler, limits: Limits, shutdown: CancellationToken) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    // Bounded: a response body streaming faster than the web server reads waits here. Only the
    // answering futures send; this task never waits on it, so it cannot block itself.
    let (out, mut rx) = mpsc::channel::<Bytes>(64);
    let mut answering = FuturesUnordered::new();
    let mut requests: HashMap<u16, Incoming> = HashMap::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    // Records this task writes itself (END_REQUEST of refused requests, GET_VALUES_RESULT).
    let mut control = BytesMut::new();
    let mut reading = true;
    loop {
        while reading {
            let rec = match record::parse(&mut buf) {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(target: "http", error = %e, "fcgi: connection closed");
                    reading = false;
                    break;
                }
            };
            match rec.kind {
                record::BEGIN_REQUEST => match record::begin(&rec.content) {
                    Ok((record::ROLE_RESPONDER, flags)) => drop(requests.insert(rec.id, Incoming { keep_conn: flags & record::FLAG_KEEP_CONN != 0, ..Default::default() })),
                    Ok(_) => record::end_request(&mut control, rec.id, record::UNKNOWN_ROLE),
                    Err(e) => {
                        tracing::debug!(target: "http", error = %e, "fcgi: connection closed");
                        reading = false;
                    }
                },
                record::PARAMS => {
                    if let Some(r) = requests.get_mut(&rec.id) {
                        if r.params.len() + rec.content.len() > limits.params {
                            tracing::warn!(target: "http", limit = limits.params, "fcgi: CGI variables over http.max_header_bytes; connection closed");
                            reading = false;
                            continue;
                        }
                        r.params.extend_from_slice(&rec.content);
                    }
                }
                // Kept up to one byte over the limit: `request::prepare` answers that with 413.
                record::STDIN if !rec.content.is_empty() => {
                    if let Some(r) = requests.get_mut(&rec.id) {
                        let room = (limits.body + 1).saturating_sub(r.body.len());
                        r.body.extend_from_slice(&rec.content[..rec.content.len().min(room)]);
                    }
                }
                record::STDIN => {
                    let Some(r) = requests.remove(&rec.id) else { continue };
                    reading = r.keep_conn;
                    let (handler, out) = (handler.clone(), out.clone());
                    answering.push(async move {
                        let resp = match request(&r.params.freeze(), r.body.freeze(), peer) {
                            Ok(req) => handler(req).await,
                            // The text quotes what the web server sent, escaped (`{:?}`): it
                            // stays in the log, on one line, and out of the answer.
                            Err(e) => {
                                tracing::warn!(target: "http", error = %e, "fcgi: bad request from the web server");
                                bad_request()
                            }
                        };
                        respond(resp, rec.id, &out).await;
                    });
                }
                record::ABORT_REQUEST => {
                    if requests.remove(&rec.id).is_some() {
                        record::end_request(&mut control, rec.id, record::REQUEST_COMPLETE);
                    }
                }
                record::GET_VALUES => {
                    let values = record::encode_pairs(&[(b"FCGI_MPXS_CONNS", b"1")]);
                    record::encode(&mut control, record::GET_VALUES_RESULT, 0, &values);
                }
                kind => record::encode(&mut control, record::UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0]),
            }
        }
        if !control.is_empty() && wr.write_all(&control.split()).await.is_err() {
            break;
        }
        // The connection ends once nothing more is read and the requests in flight have answered.
        if !reading && answering.is_empty() {
            let mut rest = BytesMut::new();
            while let Ok(chunk) = rx.try_recv() {
                rest.extend_from_slice(&chunk);
            }
            if rest.is_empty() || wr.write_all(&rest).await.is_ok() {
                let _ = wr.shutdown().await;
            }
            break;
        }
        // A request partly received must keep arriving (as an HTTP/1 head must within the
        // same time); idle kept connections between requests are the web server's to close.
        let stall = limits.stall.filter(|_| reading && (!requests.is_empty() || !buf.is_empty()));
        tokio::select! {
            // Answers first: they free the web server's connection for its next request.
            biased;
            Some(chunk) = rx.recv() => {
                let written = match rx.try_recv() {
                    Err(_) => wr.write_all(&chunk).await,
                    Ok(next) => {
                        let mut all = BytesMut::from(&chunk[..]);
                        all.extend_from_slice(&next);
                        while let Ok(more) = rx.try_recv() {
                            all.extend_from_slice(&more);
                        }
                        wr.write_all(&all).await
                    }
                };
                if written.is_err() {
                    break; // the web server is gone: the answers in flight are dropped
                }
            }
            Some(()) = answering.next(), if !answering.is_empty() => {}
            read = rd.read_buf(&mut buf), if reading => match read {
                Ok(0) | Err(_) => reading = false,
                Ok(_) => {}
            },
            _ = async { tokio::time::sleep(stall.unwrap_or_default()).await }, if stall.is_some() => {
                tracing::debug!(target: "http", timeout = ?stall.unwrap_or_default(), "fcgi: a request stopped arriving for http.read_header_timeout; connection closed");
                reading = false;
            }
            _ = shutdown.cancelled(), if reading => reading = false,
        }
    }
}

/// The request in CGI variables (RFC 3875), read as Go's `cgi.RequestFromMap` reads them: the
/// URI is absolute, `http://` (`https://` when `HTTPS` is `on`, `ON` or `1`) with `HTTP_HOST` (its
/// port kept) and `REQUEST_URI`. A variable given twice counts once, the last (as in Go's map).
/// Errors quote the variables escaped (`{:?}`): they go to the log. Header values are slices of
/// the params record, not copies.
fn request(params: &Bytes, body: Bytes, peer: Option<IpAddr>) -> Result<rr_runtime::http::Request, String> {
    let pairs = record::pairs(params)?;
    let mut vars = Vars::default();
    let mut headers = http::HeaderMap::with_capacity(pairs.len());
    for (name, value) in &pairs {
        match &name[..] {
            b"REQUEST_METHOD" => vars.method = Some(value),
            b"REQUEST_URI" => vars.uri = Some(value),
            b"QUERY_STRING" => vars.query = Some(value),
            b"SCRIPT_NAME" => vars.script = Some(value),
            b"PATH_INFO" => vars.path_info = Some(value),
            b"SERVER_PROTOCOL" => vars.protocol = Some(value),
            b"HTTPS" => vars.https = Some(value),
            b"HTTP_HOST" => vars.host = Some(value),
            b"REMOTE_ADDR" => vars.remote_addr = Some(value),
            b"REMOTE_PORT" => vars.remote_port = Some(value),
            _ => {}
        }
        if let Some(name) = header_name(name) {
            match HeaderValue::from_maybe_shared(value.clone()) {
                Ok(value) if !value.is_empty() => drop(headers.insert(name, value)),
                _ => drop(headers.remove(name)),
            }
        }
    }
    fn text(v: Option<&Bytes>) -> Option<std::borrow::Cow<'_, str>> {
        v.map(|v| String::from_utf8_lossy(v))
    }
    let method = vars.method.ok_or("no REQUEST_METHOD variable")?;
    let method = http::Method::from_bytes(method).map_err(|e| format!("REQUEST_METHOD {:?}: {e}", String::from_utf8_lossy(method)))?;
    let target = match text(vars.uri).filter(|u| !u.is_empty()) {
        Some(uri) => uri.into_owned(),
        None => {
            let query = text(vars.query).filter(|q| !q.is_empty()).map(|q| format!("?{q}")).unwrap_or_default();
            format!("{}{}{query}", text(vars.script).unwrap_or_default(), text(vars.path_info).unwrap_or_default())
        }
    };
    let version = match vars.protocol.map(|p| &p[..]) {
        Some(b"HTTP/1.0") => Version::HTTP_10,
        Some(b"HTTP/2.0") => Version::HTTP_2,
        Some(b"HTTP/3.0") => Version::HTTP_3,
        _ => Version::HTTP_11,
    };
    let tls = matches!(vars.https.map(|h| &h[..]), Some(b"on" | b"ON" | b"1"));
    // A host that makes no URI with the target leaves it relative, as Go falls back.
    let host = text(vars.host).filter(|h| !h.is_empty() && target.starts_with('/'));
    let absolute = host.and_then(|h| format!("{}://{h}{target}", if tls { "https" } else { "http" }).parse::<Uri>().ok());
    let uri = match absolute {
        Some(uri) => uri,
        None => target.parse::<Uri>().map_err(|e| format!("REQUEST_URI {target:?}: {e}"))?,
    };
    let mut req = http::Request::new(Full::new(body).map_err(|never| match never {}).boxed_unsync());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    let client = text(vars.remote_addr).and_then(|a| a.parse().ok()).or(peer).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let port = text(vars.remote_port).and_then(|p| p.parse().ok()).unwrap_or(0);
    req.extensions_mut().insert(ConnInfo { tls });
    req.extensions_mut().insert(ClientAddr(client));
    req.extensions_mut().insert(PeerAddr(SocketAddr::new(client, port)));
    req.extensions_mut().insert(ViaFastCgi);
    Ok(req)
}

/// The CGI variables `request` reads besides the headers.
#[derive(Default)]
struct Vars<'a> {
    method: Option<&'a Bytes>,
    uri: Option<&'a Bytes>,
    query: Option<&'a Bytes>,
    script: Option<&'a Bytes>,
    path_info: Option<&'a Bytes>,
    protocol: Option<&'a Bytes>,
    https: Option<&'a Bytes>,
    host: Option<&'a Bytes>,
    remote_addr: Option<&'a Bytes>,
    remote_port: Option<&'a Bytes>,
}

/// A request the web server passed on that is not one: a plain 400 that repeats nothing of it.
fn bad_request() -> Response {
    let mut resp = crate::response::error_response(400, Some("400 Bad Request".into()));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// The header a CGI variable carries: `HTTP_X_FOO` is `x-foo`.
fn header_name(variable: &[u8]) -> Option<HeaderName> {
    match variable {
        b"CONTENT_TYPE" => Some(HeaderName::from_static("content-type")),
        b"CONTENT_LENGTH" => Some(HeaderName::from_static("content-length")),
        // Not a header a client may set through the web server (httpoxy), as Go skips it.
        b"HTTP_PROXY" => None,
        _ => {
            let rest = variable.strip_prefix(b"HTTP_")?;
            let convert = |b: &u8| if *b == b'_' { b'-' } else { b.to_ascii_lowercase() };
            // Usual names are converted on the stack; a longer one takes a heap buffer.
            let mut short = [0u8; 64];
            if let Some(name) = short.get_mut(..rest.len()) {
                name.iter_mut().zip(rest).for_each(|(to, from)| *to = convert(from));
                return HeaderName::from_bytes(name).ok();
            }
            HeaderName::from_bytes(&rest.iter().map(convert).collect::<Vec<u8>>()).ok()
        }
    }
}

/// The response as CGI output on STDOUT (`Status:` line, headers, body as it streams), then
/// END_REQUEST.
async fn respond(resp: Response, id: u16, out: &mpsc::Sender<Bytes>) {
    let (parts, mut body) = resp.into_parts();
    let mut head = format!("Status: {} {}\r\n", parts.status.as_u16(), parts.status.canonical_reason().unwrap_or("")).into_bytes();
    for (name, value) in &parts.headers {
        head.extend_from_slice(crate::request::canonical(name.as_str()).as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let mut pending = BytesMut::new();
    stdout(&mut pending, id, &head);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    stdout(&mut pending, id, &data);
                    // A streamed chunk goes now; the last one with END_REQUEST, in one write.
                    if !body.is_end_stream() && out.send(pending.split().freeze()).await.is_err() {
                        return; // the web server is gone
                    }
                }
            }
            Err(e) => {
                tracing::debug!(target: "http", error = %e, "fcgi: response body failed");
                break;
            }
        }
    }
    record::encode(&mut pending, record::STDOUT, id, b"");
    record::end_request(&mut pending, id, record::REQUEST_COMPLETE);
    let _ = out.send(pending.freeze()).await;
}

fn stdout(out: &mut BytesMut, id: u16, data: &[u8]) {
    for chunk in data.chunks(record::MAX_CONTENT) {
        record::encode(out, record::STDOUT, id, chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Bytes {
        record::encode_pairs(&pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect::<Vec<_>>()).into()
    }

    #[test]
    fn cgi_variables_become_the_request() {
        let p = params(&[
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/a?b=1"),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
            ("HTTP_HOST", "example.com"),
            ("HTTP_X_MULTI_WORD", "v"),
            ("HTTP_PROXY", "evil"),
            ("CONTENT_TYPE", "text/plain"),
            ("REMOTE_ADDR", "203.0.113.9"),
            ("HTTPS", "on"),
        ]);
        let req = request(&p, Bytes::from_static(b"hi"), None).unwrap();
        assert_eq!((req.method().as_str(), req.uri().to_string(), req.version()), ("POST", "https://example.com/a?b=1".to_string(), Version::HTTP_10));
        assert_eq!(req.headers()["host"], "example.com");
        assert_eq!(req.headers()["x-multi-word"], "v");
        assert_eq!(req.headers()["content-type"], "text/plain");
        assert!(!req.headers().contains_key("proxy"));
        assert_eq!(req.extensions().get::<ClientAddr>().unwrap().0, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert!(req.extensions().get::<ConnInfo>().unwrap().tls);
        let req = request(&params(&[("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/s"), ("PATH_INFO", "/p"), ("QUERY_STRING", "q=1")]), Bytes::new(), None).unwrap();
        assert_eq!(req.uri(), "/s/p?q=1");
        assert!(request(&params(&[("REQUEST_URI", "/")]), Bytes::new(), None).unwrap_err().contains("REQUEST_METHOD"));
        assert!(request(&params(&[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/a b")]), Bytes::new(), None).unwrap_err().contains("REQUEST_URI"));
        // The URI as Go builds it: the host with its port, the scheme by `HTTPS`.
        let uri = |pairs: &[(&str, &str)]| request(&params(&[&[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/p?q=1")], pairs].concat()), Bytes::new(), None).unwrap().uri().to_string();
        assert_eq!(uri(&[("HTTP_HOST", "127.0.0.1:18095")]), "http://127.0.0.1:18095/p?q=1");
        assert_eq!(uri(&[("HTTP_HOST", "h:8443"), ("HTTPS", "1")]), "https://h:8443/p?q=1");
        assert_eq!(uri(&[("HTTP_HOST", "h"), ("HTTPS", "off")]), "http://h/p?q=1");
        assert_eq!(uri(&[("HTTP_HOST", "bad host")]), "/p?q=1", "kept relative when the host makes no URI");
        assert_eq!(uri(&[]), "/p?q=1");
        // Given twice (nginx's `fastcgi_param HTTP_HOST $http_host;` after the include), the last counts, as in Go.
        assert_eq!(uri(&[("HTTP_HOST", "h"), ("HTTP_HOST", "h:8080")]), "http://h:8080/p?q=1");
        let req = request(&params(&[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/"), ("HTTP_HOST", "h"), ("HTTP_HOST", "h:8080")]), Bytes::new(), None).unwrap();
        assert_eq!(req.headers().get_all("host").iter().collect::<Vec<_>>(), ["h:8080"]);
        // What the web server sent is quoted escaped, never raw.
        let e = request(&params(&[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/a\r\nforged")]), Bytes::new(), None).unwrap_err();
        assert!(e.contains(r"/a\r\nforged") && !e.contains('\n'), "{e}");
    }
}
