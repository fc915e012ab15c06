//! The goridge v3 frame codec (PROTOCOL.md §1): pure code on byte buffers, no I/O.
//!
//! `decode` returns `Ok(None)` while the buffer holds less than one whole frame, so the same
//! function serves pipes, sockets and the fuzzer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Flags (byte 1).
pub const CONTROL: u8 = 0x01;
pub const CODEC_RAW: u8 = 0x04;
pub const CODEC_JSON: u8 = 0x08;
pub const CODEC_MSGPACK: u8 = 0x10;
pub const CODEC_GOB: u8 = 0x20;
pub const ERROR: u8 = 0x40;
pub const CODEC_PROTO: u8 = 0x80;

/// Stream bits (byte 10).
pub const STREAM: u8 = 0x01;
pub const STOP: u8 = 0x02;
pub const PING: u8 = 0x04;
pub const PONG: u8 = 0x08;

/// Header without options.
pub const HEADER_LEN: usize = 12;
/// Go refuses more than 10 options; so do we.
pub const MAX_OPTIONS: usize = 10;

/// One goridge frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub flags: u8,
    pub byte10: u8,
    pub options: Vec<u32>,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("validation failed on the message sent to STDOUT, see: https://docs.roadrunner.dev/error-codes/stdout-crc, invalid message: {0}")]
    Crc(String),
    #[error("invalid frame header length {0} (must be 3..=13 words), invalid message: {1}")]
    HeaderLength(u8, String),
    #[error("the worker printed \"Could not open input file\": check server.command, invalid message: {0}")]
    CouldNotOpen(String),
    #[error("the frame announces a payload of {declared} bytes, over the limit of {max} bytes")]
    TooLarge { declared: usize, max: usize },
    #[error("the peer closed the connection in the middle of a frame: {received} of {} bytes arrived", expected_len(*.expected))]
    Truncated { received: usize, expected: Option<usize> },
}

fn expected_len(expected: Option<usize>) -> String {
    expected.map_or_else(|| format!("at least {HEADER_LEN}"), |n| n.to_string())
}

impl Frame {
    pub fn new(flags: u8, options: Vec<u32>, payload: impl Into<Bytes>) -> Self {
        Frame { flags, byte10: 0, options, payload: payload.into() }
    }

    /// A data frame: `context ‖ body` with the context length as the only option (§2.5).
    pub fn data(flags: u8, context: &[u8], body: &[u8]) -> Self {
        let mut payload = BytesMut::with_capacity(context.len() + body.len());
        payload.extend_from_slice(context);
        payload.extend_from_slice(body);
        Frame::new(flags, vec![context.len() as u32], payload.freeze())
    }

    /// A header-only frame carrying only stream bits (STOP, PONG).
    pub fn signal(byte10: u8) -> Self {
        Frame { flags: 0, byte10, options: Vec::new(), payload: Bytes::new() }
    }

    pub fn is(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn has_bit(&self, bit: u8) -> bool {
        self.byte10 & bit != 0
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 * self.options.len() + self.payload.len()
    }

    /// Append the whole frame to `out`, so it can go out in one write (§1.8).
    pub fn encode(&self, out: &mut BytesMut) {
        assert!(self.options.len() <= MAX_OPTIONS, "goridge frames carry at most 10 options");
        out.reserve(self.encoded_len());
        let mut head = [0u8; 6];
        head[0] = 0x10 | (3 + self.options.len() as u8);
        head[1] = self.flags;
        head[2..6].copy_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.put_slice(&head);
        out.put_u32_le(crc32fast::hash(&head));
        out.put_u8(self.byte10);
        out.put_u8(0);
        for option in &self.options {
            out.put_u32_le(*option);
        }
        out.put_slice(&self.payload);
    }

    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}

/// Decode one frame from the front of `buf`; `Ok(None)` when more bytes are needed.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    decode_limited(buf, u32::MAX as usize)
}

