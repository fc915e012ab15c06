//! The PHP-facing protocol (TEMPORAL.md §3, §4), pure and apart from IO.
//!
//! One exec with a PHP process carries a [`Batch`]: the JSON [`Context`] as the goridge
//! context and a protobuf `Frame` of messages as the body. A message is a command (name,
//! JSON options, payloads, header, sometimes a failure), a response to a command id (payloads),
//! or a failure response. [`ServerCommand`] are the commands RoadRunner sends, [`PhpCommand`] the
//! ones PHP sends back inside workflow batches.

pub mod commands;
pub mod context;
pub mod json;
pub mod replay;
pub mod rpc;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message as _;

pub use commands::{PhpCommand, ServerCommand};
pub use context::Context;

use crate::proto::{self, Failure, Header, Payloads};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("the PHP worker answered with a body that is not a temporal.v1.Frame ({0}); does it use the protobuf codec (RR_CODEC=protobuf, temporal/sdk >= 2.0)?")]
    Frame(String),
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    #[error("command `{command}`: bad options: {message}")]
    Options { command: String, message: String },
    #[error("{0}")]
    Protocol(String),
}

/// A command set: names and JSON options both ways.
pub trait Commands: Sized {
    fn name(&self) -> &'static str;
    fn options(&self) -> Vec<u8>;
    fn parse(command: &str, options: &[u8]) -> Result<Self, CodecError>;
}

impl Commands for ServerCommand {
    fn name(&self) -> &'static str {
        ServerCommand::name(self)
    }
    fn options(&self) -> Vec<u8> {
        ServerCommand::options(self)
    }
    fn parse(command: &str, options: &[u8]) -> Result<Self, CodecError> {
        ServerCommand::parse(command, options)
    }
}

impl Commands for PhpCommand {
    fn name(&self) -> &'static str {
        PhpCommand::name(self)
    }
    fn options(&self) -> Vec<u8> {
        PhpCommand::options(self)
    }
    fn parse(command: &str, options: &[u8]) -> Result<Self, CodecError> {
        PhpCommand::parse(command, options)
    }
}

/// One message: its id and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<C> {
    /// A command's own id, or the id of the command a response answers. PHP answers RoadRunner's
    /// requests with id 0.
    pub id: u64,
    pub kind: Kind<C>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind<C> {
    Command(Request<C>),
    /// A result: payloads (absent for e.g. a fired timer).
    Response(Option<Payloads>),
    Failure(Failure),
}

/// A command with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<C> {
    pub command: C,
    pub payloads: Option<Payloads>,
    pub header: Option<Header>,
    /// CompleteWorkflow / UpdateValidated / UpdateCompleted with an error, Panic.
    pub failure: Option<Failure>,
}

impl<C> Request<C> {
    pub fn new(command: C) -> Self {
        Request { command, payloads: None, header: None, failure: None }
    }

    pub fn with_payloads(mut self, payloads: Payloads) -> Self {
        self.payloads = Some(payloads);
        self
    }

    pub fn with_header(mut self, header: Header) -> Self {
        self.header = Some(header);
        self
    }

    pub fn with_failure(mut self, failure: Failure) -> Self {
        self.failure = Some(failure);
        self
    }
}

impl<C> Envelope<C> {
    pub fn command(id: u64, request: Request<C>) -> Self {
        Envelope { id, kind: Kind::Command(request) }
    }

    pub fn response(id: u64, payloads: Option<Payloads>) -> Self {
        Envelope { id, kind: Kind::Response(payloads) }
    }

    pub fn failure(id: u64, failure: Failure) -> Self {
        Envelope { id, kind: Kind::Failure(failure) }
    }
}

impl<C: Commands> Envelope<C> {
    /// The protobuf message (the batch's context fields are added by [`Batch::encode`]).
    pub fn to_proto(&self) -> proto::Message {
        let mut m = proto::Message { id: self.id, ..Default::default() };
        match &self.kind {
            Kind::Command(r) => {
                m.command = r.command.name().to_string();
                m.options = r.command.options();
                m.payloads = r.payloads.clone();
                m.header = r.header.clone();
                m.failure = r.failure.clone();
            }
            Kind::Response(payloads) => m.payloads = payloads.clone(),
            Kind::Failure(f) => m.failure = Some(f.clone()),
        }
        m
    }

    /// A message as decoded; a message without a command is a response, or a failure response
    /// when it carries a failure.
    pub fn from_proto(m: proto::Message) -> Result<Self, CodecError> {
        let kind = if !m.command.is_empty() {
            Kind::Command(Request { command: C::parse(&m.command, &m.options)?, payloads: m.payloads, header: m.header, failure: m.failure })
        } else if let Some(f) = m.failure {
            Kind::Failure(f)
        } else {
            Kind::Response(m.payloads)
        };
        Ok(Envelope { id: m.id, kind })
    }
}

