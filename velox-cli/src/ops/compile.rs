//! Step 5: run cargo on the generated project with a shared target directory, showing progress
//! from cargo's JSON messages; on failure, cargo's own error text.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use cargo_metadata::Message;

use crate::report::Reporter;

pub struct CompileOptions<'a> {
    pub project: &'a Path,
    pub target_dir: &'a Path,
    pub debug: bool,
    pub target: Option<&'a str>,
    pub jobs: Option<usize>,
    pub offline: bool,
    pub bin: &'a str,
}

/// Build and return the path of the binary.
pub fn compile(opts: &CompileOptions, report: &Reporter) -> anyhow::Result<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(opts.project.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(opts.target_dir)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !opts.debug {
        cmd.arg("--release");
    }
    if let Some(t) = opts.target {
        cmd.args(["--target", t]);
    }
    if let Some(j) = opts.jobs {
        cmd.args(["--jobs", &j.to_string()]);
    }
    if opts.offline {
        cmd.arg("--offline");
    }
    let mut child = cmd.spawn().context("cannot run cargo; is it installed and on PATH?")?;
    let stderr = child.stderr.take().unwrap();
    let stderr_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.push(line);
        }
        lines
    });
    let mut binary = None;
    let mut diagnostics = Vec::new();
    let mut compiled = 0usize;
    for message in Message::parse_stream(BufReader::new(child.stdout.take().unwrap())) {
        match message.context("reading cargo's output")? {
            Message::CompilerArtifact(artifact) => {
                compiled += 1;
                report.compiled(compiled, artifact.target.name.as_str(), artifact.fresh);
                if artifact.target.name.as_str() == opts.bin && artifact.target.is_bin() {
                    binary = artifact.executable.map(PathBuf::from);
                }
            }
            Message::CompilerMessage(msg) => {
                if let Some(rendered) = msg.message.rendered {
                    if matches!(msg.message.level, cargo_metadata::diagnostic::DiagnosticLevel::Error) {
                        diagnostics.push(rendered);
                    }
                }
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    let stderr = stderr_thread.join().unwrap_or_default();
    if !status.success() {
        let mut text = diagnostics.join("\n");
        let tail: Vec<&String> = stderr.iter().filter(|l| !l.trim_start().starts_with("Compiling") && !l.trim().is_empty()).collect();
        let tail: Vec<String> = tail.iter().rev().take(40).rev().map(|s| s.to_string()).collect();
        if !tail.is_empty() {
            text.push_str("\n");
            text.push_str(&tail.join("\n"));
        }
        bail!("cargo build failed ({status}):\n{}", text.trim());
    }
    binary.ok_or_else(|| anyhow::anyhow!("cargo finished but produced no `{}` binary", opts.bin))
}