/// [`decode`], refusing a header that announces more than `max_payload` bytes as soon as it
/// arrives, before any of the payload is buffered.
pub fn decode_limited(buf: &mut BytesMut, max_payload: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if &buf[..HEADER_LEN] == b"Could not op" {
        return Err(FrameError::CouldNotOpen(printable(buf)));
    }
    let words = buf[0] & 0x0F;
    if !(3..=13).contains(&words) {
        return Err(FrameError::HeaderLength(words, printable(buf)));
    }
    let crc = u32::from_le_bytes(buf[6..10].try_into().unwrap());
    if crc32fast::hash(&buf[..6]) != crc {
        return Err(FrameError::Crc(printable(buf)));
    }
    let n_options = words as usize - 3;
    let payload_len = u32::from_le_bytes(buf[2..6].try_into().unwrap()) as usize;
    if payload_len > max_payload {
        return Err(FrameError::TooLarge { declared: payload_len, max: max_payload });
    }
    let total = HEADER_LEN + 4 * n_options + payload_len;
    if buf.len() < total {
        // Grow toward the declared size, but never trust it for a huge allocation up front:
        // a peer may announce 4 GiB and send nothing (found by the fuzzer).
        buf.reserve((total - buf.len()).min(1 << 20));
        return Ok(None);
    }
    let flags = buf[1];
    let byte10 = buf[10];
    buf.advance(HEADER_LEN);
    let options = (0..n_options).map(|_| buf.get_u32_le()).collect();
    let payload = buf.split_to(payload_len).freeze();
    Ok(Some(Frame { flags, byte10, options, payload }))
}

/// What is wrong with `rest`, bytes a relay could not take as a frame: an error `decode` names,
/// a frame cut short (the peer closed mid-frame), or garbage.
pub fn unfinished(rest: &[u8]) -> FrameError {
    if let Err(e) = decode(&mut BytesMut::from(rest)) {
        return e;
    }
    if rest.len() >= HEADER_LEN {
        let words = (rest[0] & 0x0F) as usize;
        let payload_len = u32::from_le_bytes(rest[2..6].try_into().unwrap()) as usize;
        return FrameError::Truncated { received: rest.len(), expected: Some(4 * words + payload_len) };
    }
    match rest.first() {
        Some(b) if b >> 4 == 1 && (3..=13).contains(&(b & 0x0F)) => FrameError::Truncated { received: rest.len(), expected: None },
        _ => FrameError::Crc(printable(rest)),
    }
}

