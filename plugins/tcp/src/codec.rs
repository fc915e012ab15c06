//! What travels between the server and a PHP worker for one connection event, with no I/O:
//! the JSON context of a request and the bare word that opens a reply (PLUGINS-MORE.md §A).

use bytes::Bytes;
use serde::Serialize;

/// A connection event, as the `event` field names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Event {
    Connected,
    Data,
    Close,
}

/// RoadRunner's context, fields in its order: `{"remote_addr":..,"server":..,"uuid":..,"event":..}`.
#[derive(Serialize)]
struct Context<'a> {
    remote_addr: &'a str,
    server: &'a str,
    uuid: &'a str,
    event: Event,
}

/// The three contexts of one connection, encoded once when it is accepted.
#[derive(Debug, Clone)]
pub struct Contexts {
    connected: Bytes,
    data: Bytes,
    close: Bytes,
}

impl Contexts {
    pub fn new(remote_addr: &str, server: &str, uuid: &str) -> Contexts {
        let encode = |event| {
            let ctx = Context { remote_addr, server, uuid, event };
            Bytes::from(serde_json::to_vec(&ctx).expect("strings always encode"))
        };
        Contexts { connected: encode(Event::Connected), data: encode(Event::Data), close: encode(Event::Close) }
    }

    pub fn get(&self, event: Event) -> Bytes {
        match event {
            Event::Connected => self.connected.clone(),
            Event::Data => self.data.clone(),
            Event::Close => self.close.clone(),
        }
    }
}

/// What the worker asks the server to do, from the reply's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `WRITE`: send the body, keep reading.
    Write,
    /// `CONTINUE`: send nothing, keep reading.
    Continue,
    /// `WRITECLOSE`: send the body, then close.
    WriteClose,
    /// `CLOSE`, and any other word (empty included): close.
    Close,
}

impl Action {
    pub fn parse(context: &[u8]) -> Action {
        match context {
            b"WRITE" => Action::Write,
            b"CONTINUE" => Action::Continue,
            b"WRITECLOSE" => Action::WriteClose,
            _ => Action::Close,
        }
    }
}

/// Whether the bytes read so far end a message. The whole buffer is checked, so a delimiter
/// split over two reads still ends one (RoadRunner checks only the last read).
pub fn is_message(buffer: &[u8], delimiter: &[u8]) -> bool {
    !buffer.is_empty() && buffer.ends_with(delimiter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_roadrunners_json() {
        let ctx = Contexts::new("127.0.0.1:54012", "smtp", "0b6f5c3e-2a41-4d38-9c55-5a0c2f1e7d11");
        let expected = r#"{"remote_addr":"127.0.0.1:54012","server":"smtp","uuid":"0b6f5c3e-2a41-4d38-9c55-5a0c2f1e7d11","event":"CONNECTED"}"#;
        assert_eq!(ctx.get(Event::Connected), expected.as_bytes());
        // The 115-byte context of the spec's example frame.
        assert_eq!(expected.len(), 115);
        assert!(ctx.get(Event::Data).ends_with(br#""event":"DATA"}"#));
        assert!(ctx.get(Event::Close).ends_with(br#""event":"CLOSE"}"#));
    }

    #[test]
    fn names_are_escaped() {
        let ctx = Contexts::new("[::1]:1", "a\"b", "u");
        let v: serde_json::Value = serde_json::from_slice(&ctx.get(Event::Data)).unwrap();
        assert_eq!(v["server"], "a\"b");
        assert_eq!(v["remote_addr"], "[::1]:1");
    }

    #[test]
    fn reply_words() {
        assert_eq!(Action::parse(b"WRITE"), Action::Write);
        assert_eq!(Action::parse(b"CONTINUE"), Action::Continue);
        assert_eq!(Action::parse(b"WRITECLOSE"), Action::WriteClose);
        assert_eq!(Action::parse(b"CLOSE"), Action::Close);
        for other in [&b""[..], b"write", b"WRITE ", b"{\"WRITE\"}"] {
            assert_eq!(Action::parse(other), Action::Close, "{other:?}");
        }
    }

    #[test]
    fn a_message_ends_with_the_delimiter_of_the_whole_buffer() {
        assert!(is_message(b"HELO x\r\n", b"\r\n"));
        assert!(is_message(b"a\r\nb\r\n", b"\r\n"));
        assert!(!is_message(b"a\r\nb", b"\r\n"));
        // One byte read at a time: the buffer `x\r` then `x\r\n`.
        assert!(!is_message(b"x\r", b"\r\n"));
        assert!(is_message(b"x\r\n", b"\r\n"));
        assert!(is_message(b"\n", b"\n"));
        assert!(is_message(b"anything", b""));
        assert!(!is_message(b"", b""));
    }
}
