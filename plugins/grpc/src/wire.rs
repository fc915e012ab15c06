//! gRPC over HTTP/2 message framing: `[compressed u8][length u32 BE][message]`, gzip, size
//! limits with grpc-go's texts, and `grpc-timeout`.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderName;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use crate::status::{self, Status};

// gRPC's headers, named once: a `&str` name is parsed and checked again on every lookup.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub const GRPC_STATUS_DETAILS_BIN: HeaderName = HeaderName::from_static("grpc-status-details-bin");
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");

/// The status message of calls the server's stop ends.
pub const SERVER_STOPPING: &str = "the server is stopping";

/// The messages of a request body, decompressed and size-checked.
pub struct Messages {
    body: Incoming,
    buf: BytesMut,
    gzip: bool,
    max: usize,
    /// The server's stop: a request still being sent then ends at once (a client that never
    /// finishes its message must not hold the stop for the whole grace period).
    stop: CancellationToken,
}

impl Messages {
    pub fn new(body: Incoming, gzip: bool, max: usize, stop: CancellationToken) -> Messages {
        Messages { body, buf: BytesMut::new(), gzip, max, stop }
    }

    /// The next message; `None` at the end of the request. A unary call reads only the first
    /// (RoadRunner hands PHP one message per call).
    pub async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
                if len > self.max {
                    return Err(Status::new(status::RESOURCE_EXHAUSTED, format!("grpc: received message larger than max ({len} vs. {})", self.max)));
                }
                // grpc-go's `checkRecvPayload`: 0 plain, 1 compressed, anything else an error
                // (told at once, not after the rest of the message).
                let compressed = match self.buf[0] {
                    0 => false,
                    1 => true,
                    other => return Err(Status::new(status::INTERNAL, format!("grpc: received unexpected payload format {other}"))),
                };
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    let message = self.buf.split_to(len).freeze();
                    return match (compressed, self.gzip) {
                        (false, _) => Ok(Some(message)),
                        (true, true) => gunzip(&message, self.max).map(Some),
                        (true, false) => Err(Status::new(status::INTERNAL, "grpc: compressed flag set with identity or empty encoding")),
                    };
                }
            }
            // Biased: what has arrived is read before the stop is looked at.
            let frame = tokio::select! {
                biased;
                frame = self.body.frame() => frame,
                _ = self.stop.cancelled() => return Err(Status::new(status::UNAVAILABLE, SERVER_STOPPING)),
            };
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        // The common case: one DATA frame holds exactly one plain message; it
                        // is handed on without copying.
                        if self.buf.is_empty() && data.len() >= 5 && data[0] == 0 {
                            let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
                            if data.len() == 5 + len && len <= self.max {
                                return Ok(Some(data.slice(5..)));
                            }
                        }
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(Status::new(status::CANCELLED, format!("reading the request: {e}"))),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(Status::new(status::INTERNAL, "grpc: the request ends inside a message")),
            }
        }
    }
}

fn gunzip(data: &[u8], max: usize) -> Result<Bytes, Status> {
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(data).take(max as u64 + 1).read_to_end(&mut out);
    read.map_err(|e| Status::new(status::INTERNAL, format!("grpc: failed to decompress the received message: {e}")))?;
    if out.len() > max {
        return Err(Status::new(status::RESOURCE_EXHAUSTED, format!("grpc: received message after decompression larger than max ({max})")));
    }
    Ok(out.into())
}

/// One length-prefixed message, gzip-compressed when the request was.
pub fn encode_message(message: &[u8], gzip: bool, max: usize) -> Result<Bytes, Status> {
    if message.len() > max {
        return Err(Status::new(status::RESOURCE_EXHAUSTED, format!("grpc: trying to send message larger than max ({} vs. {max})", message.len())));
    }
    let compressed;
    let (flag, data) = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = enc.write_all(message);
        compressed = enc.finish().unwrap_or_default();
        (1u8, &compressed[..])
    } else {
        (0u8, message)
    };
    let mut out = BytesMut::with_capacity(5 + data.len());
    out.put_u8(flag);
    out.put_u32(data.len() as u32);
    out.put_slice(data);
    Ok(out.freeze())
}

/// `grpc-timeout`: `<at most 8 digits><H|M|S|m|u|n>`; what is wrong with it in grpc-go's words
/// (its `decodeTimeout`), which the call's INTERNAL status carries.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    if text.len() < 2 {
        return Err(format!("transport: timeout string is too short: {text:?}"));
    }
    if text.len() > 9 {
        return Err(format!("transport: timeout string is too long: {text:?}"));
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let unit: fn(u64) -> Duration = match unit {
        "H" => |n| Duration::from_secs(n * 3600),
        "M" => |n| Duration::from_secs(n * 60),
        "S" => Duration::from_secs,
        "m" => Duration::from_millis,
        "u" => Duration::from_micros,
        "n" => Duration::from_nanos,
        _ => return Err(format!("transport: timeout unit is not recognized: {text:?}")),
    };
    // Digits only, as Go's `ParseUint` (Rust's `parse` would take a `+`).
    match digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse::<u64>().ok()).flatten() {
        Some(n) => Ok(unit(n)),
        None => Err(format!("strconv.ParseUint: parsing {digits:?}: invalid syntax")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_gzip_round_trip() {
        let plain = encode_message(b"\x0a\x05hello", false, 100).unwrap();
        assert_eq!(&plain[..], b"\x00\x00\x00\x00\x07\x0a\x05hello");
        let gz = encode_message(b"hello", true, 100).unwrap();
        assert_eq!(gz[0], 1);
        assert_eq!(&gunzip(&gz[5..], 100).unwrap()[..], b"hello");
        assert_eq!(encode_message(&[0; 11], false, 10).unwrap_err().message, "grpc: trying to send message larger than max (11 vs. 10)");
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("100m"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("99999999H"), Ok(Duration::from_secs(99_999_999 * 3600)));
        assert_eq!(parse_timeout("S").unwrap_err(), r#"transport: timeout string is too short: "S""#);
        assert_eq!(parse_timeout("123456789S").unwrap_err(), r#"transport: timeout string is too long: "123456789S""#);
        assert_eq!(parse_timeout("abc").unwrap_err(), r#"transport: timeout unit is not recognized: "abc""#);
        assert_eq!(parse_timeout("-1S").unwrap_err(), r#"strconv.ParseUint: parsing "-1": invalid syntax"#);
        assert_eq!(parse_timeout("+1S").unwrap_err(), r#"strconv.ParseUint: parsing "+1": invalid syntax"#);
    }
}
