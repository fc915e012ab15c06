//! `rr serve`: load the config (in the directory `Cli::enter_workdir` chose), set up logging, run
//! `server.on_init`, run the plugins until SIGINT/SIGTERM (graceful, within
//! `endure.grace_period`); a second signal forces exit.

use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::host::Host;
use crate::plugin::Build;

pub fn exec(cli: &super::Cli, build: &Build) -> anyhow::Result<()> {
    let options = cli.load_options();
    if !options.path.exists() {
        anyhow::bail!(
            "config file `{}` not found: pass its path with `-c` (default `.rr.yaml` in the current directory)",
            options.path.display()
        );
    }
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
        config.warn_unknown_keys();
        if cli.pid_file {
            std::fs::write(".pid", std::process::id().to_string()).context("cannot write `.pid`")?;
        }
        if !cli.silent {
            // RoadRunner's line, on stdout: the Temporal SDK's test environment waits for it. No
            // build time is embedded (velox builds are reproducible).
            println!("[INFO] RoadRunner server started; version: {}, buildtime: unset", build.version);
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
