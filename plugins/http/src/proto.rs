//! `http.v1` protobuf messages (PROTOCOL.md §3.3.1, §3.6), declared with prost's derive.

use bytes::Bytes;

/// The maps are read and written as lists of entries: on the wire a `map<string, HeaderValue>`
/// is exactly a repeated {key = 1, value = 2} message, and a list needs no hashing and keeps
/// the headers' order. Requests are built from owned text (prost copies `Vec`s into the frame
/// but would clone each `Bytes`, an allocation); responses are decoded by slicing the frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<HeaderValue>,
}

impl Entry {
    pub fn new(key: String, values: Vec<Vec<u8>>) -> Self {
        Entry { key, value: Some(HeaderValue { value: values }) }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderValue {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub value: Vec<Vec<u8>>,
}

/// A response header entry, its name and values slices of the frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SlicedEntry {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<SlicedValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SlicedValue {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub value: Vec<Bytes>,
}

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
    #[prost(bytes = "vec", tag = "9")]
    pub uploads: Vec<u8>,
    #[prost(message, repeated, tag = "10")]
    pub attributes: Vec<Entry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(int64, tag = "1")]
    pub status: i64,
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<SlicedEntry>,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    #[test]
    fn request_vector_from_protocol_md() {
        let req = Request {
            remote_addr: "127.0.0.1".into(),
            protocol: "HTTP/1.1".into(),
            method: "GET".into(),
            uri: "http://localhost/?a=1".into(),
            header: vec![Entry::new("Accept".into(), vec![b"*/*".to_vec()])],
            raw_query: "a=1".into(),
            ..Default::default()
        };
        let expected = hex("0A 09 31 32 37 2E 30 2E 30 2E 31 12 08 48 54 54 50 2F 31 2E 31 1A 03 47 45 54 22 15 68 74 74 70 3A 2F 2F 6C 6F 63 61 6C 68 6F 73 74 2F 3F 61 3D 31 2A 0F 0A 06 41 63 63 65 70 74 12 05 0A 03 2A 2F 2A 3A 03 61 3D 31");
        assert_eq!(req.encode_to_vec(), expected);
    }

    #[test]
    fn response_vector_from_protocol_md() {
        let bytes = hex("08 C8 01 12 1C 0A 0C 43 6F 6E 74 65 6E 74 2D 54 79 70 65 12 0C 0A 0A 74 65 78 74 2F 70 6C 61 69 6E");
        let resp = Response::decode(&bytes[..]).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.headers[0].key, &b"Content-Type"[..]);
        assert_eq!(resp.headers[0].value.as_ref().unwrap().value, vec![&b"text/plain"[..]]);
    }
}
