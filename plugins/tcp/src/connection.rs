//! One client connection: every event goes to a PHP worker, whose reply says what to do next.
//!
//! Events are CONNECTED once, DATA for every message (the bytes up to and including the
//! delimiter) and CLOSE once when the connection ends for any reason but a failed exec. A client
//! that goes away while a worker handles its event does not hold the worker: the exec finishes
//! and the worker returns to the pool, the write fails and CLOSE follows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use rr_runtime::pool::{Payload, Pool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::codec::{self, Action, Contexts, Event};
use crate::listener::Stream;

/// A read reserves at most this much at once, so idle connections stay small whatever
/// `read_buf_size` is; the buffer grows up to `max_message_size`, and a message larger than
/// this leaves with its allocation.
const READ_RESERVE: usize = 64 * 1024;

/// Open connections by uuid, for `tcp.Close`; cancelling a token closes that connection.
#[derive(Default)]
pub struct Connections(Mutex<HashMap<String, CancellationToken>>);

impl Connections {
    /// Close connection `uuid`; false when there is none.
    pub fn close(&self, uuid: &str) -> bool {
        self.0.lock().unwrap().get(uuid).map(|t| t.cancel()).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// What one server's connections share.
pub struct Settings {
    pub server: String,
    pub delimiter: Bytes,
    pub read_chunk: usize,
    /// Bytes; a message (delimiter included) larger than this closes the connection.
    pub max_message: usize,
    pub pool: Pool,
    pub connections: Arc<Connections>,
}

/// After an event: read on, or the connection is over (with or without a CLOSE event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Read,
    Close,
    /// The exec failed: RoadRunner closes the socket without a CLOSE event.
    Drop,
}

/// Serve one accepted connection until it ends; `closed` is cancelled by `tcp.Close` and stop.
pub async fn serve(settings: Arc<Settings>, stream: Box<dyn Stream>, remote_addr: String, closed: CancellationToken) {
    let uuid = uuid::Uuid::new_v4().to_string();
    settings.connections.0.lock().unwrap().insert(uuid.clone(), closed.clone());
    let contexts = Contexts::new(&remote_addr, &settings.server, &uuid);
    let mut conn = Conn { contexts, settings: &settings, stream, closed, uuid: &uuid, remote_addr: &remote_addr };
    let next = conn.run().await;
    // The socket closes before the worker hears of it, as in RoadRunner.
    let _ = conn.stream.shutdown().await;
    drop(conn.stream);
    if next == Next::Close {
        // Its reply is not acted on: the socket is closed already.
        if let Err(e) = settings.pool.exec(Payload::new(0, conn.contexts.get(Event::Close), Bytes::new())).await {
            tracing::error!(target: "tcp", server = %settings.server, error = %e, "execute error (CLOSE event)");
        }
    }
    settings.connections.0.lock().unwrap().remove(&uuid);
}

struct Conn<'a> {
    contexts: Contexts,
    settings: &'a Settings,
    stream: Box<dyn Stream>,
    closed: CancellationToken,
    uuid: &'a str,
    remote_addr: &'a str,
}

impl Conn<'_> {
    async fn run(&mut self) -> Next {
        let mut next = self.event(Event::Connected, Bytes::new()).await;
        let mut buffer = BytesMut::new();
        let max = self.settings.max_message;
        while next == Next::Read {
            // Never more than one byte over the limit is read, so no message over it is kept.
            let room = (max + 1).saturating_sub(buffer.len());
            buffer.reserve(READ_RESERVE.min(self.settings.read_chunk).min(room));
            let mut chunk = (&mut self.stream).take(self.settings.read_chunk.min(room) as u64);
            let read = tokio::select! {
                read = chunk.read_buf(&mut buffer) => read,
                _ = self.closed.cancelled() => return Next::Close,
            };
            next = match read {
                // The client is gone; what it sent without a delimiter is still a message.
                Ok(0) if !buffer.is_empty() => match self.event(Event::Data, take_message(&mut buffer)).await {
                    Next::Drop => Next::Drop,
                    _ => Next::Close,
                },
                Ok(0) => Next::Close,
                Ok(_) if buffer.len() > max => {
                    tracing::warn!(
                        target: "tcp", server = %self.settings.server, uuid = %self.uuid, remote_addr = %self.remote_addr,
                        "a message is larger than max_message_size ({max} bytes); closing the connection (raise `tcp.max_message_size`, or check the client sends the delimiter)"
                    );
                    Next::Close
                }
                Ok(_) if codec::is_message(&buffer, &self.settings.delimiter) => self.event(Event::Data, take_message(&mut buffer)).await,
                Ok(_) => Next::Read,
                Err(e) => {
                    tracing::debug!(target: "tcp", error = %e, "read failed");
                    Next::Close
                }
            };
        }
        next
    }

    /// One exec, then the reply's action.
    async fn event(&mut self, event: Event, body: Bytes) -> Next {
        let reply = match self.settings.pool.exec(Payload::new(0, self.contexts.get(event), body)).await {
            Ok(reply) if reply.stream.is_some() => {
                tracing::error!(target: "tcp", server = %self.settings.server, "execute error: streaming is not supported");
                return Next::Drop;
            }
            Ok(reply) => reply.payload,
            Err(e) => {
                tracing::error!(target: "tcp", server = %self.settings.server, error = %e, "execute error");
                return Next::Drop;
            }
        };
        // Closed by `tcp.Close` or stop while the worker ran: nothing more goes out.
        if self.closed.is_cancelled() {
            return Next::Close;
        }
        let action = Action::parse(&reply.context);
        if matches!(action, Action::Write | Action::WriteClose) {
            // A client that never reads must not hold up `tcp.Close` or stop.
            let written = tokio::select! {
                written = self.stream.write_all(&reply.body) => written.is_ok(),
                _ = self.closed.cancelled() => false,
            };
            if !written {
                return Next::Close;
            }
        }
        match action {
            Action::Write | Action::Continue => Next::Read,
            Action::WriteClose | Action::Close => Next::Close,
        }
    }
}

/// The message in `buffer`. A large one takes its allocation along (freed with the worker's
/// payload), so the next message starts small again.
fn take_message(buffer: &mut BytesMut) -> Bytes {
    let message = buffer.split().freeze();
    if message.len() > READ_RESERVE {
        *buffer = BytesMut::new();
    }
    message
}
