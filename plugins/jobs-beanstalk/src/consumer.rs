//! The consumer task of one pipeline. It owns the connection that watches the tube, because
//! beanstalkd lets only the reserving connection delete, release, bury or touch a job: the
//! acknowledgers send their settlements here.
//!
//! beanstalkd answers a connection's commands in order, so a blocking `reserve-with-timeout`
//! would hold settlements back: the task blocks only while it holds no reservation, and polls
//! (`reserve-with-timeout 0`) while jobs are in flight. After a reconnect the server has put the
//! jobs of the old connection back; reserving one that is still running here only renews it,
//! so a job is not handed to a second worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rr_runtime::jobs::{Acknowledger, Delivery, Inbox, Job};
use tokio::sync::{mpsc, oneshot};

use crate::client::{self, Conn};
use crate::proto::{Command, Reply};
use crate::{Ack, AutoAcked, Inner, gob};

pub(crate) enum Cmd {
    Resume(Inbox),
    Pause,
    Settle { id: u64, how: Settle, done: oneshot::Sender<rr_runtime::jobs::JobsResult<()>> },
}

pub(crate) enum Settle {
    Delete,
    Release { delay: u32 },
    Bury,
}

/// How often to look for new jobs while others are in flight.
const POLL: Duration = Duration::from_millis(50);

/// A reservation not settled yet.
struct Held {
    renewed: Instant,
    pri: u32,
}

struct Consumer {
    inner: Arc<Inner>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    conn: Option<Conn>,
    inbox: Option<Inbox>,
    held: HashMap<u64, Held>,
}

pub(crate) async fn run(inner: Arc<Inner>, rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut c = Consumer { inner, rx, conn: None, inbox: None, held: HashMap::new() };
    c.run().await;
    *c.inner.commands.lock().unwrap() = None;
}

impl Consumer {
    fn touch_period(&self) -> Duration {
        Duration::from_millis(self.inner.ttr as u64 * 500)
    }

    async fn run(&mut self) {
        let stopped = self.inner.stopped.clone();
        loop {
            if stopped.is_cancelled() {
                // Settlements sent before the stop still reach the broker.
                while let Ok(cmd) = self.rx.try_recv() {
                    self.handle(cmd).await;
                }
                return;
            }
            // Settlements first: they wait behind every reserve on this connection.
            while let Ok(cmd) = self.rx.try_recv() {
                self.handle(cmd).await;
            }
            self.touch_due().await;
            let period = self.touch_period();
            let Some(inbox) = self.inbox.clone() else {
                tokio::select! {
                    Some(cmd) = self.rx.recv() => self.handle(cmd).await,
                    _ = tokio::time::sleep(period) => {}
                    _ = stopped.cancelled() => {}
                }
                continue;
            };
            let blocking = self.held.is_empty();
            let reply = if blocking {
                if !self.connect().await {
                    continue;
                }
                let reserve = Command::ReserveWithTimeout(self.inner.reserve_timeout);
                let Some(conn) = self.conn.as_mut() else { continue };
                tokio::select! {
                    r = conn.call(&reserve) => r,
                    Some(cmd) = self.rx.recv() => {
                        // The reserve may be half done: close the connection (the server puts
                        // back a job it reserved on it) and take a new one next time.
                        self.conn = None;
                        self.handle(cmd).await;
                        continue;
                    }
                    _ = stopped.cancelled() => continue,
                }
            } else {
                self.exec(&Command::ReserveWithTimeout(0)).await
            };
            match reply {
                Ok(Reply::Reserved { id, body }) => self.deliver(inbox, id, body).await,
                Ok(Reply::Line(l)) if l == "TIMED_OUT" => {
                    if !blocking {
                        tokio::select! {
                            Some(cmd) = self.rx.recv() => self.handle(cmd).await,
                            _ = tokio::time::sleep(POLL) => {}
                            _ = stopped.cancelled() => {}
                        }
                    }
                }
                Ok(Reply::Line(l)) if l == "DEADLINE_SOON" => {
                    let all: Vec<u64> = self.held.keys().copied().collect();
                    self.touch(all).await;
                }
                Ok(other) => {
                    tracing::error!(target: "jobs", pipeline = %self.inner.name, reply = ?other, "beanstalk: unexpected reply to reserve");
                    self.conn = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::warn!(target: "jobs", pipeline = %self.inner.name, error = %e, "beanstalk: consumer connection lost; reconnecting");
                    self.conn = None;
                }
            }
        }
    }

