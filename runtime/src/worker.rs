//! One PHP worker process: spawn with the environment of PROTOCOL.md §2.1, handshake, one
//! request at a time, graceful stop. Its stderr is logged line by line; the tail is kept so
//! crash errors can show it.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, Command};
use tokio::sync::watch;

use crate::config::Config;
use crate::frame::{self, Frame};
use crate::pool::{WorkerInfo, WorkerState};
use crate::relay::{Relay, RelayError, SocketListener, pid_handshake};

/// How to start a worker: resolved from `server` and the owning pool.
#[derive(Clone)]
pub struct Spawner {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub uid_gid: Option<(u32, u32)>,
    /// `None` = pipes.
    pub listener: Option<Arc<SocketListener>>,
}

/// State visible to the pool, the supervisor and the informer while the worker is busy.
pub struct Shared {
    pub pid: u32,
    pub created: SystemTime,
    started: Instant,
    state: AtomicU8,
    pub execs: AtomicU64,
    /// Milliseconds since `started` of the last exec's end; 0 = never used.
    last_used: AtomicU64,
    exited: watch::Receiver<bool>,
    stderr_tail: Mutex<VecDeque<String>>,
    /// Becomes true once the worker's stderr reached EOF.
    stderr_closed: watch::Receiver<bool>,
    pub command: String,
    killed: AtomicBool,
}

impl Shared {
    pub fn state(&self) -> WorkerState {
        state_from(self.state.load(Ordering::Acquire))
    }
    pub fn set_state(&self, state: WorkerState) {
        self.state.store(state as u8, Ordering::Release)
    }
    /// Move from `from` to `to` only if still in `from`.
    pub fn transition(&self, from: WorkerState, to: WorkerState) -> bool {
        self.state.compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
    pub fn has_exited(&self) -> bool {
        *self.exited.borrow()
    }
    pub fn idle_for(&self) -> Option<Duration> {
        match self.last_used.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.started.elapsed().saturating_sub(Duration::from_millis(ms))),
        }
    }
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }
    pub fn mark_used(&self) {
        self.last_used.store(self.started.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
    }
    /// Resident memory in bytes, from /proc.
    pub fn rss(&self) -> u64 {
        proc_rss(self.pid).unwrap_or(0)
    }
    /// The last lines the worker wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
    }
    /// The stderr tail of a worker that is exiting, once its last lines (a PHP Fatal error
    /// explaining the crash) are read: waits for EOF on stderr, briefly.
    pub async fn final_stderr_tail(&self) -> String {
        let mut closed = self.stderr_closed.clone();
        let _ = tokio::time::timeout(Duration::from_millis(500), closed.wait_for(|c| *c)).await;
        self.stderr_tail()
    }
    fn log_stderr_line(&self, mut line: String) {
        tracing::info!(target: "server", pid = self.pid, "{line}");
        if line.len() > TAIL_LINE_MAX {
            let cut = (0..=TAIL_LINE_MAX).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
            line.truncate(cut);
            line.push('…');
        }
        let mut tail = self.stderr_tail.lock().unwrap();
        if tail.len() == 20 {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    pub fn kill(&self) {
        if !self.has_exited() {
            self.killed.store(true, Ordering::Relaxed);
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
    }
    pub async fn wait_exit(&self) {
        let mut rx = self.exited.clone();
        let _ = rx.wait_for(|e| *e).await;
    }
    pub fn info(&self) -> WorkerInfo {
        WorkerInfo {
            pid: self.pid,
            state: self.state(),
            num_execs: self.execs.load(Ordering::Relaxed),
            created: self.created,
            memory: self.rss(),
            cpu_percent: proc_cpu_percent(self.pid, self.started.elapsed()).unwrap_or(0.0),
            command: self.command.clone(),
        }
    }
}

fn state_from(code: u8) -> WorkerState {
    use WorkerState::*;
    [
        Inactive, Ready, Working, Invalid, Stopping, Stopped, Destroyed, MaxJobsReached, Errored, IdleTtlReached,
        TtlReached, MaxMemoryReached, ExecTtlReached,
    ]
    .get(code as usize)
    .copied()
    .unwrap_or(Errored)
}

/// A live worker: its relay plus the shared state.
pub struct Worker {
    pub shared: Arc<Shared>,
    pub relay: Relay,
    /// Per-worker `max_jobs` with jitter (0 = unlimited).
    pub max_execs: u64,
    /// The pool's I/O thread it was spawned on (`pool::set_home`); 0 without per-thread homes.
    pub home: usize,
}

/// Why a worker did not start; each names the cause and the fix (`worker_boot`).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start `{command}`: {why}")]
    Start { command: String, why: String },
    #[error("worker {pid} (`{command}`) exited before the pid handshake{}", boot_note(.stderr))]
    Exited { pid: u32, command: String, stderr: String },
    #[error("worker {pid} (`{command}`): handshake failed: {}{}", handshake_cause(.command, .error), stderr_lines(.stderr))]
    Handshake { pid: u32, command: String, error: RelayError, stderr: String },
    #[error(
        "worker {pid} (`{command}`) did not complete the pid handshake within {timeout:?} (`pool.allocate_timeout`), possible reasons: https://docs.roadrunner.dev/error-codes/allocate-timeout"
    )]
    Timeout { pid: u32, command: String, timeout: Duration },
}

