//! The `rr` command line shared by every binary velox builds: `serve`, `stop`, `reset`,
//! `workers`, `jobs`, and `--version` listing the compiled plugins. Each command is
//! `args` + `exec` in its own module.

mod jobs;
mod reset;
mod rpc_target;
mod sdnotify;
mod serve;
mod stop;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LoadOptions};
use crate::plugin::Build;

#[derive(Debug, Parser)]
#[command(disable_version_flag = true)]
pub struct Cli {
    /// Config file.
    #[arg(short = 'c', long = "config", global = true, default_value = ".rr.yaml")]
    pub config: PathBuf,
    /// Working directory (default: the config file's directory).
    #[arg(short = 'w', long = "workdir", visible_alias = "WorkDir", global = true)]
    pub workdir: Option<PathBuf>,
    /// Override a config key: `-o http.address=:8080` (repeatable).
    #[arg(short = 'o', long = "override", global = true)]
    pub overrides: Vec<String>,
    /// Load environment variables from this .env file (DOTENV_PATH overrides it).
    #[arg(long, global = true, env = "DOTENV_PATH")]
    pub dotenv: Option<PathBuf>,
    /// Print less.
    #[arg(short = 's', long, global = true)]
    pub silent: bool,
    /// Write the server's pid to `.pid` (for `rr stop`).
    #[arg(short = 'p', long = "pid", global = true)]
    pub pid_file: bool,
    /// RoadRunner's `-e`/`--enable-experimental`, accepted and ignored: what RoadRunner keeps
    /// behind it (HTTP/3) is on here without it.
    #[arg(short = 'e', long = "enable-experimental", global = true)]
    pub experimental: bool,
    /// Print the version and the compiled-in plugins.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The directory `rr` was started in, before `enter_workdir` left it.
    #[arg(skip)]
    launch_dir: Option<PathBuf>,
    /// The environment `rr` was started with, before `--dotenv` and `envfile` added to it.
    #[arg(skip)]
    launch_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server.
    Serve,
    /// Stop a server started with `serve -p`.
    Stop(stop::Args),
    /// Replace the workers of the named plugins (all when none is named).
    Reset(reset::Args),
    /// Show the workers of the named plugins.
    Workers(workers::Args),
    /// Pause, resume, destroy or list job pipelines.
    Jobs(jobs::Args),
}

impl Cli {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions { path: self.config.clone(), overrides: self.overrides.clone(), dotenv: self.dotenv.clone(), version_optional: false }
    }

    /// Load the config as the client commands do: they only need `rpc.listen`, so a file
    /// without `version` is accepted (Laravel Octane runs `rr reset -o rpc.listen=...` next to
    /// an empty `.rr.yaml`).
    pub fn load_config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&LoadOptions { version_optional: true, ..self.load_options() })?)
    }

    /// RoadRunner's order, for every command: change into `-w` first and resolve the config
    /// path from there; without `-w`, run in the config file's directory.
    fn enter_workdir(&mut self) -> anyhow::Result<()> {
        use anyhow::Context;
        self.launch_dir = std::env::current_dir().ok();
        self.launch_env = std::env::vars_os().collect();
        if let Some(dir) = &self.workdir {
            std::env::set_current_dir(dir).with_context(|| format!("cannot change to the working directory `{}`", dir.display()))?;
        }
        self.config = std::path::absolute(&self.config).context("cannot resolve the config path")?;
        if self.workdir.is_none()
            && let Some(dir) = self.config.parent()
        {
            // A missing directory is reported as a missing config file by the command.
            let _ = std::env::set_current_dir(dir);
        }
        Ok(())
    }

    /// Replace this process with the binary it was started from, as now found on disk (an
    /// upgrade renames the new one over it), with the same arguments: SIGUSR2. Started from the
    /// directory and with the environment `rr` was started with, so relative `-c` and `-w` still
    /// hold and an edited `.env` is read afresh (RoadRunner execs from the config's directory,
    /// with the `.env` values it loaded, which then win over the file). Returns only on failure.
    fn re_exec(&self) -> anyhow::Error {
        use std::os::unix::process::CommandExt;
        let exe = match std::env::current_exe() {
            // Linux names a replaced binary `path (deleted)`; the path is where the new one is.
            Ok(exe) => match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
                Some(path) => PathBuf::from(path),
                None => exe,
            },
            Err(e) => return anyhow::anyhow!("cannot find the running binary: {e}"),
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(&exe);
        command.arg0(args.next().unwrap_or_else(|| exe.clone().into())).args(args);
        if let Some(dir) = &self.launch_dir {
            command.current_dir(dir);
        }
        command.env_clear().envs(self.launch_env.iter().map(|(k, v)| (k, v)));
        let err = command.exec();
        anyhow::anyhow!("cannot execute `{}`: {err}", exe.display())
    }
}

/// The whole `rr` binary: parse arguments, run the command, print the error chain, exit code.
pub fn main(build: Build) -> ExitCode {
    let mut cli = Cli::parse();
    if cli.version {
        out(format_args!("{}\n", version_text(&build)));
        return ExitCode::SUCCESS;
    }
    let result = cli.enter_workdir().and_then(|()| match &cli.command {
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            Ok(())
        }
        Some(Command::Serve) => serve::exec(&cli, &build),
        Some(Command::Stop(args)) => stop::exec(&cli, args),
        Some(Command::Reset(args)) => reset::exec(&cli, args),
        Some(Command::Workers(args)) => workers::exec(&cli, args),
        Some(Command::Jobs(args)) => jobs::exec(&cli, args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `rr version 0.1.0 (plugins: http, rpc, ...)`, one plugin per line after the first.
pub fn version_text(build: &Build) -> String {
    let mut out = format!("{} version {} (rust, {}/{})\nplugins:", build.name, build.version, std::env::consts::OS, std::env::consts::ARCH);
    for p in &build.plugins {
        out.push_str(&format!("\n  {}", p.name));
    }
    out
}

/// Writes a command's output to stdout. A reader that went away (`rr --version | head -1`,
/// `rr workers | less` quit early) ends the command quietly, where `print!` would panic.
pub(crate) fn out(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// A tokio runtime for the client commands.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime").block_on(f)
}

#[cfg(test)]
mod experimental_flag_tests {
    use clap::Parser;

    #[test]
    fn roadrunners_experimental_flag_is_accepted_before_or_after_the_command() {
        let cli = super::Cli::try_parse_from(["rr", "serve", "-e", "-c", "app.yaml"]).unwrap();
        assert!(cli.experimental && matches!(cli.command, Some(super::Command::Serve)));
        assert!(super::Cli::try_parse_from(["rr", "--enable-experimental", "serve"]).unwrap().experimental);
    }
}
