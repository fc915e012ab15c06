//! Step 3: read every crate's manifest with cargo metadata (nothing is compiled): the plugin
//! entry it declares under `[package.metadata.rr-plugin]`, and that its `rr-runtime`
//! requirement accepts the selected runtime. Registry plugins are read from the generated
//! project's metadata, which also proves a single runtime is linked.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use cargo_metadata::{Metadata, MetadataCommand, Package};

/// What velox needs to know about one plugin crate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    /// The key in velox.toml.
    pub key: String,
    /// The plugin's `.rr.yaml` name (`[package.metadata.rr-plugin] name`).
    pub name: String,
    pub crate_name: String,
    pub version: String,
    pub entry: String,
    /// The crate's features, for checking `binary.features`.
    #[serde(skip)]
    pub features: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub version: semver::Version,
    pub features: Vec<String>,
}

/// The package whose manifest is `dir/Cargo.toml`, without resolving dependencies, and the
/// directory the generated project links to (see `render::Links`): the root of its workspace, or
/// None when a path dependency lies outside it (an absolute path cannot be reached through a link).
pub fn package_at(dir: &Path) -> anyhow::Result<(Package, Option<PathBuf>)> {
    let manifest = dir.join("Cargo.toml");
    let meta = MetadataCommand::new()
        .manifest_path(&manifest)
        .no_deps()
        .exec()
        .map_err(|e| anyhow!("cannot read `{}` with cargo metadata: {e}", manifest.display()))?;
    let wanted = std::fs::canonicalize(&manifest).unwrap_or(manifest.clone());
    let root = meta.workspace_root.clone().into_std_path_buf();
    let pkg = meta
        .packages
        .into_iter()
        .find(|p| std::fs::canonicalize(&p.manifest_path).map(|m| m == wanted).unwrap_or(false))
        .ok_or_else(|| anyhow!("`{}` declares no package", manifest.display()))?;
    let inside = |dep: &cargo_metadata::camino::Utf8PathBuf| std::fs::canonicalize(dep).unwrap_or(dep.clone().into_std_path_buf()).starts_with(&root);
    let self_contained = pkg.dependencies.iter().filter_map(|d| d.path.as_ref()).all(inside);
    Ok((pkg, self_contained.then_some(root)))
}

pub fn runtime(dir: &Path, pkg: &Package) -> anyhow::Result<RuntimeInfo> {
    if pkg.name.as_str() != "rr-runtime" {
        bail!("runtime: the crate at `{}` is `{}`, not `rr-runtime`; point `[runtime]` at the runtime crate", dir.display(), pkg.name);
    }
    Ok(RuntimeInfo { version: pkg.version.clone(), features: pkg.features.keys().cloned().collect() })
}

/// Check one plugin package against the selected runtime.
pub fn plugin(key: &str, pkg: &Package, runtime: &RuntimeInfo) -> anyhow::Result<PluginInfo> {
    let meta = pkg.metadata.get("rr-plugin").ok_or_else(|| {
        anyhow!(
            "plugin `{key}` (crate `{}`): no `[package.metadata.rr-plugin]` in its Cargo.toml; add `name = \"<yaml key>\"` and `entry = \"Plugin\"` there",
            pkg.name
        )
    })?;
    let field = |f: &str| {
        meta.get(f).and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| {
            anyhow!("plugin `{key}` (crate `{}`): `[package.metadata.rr-plugin]` lacks `{f}`; set it (e.g. `{f} = \"{}\"`)", pkg.name, if f == "entry" { "Plugin" } else { key })
        })
    };
    let (name, entry) = (field("name")?, field("entry")?);
    // The entry is pasted into the generated main.rs as a type path.
    if !entry.split("::").all(|seg| seg.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
        bail!("plugin `{key}` (crate `{}`): `[package.metadata.rr-plugin] entry = \"{}\"` is not a Rust type path; name the type, e.g. `entry = \"Plugin\"`", pkg.name, entry.escape_debug());
    }
    let dep = pkg.dependencies.iter().find(|d| d.name == "rr-runtime").ok_or_else(|| {
        anyhow!("plugin `{key}` (crate `{}`) does not depend on `rr-runtime`; a plugin implements `rr_runtime::Plugin`", pkg.name)
    })?;
    if !dep.req.matches(&runtime.version) {
        bail!(
            "plugin `{key}` (crate `{}` {}) requires rr-runtime {}, but the selected runtime is {}: use a plugin release built for rr-runtime {}, or select a matching runtime in `[runtime]`",
            pkg.name,
            pkg.version,
            dep.req,
            runtime.version,
            runtime.version
        );
    }
    let features = pkg.features.keys().cloned().collect();
    Ok(PluginInfo { key: key.to_string(), name, crate_name: pkg.name.to_string(), version: pkg.version.to_string(), entry, features })
}

/// No two plugins may answer to the same `.rr.yaml` name.
pub fn check_duplicates(plugins: &[PluginInfo]) -> anyhow::Result<()> {
    for (i, a) in plugins.iter().enumerate() {
        if let Some(b) = plugins[..i].iter().find(|b| b.name == a.name) {
            bail!(
                "plugins `{}` and `{}` are both the `{}` plugin (crates `{}` and `{}`); keep one of them in velox.toml",
                b.key,
                a.key,
                a.name,
                b.crate_name,
                a.crate_name
            );
        }
    }
    Ok(())
}

/// Full metadata of the generated project (resolves registry plugins; no compilation).
pub fn generated(project: &Path, offline: bool) -> anyhow::Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.manifest_path(project.join("Cargo.toml")).env("CARGO_HTTP_TIMEOUT", crate::ops::resolve::net_timeout().as_secs().to_string());
    if offline {
        cmd.other_options(vec!["--offline".to_string()]);
    }
    cmd.exec().map_err(|e| {
        let e = e.to_string();
        let hint = if e.contains("Timeout was reached") { format!("\na registry named above timed out (cargo's http.timeout, set from VELOX_NET_TIMEOUT = {}s)", crate::ops::resolve::net_timeout().as_secs()) } else { String::new() };
        anyhow!("cargo could not resolve the plugins' dependencies: {e}{hint}")
    })
}

/// Exactly one `rr-runtime` in the build: plugins cannot bring their own.
pub fn single_runtime(meta: &Metadata) -> anyhow::Result<()> {
    let runtimes: Vec<_> = meta.packages.iter().filter(|p| p.name.as_str() == "rr-runtime").collect();
    if runtimes.len() > 1 {
        let list: Vec<String> = runtimes.iter().map(|p| format!("{} ({})", p.version, p.manifest_path)).collect();
        bail!(
            "more than one rr-runtime would be linked: {}; a plugin pulls its own copy (a `path` dependency inside a git or tarball source?) — plugins must depend on rr-runtime by version",
            list.join(", ")
        );
    }
    Ok(())
}
