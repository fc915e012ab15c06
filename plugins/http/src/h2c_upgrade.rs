//! HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2), which Go's h2c package, and so RoadRunner, accepts
//! beside prior knowledge. hyper's HTTP/2 server has no way to start with a request on stream 1,
//! the upgraded request, so after `101 Switching Protocols` the request is handed to it as if the
//! client had sent it: a HEADERS frame for stream 1 placed after the client's connection preface
//! and first SETTINGS frame. The response then goes out on stream 1, where the client expects it.
//!
//! Requests with a body are served as HTTP/1.1 (the server may ignore `Upgrade`), so the replayed
//! request needs no DATA frames and no flow control. The `HTTP2-Settings` header is not applied:
//! the client's SETTINGS frame right after the preface carries its settings anyway.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, header};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// SETTINGS_MAX_FRAME_SIZE's initial value, which the server has announced no other way yet.
const MAX_FRAME: usize = 16_384;

/// An HTTP/1.1 request asking to upgrade to h2c, without a body.
pub fn wanted<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    let has_token = |name, token: &str| h.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token));
    req.version() == http::Version::HTTP_11
        && has_token(header::UPGRADE, "h2c")
        && has_token(header::CONNECTION, "upgrade")
        && h.get_all("http2-settings").iter().count() == 1
        && h.get(header::CONTENT_LENGTH).is_none_or(|v| v == "0")
        && !h.contains_key(header::TRANSFER_ENCODING)
}

/// The answer that switches the connection.
pub fn switching_protocols() -> rr_runtime::http::Response {
    let mut resp = crate::response::error_response(101, None);
    resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("Upgrade"));
    resp.headers_mut().insert(header::UPGRADE, header::HeaderValue::from_static("h2c"));
    resp
}

/// The upgraded request as the client's HTTP/2 frames on stream 1: HEADERS (and CONTINUATION)
/// with END_STREAM, the fields as HPACK literals without indexing, which leave the decoder's
/// dynamic table as the real client's encoder expects it.
pub fn request_frames<B>(req: &Request<B>) -> Vec<u8> {
    let mut block = Vec::new();
    let authority = req.headers().get(header::HOST).map(|h| h.as_bytes()).or(req.uri().authority().map(|a| a.as_str().as_bytes()));
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    literal(&mut block, b":method", req.method().as_str().as_bytes());
    literal(&mut block, b":scheme", b"http");
    if let Some(authority) = authority {
        literal(&mut block, b":authority", authority);
    }
    literal(&mut block, b":path", path.as_bytes());
    for (name, value) in fields(req.headers()) {
        literal(&mut block, name.as_str().as_bytes(), value.as_bytes());
    }
    let mut frames = Vec::with_capacity(block.len() + 9);
    let chunks: Vec<&[u8]> = if block.is_empty() { vec![&[]] } else { block.chunks(MAX_FRAME).collect() };
    for (i, chunk) in chunks.iter().enumerate() {
        let (kind, mut flags) = if i == 0 { (0x1, 0x1) } else { (0x9, 0x0) }; // HEADERS + END_STREAM, CONTINUATION
        if i == chunks.len() - 1 {
            flags |= 0x4; // END_HEADERS
        }
        frames.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
        frames.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        frames.extend_from_slice(chunk);
    }
    frames
}

/// The fields HTTP/2 keeps: connection-specific ones are forbidden there (RFC 9113 §8.2.2), `Host`
/// travels as `:authority`.
fn fields(headers: &HeaderMap) -> impl Iterator<Item = (&header::HeaderName, &header::HeaderValue)> {
    headers.iter().filter(|(name, value)| match name.as_str() {
        "connection" | "upgrade" | "http2-settings" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "host" => false,
        "te" => value.as_bytes().eq_ignore_ascii_case(b"trailers"),
        _ => true,
    })
}

