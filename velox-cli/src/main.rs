//! velox: build a tailored RoadRunner-compatible server binary from velox.toml.
//! Commands are thin; the work is in `ops/` (see `ops::build` for the pipeline outline).

mod git;
mod ops;
mod plan;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "velox", version, about = "Build a tailored RoadRunner-compatible server from velox.toml")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve, inspect, generate and compile the server binary.
    Build {
        #[arg(short = 'c', long = "config", default_value = "velox.toml")]
        config: PathBuf,
        /// Output directory for the binary and its manifest.
        #[arg(short = 'o', long = "out", default_value = ".")]
        out: PathBuf,
        /// Use only the cache (no git fetch, no download, cargo --offline).
        #[arg(long)]
        offline: bool,
        /// Refuse to build when the resolution differs from velox.lock.
        #[arg(long)]
        locked: bool,
        /// Build with the dev profile.
        #[arg(long)]
        debug: bool,
        /// Target triple.
        #[arg(long)]
        target: Option<String>,
        /// Parallel cargo jobs.
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
        /// Cargo target directory shared between builds (default: $CARGO_TARGET_DIR or the velox cache).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Machine-readable progress and result, one JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Steps 1-4 only: write the generated project into DIR.
    Generate {
        #[arg(short = 'c', long = "config", default_value = "velox.toml")]
        config: PathBuf,
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        #[arg(long)]
        offline: bool,
    },
    /// Rebuild BINARY from velox.toml and its manifest and check that the sha256 is the same.
    Verify {
        /// The binary to check; its manifest is `<BINARY>.manifest.json` beside it.
        binary: PathBuf,
        #[arg(short = 'c', long = "config", default_value = "velox.toml")]
        config: PathBuf,
        /// The manifest, if it is not beside the binary.
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[arg(long)]
        offline: bool,
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// List the resolved plugins with their sources and revisions.
    Plugins {
        #[arg(short = 'c', long = "config", default_value = "velox.toml")]
        config: PathBuf,
        #[arg(long)]
        offline: bool,
    },
    /// Add a plugin to velox.toml (comments and formatting are kept).
    Add {
        name: String,
        #[arg(short = 'c', long = "config", default_value = "velox.toml")]
        config: PathBuf,
        #[command(flatten)]
        source: ops::edit::SourceArgs,
    },
    /// Remove a plugin from velox.toml.
    Remove {
        name: String,
        #[arg(short = 'c', long = "config", default_value = "velox.toml")]
        config: PathBuf,
    },
    /// Scaffold a plugin crate.
    NewPlugin {
        name: String,
        /// Directory to create (default: ./rr-<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The rr-runtime dependency, as an inline TOML value.
        #[arg(long, default_value = "\"0.1\"")]
        runtime: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { config, out, offline, locked, debug, target, jobs, target_dir, json } => {
            let report = report::Reporter::new(json);
            let opts = ops::build::BuildOptions { recipe: config, out, offline, locked, debug, target, jobs, target_dir };
            match ops::build::build(&opts, &report) {
                Ok(result) => {
                    report.finish(&result);
                    if !json {
                        println!("built {} with plugins {}", result["binary"].as_str().unwrap_or(""), result["plugins"]);
                    }
                    Ok(())
                }
                Err(e) => {
                    if json {
                        report.finish(&serde_json::json!({"error": format!("{e:#}")}));
                    }
                    Err(e)
                }
            }
        }
        Command::Generate { config, out, offline } => {
            let report = report::Reporter::new(false);
            ops::build::prepare(&config, Some(&out), None, offline, &report).map(|p| {
                report.finish(&serde_json::Value::Null);
                println!("generated {}", p.project.display());
            })
        }
        Command::Verify { binary, config, manifest, offline, jobs, target_dir } => {
            let report = report::Reporter::new(false);
            let opts = ops::verify::VerifyOptions { binary, manifest, recipe: config, offline, jobs, target_dir };
            ops::verify::verify(&opts, &report).map(|sha| {
                report.finish(&serde_json::Value::Null);
                println!("verified {}: the rebuilt binary has the same sha256 {sha}", opts.binary.display());
            })
        }
        Command::Plugins { config, offline } => {
            let report = report::Reporter::new(false);
            ops::build::prepare(&config, None, None, offline, &report).map(|p| {
                report.finish(&serde_json::Value::Null);
                for c in &p.lock.plugins {
                    let pin = c.commit.clone().or(c.sha256.clone()).map(|x| format!(" @ {x}")).unwrap_or_default();
                    println!("{:<20} {:<24} {:<10} {}{pin}", c.name, c.crate_name, c.version, c.source);
                }
            })
        }
        Command::Add { name, config, source } => ops::edit::add(&config, &name, &source),
        Command::Remove { name, config } => ops::edit::remove(&config, &name),
        Command::NewPlugin { name, dir, runtime } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(format!("rr-{}", name.replace('_', "-"))));
            ops::scaffold::new_plugin(&name, &dir, &runtime).map(|()| println!("created {}", dir.display()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
