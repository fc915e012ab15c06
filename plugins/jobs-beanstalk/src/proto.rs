//! The subset of the beanstalkd protocol the driver speaks, on bytes only (the IO is in
//! `client`): ASCII command lines ending in `\r\n`, replies that are one line, or one line with a
//! length and then that many bytes of body and `\r\n` (`RESERVED`, `OK`).

use bytes::{Buf, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Use(&'a str),
    Put { pri: u32, delay: u32, ttr: u32, body: &'a [u8] },
    Watch(&'a str),
    Ignore(&'a str),
    ReserveWithTimeout(u32),
    Delete(u64),
    Release { id: u64, pri: u32, delay: u32 },
    Bury { id: u64, pri: u32 },
    Touch(u64),
    StatsTube(&'a str),
}

impl Command<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = match self {
            Command::Use(t) => write!(out, "use {t}\r\n"),
            Command::Put { pri, delay, ttr, body } => {
                let _ = write!(out, "put {pri} {delay} {ttr} {}\r\n", body.len());
                out.extend_from_slice(body);
                write!(out, "\r\n")
            }
            Command::Watch(t) => write!(out, "watch {t}\r\n"),
            Command::Ignore(t) => write!(out, "ignore {t}\r\n"),
            Command::ReserveWithTimeout(s) => write!(out, "reserve-with-timeout {s}\r\n"),
            Command::Delete(id) => write!(out, "delete {id}\r\n"),
            Command::Release { id, pri, delay } => write!(out, "release {id} {pri} {delay}\r\n"),
            Command::Bury { id, pri } => write!(out, "bury {id} {pri}\r\n"),
            Command::Touch(id) => write!(out, "touch {id}\r\n"),
            Command::StatsTube(t) => write!(out, "stats-tube {t}\r\n"),
        };
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `INSERTED id`, `BURIED id` (a put the server buried for lack of memory) and the like.
    Id(String, u64),
    Reserved { id: u64, body: Vec<u8> },
    /// `OK` with its YAML body (stats).
    Ok(Vec<u8>),
    /// Any other one-line reply: `USING t`, `WATCHING n`, `DELETED`, `TIMED_OUT`, `NOT_FOUND`,
    /// `DEADLINE_SOON`, the errors.
    Line(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("beanstalkd sent a reply this client cannot read: {0:?}")]
pub struct BadReply(pub String);

/// Longest reply line accepted (the longest real one is a tube name of 200 bytes plus a word).
const MAX_LINE: usize = 1024;

/// Take one reply off `buf`; `Ok(None)` while it is incomplete.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Reply>, BadReply> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > MAX_LINE {
            return Err(BadReply(String::from_utf8_lossy(&buf[..64]).into_owned()));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| BadReply(String::from_utf8_lossy(&buf[..end]).into_owned()))?.to_string();
    let words: Vec<&str> = line.split(' ').collect();
    let num = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok()).ok_or_else(|| BadReply(line.clone()));
    let with_body = match words[0] {
        "RESERVED" => Some((num(1)?, num(2)? as usize)),
        "OK" => Some((0, num(1)? as usize)),
        _ => None,
    };
    let Some((id, len)) = with_body else {
        buf.advance(end + 2);
        return Ok(Some(match words[0] {
            "INSERTED" | "BURIED" if words.len() == 2 => Reply::Id(words[0].to_string(), num(1)?),
            _ => Reply::Line(line),
        }));
    };
    let total = end + 2 + len + 2;
    if buf.len() < total {
        return Ok(None);
    }
    if &buf[total - 2..total] != b"\r\n" {
        return Err(BadReply(line));
    }
    let body = buf[end + 2..total - 2].to_vec();
    buf.advance(total);
    Ok(Some(if words[0] == "OK" { Reply::Ok(body) } else { Reply::Reserved { id, body } }))
}

/// The `key: value` lines of a stats body.
pub fn stat(yaml: &[u8], key: &str) -> i64 {
    String::from_utf8_lossy(yaml)
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(':')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(c: Command) -> Vec<u8> {
        let mut out = Vec::new();
        c.encode(&mut out);
        out
    }

    #[test]
    fn commands() {
        assert_eq!(cmd(Command::Put { pri: 1, delay: 2, ttr: 30, body: b"a\r\nb" }), b"put 1 2 30 4\r\na\r\nb\r\n");
        assert_eq!(cmd(Command::ReserveWithTimeout(5)), b"reserve-with-timeout 5\r\n");
        assert_eq!(cmd(Command::Release { id: 7, pri: 0, delay: 3 }), b"release 7 0 3\r\n");
        assert_eq!(cmd(Command::StatsTube("t")), b"stats-tube t\r\n");
    }

    #[test]
    fn replies_arrive_in_pieces() {
        let wire = b"INSERTED 12\r\nRESERVED 12 4\r\na\r\nb\r\nOK 26\r\n---\ncurrent-jobs-ready: 3\n\r\nTIMED_OUT\r\n";
        // Fed one byte at a time, every reply comes out once, whole.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[*b]);
            while let Some(r) = decode(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got[0], Reply::Id("INSERTED".into(), 12));
        assert_eq!(got[1], Reply::Reserved { id: 12, body: b"a\r\nb".to_vec() });
        let Reply::Ok(yaml) = &got[2] else { panic!("{:?}", got[2]) };
        assert_eq!(stat(yaml, "current-jobs-ready"), 3);
        assert_eq!(got[3], Reply::Line("TIMED_OUT".into()));
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&mut BytesMut::from(&b"RESERVED x 4\r\n"[..])).is_err());
        assert!(decode(&mut BytesMut::from(&b"RESERVED 1 1\r\nabc"[..])).is_err());
        assert!(decode(&mut BytesMut::from(&[b'x'; 2000][..])).is_err());
    }
}
