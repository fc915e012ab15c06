//! `rr serve`: load the config, chdir, set up logging, run `server.on_init`, run the plugins until
//! SIGINT/SIGTERM (graceful, within `endure.grace_period`); a second signal forces exit.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::host::Host;
use crate::plugin::Build;

/// The directory `serve` runs in: `-w`, else the config file's directory.
pub fn workdir(cli: &super::Cli) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &cli.workdir {
        return Ok(dir.clone());
    }
    let config = std::path::absolute(&cli.config).context("cannot resolve the config path")?;
    Ok(config.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")))
}

pub fn exec(cli: &super::Cli, build: &Build) -> anyhow::Result<()> {
    let mut options = cli.load_options();
    options.path = std::path::absolute(&options.path).context("cannot resolve the config path")?;
    if !options.path.is_file() {
        anyhow::bail!(
            "config file `{}` not found: pass its path with `-c` (default `.rr.yaml` in the current directory)",
            options.path.display()
        );
    }
    let dir = workdir(cli)?;
    std::env::set_current_dir(&dir).with_context(|| format!("cannot change to the working directory `{}`", dir.display()))?;
    let config = Config::load(&options)?;
    let _guard = crate::logging::init(&config)?;
    let grace = config
        .section::<Endure>("endure")?
        .map(|e| e.grace_period)
        .unwrap_or(Duration::from_secs(30));

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = runtime_threads()? {
        runtime.worker_threads(n);
    }
    let runtime = runtime.enable_all().build().context("cannot start tokio")?;
    runtime.block_on(async {
        crate::reaper::start_if_init();
        crate::worker::on_init(&config).await?;
        let host = Host::init(build, &config)?;
        if cli.pid_file {
            std::fs::write(".pid", std::process::id().to_string()).context("cannot write `.pid`")?;
        }
        if !cli.silent {
            tracing::info!(version = build.version, "{} server started", build.name);
        }
        let result = host.run_until(first_signal(), grace).await;
        if cli.pid_file {
            let _ = std::fs::remove_file(".pid");
        }
        result
    })?;
    if !cli.silent {
        tracing::info!("stopped");
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct Endure {
    #[serde(default = "thirty_seconds", with = "crate::config::duration")]
    grace_period: Duration,
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

/// Resolves on the first SIGINT/SIGTERM; a second one exits the process at once.
async fn first_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stop signal received, stopping gracefully (send it again to force)");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("exit forced");
        std::process::exit(1);
    });
}

/// How many threads rr's main runtime runs on (RPC, metrics, jobs, the supervisor; HTTP has a
/// thread per core of its own, docs/HTTP.md). `GOMAXPROCS` is honoured as RoadRunner (Go) does,
/// and tokio reads `TOKIO_WORKER_THREADS` itself (`None` here). Otherwise half the cores, at
/// least one: the PHP workers (one per core by default) need the others.
fn runtime_threads() -> anyhow::Result<Option<usize>> {
    if let Some(n) = crate::gomaxprocs().map_err(anyhow::Error::msg)? {
        return Ok(Some(n));
    }
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return Ok(None);
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    Ok(Some((cores / 2).max(1)))
}
