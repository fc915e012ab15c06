//! One copy of a service: its process started, watched, logged, started again or stopped.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Service;

pub(crate) struct Running {
    pub probe: Probe,
    pub task: JoinHandle<()>,
}

/// The copy's latest process (pid, start), kept after it exits as RoadRunner keeps the pid.
#[derive(Clone, Default)]
pub(crate) struct Probe(Arc<Mutex<Option<(u32, Instant)>>>);

/// What `service.Status(es)` reports of one process.
pub(crate) struct Usage {
    pub pid: u32,
    pub cpu_percent: f64,
    pub memory: u64,
}

impl Probe {
    fn set(&self, pid: u32) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((pid, Instant::now()));
    }

    /// CPU and memory of the process from /proc; the error names the pid it was about.
    pub fn usage(&self) -> Result<Usage, (u32, String)> {
        let Some((pid, started)) = *self.0.lock().unwrap_or_else(|e| e.into_inner()) else {
            return Err((0, "the process was not started".into()));
        };
        let memory = rr_runtime::worker::proc_rss(pid).ok_or_else(|| (pid, format!("process {pid} is not running")))?;
        let cpu_percent = rr_runtime::worker::proc_cpu_percent(pid, started.elapsed()).unwrap_or(0.0);
        Ok(Usage { pid, cpu_percent, memory })
    }
}

pub(crate) fn spawn(s: &Service) -> std::io::Result<Child> {
    let args = s.command.args();
    let (program, args) = args.split_first().ok_or_else(|| std::io::Error::other("the command is empty"))?;
    tokio::process::Command::new(program)
        .args(args)
        .envs(s.env.iter().map(|(k, v)| (k.to_uppercase(), v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// Watch a copy whose first process is `first` (none when it could not be started).
pub(crate) fn watch(name: String, copy: usize, s: Service, first: Option<Child>, stop: CancellationToken) -> Running {
    let probe = Probe::default();
    let task = tokio::spawn(supervise(name, copy, s, first, stop, probe.clone()));
    Running { probe, task }
}

/// Run the copy until it is done (or forever with `remain_after_exit`), then stop it on `stop`.
async fn supervise(name: String, copy: usize, s: Service, mut next: Option<Child>, stop: CancellationToken, probe: Probe) {
    loop {
        if let Some(mut child) = next.take() {
            let pid = child.id().unwrap_or_default();
            probe.set(pid);
            tracing::info!(target: "service", service = %name, copy, pid, "started");
            for out in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
                tokio::spawn(log_lines(name.clone(), pid, out));
            }
            let limit = async {
                if s.exec_timeout.is_zero() { std::future::pending().await } else { tokio::time::sleep(s.exec_timeout).await }
            };
            tokio::select! {
                status = child.wait() => tracing::info!(target: "service", service = %name, pid, status = ?status.ok(), "exited"),
                _ = limit => {
                    tracing::warn!(target: "service", service = %name, pid, "exec_timeout ({:?}) reached; killing", s.exec_timeout);
                    terminate(&mut child, pid, Duration::ZERO).await;
                }
                _ = stop.cancelled() => {
                    terminate(&mut child, pid, Duration::from_secs(s.timeout_stop_sec)).await;
                    return;
                }
            }
        }
        if !s.remain_after_exit {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(s.restart_sec)) => {}
            _ = stop.cancelled() => return,
        }
        next = spawn(&s)
            .inspect_err(|e| tracing::error!(target: "service", service = %name, error = %e, "cannot start `{}`", s.command.args().join(" ")))
            .ok();
    }
}

/// SIGINT to the copy's process group, SIGKILL after `grace`.
async fn terminate(child: &mut Child, pid: u32, grace: Duration) {
    let group = Pid::from_raw(pid as i32);
    if !grace.is_zero() {
        let _ = killpg(group, Signal::SIGINT);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait().await;
}

fn boxed(r: impl AsyncRead + Send + Unpin + 'static) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(r)
}

async fn log_lines(name: String, pid: u32, out: Box<dyn AsyncRead + Send + Unpin>) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "service", service = %name, pid, "{line}");
    }
}
