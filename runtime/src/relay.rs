//! Frame transport to a worker: pipes (the child's stdin/stdout) or a TCP/unix socket the worker
//! connects back to (PROTOCOL.md §2.2). Each frame is written with one `write_all` (§1.8).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::oneshot;

use crate::frame::{self, Frame, FrameError};

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("the worker closed its relay (the process exited or closed stdout)")]
    Closed,
}

/// Both halves of one worker's relay.
pub struct Relay {
    reader: BoxRead,
    writer: BoxWrite,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The largest payload a peer may announce; a bigger one fails before it is buffered.
    max_payload: usize,
    /// Our end of the pipe to a worker's stdin, to ask how much of what we sent is unread.
    stdin_pipe: Option<RawFd>,
}

impl Relay {
    pub fn new(reader: BoxRead, writer: BoxWrite) -> Self {
        Relay {
            reader,
            writer,
            rbuf: BytesMut::with_capacity(8 * 1024),
            wbuf: BytesMut::with_capacity(8 * 1024),
            max_payload: u32::MAX as usize,
            stdin_pipe: None,
        }
    }

    /// The pipes relay of a child process: frames to its stdin, from its stdout.
    pub fn pipes(stdout: ChildStdout, stdin: ChildStdin) -> Self {
        let fd = stdin.as_raw_fd();
        Relay { stdin_pipe: Some(fd), ..Relay::new(Box::new(stdout), Box::new(stdin)) }
    }

    /// Refuse frames announcing more than `max` payload bytes (`RelayError::Frame(TooLarge)`).
    pub fn limit_payload(&mut self, max: usize) {
        self.max_payload = max;
    }

    /// Bytes sent but not yet read by the worker, where the relay can tell (pipes only: the
    /// kernel counts what sits in the pipe, even after the worker has exited).
    pub fn unread_sent(&self) -> Option<usize> {
        let fd = self.stdin_pipe?;
        let mut queued: libc::c_int = 0;
        // SAFETY: `fd` is the pipe owned by `self.writer`, open as long as `self` lives; FIONREAD
        // writes one int.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
        (rc == 0).then_some(queued as usize)
    }

    pub async fn send(&mut self, frame: &Frame) -> Result<(), RelayError> {
        self.wbuf.clear();
        frame.encode(&mut self.wbuf);
        self.writer.write_all(&self.wbuf).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// The next frame. Garbage fails with the offending bytes; when the garbage is text (PHP
    /// `echo`), the rest of it is collected briefly so the message shows the whole line.
    pub async fn receive(&mut self) -> Result<Frame, RelayError> {
        loop {
            match frame::decode_limited(&mut self.rbuf, self.max_payload) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e @ FrameError::TooLarge { .. }) => return Err(e.into()),
                Err(_) => return Err(self.garbage().await),
            }
            if self.reader.read_buf(&mut self.rbuf).await? == 0 {
                if self.rbuf.is_empty() {
                    return Err(RelayError::Closed);
                }
                return Err(self.garbage().await);
            }
        }
    }

    /// Resolves when the peer closes its side (or the connection fails), for a server that waits
    /// on something else meanwhile; cancel-safe. Bytes the peer sends first stay for
    /// [`Relay::receive`]; past `WATCH_BUFFER` of them the watch gives up (never resolves)
    /// rather than buffer more.
    pub async fn closed(&mut self) {
        while self.rbuf.len() < WATCH_BUFFER {
            if matches!(self.reader.read_buf(&mut self.rbuf).await, Ok(0) | Err(_)) {
                return;
            }
        }
        std::future::pending().await
    }

    async fn garbage(&mut self) -> RelayError {
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            while self.rbuf.len() < 4096 {
                if matches!(self.reader.read_buf(&mut self.rbuf).await, Ok(0) | Err(_)) {
                    break;
                }
            }
        })
        .await;
        RelayError::Frame(frame::unfinished(&self.rbuf))
    }
}

/// What [`Relay::closed`] buffers of a peer that sends while it waits.
const WATCH_BUFFER: usize = 64 * 1024;

/// The largest pid reply a connecting peer may announce.
const HANDSHAKE_MAX_PAYLOAD: usize = 4096;