/// The offending bytes, shown as text where printable (garbage on stdout is usually text).
pub fn printable(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(512)];
    String::from_utf8_lossy(shown).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    fn check(frame: Frame, expected: Vec<u8>) {
        assert_eq!(frame.to_bytes().to_vec(), expected, "encoding of {frame:?}");
        let mut buf = BytesMut::from(&expected[..]);
        assert_eq!(decode(&mut buf).unwrap(), Some(frame));
        assert!(buf.is_empty());
    }

    fn with(head: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = hex(head);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn vector_pid_request() {
        check(
            Frame::new(CONTROL | CODEC_JSON, vec![], &b"{\"pid\":1234}"[..]),
            with("13 09 0C 00 00 00 5F 0C 46 73 00 00", b"{\"pid\":1234}"),
        );
    }

    #[test]
    fn vector_pid_reply() {
        check(
            Frame::new(CONTROL, vec![], &b"{\"pid\":5678}"[..]),
            with("13 01 0C 00 00 00 9E 47 36 43 00 00", b"{\"pid\":5678}"),
        );
    }

    #[test]
    fn vector_stop_control() {
        check(
            Frame::new(CONTROL | CODEC_JSON, vec![], &b"{\"stop\":true}"[..]),
            with("13 09 0D 00 00 00 3A 6B FA CB 00 00", b"{\"stop\":true}"),
        );
    }

    #[test]
    fn vector_stream_stop_and_pong() {
        check(Frame::signal(STOP), hex("13 00 00 00 00 00 96 D1 80 34 02 00"));
        check(Frame::signal(PONG), hex("13 00 00 00 00 00 96 D1 80 34 08 00"));
    }

    #[test]
    fn vector_error() {
        check(Frame::new(ERROR, vec![], &b"boom"[..]), hex("13 40 04 00 00 00 88 1E 11 E3 00 00 62 6F 6F 6D"));
    }

    #[test]
    fn vector_worker_stop_request() {
        check(
            Frame::data(0, b"{\"stop\":true}", b""),
            with("14 00 0D 00 00 00 F3 39 EF DB 00 00 0D 00 00 00", b"{\"stop\":true}"),
        );
    }

    #[test]
    fn vector_raw_data_frame() {
        check(
            Frame::data(CODEC_RAW, b"{\"id\":\"1\"}", b"BODY"),
            hex("14 04 0E 00 00 00 DD 30 DA 3C 00 00 0A 00 00 00 7B 22 69 64 22 3A 22 31 22 7D 42 4F 44 59"),
        );
    }

    #[test]
    fn vector_stream_ping() {
        let mut frame = Frame::data(0, b"", b"");
        frame.byte10 = STREAM | PING;
        check(frame, hex("14 00 00 00 00 00 2E E1 85 29 05 00 00 00 00 00"));
    }

    #[test]
    fn vector_rpc_request_response_error() {
        check(
            Frame::new(CODEC_JSON, vec![1, 13], &b"informer.Listtrue"[..]),
            with("15 08 11 00 00 00 B0 49 0C 3A 00 00 01 00 00 00 0D 00 00 00", b"informer.Listtrue"),
        );
        check(
            Frame::new(CODEC_JSON, vec![1, 13], &b"informer.List[\"http\",\"jobs\"]"[..]),
            with("15 08 1C 00 00 00 6D 91 66 C8 00 00 01 00 00 00 0D 00 00 00", b"informer.List[\"http\",\"jobs\"]"),
        );
        check(
            Frame::new(CODEC_JSON | ERROR, vec![7, 7], &b"kv.MGetrpc_mget: no such storage: foo"[..]),
            with("15 48 25 00 00 00 0F 7E B6 1D 00 00 07 00 00 00 07 00 00 00", b"kv.MGetrpc_mget: no such storage: foo"),
        );
    }

    #[test]
    fn incomplete_input_waits_for_more() {
        let full = Frame::data(CODEC_RAW, b"ctx", b"body").to_bytes();
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(decode(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed at {cut}");
        }
    }

    #[test]
    fn two_frames_back_to_back() {
        let mut buf = Frame::signal(PONG).to_bytes();
        Frame::new(ERROR, vec![], &b"x"[..]).encode(&mut buf);
        assert_eq!(decode(&mut buf).unwrap().unwrap().byte10, PONG);
        assert_eq!(decode(&mut buf).unwrap().unwrap().payload, &b"x"[..]);
        assert_eq!(decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn garbage_fails_crc_and_names_the_bytes() {
        let mut buf = BytesMut::from(&b"hello world from php echo\n"[..]);
        let err = decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::Crc(_)));
        assert!(err.to_string().contains("hello world from php echo"), "{err}");
    }

    #[test]
    fn could_not_open_is_recognised() {
        let mut buf = BytesMut::from(&b"Could not open input file: worker.php\n"[..]);
        let err = decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::CouldNotOpen(_)));
        assert!(err.to_string().contains("worker.php"));
    }

    #[test]
    fn a_huge_declared_length_does_not_allocate_it() {
        // The fuzzer's out-of-memory input (less its chunk-size byte): a header with a valid CRC
        // announcing a multi-gigabyte payload.
        let mut buf = BytesMut::from(&[253u8, 240, 41, 240, 169, 169, 177, 116, 203, 232, 169, 169][..]);
        assert_eq!(decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 2 << 20, "capacity {}", buf.capacity());
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_from_the_header_alone() {
        let mut buf = Frame::new(CODEC_JSON, vec![1, 4], vec![b'x'; 100]).to_bytes();
        buf.truncate(HEADER_LEN);
        assert_eq!(decode_limited(&mut buf, 99), Err(FrameError::TooLarge { declared: 100, max: 99 }));
        buf = Frame::new(CODEC_JSON, vec![1, 4], vec![b'x'; 99]).to_bytes();
        assert_eq!(decode_limited(&mut buf, 99).unwrap().unwrap().payload.len(), 99);
    }

    #[test]
    fn a_cut_frame_is_truncated_and_text_is_garbage() {
        let full = Frame::new(CODEC_JSON, vec![1, 4], &b"rpc.Versiontrue"[..]).to_bytes();
        let err = unfinished(&full[..25]);
        assert_eq!(err, FrameError::Truncated { received: 25, expected: Some(full.len()) });
        assert!(err.to_string().contains("25 of 35 bytes"), "{err}");
        assert_eq!(unfinished(&full[..5]), FrameError::Truncated { received: 5, expected: None });
        assert!(matches!(unfinished(b"hello from php echo"), FrameError::Crc(_)));
    }

    #[test]
    fn bad_header_length_is_rejected() {
        let mut bytes = Frame::signal(PONG).to_bytes();
        bytes[0] = 0x12;
        assert!(matches!(decode(&mut bytes), Err(FrameError::HeaderLength(2, _))));
    }

    #[test]
    fn reader_ignores_version_and_byte11() {
        let mut bytes = Frame::new(CODEC_RAW, vec![0], &b"x"[..]).to_bytes();
        bytes[11] = 0xFF;
        assert_eq!(decode(&mut bytes).unwrap().unwrap().payload, &b"x"[..]);
    }
}