/// PHP's own stderr lines, with the error among them named first.
fn boot_note(stderr: &str) -> String {
    match crate::worker_boot::php_error(stderr) {
        Some(cause) => format!(": {cause}; fix it in the worker script. PHP's last stderr lines:\n{stderr}"),
        None if stderr.is_empty() => {
            "; it wrote nothing to stderr: a worker script must start a RoadRunner worker (spiral/roadrunner-worker) and keep serving; run the command by hand to see what it does".into()
        }
        None => format!("; its last stderr lines:\n{stderr}"),
    }
}

fn stderr_lines(stderr: &str) -> String {
    if stderr.is_empty() { String::new() } else { boot_note(stderr) }
}

/// A missing worker script shows up as PHP's "Could not open input file" on the relay.
fn handshake_cause(command: &str, error: &RelayError) -> String {
    match error {
        RelayError::Frame(frame::FrameError::CouldNotOpen(seen)) => {
            crate::worker_boot::missing_script(command, seen).unwrap_or_else(|| error.to_string())
        }
        other => other.to_string(),
    }
}

impl Spawner {
    /// Start the process and complete the handshake within `timeout`.
    pub async fn spawn(&self, timeout: Duration) -> Result<Worker, SpawnError> {
        let command_text = self.args.join(" ");
        let mut cmd = Command::new(self.args.first().map(String::as_str).unwrap_or(""));
        cmd.args(self.args.iter().skip(1))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.listener.is_none() { Stdio::piped() } else { Stdio::null() })
            .stdout(if self.listener.is_none() { Stdio::piped() } else { Stdio::null() })
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        if let Some((uid, gid)) = self.uid_gid {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd.spawn().map_err(|e| SpawnError::Start {
            command: command_text.clone(),
            why: crate::worker_boot::start_failure(&self.args, &self.env, &e),
        })?;
        let pid = child.id().unwrap_or(0);
        crate::reaper::track(pid);
        let (exit_tx, exit_rx) = watch::channel(false);
        let (stderr_closed_tx, stderr_closed) = watch::channel(false);
        let shared = Arc::new(Shared {
            pid,
            created: SystemTime::now(),
            started: Instant::now(),
            state: AtomicU8::new(WorkerState::Inactive as u8),
            execs: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
            exited: exit_rx,
            stderr_tail: Mutex::new(VecDeque::new()),
            stderr_closed,
            command: command_text.clone(),
            killed: AtomicBool::new(false),
        });
        if let Some(stderr) = child.stderr.take() {
            let shared = shared.clone();
            tokio::spawn(async move {
                log_stderr(stderr, &shared).await;
                let _ = stderr_closed_tx.send(true);
            });
        }
        let pipes = match (&self.listener, child.stdin.take(), child.stdout.take()) {
            (None, Some(stdin), Some(stdout)) => Some(Relay::pipes(stdout, stdin)),
            _ => None,
        };
        // The child is reaped by this task alone; until then its pid cannot be reused, so
        // `kill(pid)` elsewhere is safe.
        tokio::spawn(async move {
            let status = child.wait().await;
            crate::reaper::untrack(pid);
            tracing::debug!(pid, ?status, "worker exited");
            let _ = exit_tx.send(true);
        });

        let handshake = async {
            let mut relay = match pipes {
                Some(relay) => relay,
                None => {
                    let listener = self.listener.as_ref().expect("socket relay");
                    let claimed = tokio::select! {
                        relay = listener.claim(pid) => Some(relay),
                        _ = shared.wait_exit() => None,
                    };
                    match claimed {
                        Some(relay) => return Ok(relay),
                        None => {
                            listener.abandon(pid);
                            return Err(SpawnError::Exited { pid, command: String::new(), stderr: String::new() });
                        }
                    }
                }
            };
            match pid_handshake(&mut relay, std::process::id()).await {
                Ok(_) => Ok(relay),
                Err(RelayError::Closed) => Err(SpawnError::Exited { pid, command: String::new(), stderr: String::new() }),
                Err(error) => Err(SpawnError::Handshake { pid, command: String::new(), error, stderr: String::new() }),
            }
        };
        let result = match tokio::time::timeout(timeout, handshake).await {
            Ok(r) => r,
            Err(_) => Err(SpawnError::Timeout { pid, command: String::new(), timeout }),
        };
        match result {
            Ok(relay) => {
                shared.set_state(WorkerState::Ready);
                Ok(Worker { shared, relay, max_execs: 0, home: 0 })
            }
            Err(err) => {
                shared.kill();
                shared.wait_exit().await;
                let tail = shared.final_stderr_tail().await;
                let command = command_text;
                Err(match err {
                    SpawnError::Exited { pid, .. } => SpawnError::Exited { pid, command, stderr: tail },
                    SpawnError::Handshake { pid, error, .. } => SpawnError::Handshake { pid, command, error, stderr: tail },
                    SpawnError::Timeout { pid, timeout, .. } => SpawnError::Timeout { pid, command, timeout },
                    other => other,
                })
            }
        }
    }
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// Ask the worker to exit (control stop, §2.9); SIGKILL after `grace`. Its pipes stay open
    /// until it exits, its output read and dropped, as RoadRunner does: a worker that asked to
    /// stop may already hold the next request, and answering it must not kill it on EPIPE.
    pub async fn stop(mut self, grace: Duration) {
        if !self.shared.has_exited() {
            let stop = Frame::new(frame::CONTROL | frame::CODEC_JSON, vec![], &b"{\"stop\":true}"[..]);
            let _ = tokio::time::timeout(Duration::from_secs(1), self.relay.send(&stop)).await;
        }
        let (relay, shared) = (&mut self.relay, &self.shared);
        let drain = async {
            while relay.receive().await.is_ok() {}
            std::future::pending::<()>().await
        };
        let exited = async {
            tokio::select! {
                _ = shared.wait_exit() => {}
                _ = drain => {}
            }
        };
        if tokio::time::timeout(grace, exited).await.is_err() {
            tracing::warn!(pid = self.shared.pid, "worker did not exit within {grace:?} after the stop request; killing it");
            self.shared.kill();
            self.shared.wait_exit().await;
        }
    }
}

