//! The promise that any request, however hostile its bytes, becomes a payload every PHP library
//! decodes: a protobuf context valid for `http.v1.Request` as the libraries declare it (every
//! text field a `string`, which must be UTF-8), or JSON that parses. Shared by the unit test
//! below and the fuzz target (plugins/http/fuzz), which feed it arbitrary bytes.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::Message;
use rr_runtime::frame;
use rr_runtime::http::Request;

use crate::config::{Codec, Config};

/// `http.v1.Request` with every header, cookie and attribute value read as `string` (older
/// generated PHP classes declare them so); prost's decoding refuses a `string` that is not UTF-8.
mod strict {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, tag = "1")]
        pub remote_addr: String,
        #[prost(string, tag = "2")]
        pub protocol: String,
        #[prost(string, tag = "3")]
        pub method: String,
        #[prost(string, tag = "4")]
        pub uri: String,
        #[prost(message, repeated, tag = "5")]
        pub header: Vec<Entry>,
        #[prost(message, repeated, tag = "6")]
        pub cookies: Vec<Entry>,
        #[prost(string, tag = "7")]
        pub raw_query: String,
        #[prost(bool, tag = "8")]
        pub parsed: bool,
        #[prost(string, tag = "9")]
        pub uploads: String,
        #[prost(message, repeated, tag = "10")]
        pub attributes: Vec<Entry>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Values>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Values {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }
}

/// A request from arbitrary bytes, NUL-separated: the request target, then header name and
/// value pairs (`host` and `cookie` among them when the bytes say so); parts HTTP cannot carry
/// (hyper refuses them before the plugin) are left out.
pub fn request_from(data: &[u8]) -> Request {
    let mut parts = data.split(|&b| b == 0);
    let target = parts.next().and_then(|t| http::Uri::try_from(t).ok()).unwrap_or_else(|| http::Uri::from_static("/"));
    let mut builder = http::Request::builder().uri(target);
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name), http::HeaderValue::from_bytes(value)) {
            builder = builder.header(name, value);
        }
    }
    builder.body(Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync()).expect("checked parts")
}

/// Encode `req` with `codec` and panic unless the context decodes as PHP would decode it.
pub fn check(req: Request, codec: Codec) {
    let cfg = Config { codec, ..Config::default() };
    let prepared = futures::executor::block_on(crate::request::prepare(req, &cfg)).expect("a request without a body always encodes");
    let context = prepared.payload.context;
    match codec {
        Codec::Proto | Codec::Auto => {
            assert_eq!(prepared.payload.codec, frame::CODEC_PROTO);
            if let Err(e) = strict::Request::decode(context.clone()) {
                panic!("not a valid http.v1.Request for PHP: {e}: {context:?}");
            }
        }
        Codec::Json => {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&context) {
                panic!("not JSON: {e}: {context:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that break naive UTF-8 handling: lone continuation bytes, overlong forms,
    /// surrogates, truncated sequences, code points past U+10FFFF, Latin-1 text, escapes.
    const EDGES: &[&[u8]] = &[
        b"caf\xe9", b"\x80", b"\xbf\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc3", b"\xe2\x82",
        b"\xf0\x9f\x98", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xfe\xff", b"\xff", b"\xc3\xa9\xe9", b"%A7", b"%ff%fe",
        b"a=%C3", b"%zz", b"\"quoted\xe9\"", b"x:99999", b"x/admin", b"[::1]:80", b"",
    ];

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn string(&mut self) -> Vec<u8> {
            let len = (self.next() % 24) as usize;
            // Mostly high bytes and separators, where encodings go wrong.
            let alphabet = b"ab=;%\"+ \t\x7f\x80\xa7\xc3\xe9\xed\xf0\xf4\xff";
            (0..len).map(|_| if self.next().is_multiple_of(3) { self.next() as u8 } else { alphabet[(self.next() % alphabet.len() as u64) as usize] }).collect()
        }
    }

    fn both_codecs(data: &[u8]) {
        check(request_from(data), Codec::Proto);
        check(request_from(data), Codec::Json);
    }

    #[test]
    fn every_hostile_header_cookie_host_and_target_decodes_in_php() {
        let names: [&[u8]; 5] = [b"user-agent", b"cookie", b"host", b"x-custom", b"accept-language"];
        for edge in EDGES {
            for name in names {
                both_codecs(&[b"/p?q=%ff".as_slice(), b"\0", name, b"\0", edge].concat());
            }
            both_codecs(&[b"/".as_slice(), b"\0cookie\0n=", edge, b"; ", edge, b"=v"].concat());
        }
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let mut data = random.string();
            for _ in 0..(random.next() % 4) {
                data.push(0);
                data.extend_from_slice(names[(random.next() % names.len() as u64) as usize]);
                data.push(0);
                data.extend(random.string());
            }
            both_codecs(&data);
        }
    }

    #[test]
    fn the_checker_refuses_what_php_cannot_decode() {
        let bad = crate::proto::Request { header: vec![crate::proto::Entry::new("X".into(), vec![b"caf\xe9".to_vec()])], ..Default::default() };
        assert!(strict::Request::decode(bad.encode_to_vec().as_slice()).is_err());
    }
}
