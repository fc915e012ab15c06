//! `rr stop`: as RoadRunner's: tell systemd `STOPPING=1` (when run under it), then SIGTERM the
//! server whose pid `rr serve -p` wrote to `.pid`; `-f` sends a second SIGTERM a second later,
//! which forces the exit.

use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sd_notify::NotifyState;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Force: send SIGTERM twice (the second forces an immediate exit).
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn exec(cli: &super::Cli, args: &Args) -> anyhow::Result<()> {
    let _ = super::sdnotify::notify(NotifyState::Stopping);
    // `serve -p` writes it in its working directory, which is ours too (`Cli::enter_workdir`).
    let pid_path = std::env::current_dir().context("cannot read the working directory")?.join(".pid");
    let text = std::fs::read_to_string(&pid_path).with_context(|| {
        format!("cannot read `{}`: start the server with `rr serve -p` so that `rr stop` can find it", pid_path.display())
    })?;
    let pid: i32 = text.trim().parse().with_context(|| format!("`{}` does not hold a pid: {text:?}", pid_path.display()))?;
    if !cli.silent {
        eprintln!("stopping process with PID: {pid}");
    }
    kill(Pid::from_raw(pid), Signal::SIGTERM).with_context(|| format!("cannot signal server pid {pid}"))?;
    if args.force {
        // A signal sent at once may be merged with the first one.
        std::thread::sleep(Duration::from_secs(1));
        // Already gone after the first (ESRCH) is what was asked for.
        match kill(Pid::from_raw(pid), Signal::SIGTERM) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot signal server pid {pid} a second time")),
        }
    }
    Ok(())
}