/// The longest stderr line logged as one record; a longer one is logged in pieces this long.
const STDERR_LINE_MAX: usize = 64 * 1024;

/// How much of one line the stderr tail keeps for error messages.
const TAIL_LINE_MAX: usize = 2 * 1024;

/// Log a worker's stderr line by line until EOF. Bytes that are not UTF-8 are shown as U+FFFD
/// rather than ending the reader: the next line may be the Fatal error that explains a crash.
async fn log_stderr(mut stderr: ChildStderr, shared: &Shared) {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        while let Some(line) = split_line(&mut buf) {
            shared.log_stderr_line(line);
        }
        buf.reserve(8 * 1024);
        if matches!(stderr.read_buf(&mut buf).await, Ok(0) | Err(_)) {
            break;
        }
    }
    if !buf.is_empty() {
        shared.log_stderr_line(String::from_utf8_lossy(&buf).into_owned());
    }
}

/// Split the first line off `buf` (without its `\n` or `\r\n`), or the first
/// `STDERR_LINE_MAX` bytes of a longer one; `None` while a short line is still incomplete.
fn split_line(buf: &mut BytesMut) -> Option<String> {
    let window = &buf[..buf.len().min(STDERR_LINE_MAX)];
    let (end, skip) = match window.iter().position(|&b| b == b'\n') {
        Some(i) => (i, 1),
        None if buf.len() >= STDERR_LINE_MAX => (STDERR_LINE_MAX, 0),
        None => return None,
    };
    let raw = buf.split_to(end + skip);
    let text = &raw[..end];
    let text = if skip == 1 { text.strip_suffix(b"\r").unwrap_or(text) } else { text };
    Some(String::from_utf8_lossy(text).into_owned())
}

