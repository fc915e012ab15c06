//! Fuzz the goridge frame reader: any bytes, fed in any chunking, must never panic; whatever
//! decodes must re-encode to the same frame; an incomplete buffer consumes nothing.
//!
//! `cd runtime/fuzz && cargo +nightly fuzz run frame_decode -- -max_total_time=60`
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rr_runtime::frame::{self, Frame};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a chunk size, so partial reads are exercised too.
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = (chunk as usize % 17) + 1;
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match frame::decode(&mut buf) {
                Ok(Some(f)) => check_roundtrip(&f),
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete frame must not be consumed");
                    break;
                }
                Err(_) => return,
            }
        }
    }
});

fn check_roundtrip(f: &Frame) {
    if f.options.len() > frame::MAX_OPTIONS {
        return;
    }
    let mut encoded = f.to_bytes();
    let again = frame::decode(&mut encoded).expect("a re-encoded frame decodes").expect("whole");
    assert_eq!(&again, f);
    assert!(encoded.is_empty());
}
