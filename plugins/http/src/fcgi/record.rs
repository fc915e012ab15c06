//! FastCGI 1.0 records, apart from any IO: an 8-byte header (version, type, request id, content
//! and padding lengths), then the content; PARAMS content is name-value pairs with 1- or 4-byte
//! lengths.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

pub const ROLE_RESPONDER: u16 = 1;
pub const FLAG_KEEP_CONN: u8 = 1;
/// END_REQUEST protocol statuses.
pub const REQUEST_COMPLETE: u8 = 0;
pub const UNKNOWN_ROLE: u8 = 3;

/// Largest content of one record.
pub const MAX_CONTENT: usize = 65_535;

#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: u8,
    pub id: u16,
    pub content: Bytes,
}

/// Take one whole record off the front of `buf`; `Ok(None)` until it is all there.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Record>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    if buf[0] != 1 {
        return Err(format!("FastCGI version {} is not 1", buf[0]));
    }
    let (kind, id) = (buf[1], u16::from_be_bytes([buf[2], buf[3]]));
    let (len, padding) = (u16::from_be_bytes([buf[4], buf[5]]) as usize, buf[6] as usize);
    if buf.len() < 8 + len + padding {
        buf.reserve(8 + len + padding - buf.len());
        return Ok(None);
    }
    buf.advance(8);
    let content = buf.split_to(len).freeze();
    buf.advance(padding);
    Ok(Some(Record { kind, id, content }))
}

/// Append a record of `kind` (content up to [`MAX_CONTENT`]), padded to 8 bytes as the spec advises.
pub fn encode(out: &mut BytesMut, kind: u8, id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    let padding = (8 - content.len() % 8) % 8;
    out.put_slice(&[1, kind]);
    out.put_u16(id);
    out.put_u16(content.len() as u16);
    out.put_slice(&[padding as u8, 0]);
    out.put_slice(content);
    out.put_bytes(0, padding);
}

/// END_REQUEST: application status 0 and the protocol status.
pub fn end_request(out: &mut BytesMut, id: u16, protocol_status: u8) {
    encode(out, END_REQUEST, id, &[0, 0, 0, 0, protocol_status, 0, 0, 0]);
}

/// BEGIN_REQUEST's role and flags.
pub fn begin(content: &[u8]) -> Result<(u16, u8), String> {
    match content {
        [r1, r0, flags, ..] => Ok((u16::from_be_bytes([*r1, *r0]), *flags)),
        _ => Err("FastCGI BEGIN_REQUEST record shorter than 8 bytes".into()),
    }
}

/// Name-value pairs of PARAMS (or GET_VALUES) content, as slices of it (no copies).
pub fn pairs(content: &Bytes) -> Result<Vec<(Bytes, Bytes)>, String> {
    fn length(content: &[u8], at: &mut usize) -> Option<usize> {
        let first = *content.get(*at)?;
        if first < 0x80 {
            *at += 1;
            return Some(first as usize);
        }
        let four = content.get(*at..*at + 4)?;
        *at += 4;
        Some((u32::from_be_bytes([four[0], four[1], four[2], four[3]]) & 0x7fff_ffff) as usize)
    }
    let mut pairs = Vec::with_capacity(32);
    let mut at = 0;
    while at < content.len() {
        let bad = || "FastCGI name-value pair runs past its record".to_string();
        let (name_len, value_len) = (length(content, &mut at).ok_or_else(bad)?, length(content, &mut at).ok_or_else(bad)?);
        if content.len() - at < name_len.saturating_add(value_len) {
            return Err(bad());
        }
        let value_at = at + name_len;
        pairs.push((content.slice(at..value_at), content.slice(value_at..value_at + value_len)));
        at = value_at + value_len;
    }
    Ok(pairs)
}

/// Encode name-value pairs (GET_VALUES_RESULT).
pub fn encode_pairs(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        for len in [name.len(), value.len()] {
            if len < 0x80 {
                out.push(len as u8);
            } else {
                out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
            }
        }
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_across_partial_reads() {
        let mut wire = BytesMut::new();
        encode(&mut wire, STDIN, 7, b"hello");
        encode(&mut wire, STDIN, 7, b"");
        assert_eq!(wire.len(), 8 + 8 + 8, "padded to 8 bytes");
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire {
            buf.put_u8(byte);
            while let Some(r) = parse(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got, [Record { kind: STDIN, id: 7, content: Bytes::from_static(b"hello") }, Record { kind: STDIN, id: 7, content: Bytes::new() }]);
        assert!(parse(&mut BytesMut::from(&[2u8, 1, 0, 1, 0, 0, 0, 0][..])).is_err());
    }

    #[test]
    fn pairs_with_short_and_long_lengths() {
        let long = vec![b'v'; 300];
        let encoded = encode_pairs(&[(b"REQUEST_METHOD", b"GET"), (b"HTTP_X", &long)]);
        let decoded = pairs(&Bytes::from(encoded.clone())).unwrap();
        assert_eq!(decoded[0], (Bytes::from_static(b"REQUEST_METHOD"), Bytes::from_static(b"GET")));
        assert_eq!(decoded[1].1.len(), 300);
        assert!(pairs(&Bytes::copy_from_slice(&encoded[..encoded.len() - 1])).is_err());
        assert!(pairs(&Bytes::from_static(&[0x80, 0, 0])).is_err(), "a 4-byte length cut short");
        assert!(pairs(&Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0])).is_err(), "a length past the end");
    }
}