/// RSS of a process in bytes.
pub fn proc_rss(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}

/// CPU time of a process over the `alive` time it has run, in percent (gopsutil's CPUPercent).
pub fn proc_cpu_percent(pid: u32, alive: Duration) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let secs = alive.as_secs_f64();
    (secs > 0.0).then(|| ticks as f64 / hz / secs * 100.0)
}

/// Run `server.on_init` once before any pool starts (RR-FEATURES.md §2.3).
pub async fn on_init(config: &Config) -> anyhow::Result<()> {
    let Some(server) = config.section::<crate::server::ServerConfig>("server")? else { return Ok(()) };
    let Some(on_init) = server.on_init else { return Ok(()) };
    let args = on_init.command.args();
    let Some(program) = args.first() else { anyhow::bail!("config key `server.on_init.command`: command should not be empty") };
    let mut cmd = Command::new(program);
    cmd.args(&args[1..])
        .envs(on_init.env.iter().map(|(k, v)| (k.to_uppercase(), v.clone())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let outcome = async {
        let child = cmd.spawn().map_err(|e| anyhow::anyhow!("cannot start on_init command `{}`: {e}", args.join(" ")))?;
        let output = tokio::time::timeout(on_init.exec_timeout, child.wait_with_output())
            .await
            .map_err(|_| anyhow::anyhow!("on_init command `{}` did not finish within {:?}", args.join(" "), on_init.exec_timeout))??;
        for line in String::from_utf8_lossy(&output.stdout).lines().chain(String::from_utf8_lossy(&output.stderr).lines()) {
            tracing::info!(target: "server", "on_init: {line}");
        }
        if !output.status.success() {
            anyhow::bail!("on_init command `{}` failed: {}", args.join(" "), output.status);
        }
        Ok(())
    }
    .await;
    match outcome {
        Err(e) if on_init.exit_on_error => Err(e),
        Err(e) => {
            tracing::error!(error = %e, "on_init failed (set server.on_init.exit_on_error to stop the server on this)");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_lines_split_lossily_and_in_bounded_pieces() {
        let mut buf = BytesMut::from(&b"caf\xe9\r\nnext\npartial"[..]);
        assert_eq!(split_line(&mut buf).as_deref(), Some("caf\u{FFFD}"));
        assert_eq!(split_line(&mut buf).as_deref(), Some("next"));
        assert_eq!(split_line(&mut buf), None);
        assert_eq!(&buf[..], b"partial");

        let mut buf = BytesMut::from(&vec![b'h'; STDERR_LINE_MAX + 10][..]);
        buf.extend_from_slice(b"\n");
        assert_eq!(split_line(&mut buf).map(|l| l.len()), Some(STDERR_LINE_MAX));
        assert_eq!(split_line(&mut buf).as_deref(), Some("hhhhhhhhhh"));
        assert!(buf.is_empty());
    }
}
