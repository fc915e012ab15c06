//! The worker pool: a cloneable handle over N PHP workers (RR-FEATURES.md §3).

mod config;

pub use config::{Command, PoolConfig, SupervisorConfig};

use std::time::SystemTime;

use bytes::Bytes;

/// One request or response: `context ‖ body` plus the codec flag of the context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload {
    pub codec: u8,
    pub context: Bytes,
    pub body: Bytes,
}

impl Payload {
    pub fn new(codec: u8, context: impl Into<Bytes>, body: impl Into<Bytes>) -> Self {
        Payload { codec, context: context.into(), body: body.into() }
    }
}

/// Worker states and their numeric codes (PROTOCOL.md §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WorkerState {
    Inactive = 0,
    Ready = 1,
    Working = 2,
    Invalid = 3,
    Stopping = 4,
    Stopped = 5,
    Destroyed = 6,
    MaxJobsReached = 7,
    Errored = 8,
    IdleTtlReached = 9,
    TtlReached = 10,
    MaxMemoryReached = 11,
    ExecTtlReached = 12,
}

impl WorkerState {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// RoadRunner's string form (`statusStr`); 12 has none there, hence `undefined`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Inactive => "inactive",
            WorkerState::Ready => "ready",
            WorkerState::Working => "working",
            WorkerState::Invalid => "invalid",
            WorkerState::Stopping => "stopping",
            WorkerState::Stopped => "stopped",
            WorkerState::Destroyed => "destroyed",
            WorkerState::MaxJobsReached => "maxJobsReached",
            WorkerState::Errored => "errored",
            WorkerState::IdleTtlReached => "idleTTLReached",
            WorkerState::TtlReached => "ttlReached",
            WorkerState::MaxMemoryReached => "maxMemoryReached",
            WorkerState::ExecTtlReached => "undefined",
        }
    }
}

/// A snapshot of one worker for `informer.Workers`, `rr workers` and metrics.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub pid: u32,
    pub state: WorkerState,
    pub num_execs: u64,
    pub created: SystemTime,
    /// RSS in bytes.
    pub memory: u64,
    /// CPU use since the worker started, in percent of one core.
    pub cpu_percent: f64,
    pub command: String,
}

/// Why an exec failed. The texts follow RoadRunner where PHP or users match on them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("no free workers in the pool, wait timeout exceed")]
    NoFreeWorkers,
    #[error("max queue size reached")]
    QueueFull,
    /// The worker answered with an error frame (`$worker->error()`); it stays alive.
    #[error("{0}")]
    SoftError(String),
    /// The worker died or broke the protocol; it is replaced.
    #[error("worker {pid}: {message}")]
    Network { pid: u32, message: String },
    #[error("worker {pid}: execTTL timeout elapsed")]
    ExecTtl { pid: u32 },
    /// The cause and its fix are in the text (`worker::SpawnError`); the allocate-timeout link
    /// only where the handshake timed out.
    #[error("failed to spawn a worker: {0}")]
    Spawn(String),
    #[error("the worker pool is stopped")]
    Stopped,
    #[error("{0}")]
    Other(String),
}

/// A response: the first frame, and the rest when the worker streams (STREAM bit on the first).
pub struct Reply {
    pub payload: Payload,
    pub stream: Option<ReplyStream>,
}

mod exec;
mod handle;
mod slots;
mod supervisor;
mod workers;
pub use handle::{Pool, ReplyStream};
pub use slots::set_home;
