//! `velox verify BINARY`: rebuild a published binary from velox.toml and its manifest, and
//! compare sha256. The manifest records every input velox controls (target, profile, flags,
//! `SOURCE_DATE_EPOCH`, the dependency versions in Cargo.lock) and the ones it cannot choose
//! (toolchain, sources, velox's templates); those must match here, or velox says which differs
//! before compiling anything.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::ops::build::{self, Settings};
use crate::ops::compile::Inputs;
use crate::ops::install::{self, Manifest};
use crate::ops::lock::{Lock, LockedCrate};
use crate::report::Reporter;

pub struct VerifyOptions {
    pub binary: PathBuf,
    pub manifest: Option<PathBuf>,
    pub recipe: PathBuf,
    pub offline: bool,
    pub jobs: Option<usize>,
    pub target_dir: Option<PathBuf>,
}

/// The sha256 both builds share.
pub fn verify(opts: &VerifyOptions, report: &Reporter) -> anyhow::Result<String> {
    let manifest_path = opts.manifest.clone().unwrap_or_else(|| {
        let name = opts.binary.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
        opts.binary.with_file_name(format!("{name}.manifest.json"))
    });
    let manifest = Manifest::read(&manifest_path)?;
    let downloaded = install::sha256_file(&opts.binary)?;
    if downloaded != manifest.sha256 {
        bail!(
            "`{}` is not the binary `{}` describes: its sha256 is {downloaded}, the manifest's {}; download both again",
            opts.binary.display(),
            manifest_path.display(),
            manifest.sha256
        );
    }

    let work = tempfile::Builder::new().prefix("velox-verify-").tempdir().context("cannot create a temporary directory")?;
    let project = work.path().join("project");
    let prepared = build::prepare(&opts.recipe, Some(&project), Some(&manifest.cargo_lock), opts.offline, report)?;
    let differences = inputs_differ(&manifest, &prepared, &install::generated_sha256(&project)?);
    if !differences.is_empty() {
        bail!(
            "cannot reproduce `{}`: these inputs differ from `{}`:\n  {}",
            opts.binary.display(),
            manifest_path.display(),
            differences.join("\n  ")
        );
    }

    let inputs = Inputs { rustflags: manifest.rustflags.clone(), source_date_epoch: manifest.source_date_epoch };
    let settings = Settings {
        debug: manifest.profile == "debug",
        target: &manifest.target,
        inputs: &inputs,
        jobs: opts.jobs,
        target_dir: opts.target_dir.as_deref(),
        offline: opts.offline,
    };
    let rebuilt = install::sha256_file(&build::compile_prepared(&prepared, &settings, report)?)?;
    if rebuilt != manifest.sha256 {
        bail!(
            "the rebuilt `{}` differs: sha256 {rebuilt}, the manifest's {}, although every recorded input matches (toolchain, target, profile, sources, templates, flags, Cargo.lock); \
             what differs is outside what velox records: the linker or C compiler (`cc --version`), or environment variables read by build scripts",
            manifest.name,
            manifest.sha256
        );
    }
    Ok(rebuilt)
}

/// The inputs velox cannot set itself, compared with what this machine resolves.
fn inputs_differ(manifest: &Manifest, prepared: &build::Prepared, generated: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: &str, recorded: &str, here: &str| {
        if recorded != here {
            out.push(format!("{what}: `{recorded}` in the manifest, `{here}` here"));
        }
    };
    differ("toolchain", &manifest.rustc, &prepared.lock.rustc);
    differ("velox (its templates)", &manifest.velox, env!("CARGO_PKG_VERSION"));
    differ("binary.name", &manifest.name, &prepared.plan.name);
    differ("binary.version", &manifest.version, &prepared.plan.version);
    if manifest.generated != generated {
        out.push("template: the generated Cargo.toml or main.rs differs (another velox, or a recipe with other plugin entries)".into());
    }
    // A path source is compared by crate and version: its location differs from machine to machine.
    let anywhere = |c: &LockedCrate| LockedCrate { source: if c.source.starts_with("path ") { "path".into() } else { c.source.clone() }, ..c.clone() };
    let lock = |runtime: &LockedCrate, plugins: &[LockedCrate]| Lock { rustc: String::new(), runtime: anywhere(runtime), plugins: plugins.iter().map(anywhere).collect() };
    let recorded = lock(&manifest.runtime, &manifest.plugins);
    out.extend(lock(&prepared.lock.runtime, &prepared.lock.plugins).differences(&recorded));
    out
}

