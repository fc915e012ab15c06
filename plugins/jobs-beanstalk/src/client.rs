//! One connection to beanstalkd over TCP or a unix socket: send a command, read its reply.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::proto::{self, Command, Reply};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct Conn {
    stream: Box<dyn Stream>,
    buf: BytesMut,
    out: Vec<u8>,
}

/// `tcp://host:port` or `unix:///path` (RoadRunner's `beanstalk.addr`).
pub fn parse_addr(addr: &str) -> Result<(&str, &str), String> {
    match addr.split_once("://") {
        Some((scheme @ ("tcp" | "unix"), rest)) if !rest.is_empty() => Ok((scheme, rest)),
        _ => Err(format!("`beanstalk.addr` is `{addr}`: expected `tcp://host:port` or `unix:///path/to/socket`")),
    }
}

impl Conn {
    pub async fn connect(addr: &str, timeout: Duration) -> std::io::Result<Conn> {
        let (scheme, rest) = parse_addr(addr).map_err(std::io::Error::other)?;
        let dial = async {
            Ok::<Box<dyn Stream>, std::io::Error>(if scheme == "unix" {
                Box::new(tokio::net::UnixStream::connect(rest).await?)
            } else {
                let s = tokio::net::TcpStream::connect(rest).await?;
                s.set_nodelay(true)?;
                Box::new(s)
            })
        };
        let stream = tokio::time::timeout(timeout, dial)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no connection to {addr} within {timeout:?}")))??;
        Ok(Conn { stream, buf: BytesMut::with_capacity(4096), out: Vec::new() })
    }

    pub async fn call(&mut self, cmd: &Command<'_>) -> std::io::Result<Reply> {
        self.out.clear();
        cmd.encode(&mut self.out);
        self.stream.write_all(&self.out).await?;
        loop {
            if let Some(reply) = proto::decode(&mut self.buf).map_err(std::io::Error::other)? {
                return Ok(reply);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "beanstalkd closed the connection"));
            }
        }
    }

    /// A command whose only good answer is the line `ok`; anything else is an error naming it.
    pub async fn expect(&mut self, cmd: &Command<'_>, ok: &str) -> std::io::Result<()> {
        match self.call(cmd).await? {
            Reply::Line(l) if l.starts_with(ok) => Ok(()),
            other => Err(std::io::Error::other(format!("beanstalkd answered {other:?} to {cmd:?}", cmd = short(cmd)))),
        }
    }
}

/// A command as shown in errors (without a job body).
pub fn short(cmd: &Command<'_>) -> String {
    let mut out = Vec::new();
    match cmd {
        Command::Put { pri, delay, ttr, body } => return format!("put {pri} {delay} {ttr} <{} bytes>", body.len()),
        c => c.encode(&mut out),
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}
