//! One exec: allocate a worker, send the request, read the answer (or stream it).
//!
//! Every exec runs in its own task, so a caller that goes away never leaves a worker mid-frame:
//! the task finishes the exchange (or sends STOP and drains a stream) and puts the worker back.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::handle::ReplyStream;
use super::workers::Inner;
use super::{Payload, PoolError, Reply, WorkerState};
use crate::frame::{self, Frame};
use crate::relay::RelayError;
use crate::worker::Worker;

/// Counts a request in `queue` until the first frame of its answer is ready.
pub(super) struct QueueSlot {
    inner: Arc<Inner>,
    pub(super) depth: u64,
}

impl QueueSlot {
    pub(super) fn enter(inner: &Arc<Inner>) -> Self {
        let depth = inner.queue.fetch_add(1, Ordering::AcqRel) + 1;
        QueueSlot { inner: inner.clone(), depth }
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.inner.queue.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A worker between allocation and the end of its first answer frame. Dropped early (the
/// caller went away), it makes sure the worker is not lost: a half-written request kills it,
/// an answer still to come is read in the background.
struct InFlight {
    inner: Arc<Inner>,
    worker: Option<Worker>,
    phase: Phase,
    deadline: Option<Instant>,
}

enum Phase {
    Writing,
    Reading,
}

impl InFlight {
    /// The exchange completed normally: hand the worker back to the caller's logic.
    fn land(mut self) -> Worker {
        self.worker.take().expect("worker in flight")
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(worker) = self.worker.take() else { return };
        match self.phase {
            Phase::Writing => {
                self.inner.busy.fetch_sub(1, Ordering::SeqCst);
                self.inner.retire(worker, WorkerState::Errored, true, false);
            }
            Phase::Reading => {
                tokio::spawn(self.inner.clone().finish_abandoned(worker, self.deadline));
            }
        }
    }
}

/// What the first response frame of an exec turned out to be.
enum First {
    Reply(Payload),
    Stream(Payload),
    Soft(String),
    StopRequest,
    /// The worker broke without reading any of the request: it can go to another worker.
    Unread(String),
    Broken(String),
    ExecTtl,
}

/// How one frame read during an exec is to be treated.
enum Read {
    Data { payload: Payload, more: bool },
    Soft(String),
    StopRequest,
    Broken(String),
    ExecTtl,
}

impl Inner {
    /// Allocate, send, read the answer; retry on a worker's stop request or when the worker went
    /// away without reading the request (docs/WORKERS.md). Runs in the caller's
    /// task; if the caller goes away mid-exec, [`InFlight`] finishes the exchange in the
    /// background so the worker is never left mid-frame.
    pub(super) async fn run(self: &Arc<Self>, payload: Payload, queued: QueueSlot, answer_by: Option<Instant>) -> Result<Reply, PoolError> {
        let request = Frame::data(payload.codec, &payload.context, &payload.body);
        let request_len = request.encoded_len();
        // Retries share one allocation deadline, so workers that keep dying cannot hold a
        // request forever.
        let allocate_by = Instant::now() + self.cfg.allocate_timeout;
        loop {
            let worker = self.allocate(allocate_by).await?;
            let ttl = self.cfg.exec_ttl().map(|ttl| Instant::now() + ttl);
            // Whose limit ends a silent exec: the caller's deadline or the pool's execTTL.
            let callers = answer_by.is_some_and(|by| ttl.is_none_or(|ttl| by < ttl));
            let deadline = if callers { answer_by } else { ttl };
            worker.shared.execs.fetch_add(1, Ordering::Relaxed);
            let mut flight = InFlight { inner: self.clone(), worker: Some(worker), phase: Phase::Writing, deadline };
            let w = flight.worker.as_mut().expect("worker in flight");
            let first = match w.relay.send(&request).await {
                // The worker's end is closed: it is gone and never had the request.
                Err(e) => First::Unread(e.to_string()),
                Ok(()) => {
                    flight.phase = Phase::Reading;
                    let w = flight.worker.as_mut().expect("worker in flight");
                    match read_frame(w, deadline).await {
                        Read::Data { payload, more: false } => First::Reply(payload),
                        Read::Data { payload, more: true } => First::Stream(payload),
                        Read::Soft(m) => First::Soft(m),
                        Read::StopRequest => First::StopRequest,
                        // Still all in the pipe: it died (typically exiting after its last
                        // answer) without reading a byte of this request.
                        Read::Broken(m) if w.relay.unread_sent().is_some_and(|n| n >= request_len) => First::Unread(m),
                        Read::Broken(m) => First::Broken(m),
                        Read::ExecTtl => First::ExecTtl,
                    }
                }
            };
            let worker = flight.land();
            let pid = worker.pid();
            return match first {
                First::Reply(payload) => {
                    self.release(worker);
                    if self.has_waiters() {
                        // Let the request woken by the release reach this worker before we
                        // answer our client: the worker starts on it while our response is sent.
                        yield_once().await;
                    }
                    Ok(Reply { payload, stream: None })
                }
                First::Soft(message) => {
                    self.release(worker);
                    Err(PoolError::SoftError(message))
                }
                First::StopRequest => {
                    tracing::debug!(pool = %self.name, pid, "worker asked to stop; retrying the request on another worker");
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    self.retire(worker, WorkerState::Invalid, true, true);
                    continue;
                }
                First::Unread(message) => {
                    let tail = worker.shared.stderr_tail();
                    tracing::warn!(pool = %self.name, pid, error = %message, stderr = %tail, "worker exited without reading the request; sending it to another worker");
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    self.retire(worker, WorkerState::Errored, true, false);
                    continue;
                }
                First::Broken(message) => {
                    let shared = worker.shared.clone();
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    self.retire(worker, WorkerState::Errored, true, false);
                    let tail = shared.final_stderr_tail().await;
                    let message = if tail.is_empty() { message } else { format!("{message}; its stderr:\n{tail}") };
                    tracing::error!(pool = %self.name, pid, error = %message, "worker failed; replacing it");
                    Err(PoolError::Network { pid, message })
                }
                First::ExecTtl => {
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    self.retire(worker, WorkerState::ExecTtlReached, true, false);
                    if callers {
                        tracing::warn!(pool = %self.name, pid, "no answer by the caller's deadline; worker killed");
                    } else {
                        tracing::warn!(pool = %self.name, pid, "execTTL timeout elapsed; worker killed");
                    }
                    Err(PoolError::ExecTtl { pid })
                }
                First::Stream(payload) => {
                    let (stx, srx) = mpsc::channel(8);
                    let (stop, stop_rx) = oneshot::channel();
                    drop(queued);
                    tokio::spawn(self.clone().pump(worker, stx, Some(stop_rx), deadline));
                    Ok(Reply { payload, stream: Some(ReplyStream { rx: srx, stop: Some(stop) }) })
                }
            };
        }
    }

    /// Finish an exec whose caller went away after the request was sent.
    async fn finish_abandoned(self: Arc<Self>, mut worker: Worker, deadline: Option<Instant>) {
        match read_frame(&mut worker, deadline).await {
            Read::Data { more: false, .. } | Read::Soft(_) => self.release(worker),
            Read::Data { more: true, .. } => {
                let (stx, srx) = mpsc::channel(1);
                drop(srx);
                self.pump(worker, stx, None, deadline).await
            }
            Read::StopRequest => {
                self.busy.fetch_sub(1, Ordering::SeqCst);
                self.retire(worker, WorkerState::Invalid, true, true)
            }
            Read::Broken(_) | Read::ExecTtl => {
                self.busy.fetch_sub(1, Ordering::SeqCst);
                self.retire(worker, WorkerState::Errored, true, false)
            }
        }
    }

    /// Forward stream frames to the consumer; if it goes away, send STOP and drain (§2.10).
    /// `stop` (the consumer's [`ReplyStream::stop`]) sends STOP and keeps forwarding.
    async fn pump(self: Arc<Self>, mut worker: Worker, stx: mpsc::Sender<Result<Payload, PoolError>>, mut stop: Option<oneshot::Receiver<()>>, deadline: Option<Instant>) {
        let pid = worker.pid();
        loop {
            let read = tokio::select! {
                read = read_frame(&mut worker, deadline) => read,
                _ = stx.closed() => break,
                asked = async { stop.as_mut().expect("guarded").await }, if stop.is_some() => {
                    stop = None;
                    // A relay that fails here fails the next read, which ends the stream.
                    if asked.is_ok() {
                        let _ = worker.relay.send(&Frame::signal(frame::STOP)).await;
                    }
                    continue;
                }
            };
            let (item, done) = match read {
                Read::Data { payload, more } => (Ok(payload), !more),
                Read::Soft(message) => {
                    // An error after the first chunk ends the stream; the worker is replaced.
                    let _ = stx.send(Err(PoolError::SoftError(message))).await;
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    return self.retire(worker, WorkerState::Invalid, true, true);
                }
                Read::StopRequest | Read::Broken(_) | Read::ExecTtl => {
                    let _ = stx.send(Err(PoolError::Network { pid, message: "the worker failed in the middle of a stream".into() })).await;
                    self.busy.fetch_sub(1, Ordering::SeqCst);
                    return self.retire(worker, WorkerState::Errored, true, false);
                }
            };
            if stx.send(item).await.is_err() {
                if done {
                    return self.release(worker);
                }
                break;
            }
            if done {
                return self.release(worker);
            }
        }
        // The consumer went away mid-stream: STOP, then drain until the final frame.
        let drained = async {
            worker.relay.send(&Frame::signal(frame::STOP)).await.ok()?;
            loop {
                match read_frame(&mut worker, None).await {
                    Read::Data { more: false, .. } | Read::Soft(_) => return Some(()),
                    Read::Data { more: true, .. } => continue,
                    _ => return None,
                }
            }
        };
        match tokio::time::timeout(self.cfg.stream_timeout, drained).await {
            Ok(Some(())) => self.release(worker),
            _ => {
                tracing::warn!(pool = %self.name, pid, "worker did not end its stream after STOP within stream_timeout; killing it");
                self.busy.fetch_sub(1, Ordering::SeqCst);
                self.retire(worker, WorkerState::Errored, true, false);
            }
        }
    }
}

/// Read one answer frame, answering PINGs, within the exec deadline.
async fn read_frame(worker: &mut Worker, deadline: Option<Instant>) -> Read {
    loop {
        let received = match deadline {
            Some(at) => match tokio::time::timeout_at(at, worker.relay.receive()).await {
                Ok(r) => r,
                Err(_) => return Read::ExecTtl,
            },
            None => worker.relay.receive().await,
        };
        let frame = match received {
            Ok(f) => f,
            Err(RelayError::Closed) => return Read::Broken("the worker exited in the middle of a request".into()),
            Err(e) => return Read::Broken(e.to_string()),
        };
        if frame.has_bit(frame::PING) {
            if let Err(e) = worker.relay.send(&Frame::signal(frame::PONG)).await {
                return Read::Broken(e.to_string());
            }
        }
        if frame.is(frame::ERROR) {
            return Read::Soft(String::from_utf8_lossy(&frame.payload).into_owned());
        }
        if frame.is(frame::CONTROL) {
            continue; // a late pid reply; not an answer
        }
        if frame.options.len() != 1 {
            return Read::Broken("options length should be equal 1 (body offset)".into());
        }
        let split = frame.options[0] as usize;
        if split > frame.payload.len() {
            return Read::Broken("bad payload: context length exceeds the frame".into());
        }
        let context: Bytes = frame.payload.slice(..split);
        let body = frame.payload.slice(split..);
        if body.is_empty() && &context[..] == b"{\"stop\":true}" {
            return Read::StopRequest;
        }
        return Read::Data { payload: Payload { codec: frame.flags, context, body }, more: frame.has_bit(frame::STREAM) };
    }
}
/// Reschedule the current task behind those already woken. Unlike `tokio::task::yield_now`,
/// it does not wait for the I/O driver to be polled first (an extra `epoll_wait` per request).
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}
