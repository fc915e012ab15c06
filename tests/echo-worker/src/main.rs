//! A goridge worker in Rust: answers the pid handshake and echoes every request (context, body
//! and codec). It speaks pipes, TCP and unix sockets as `RR_RELAY` says, with blocking I/O, so
//! benchmarks with it measure the server's own share of a round trip.

use std::io::{Read, Write};

use bytes::BytesMut;
use rr_runtime::frame::{self, Frame};

fn main() {
    let relay = std::env::var("RR_RELAY").unwrap_or_else(|_| "pipes".into());
    let result = if relay == "pipes" || relay.is_empty() {
        serve(std::io::stdin().lock(), std::io::stdout().lock())
    } else if let Some(addr) = relay.strip_prefix("tcp://") {
        let stream = std::net::TcpStream::connect(addr).expect("connect RR_RELAY");
        stream.set_nodelay(true).ok();
        serve(stream.try_clone().expect("clone socket"), stream)
    } else if let Some(path) = relay.strip_prefix("unix://") {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("connect RR_RELAY");
        serve(stream.try_clone().expect("clone socket"), stream)
    } else {
        eprintln!("unknown RR_RELAY `{relay}`");
        std::process::exit(2);
    };
    if let Err(e) = result {
        eprintln!("echo worker: {e}");
        std::process::exit(1);
    }
}

fn serve(mut input: impl Read, mut output: impl Write) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let frame = loop {
            match frame::decode(&mut buf) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            let n = input.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let reply = if frame.is(frame::CONTROL) {
            if frame.payload.windows(6).any(|w| w == b"\"stop\"") {
                return Ok(());
            }
            Frame::new(frame::CONTROL, vec![], format!("{{\"pid\":{}}}", std::process::id()))
        } else if frame.byte10 & (frame::STOP | frame::PONG) != 0 {
            continue;
        } else {
            Frame { flags: frame.flags, byte10: 0, options: frame.options, payload: frame.payload }
        };
        out.clear();
        reply.encode(&mut out);
        output.write_all(&out)?;
        output.flush()?;
    }
}
