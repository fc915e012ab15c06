//! Fuzz the HTTP → PHP payload encoding: any request target, header names and values (Host and
//! Cookie among them) must give a context PHP decodes, in both codecs: protobuf whose every
//! `string` is UTF-8, JSON that parses (`rr_http::decodable`).
//!
//! `cd plugins/http/fuzz && cargo +nightly fuzz run request_payload -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;
use rr_http::config::Codec;
use rr_http::decodable::{check, request_from};

fuzz_target!(|data: &[u8]| {
    check(request_from(data), Codec::Proto);
    check(request_from(data), Codec::Json);
});
