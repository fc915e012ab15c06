//! Step 6: the binary into `-o DIR`, `velox.lock` beside velox.toml, a manifest beside the
//! binary, and a smoke test: `--version` must list exactly the chosen plugins.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::ops::lock::Lock;

pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Copy the binary into `out` (atomically, so a running copy is never half-written).
pub fn copy_binary(built: &Path, out: &Path, name: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let dest = out.join(name);
    let tmp = out.join(format!(".{name}.velox-tmp"));
    std::fs::copy(built, &tmp).with_context(|| format!("cannot copy the binary to `{}`", tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("cannot move the binary to `{}`", dest.display()))?;
    Ok(dest)
}

/// Run `BIN --version` and compare its plugin list with the expected names.
pub fn smoke_test(binary: &Path, expected: &[String]) -> anyhow::Result<()> {
    let out = Command::new(binary).arg("--version").output().with_context(|| format!("cannot run `{} --version`", binary.display()))?;
    if !out.status.success() {
        bail!("`{} --version` failed: {}", binary.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut listed: Vec<String> = text.lines().skip_while(|l| !l.starts_with("plugins:")).skip(1).map(|l| l.trim().to_string()).collect();
    let mut want = expected.to_vec();
    listed.sort();
    want.sort();
    if listed != want {
        bail!("the built binary lists plugins {listed:?}, expected {want:?}");
    }
    Ok(())
}

#[derive(serde::Serialize)]
pub struct Manifest<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub binary: String,
    pub sha256: String,
    pub target: String,
    pub profile: &'a str,
    pub rustc: &'a str,
    pub velox: &'a str,
    pub runtime: &'a crate::ops::lock::LockedCrate,
    pub plugins: &'a [crate::ops::lock::LockedCrate],
}

pub fn write_manifest(binary: &Path, lock: &Lock, name: &str, version: &str, target: &str, profile: &str) -> anyhow::Result<PathBuf> {
    let manifest = Manifest {
        name,
        version,
        binary: binary.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default(),
        sha256: sha256_file(binary)?,
        target: target.to_string(),
        profile,
        rustc: &lock.rustc,
        velox: env!("CARGO_PKG_VERSION"),
        runtime: &lock.runtime,
        plugins: &lock.plugins,
    };
    let path = binary.with_file_name(format!("{name}.manifest.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n").with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(path)
}
