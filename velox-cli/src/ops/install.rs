//! Step 6: the binary into `-o DIR`, `velox.lock` beside velox.toml, a manifest beside the
//! binary, and a smoke test: `--version` must list exactly the chosen plugins.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::ops::lock::LockedCrate;

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

/// `<name>.manifest.json`: what the binary is and everything needed to rebuild it bit for bit
/// (`velox verify`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub binary: String,
    pub sha256: String,
    pub target: String,
    pub profile: String,
    pub rustc: String,
    pub velox: String,
    #[serde(default)]
    pub rustflags: Vec<String>,
    #[serde(default)]
    pub source_date_epoch: u64,
    /// sha256 of the generated Cargo.toml and main.rs (what velox's templates made of the recipe).
    #[serde(default)]
    pub generated: String,
    /// The generated project's Cargo.lock: every dependency's exact version.
    #[serde(default)]
    pub cargo_lock: String,
    pub runtime: LockedCrate,
    pub plugins: Vec<LockedCrate>,
}

impl Manifest {
    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the manifest `{}`", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("`{}` is not a velox manifest", path.display()))
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{}.manifest.json", self.name));
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n").with_context(|| format!("cannot write `{}`", path.display()))?;
        Ok(path)
    }
}

/// sha256 of the generated project's Cargo.toml and main.rs, without their first line (it names
/// the recipe's file, which does not change the build).
pub fn generated_sha256(project: &Path) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    for file in ["Cargo.toml", "src/main.rs"] {
        let path = project.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
        hasher.update(text.split_once('\n').map_or("", |(_, rest)| rest));
    }
    Ok(hex::encode(hasher.finalize()))
}