/// The messages of one exec and the context they share.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<C> {
    pub context: Context,
    /// The workflow worker's pid, repeated on every message (`wwpid`).
    pub wwpid: u64,
    pub messages: Vec<Envelope<C>>,
}

impl<C: Commands> Batch<C> {
    pub fn new(context: Context, messages: Vec<Envelope<C>>) -> Self {
        Batch { context, wwpid: 0, messages }
    }

    /// The frame body; every message repeats the context (fields 7-14), as RoadRunner does.
    pub fn frame(&self) -> Vec<u8> {
        let c = &self.context;
        let messages = self
            .messages
            .iter()
            .map(|e| proto::Message {
                history_length: c.history_length,
                run_id: c.rr_id.clone(),
                task_queue: c.task_queue.clone(),
                tick_time: c.tick_time.clone(),
                replay: c.replay,
                continue_as_new_suggested: c.continue_as_new_suggested,
                history_size: c.history_size,
                wwpid: self.wwpid,
                ..e.to_proto()
            })
            .collect();
        proto::Frame { messages }.encode_to_vec()
    }

    /// The goridge payload: codec flags 0, context ‖ frame.
    pub fn encode(&self) -> rr_runtime::pool::Payload {
        rr_runtime::pool::Payload::new(0, self.context.to_json(), self.frame())
    }
}

/// Decode a frame body into messages.
pub fn decode_frame<C: Commands>(body: &[u8]) -> Result<Vec<Envelope<C>>, CodecError> {
    let frame = proto::Frame::decode(body).map_err(|e| {
        let hint = match body.first() {
            Some(b'{' | b'[') => "it looks like JSON",
            _ => "protobuf decode failed",
        };
        CodecError::Frame(format!("{hint}: {e}"))
    })?;
    frame.messages.into_iter().map(Envelope::from_proto).collect()
}

/// The ids RoadRunner gives its commands: one process-wide counter (PHP ignores them, but they
/// are never reused, so a stale answer can be told apart).
#[derive(Debug, Default)]
pub struct Ids(AtomicU64);

impl Ids {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// How an activity invocation ended, from PHP's single reply message.
#[derive(Debug, Clone, PartialEq)]
pub enum ActivityOutcome {
    Completed(Payloads),
    Failed(Box<Failure>),
    /// PHP will complete it later through the client (`doNotCompleteOnReturn`).
    Pending,
}

/// The failure message PHP uses to ask for async completion.
pub const DO_NOT_COMPLETE: &str = "doNotCompleteOnReturn";

impl ActivityOutcome {
    /// Read the reply to `InvokeActivity`/`InvokeLocalActivity`: exactly one message.
    pub fn from_reply(body: &[u8]) -> Result<ActivityOutcome, CodecError> {
        let mut messages = decode_frame::<PhpCommand>(body)?;
        if messages.len() != 1 {
            return Err(CodecError::Protocol(format!("an activity reply must hold exactly one message, got {}", messages.len())));
        }
        match messages.remove(0).kind {
            Kind::Response(p) => Ok(ActivityOutcome::Completed(p.unwrap_or_default())),
            Kind::Failure(f) if f.message == DO_NOT_COMPLETE => Ok(ActivityOutcome::Pending),
            Kind::Failure(f) => Ok(ActivityOutcome::Failed(Box::new(f))),
            Kind::Command(r) => Err(CodecError::Protocol(format!("an activity reply must be a result, got command `{}`", r.command.name()))),
        }
    }
}

/// Read the reply to `GetWorkerInfo`: one message whose payloads are one JSON WorkerInfo each.
pub fn worker_infos(body: &[u8]) -> Result<Vec<json::WorkerInfo>, CodecError> {
    let mut messages = decode_frame::<PhpCommand>(body)?;
    if messages.len() != 1 {
        return Err(CodecError::Protocol(format!("the GetWorkerInfo reply must hold exactly one message, got {}", messages.len())));
    }
    let payloads = match messages.remove(0).kind {
        Kind::Response(p) => p.unwrap_or_default().payloads,
        Kind::Failure(f) => return Err(CodecError::Protocol(format!("GetWorkerInfo failed in PHP: {}", f.message))),
        Kind::Command(r) => return Err(CodecError::Protocol(format!("GetWorkerInfo was answered with command `{}`", r.command.name()))),
    };
    let infos = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| json::WorkerInfo::from_json(&p.data).map_err(|e| CodecError::Protocol(format!("GetWorkerInfo payload {i}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if infos.is_empty() {
        return Err(CodecError::Protocol(
            "worker info should contain at least 1 worker: the PHP worker registered no task queue; call $factory->newWorker(...) and register workflows or activities before $factory->run()".into(),
        ));
    }
    Ok(infos)
}
