//! `rr stop`: signal the server whose pid `rr serve -p` wrote to `.pid`.

use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Force: send SIGTERM twice (the second forces an immediate exit).
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn exec(cli: &super::Cli, args: &Args) -> anyhow::Result<()> {
    // `serve -p` writes it in its working directory, which is ours too (`Cli::enter_workdir`).
    let pid_path = std::env::current_dir().context("cannot read the working directory")?.join(".pid");
    let text = std::fs::read_to_string(&pid_path).with_context(|| {
        format!("cannot read `{}`: start the server with `rr serve -p` so that `rr stop` can find it", pid_path.display())
    })?;
    let pid: i32 = text.trim().parse().with_context(|| format!("`{}` does not hold a pid: {text:?}", pid_path.display()))?;
    kill(Pid::from_raw(pid), Signal::SIGTERM).with_context(|| format!("cannot signal server pid {pid}"))?;
    if args.force {
        std::thread::sleep(Duration::from_secs(1));
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    if !cli.silent {
        println!("sent SIGTERM to pid {pid}");
    }
    Ok(())
}
