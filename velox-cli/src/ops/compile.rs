//! Step 5: run cargo on the generated project with a shared target directory, showing progress
//! from cargo's JSON messages; on failure, cargo's own error text.
//!
//! Reproducible: the same velox.lock, toolchain and target give the same bytes. The crates are
//! reached through the project's `deps/` links (see `render::Links`), so only cargo's home and the
//! target directory appear as absolute paths; both are remapped. C compilers get the fixed
//! `SOURCE_DATE_EPOCH` for `__DATE__`/`__TIME__`, and the target is always explicit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use cargo_metadata::Message;

use crate::report::{self, Reporter};

pub struct CompileOptions<'a> {
    pub project: &'a Path,
    pub target_dir: &'a Path,
    pub debug: bool,
    pub target: &'a str,
    pub inputs: &'a Inputs,
    pub jobs: Option<usize>,
    pub offline: bool,
    pub bin: &'a str,
}

/// The build inputs besides the sources that the manifest records and `velox verify` reuses.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The user's `RUSTFLAGS` (velox adds only path remapping).
    pub rustflags: Vec<String>,
    pub source_date_epoch: u64,
}

impl Inputs {
    /// From the environment: `CARGO_ENCODED_RUSTFLAGS` or `RUSTFLAGS`, `SOURCE_DATE_EPOCH` (default 0).
    pub fn from_env() -> anyhow::Result<Inputs> {
        let rustflags = match (std::env::var("CARGO_ENCODED_RUSTFLAGS"), std::env::var("RUSTFLAGS")) {
            (Ok(encoded), _) => encoded.split('\x1f').filter(|f| !f.is_empty()).map(str::to_string).collect(),
            (_, Ok(flags)) => flags.split_whitespace().map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"))?,
            Err(_) => 0,
        };
        Ok(Inputs { rustflags, source_date_epoch })
    }
}

/// Build and return the path of the binary.
pub fn compile(opts: &CompileOptions, report: &Reporter) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(opts.target_dir).with_context(|| format!("cannot create `{}`", opts.target_dir.display()))?;
    let target_dir = std::fs::canonicalize(opts.target_dir)?;
    let cargo_home = std::env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| dirs::home_dir().map(|h| h.join(".cargo")));
    let mut rustflags = opts.inputs.rustflags.clone();
    // rustc applies the last matching prefix; the target directory may be inside cargo's home.
    for (from, to) in cargo_home.iter().map(|h| (std::fs::canonicalize(h).unwrap_or(h.clone()), "/cargo")).chain([(target_dir.clone(), "/target")]) {
        rustflags.push(format!("--remap-path-prefix={}={to}", from.display()));
    }
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(opts.project.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--target", opts.target])
        .arg("--message-format=json-render-diagnostics")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
        .env_remove("RUSTFLAGS")
        .env("SOURCE_DATE_EPOCH", opts.inputs.source_date_epoch.to_string())
        .env("CARGO_HTTP_TIMEOUT", crate::ops::resolve::net_timeout().as_secs().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !opts.debug {
        cmd.arg("--release");
    }
    if let Some(j) = opts.jobs {
        cmd.args(["--jobs", &j.to_string()]);
    }
    if opts.offline {
        cmd.arg("--offline");
    }
    // Cargo's progress line even into a pipe: `report` takes the done/total counts from it.
    cmd.env("CARGO_TERM_PROGRESS_WHEN", "always").env("CARGO_TERM_PROGRESS_WIDTH", "200");
    let mut child = cmd.spawn().context("cannot run cargo; is it installed and on PATH?")?;
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    report.compile_started();
    let (binary, diagnostics, stderr) = std::thread::scope(|scope| {
        let stderr_thread = scope.spawn(|| read_stderr(stderr, report));
        scope.spawn(move || {
            let interval = report.tick_interval();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(interval) {
                report.tick();
            }
        });
        let read = read_messages(stdout, opts.bin, report);
        drop(stop_tx);
        read.map(|(binary, diagnostics)| (binary, diagnostics, stderr_thread.join().unwrap_or_default()))
    })?;
    let status = child.wait()?;
    if !status.success() {
        let mut text = diagnostics.join("\n");
        let tail: Vec<&String> = stderr.iter().filter(|l| !l.trim_start().starts_with("Compiling")).collect();
        let tail: Vec<String> = tail.iter().rev().take(40).rev().map(|s| s.to_string()).collect();
        if !tail.is_empty() {
            text.push('\n');
            text.push_str(&tail.join("\n"));
        }
        bail!("cargo build failed ({status}):\n{}", text.trim());
    }
    report.compile_finished();
    binary.ok_or_else(|| anyhow::anyhow!("cargo finished but produced no `{}` binary", opts.bin))
}

/// Cargo's JSON messages: progress per artifact, the binary's path, the error diagnostics.
fn read_messages(stdout: impl std::io::Read, bin: &str, report: &Reporter) -> anyhow::Result<(Option<PathBuf>, Vec<String>)> {
    let mut binary = None;
    let mut diagnostics = Vec::new();
    let mut compiled = 0usize;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        match message.context("reading cargo's output")? {
            Message::CompilerArtifact(artifact) => {
                compiled += 1;
                report.compiled(compiled, artifact.target.name.as_str(), artifact.fresh);
                if artifact.target.name.as_str() == bin && artifact.target.is_bin() {
                    binary = artifact.executable.map(PathBuf::from);
                }
            }
            Message::CompilerMessage(msg) => {
                if let Some(rendered) = msg.message.rendered
                    && matches!(msg.message.level, cargo_metadata::diagnostic::DiagnosticLevel::Error)
                {
                    diagnostics.push(rendered);
                }
            }
            _ => {}
        }
    }
    Ok((binary, diagnostics))
}

/// Cargo's stderr: its progress line (ended by `\r`) goes to `report`, the other lines are
/// kept for the error text.
fn read_stderr(stderr: impl std::io::Read, report: &Reporter) -> Vec<String> {
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_until_any(&mut reader, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some((done, total, building)) = report::parse_cargo_progress(line) {
            report.cargo_progress(done, total, &building);
        } else if !line.trim().is_empty() {
            report.cargo_status(line);
            lines.push(line.to_string());
        }
    }
    lines
}

/// One line ended by `\n` or `\r` (cargo redraws its progress line with `\r`).
fn read_until_any(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = 0;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(read);
        }
        if let Some(i) = available.iter().position(|&b| b == b'\n' || b == b'\r') {
            buf.extend_from_slice(&available[..=i]);
            reader.consume(i + 1);
            return Ok(read + i + 1);
        }
        let n = available.len();
        buf.extend_from_slice(available);
        reader.consume(n);
        read += n;
    }
}
