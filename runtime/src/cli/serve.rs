//! `rr serve`: load the config (in the directory `Cli::enter_workdir` chose), set up logging, run
//! `server.on_init`, run the plugins until a signal, as RoadRunner's serve command does:
//!
//! 1. SIGINT/SIGTERM/SIGQUIT/SIGABRT: `STOPPING=1` to systemd, graceful stop within
//!    `endure.grace_period`; a second one prints `exit forced` and exits 1 at once.
//! 2. SIGUSR2: graceful stop, then the same binary (as now found on disk) is executed again with
//!    the arguments and environment rr was started with: same pid, new code, new config.
//!
//! With `NOTIFY_SOCKET` set (systemd `Type=notify`), `READY=1` comes once every plugin serves (its
//! listeners bound, see `Lifecycle::starting`)
//! and `WATCHDOG=1` is sent every `endure.watchdog_sec`. The lines RoadRunner prints on stdout
//! are printed here too, and `-s` silences them.

use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::sdnotify;
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
    let endure: Endure = config.section("endure")?.unwrap_or_default();
    let say = |line: &str| say(cli.silent, line);
    if !matches!(endure.log_level.as_str(), "debug" | "info" | "warn" | "warning" | "error") {
        say(&format!("[WARN] Failed to parse log level, using default (error): unknown log level \"{}\" (allowed: debug, info, warn, error)", endure.log_level));
    }

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = runtime_threads()? {
        runtime.worker_threads(n);
    }
    let runtime = runtime.enable_all().build().context("cannot start tokio")?;
    let outcome = runtime.block_on(async {
        crate::reaper::start_if_init();
        crate::worker::on_init(&config).await?;
        let host = Host::init(build, &config)?;
        config.warn_unknown_keys();
        if cli.pid_file {
            std::fs::write(".pid", std::process::id().to_string()).context("cannot write `.pid`")?;
        }
        let mut signals = Signals::install()?;
        // RoadRunner's line, on stdout: the Temporal SDK's test environment waits for it. No
        // build time is embedded (velox builds are reproducible).
        say(&format!("[INFO] RoadRunner server started; version: {}, buildtime: unset", build.version));
        let mut outcome = Outcome::Stop;
        let mut watchdog = None;
        let lifecycle = host.services.lifecycle.clone();
        let result = host
            .run_until(
                async {
                    // Every plugin's serve has been started; READY=1 once each one serves (its
                    // listeners bound), unless a stop signal comes first.
                    let early = tokio::select! {
                        _ = lifecycle.all_serving() => None,
                        signal = signals.next() => Some(signal),
                    };
                    outcome = match early {
                        Some(signal) => signal,
                        None => {
                            watchdog = notify_ready(endure.watchdog_sec, &say);
                            signals.next().await
                        }
                    };
                    match outcome {
                        Outcome::Stop => {
                            let _ = sdnotify::notify(NotifyState::Stopping);
                            say(&format!("stop signal received, grace timeout is: {} seconds", endure.grace_period.as_secs()));
                        }
                        Outcome::Restart => say("restart signal [SIGUSR2] received"),
                    }
                    signals.force_exit_on_next(cli.silent);
                },
                endure.grace_period,
            )
            .await;
        if let Some(task) = watchdog {
            task.abort();
        }
        if cli.pid_file && outcome == Outcome::Stop {
            let _ = std::fs::remove_file(".pid");
        }
        result.map(|()| outcome)
    });
    // Threads blocked in synchronous calls must not hold up the exit or the exec.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome? {
        Outcome::Stop => Ok(()),
        Outcome::Restart => Err(cli.re_exec()).context("restart failed"),
    }
}

/// The `endure` section: the container settings of RoadRunner (`print_graph` is read and has no
/// effect: there is no dependency graph to print, plugins start in the order velox lists them).
#[derive(serde::Deserialize)]
#[serde(default)]
struct Endure {
    #[serde(with = "crate::config::duration")]
    grace_period: Duration,
    /// Seconds between two `WATCHDOG=1`; 0 sends none.
    watchdog_sec: u64,
    log_level: String,
    #[allow(dead_code)]
    print_graph: bool,
}

impl Default for Endure {
    fn default() -> Self {
        Endure { grace_period: Duration::from_secs(30), watchdog_sec: 0, log_level: "error".into(), print_graph: false }
    }
}

/// One of RoadRunner's stdout lines, unless `-s`. A closed stdout (the reader went away) is not
/// worth a panic.
fn say(silent: bool, line: &str) {
    use std::io::Write;
    if !silent {
        let _ = writeln!(std::io::stdout(), "{line}");
    }
}

/// `READY=1`; when systemd got it and `watchdog_sec` is set, the task that keeps sending
/// `WATCHDOG=1`.
fn notify_ready(watchdog_sec: u64, say: &impl Fn(&str)) -> Option<tokio::task::JoinHandle<()>> {
    match sdnotify::notify(NotifyState::Ready) {
        Ok(true) => say("[INFO] sdnotify: notified"),
        Ok(false) => return None,
        Err(e) => {
            say(&format!("[WARN] sdnotify: {e}"));
            return None;
        }
    }
    (watchdog_sec > 0).then(|| {
        say(&format!("[INFO] sdnotify: watchdog enabled, timeout: {watchdog_sec} seconds"));
        sdnotify::watchdog(Duration::from_secs(watchdog_sec))
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// SIGINT, SIGTERM, SIGQUIT or SIGABRT: stop and exit.
    Stop,
    /// SIGUSR2: stop, then execute the binary again.
    Restart,
}

/// The signals serve handles, installed before the server reports itself started.
struct Signals {
    stop: Vec<Signal>,
    restart: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        let stop = [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::quit(), SignalKind::from_raw(libc::SIGABRT)];
        let stop = stop.into_iter().map(signal).collect::<Result<_, _>>().context("cannot install the signal handlers")?;
        let restart = signal(SignalKind::user_defined2()).context("cannot install the SIGUSR2 handler")?;
        Ok(Signals { stop, restart })
    }

    async fn next(&mut self) -> Outcome {
        let stop = futures::future::select_all(self.stop.iter_mut().map(|s| Box::pin(s.recv())));
        tokio::select! {
            _ = stop => Outcome::Stop,
            _ = self.restart.recv() => Outcome::Restart,
        }
    }

    /// A stop signal during the graceful stop ends the process at once, with RoadRunner's exit
    /// code 1, and its workers with it.
    fn force_exit_on_next(&mut self, silent: bool) {
        let mut stop = std::mem::take(&mut self.stop);
        tokio::spawn(async move {
            futures::future::select_all(stop.iter_mut().map(|s| Box::pin(s.recv()))).await;
            say(silent, "exit forced");
            crate::reaper::kill_workers();
            std::process::exit(1);
        });
    }
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