/// Listener for socket relays: workers connect, the server sends the pid request, and the
/// connection is handed to whoever spawned the process with the pid the worker reports (§2.3).
pub struct SocketListener {
    /// The address workers get in `RR_RELAY` (port 0 replaced by the bound port).
    pub address: String,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    claims: HashMap<u32, oneshot::Sender<Relay>>,
    arrived: HashMap<u32, Relay>,
}

impl SocketListener {
    /// Bind `tcp://host:port` or `unix://path` and start accepting.
    pub async fn bind(relay: &str, server_pid: u32) -> io::Result<Arc<SocketListener>> {
        if let Some(addr) = relay.strip_prefix("tcp://") {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let bound = listener.local_addr()?;
            let this = Arc::new(SocketListener { address: format!("tcp://{bound}"), waiting: Mutex::default() });
            let accepting = Arc::downgrade(&this);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let Some(this) = accepting.upgrade() else { break };
                    let (r, w) = stream.into_split();
                    tokio::spawn(this.handshake(Relay::new(Box::new(r), Box::new(w)), server_pid));
                }
            });
            Ok(this)
        } else if let Some(path) = relay.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
            let listener = tokio::net::UnixListener::bind(path)?;
            let this = Arc::new(SocketListener { address: relay.to_string(), waiting: Mutex::default() });
            let accepting = Arc::downgrade(&this);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let Some(this) = accepting.upgrade() else { break };
                    let (r, w) = stream.into_split();
                    tokio::spawn(this.handshake(Relay::new(Box::new(r), Box::new(w)), server_pid));
                }
            });
            Ok(this)
        } else {
            Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unknown relay `{relay}`: use `pipes`, `tcp://host:port` or `unix://path`")))
        }
    }

    async fn handshake(self: Arc<Self>, mut relay: Relay, server_pid: u32) {
        // Anyone may connect: until it proves to be a worker, a peer gets no large buffer.
        relay.limit_payload(HANDSHAKE_MAX_PAYLOAD);
        let pid = match tokio::time::timeout(Duration::from_secs(60), pid_handshake(&mut relay, server_pid)).await {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) => return tracing::warn!(error = %e, "socket relay: handshake failed"),
            Err(_) => return tracing::warn!("socket relay: a worker connected but never answered the pid request"),
        };
        relay.limit_payload(u32::MAX as usize);
        let mut waiting = self.waiting.lock().unwrap();
        match waiting.claims.remove(&pid) {
            Some(tx) => {
                let _ = tx.send(relay);
            }
            None => {
                waiting.arrived.insert(pid, relay);
            }
        }
    }

    /// The relay of the worker with this pid, once it has connected and shaken hands.
    pub async fn claim(&self, pid: u32) -> Relay {
        let rx = {
            let mut waiting = self.waiting.lock().unwrap();
            if let Some(relay) = waiting.arrived.remove(&pid) {
                return relay;
            }
            let (tx, rx) = oneshot::channel();
            waiting.claims.insert(pid, tx);
            rx
        };
        match rx.await {
            Ok(relay) => relay,
            Err(_) => std::future::pending().await,
        }
    }

    /// Forget a claim whose process went away.
    pub fn abandon(&self, pid: u32) {
        let mut waiting = self.waiting.lock().unwrap();
        waiting.claims.remove(&pid);
        waiting.arrived.remove(&pid);
    }
}

/// Send `{"pid":<server pid>}` (CONTROL|JSON) and read the worker's CONTROL reply (§2.3).
pub async fn pid_handshake(relay: &mut Relay, server_pid: u32) -> Result<u32, RelayError> {
    let request = Frame::new(frame::CONTROL | frame::CODEC_JSON, vec![], format!("{{\"pid\":{server_pid}}}"));
    relay.send(&request).await?;
    let reply = relay.receive().await?;
    if !reply.is(frame::CONTROL) {
        return Err(io::Error::other(format!(
            "unexpected response, header is missing, no CONTROL flag: {}",
            frame::printable(&reply.payload)
        ))
        .into());
    }
    #[derive(serde::Deserialize)]
    struct Pid {
        pid: i64,
    }
    match serde_json::from_slice::<Pid>(&reply.payload) {
        Ok(Pid { pid }) if pid > 0 => Ok(pid as u32),
        _ => Err(io::Error::other(format!("invalid pid reply: {}", frame::printable(&reply.payload))).into()),
    }
}
