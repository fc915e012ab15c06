//! A tonic codec that passes message bytes through both ways: proxy requests go to PHP as
//! Centrifugo sent them (unknown fields included), API calls go to Centrifugo as PHP encoded them.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Is `buf` well-formed protobuf wire format (every field's tag, length and value complete)?
/// The API forwarding checks requests this far without knowing their schema, as Go's decoder
/// would reject them before the call.
pub fn well_formed(mut buf: &[u8]) -> bool {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(value);
            }
        }
        None
    }
    while !buf.is_empty() {
        let Some(key) = varint(&mut buf) else { return false };
        if key >> 3 == 0 {
            return false;
        }
        let skip = match key & 7 {
            0 => match varint(&mut buf) {
                Some(_) => 0,
                None => return false,
            },
            1 => 8,
            2 => match varint(&mut buf) {
                Some(n) => n as usize,
                None => return false,
            },
            5 => 4,
            _ => return false,
        };
        if skip > buf.len() {
            return false;
        }
        buf = &buf[skip..];
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn wire_format_check() {
        assert!(super::well_formed(b""));
        assert!(super::well_formed(b"\x0a\x04chat\x12\x02{}\x20\x01"));
        assert!(!super::well_formed(b"\x0a\x05chat"));
        assert!(!super::well_formed(b"\xff"));
        assert!(!super::well_formed(b"\x00\x01"));
        assert!(!super::well_formed(b"\x0b"));
    }
}