/// RFC 7541 §6.2.2: literal header field without indexing, new name, no Huffman coding.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    for s in [name, value] {
        integer(out, s.len(), 7);
        out.extend_from_slice(s);
    }
}

/// RFC 7541 §5.1 with an N-bit prefix (the flag bits of the first byte are 0 here).
fn integer(out: &mut Vec<u8>, mut n: usize, prefix: u32) {
    let max = (1usize << prefix) - 1;
    if n < max {
        return out.push(n as u8);
    }
    out.push(max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128 + 128) as u8);
        n /= 128;
    }
    out.push(n as u8);
}

/// The upgraded connection's IO: reads gain `frames` after the client's preface and first frame.
pub struct Replay<T> {
    inner: T,
    /// Read from the client until `ready`, then with the frames spliced in, served from `pos`.
    buf: Vec<u8>,
    frames: Vec<u8>,
    ready: bool,
    pos: usize,
}

impl<T> Replay<T> {
    pub fn new(inner: T, frames: Vec<u8>) -> Self {
        Replay { inner, buf: Vec::new(), frames, ready: false, pos: 0 }
    }

    /// Splice once the preface and the whole first frame are in; true when reading may stop.
    fn splice(&mut self, eof: bool) -> bool {
        let (buf, head) = (&mut self.buf, PREFACE.len() + 9);
        if buf.len() >= PREFACE.len() && !buf.starts_with(PREFACE) {
            return true; // not HTTP/2: left for the HTTP/2 server to refuse
        }
        if buf.len() >= head {
            let end = head + u32::from_be_bytes([0, buf[PREFACE.len()], buf[PREFACE.len() + 1], buf[PREFACE.len() + 2]]) as usize;
            if buf.len() >= end {
                buf.splice(end..end, std::mem::take(&mut self.frames));
                return true;
            }
        }
        eof
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Replay<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while !this.ready {
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            this.buf.extend_from_slice(read.filled());
            this.ready = this.splice(read.filled().is_empty());
        }
        if this.pos == this.buf.len() {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let n = out.remaining().min(this.buf.len() - this.pos);
        out.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        if this.pos == this.buf.len() {
            this.buf = Vec::new();
            this.pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Replay<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_the_prefix_then_seven_bit_groups() {
        let enc = |n, prefix| {
            let mut out = Vec::new();
            integer(&mut out, n, prefix);
            out
        };
        assert_eq!(enc(10, 7), [10]);
        assert_eq!(enc(127, 7), [127, 0]);
        assert_eq!(enc(1337, 5), [31, 154, 10], "RFC 7541 §C.1.2");
    }

    #[test]
    fn only_bodiless_http11_upgrades_with_settings_are_taken() {
        let req = |extra: &[(&str, &str)]| {
            let mut b = Request::get("/").header("Upgrade", "h2c").header("Connection", "Upgrade, HTTP2-Settings").header("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA");
            for (k, v) in extra {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        assert!(wanted(&req(&[])));
        assert!(!wanted(&req(&[("Content-Length", "3")])));
        assert!(!wanted(&req(&[("Transfer-Encoding", "chunked")])));
        assert!(!wanted(&req(&[("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA")])), "two settings headers");
        assert!(!wanted(&Request::get("/").header("Upgrade", "websocket").header("Connection", "Upgrade").body(()).unwrap()));
    }

    #[tokio::test]
    async fn frames_follow_the_preface_and_first_frame() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(64);
        let mut replay = Replay::new(server, b"FRAMES".to_vec());
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        let sent = [PREFACE, &settings, b"NEXT"].concat();
        let write = tokio::spawn(async move {
            for byte in sent {
                client.write_all(&[byte]).await.unwrap(); // one byte at a time: every split
            }
        });
        let mut got = vec![0u8; PREFACE.len() + settings.len() + 10];
        replay.read_exact(&mut got).await.unwrap();
        write.await.unwrap();
        assert_eq!(got, [PREFACE, &settings, b"FRAMES", b"NEXT"].concat());
    }
}