    /// Hand a reserved job to the jobs plugin, settling others while the inbox is full.
    async fn deliver(&mut self, inbox: Inbox, id: u64, body: Vec<u8>) {
        if let Some(h) = self.held.get_mut(&id) {
            h.renewed = Instant::now();
            return;
        }
        let job = self.job(id, body);
        let pri = self.inner.beanstalk_priority(&job);
        let acker: Box<dyn Acknowledger> = if job.auto_ack {
            if let Err(e) = self.exec(&Command::Delete(id)).await {
                tracing::warn!(target: "jobs", pipeline = %self.inner.name, id = %job.id, error = %e, "beanstalk: cannot delete an auto_ack job");
            }
            Box::new(AutoAcked)
        } else {
            self.held.insert(id, Held { renewed: Instant::now(), pri });
            Box::new(Ack { inner: self.inner.clone(), id, job: job.clone() })
        };
        let delivery = Delivery { job, driver: "beanstalk", queue: self.inner.tube.clone(), acker };
        let period = self.touch_period();
        let send = inbox.send(delivery);
        tokio::pin!(send);
        loop {
            tokio::select! {
                sent = &mut send => {
                    if sent.is_err() {
                        self.settle(id, Settle::Release { delay: 0 }).await.ok();
                    }
                    return;
                }
                Some(cmd) = self.rx.recv() => self.handle(cmd).await,
                _ = tokio::time::sleep(period) => self.touch_due().await,
            }
            if self.inbox.is_none() || self.inner.stopped.is_cancelled() {
                // Paused while waiting for room: the job goes back to the tube.
                self.settle(id, Settle::Release { delay: 0 }).await.ok();
                return;
            }
        }
    }

    fn job(&self, id: u64, body: Vec<u8>) -> Job {
        let inner = &self.inner;
        match gob::decode(&body) {
            Ok(item) => {
                let options = item.options.unwrap_or_default();
                Job {
                    id: item.ident,
                    name: item.job,
                    payload: item.payload.into(),
                    headers: item.headers,
                    pipeline: inner.name.clone(),
                    priority: if options.priority != 0 { options.priority } else { inner.priority },
                    delay: 0,
                    auto_ack: options.auto_ack,
                    ..Default::default()
                }
            }
            // Put by something other than RoadRunner: the raw body, as RoadRunner does.
            Err(_) => Job { id: id.to_string(), name: "deduced_by_rr".into(), payload: body.into(), pipeline: inner.name.clone(), priority: inner.priority, ..Default::default() },
        }
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Resume(inbox) => self.inbox = Some(inbox),
            Cmd::Pause => self.inbox = None,
            Cmd::Settle { id, how, done } => {
                let _ = done.send(self.settle(id, how).await.map_err(Into::into));
            }
        }
    }

    async fn settle(&mut self, id: u64, how: Settle) -> Result<(), String> {
        let pri = self.held.remove(&id).map(|h| h.pri).unwrap_or(self.inner.tube_priority);
        let (cmd, ok) = match how {
            Settle::Delete => (Command::Delete(id), "DELETED"),
            Settle::Release { delay } => (Command::Release { id, pri, delay }, "RELEASED"),
            Settle::Bury => (Command::Bury { id, pri }, "BURIED"),
        };
        match self.exec(&cmd).await {
            Ok(Reply::Line(l)) if l == ok => Ok(()),
            Ok(Reply::Line(l)) if l == "NOT_FOUND" => {
                // The reservation was lost with a connection: the server put the job back and
                // another consumer has it (a release or bury: it runs again, at least once).
                tracing::warn!(target: "jobs", pipeline = %self.inner.name, beanstalk_id = id, "beanstalk: `{}`: the job is no longer reserved here", client::short(&cmd));
                Ok(())
            }
            Ok(other) => Err(format!("beanstalk: `{}` answered {other:?}", client::short(&cmd))),
            Err(e) => Err(format!("beanstalk: `{}` failed: {e}", client::short(&cmd))),
        }
    }

    /// Renew reservations older than half the TTR, so long jobs keep them.
    async fn touch_due(&mut self) {
        let period = self.touch_period();
        let due: Vec<u64> = self.held.iter().filter(|(_, h)| h.renewed.elapsed() >= period).map(|(id, _)| *id).collect();
        self.touch(due).await;
    }

    async fn touch(&mut self, ids: Vec<u64>) {
        for id in ids {
            if let Err(e) = self.exec(&Command::Touch(id)).await {
                tracing::warn!(target: "jobs", pipeline = %self.inner.name, beanstalk_id = id, error = %e, "beanstalk: cannot touch a reserved job");
            }
            if let Some(h) = self.held.get_mut(&id) {
                h.renewed = Instant::now();
            }
        }
    }

    /// One command on the consumer connection; a broken connection is dialled again once.
    async fn exec(&mut self, cmd: &Command<'_>) -> std::io::Result<Reply> {
        let mut attempt = 0;
        loop {
            if !self.connect().await {
                return Err(std::io::Error::other("the pipeline is stopping"));
            }
            match self.conn.as_mut().expect("connected").call(cmd).await {
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    self.conn = None;
                    attempt += 1;
                    if attempt == 2 {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Dial and watch only the tube, retrying with backoff; false once the pipeline stops.
    async fn connect(&mut self) -> bool {
        let mut backoff = Duration::from_millis(100);
        while self.conn.is_none() {
            let inner = &self.inner;
            let dial = async {
                let mut c = Conn::connect(&inner.addr, inner.dial_timeout).await?;
                c.expect(&Command::Watch(&inner.tube), "WATCHING").await?;
                if inner.tube != "default" {
                    c.expect(&Command::Ignore("default"), "WATCHING").await?;
                }
                Ok::<_, std::io::Error>(c)
            };
            match dial.await {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    tracing::warn!(target: "jobs", pipeline = %inner.name, error = %e, "beanstalk: cannot connect to {}; retrying in {backoff:?}", inner.addr);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = inner.stopped.cancelled() => return false,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        true
    }
}
