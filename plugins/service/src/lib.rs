//! The `service` plugin: processes that live beside the server (queue listeners, schedulers,
//! sidecars), with RoadRunner's keys. Each `service.<name>` runs `process_num` copies of
//! `command`, each in its own process group, their stdout and stderr logged line by line. A copy
//! that exits is started again after `restart_sec` when `remain_after_exit` is set; one that runs
//! longer than `exec_timeout` is killed (with `remain_after_exit`, a periodic job). On stop every
//! copy gets SIGINT and, after `timeout_stop_sec`, SIGKILL.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rr_runtime::pool::Command;
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Service {
    command: Command,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default = "one")]
    process_num: usize,
    /// 0: no limit.
    #[serde(default, with = "rr_runtime::config::duration")]
    exec_timeout: Duration,
    #[serde(default)]
    remain_after_exit: bool,
    /// Seconds before a copy that exited is started again.
    #[serde(default = "thirty")]
    restart_sec: u64,
    /// Seconds between SIGINT and SIGKILL on stop.
    #[serde(default = "five")]
    timeout_stop_sec: u64,
}

fn one() -> usize {
    1
}
fn thirty() -> u64 {
    30
}
fn five() -> u64 {
    5
}

pub struct Plugin {
    services: BTreeMap<String, Service>,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "service";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(services) = ctx.section::<BTreeMap<String, Service>>("service")? else { return Ok(None) };
        for (name, s) in &services {
            if s.command.args().is_empty() {
                return Err(format!("config key `service.{name}.command`: command should not be empty").into());
            }
        }
        Ok(Some(Plugin { services }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        let mut copies = Vec::new();
        for (name, s) in &self.services {
            copies.extend((0..s.process_num).map(|n| supervise(name.clone(), n, s.clone(), shutdown.clone())));
        }
        futures::future::join_all(copies).await;
        Ok(())
    }
}

/// Run one copy until it is done (or forever with `remain_after_exit`), then stop it on shutdown.
async fn supervise(name: String, copy: usize, s: Service, shutdown: CancellationToken) {
    let args = s.command.args();
    loop {
        let mut cmd = tokio::process::Command::new(&args[0]);
        cmd.args(&args[1..])
            .envs(s.env.iter().map(|(k, v)| (k.to_uppercase(), v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        match cmd.spawn() {
            Err(e) => tracing::error!(target: "service", service = %name, error = %e, "cannot start `{}`", args.join(" ")),
            Ok(mut child) => {
                let pid = child.id().unwrap_or_default();
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
                    _ = shutdown.cancelled() => {
                        terminate(&mut child, pid, Duration::from_secs(s.timeout_stop_sec)).await;
                        return;
                    }
                }
            }
        }
        if !s.remain_after_exit {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(s.restart_sec)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// SIGINT to the copy's process group, SIGKILL after `grace`.
async fn terminate(child: &mut tokio::process::Child, pid: u32, grace: Duration) {
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
