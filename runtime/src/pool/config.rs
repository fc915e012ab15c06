//! The `pool` section, with RoadRunner's keys and defaults (RR-FEATURES.md §2.4).

use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;

/// A worker command, read as RoadRunner reads its `[]string`: a string is a list split on
/// commas (`-o server.command=php,worker.php`), and a list of one item is split on spaces
/// (`command: "php worker.php"`); a longer list is used verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Line(String),
    Args(Vec<String>),
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut list = Vec::<String>::deserialize(d)?;
        Ok(if list.len() == 1 { Command::Line(list.remove(0)) } else { Command::Args(list) })
    }
}

impl Command {
    pub fn args(&self) -> Vec<String> {
        match self {
            Command::Line(s) => s.split_whitespace().map(str::to_string).collect(),
            Command::Args(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PoolConfig {
    /// Overrides `server.command` for this pool.
    pub command: Option<Command>,
    /// 0 means the number of logical CPUs.
    pub num_workers: usize,
    /// Executions before a worker is recycled (0 = unlimited); +0..14% jitter per worker.
    pub max_jobs: u64,
    /// Requests inside the pool (waiting and executing) before `max queue size reached`; 0 = unlimited.
    pub max_queue_size: u64,
    #[serde(with = "duration")]
    pub allocate_timeout: Duration,
    #[serde(with = "duration")]
    pub destroy_timeout: Duration,
    #[serde(with = "duration")]
    pub reset_timeout: Duration,
    #[serde(with = "duration")]
    pub stream_timeout: Duration,
    /// A fresh worker per request, stopped after it.
    pub debug: bool,
    pub supervisor: Option<SupervisorConfig>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            command: None,
            num_workers: 0,
            max_jobs: 0,
            max_queue_size: 0,
            allocate_timeout: Duration::from_secs(60),
            destroy_timeout: Duration::from_secs(60),
            reset_timeout: Duration::from_secs(60),
            stream_timeout: Duration::from_secs(60),
            debug: false,
            supervisor: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SupervisorConfig {
    #[serde(with = "duration")]
    pub watch_tick: Duration,
    /// Max worker lifetime (soft).
    #[serde(with = "duration")]
    pub ttl: Duration,
    /// Max idle time after first use (soft).
    #[serde(with = "duration")]
    pub idle_ttl: Duration,
    /// RSS limit in MB (soft).
    pub max_worker_memory: u64,
    /// Max time per exec (hard: the worker is killed).
    #[serde(with = "duration")]
    pub exec_ttl: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            watch_tick: Duration::from_secs(5),
            ttl: Duration::ZERO,
            idle_ttl: Duration::ZERO,
            max_worker_memory: 0,
            exec_ttl: Duration::ZERO,
        }
    }
}

impl PoolConfig {
    /// Workers to keep; debug mode keeps none.
    pub fn effective_workers(&self) -> usize {
        if self.debug {
            0
        } else if self.num_workers == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            self.num_workers
        }
    }

    pub fn exec_ttl(&self) -> Option<Duration> {
        self.supervisor.as_ref().map(|s| s.exec_ttl).filter(|d| !d.is_zero())
    }
}
