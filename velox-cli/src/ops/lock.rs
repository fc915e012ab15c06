//! `velox.lock`: what a build resolved (commits, versions, checksums, toolchain). `--locked`
//! refuses to build when a new resolution differs from it.

use std::path::Path;

use anyhow::{Context, bail};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockedCrate {
    pub key: String,
    /// The plugin's `.rr.yaml` name (empty for the runtime).
    #[serde(default)]
    pub name: String,
    #[serde(rename = "crate")]
    pub crate_name: String,
    pub version: String,
    /// The source as written in velox.toml (credentials redacted).
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lock {
    pub rustc: String,
    pub runtime: LockedCrate,
    #[serde(default)]
    pub plugins: Vec<LockedCrate>,
}

impl Lock {
    pub fn read(path: &Path) -> anyhow::Result<Option<Lock>> {
        match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
            Ok(text) => {
                let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("`{}` is not a velox lock file", path.display()))?;
                Ok(Some(serde_json::from_value(json).with_context(|| format!("`{}` is not a velox lock file", path.display()))?))
            }
        }
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
        }
        Ok(())
    }

    /// `--locked`: the resolution must equal the recorded one (the toolchain may differ; that is
    /// reported as a warning by the caller).
    pub fn check_locked(&self, recorded: Option<&Lock>, path: &Path) -> anyhow::Result<()> {
        let Some(recorded) = recorded else {
            bail!("--locked: `{}` does not exist; run `velox build` without --locked once and commit the lock file", path.display());
        };
        let diffs = self.differences(recorded);
        if !diffs.is_empty() {
            bail!(
                "--locked: the resolution differs from `{}`:\n  {}\nrun `velox build` without --locked to update the lock file, or restore velox.toml",
                path.display(),
                diffs.join("\n  ")
            );
        }
        Ok(())
    }
}

impl Lock {
    /// How this resolution differs from `recorded`, one line per crate (the toolchain aside).
    pub fn differences(&self, recorded: &Lock) -> Vec<String> {
        let mut diffs = Vec::new();
        if recorded.runtime != self.runtime {
            diffs.push(format!("runtime: {} → {}", describe(&recorded.runtime), describe(&self.runtime)));
        }
        for now in &self.plugins {
            match recorded.plugins.iter().find(|p| p.key == now.key) {
                None => diffs.push(format!("plugin `{}` is not in the lock file", now.key)),
                Some(was) if was != now => diffs.push(format!("plugin `{}`: {} → {}", now.key, describe(was), describe(now))),
                _ => {}
            }
        }
        for was in &recorded.plugins {
            if !self.plugins.iter().any(|p| p.key == was.key) {
                diffs.push(format!("plugin `{}` was removed from velox.toml", was.key));
            }
        }
        diffs
    }
}

fn describe(c: &LockedCrate) -> String {
    let pin = c.commit.as_deref().or(c.sha256.as_deref()).map(|p| format!(" @ {}", &p[..p.len().min(12)])).unwrap_or_default();
    format!("{} {} [{}]{pin}", c.crate_name, c.version, c.source)
}

pub fn rustc_version() -> String {
    std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
