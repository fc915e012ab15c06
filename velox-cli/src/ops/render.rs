//! Step 4: render `plugin-templates/server` into a project. Pure: the same plan and resolution
//! give the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::ops::resolve::Resolved;
use crate::plan::Plan;

/// The templates, compiled into velox so it needs no files at run time.
pub const SERVER_CARGO: &str = include_str!("../../../plugin-templates/server/Cargo.toml.tera");
pub const SERVER_MAIN: &str = include_str!("../../../plugin-templates/server/src/main.rs.tera");
pub const PLUGIN_CARGO: &str = include_str!("../../../plugin-templates/plugin/Cargo.toml.tera");
pub const PLUGIN_LIB: &str = include_str!("../../../plugin-templates/plugin/src/lib.rs.tera");
pub const PLUGIN_TEST: &str = include_str!("../../../plugin-templates/plugin/tests/plugin.rs.tera");

/// One plugin as the templates see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginDep {
    pub crate_name: String,
    pub lib_name: String,
    pub entry: String,
    /// Inline TOML table of the dependency.
    pub dep: String,
}

pub struct Rendered {
    pub cargo_toml: String,
    pub main_rs: String,
    /// `deps/<name>` → target, see `Links`.
    pub links: Vec<(String, PathBuf)>,
}

/// `{ path = "..." }` or `{ version = "...", registry = "..." }`, plus features.
pub fn dependency(resolved: &Resolved, features: &[String]) -> String {
    let mut parts = match resolved {
        Resolved::Dir { dir, .. } => vec![format!("path = {}", toml_string(&dir.display().to_string()))],
        Resolved::Registry { version, registry } => {
            let mut v = vec![format!("version = {}", toml_string(version))];
            if let Some(r) = registry {
                v.push(format!("registry = {}", toml_string(r)));
            }
            v
        }
    };
    if !features.is_empty() {
        let list: Vec<String> = features.iter().map(|f| toml_string(f)).collect();
        parts.push(format!("features = [{}]", list.join(", ")));
    }
    format!("{{ {} }}", parts.join(", "))
}

fn toml_string(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_string()
}

/// The generated project reaches every crate on disk through `deps/<n>-<key>`, a symlink to the
/// root of the crate's workspace. Cargo then sees the crates inside the project, so their paths
/// (in panic messages, debug info and cargo's `-C metadata` hash, hence symbol names) are the same
/// wherever the cache, the checkout or the project lives. One link per workspace, so crates that
/// depend on each other by path (a plugin on its workspace's runtime) still meet at one path.
/// A crate with a path dependency outside its workspace (an absolute path to a runtime checkout)
/// could meet it only at its real path, so then every crate is used in place.
#[derive(Debug, Default)]
pub struct Links {
    /// Key, link root (None: use in place) and crate directory, in recipe order.
    crates: Vec<(String, Option<PathBuf>, PathBuf)>,
}

impl Links {
    pub fn add(&mut self, key: &str, root: Option<PathBuf>, dir: &Path) {
        let root = root.map(|r| if dir.starts_with(&r) { r } else { dir.to_path_buf() });
        self.crates.push((key.to_string(), root, dir.to_path_buf()));
    }

    /// The links, name and target; none when a crate must be used in place.
    fn links(&self) -> Vec<(String, PathBuf)> {
        let mut links: Vec<(String, PathBuf)> = Vec::new();
        for (key, root, _) in &self.crates {
            let Some(root) = root else { return Vec::new() };
            if !links.iter().any(|(_, r)| r == root) {
                links.push((format!("{}-{key}", links.len()), root.clone()));
            }
        }
        links
    }

    /// `resolved` as the generated project refers to it.
    pub fn local(&self, resolved: &Resolved) -> Resolved {
        let Resolved::Dir { dir, pin } = resolved else { return resolved.clone() };
        match self.links().into_iter().find(|(_, root)| dir.starts_with(root)) {
            Some((name, root)) => {
                let local: PathBuf = Path::new("deps").join(name).components().chain(dir.strip_prefix(&root).unwrap_or(Path::new("")).components()).collect();
                Resolved::Dir { dir: local, pin: pin.clone() }
            }
            None => resolved.clone(),
        }
    }
}

pub fn render(
    recipe: &Path,
    name: &str,
    version: &str,
    runtime_dep: &str,
    runtime_patch: Option<&str>,
    plugins: &[PluginDep],
    links: &Links,
) -> anyhow::Result<Rendered> {
    let mut ctx = tera::Context::new();
    ctx.insert("recipe", &recipe.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default());
    ctx.insert("name", name);
    ctx.insert("package", &format!("{name}-server"));
    ctx.insert("version", version);
    ctx.insert("runtime_dep", runtime_dep);
    ctx.insert("runtime_patch", &runtime_patch);
    ctx.insert("plugins", plugins);
    Ok(Rendered {
        cargo_toml: tera::Tera::one_off(SERVER_CARGO, &ctx, false).context("rendering server/Cargo.toml.tera")?,
        main_rs: tera::Tera::one_off(SERVER_MAIN, &ctx, false).context("rendering server/src/main.rs.tera")?,
        links: links.links(),
    })
}

/// The first line of every generated Cargo.toml: `write` only replaces a project that has it.
const GENERATED: &str = "# Generated by velox";

/// Write the project; files are only rewritten when their bytes change, so cargo's
/// fingerprints (and the second build's speed) survive. A directory that holds anything but a
/// project velox generated is refused, never overwritten.
pub fn write(dir: &Path, rendered: &Rendered) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("`{}` is a file; give `-o` a new or empty directory", dir.display());
        }
        let empty = std::fs::read_dir(dir).with_context(|| format!("cannot read `{}`", dir.display()))?.next().is_none();
        let ours = std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.starts_with(GENERATED));
        if !empty && !ours {
            bail!("`{}` is not empty and was not generated by velox; give `-o` a new or empty directory", dir.display());
        }
    }
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let deps = dir.join("deps");
    let _ = std::fs::remove_dir_all(&deps);
    std::fs::create_dir_all(&deps).with_context(|| format!("cannot create `{}`", deps.display()))?;
    for (name, target) in &rendered.links {
        std::os::unix::fs::symlink(target, deps.join(name)).with_context(|| format!("cannot link `{}/{name}`", deps.display()))?;
    }
    for (path, text) in [(dir.join("Cargo.toml"), &rendered.cargo_toml), (dir.join("src/main.rs"), &rendered.main_rs)] {
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
        }
    }
    Ok(())
}

/// `binary.features` grouped by crate. Each must name a crate of this build (`crates`: its name
/// and, for a crate on disk, its features; cargo checks a registry crate's own).
pub fn features_by_crate(plan: &Plan, crates: &[(String, Option<Vec<String>>)]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &plan.features {
        let at = plan.at(f.line, "binary.features");
        let Some((_, known)) = crates.iter().find(|(c, _)| *c == f.krate) else {
            let names: Vec<&str> = crates.iter().map(|(c, _)| c.as_str()).collect();
            bail!("{at}: `{}` is not a crate of this build; name one of {}", f.krate, names.join(", "));
        };
        if let Some(known) = known
            && !known.contains(&f.feature)
        {
            let list = if known.is_empty() { "it has none".to_string() } else { format!("it has {}", known.join(", ")) };
            bail!("{at}: crate `{}` has no feature `{}`; {list}", f.krate, f.feature);
        }
        map.entry(f.krate.clone()).or_default().push(f.feature.clone());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(crate_name: &str) -> PluginDep {
        PluginDep { crate_name: crate_name.into(), lib_name: crate_name.replace('-', "_"), entry: "plugin".into(), dep: "{ path = \"x\" }".into() }
    }

    /// `[profile.release.package.NAME]` tables of a manifest, as NAME → its text.
    fn overrides(manifest: &str) -> BTreeMap<String, String> {
        let doc: toml_edit::DocumentMut = manifest.parse().unwrap();
        let Some(packages) = doc.get("profile").and_then(|p| p.get("release")).and_then(|r| r.get("package")).and_then(|p| p.as_table()) else { return BTreeMap::new() };
        packages.iter().map(|(name, table)| (name.to_string(), table.as_table().unwrap().to_string())).collect()
    }

    fn cargo_toml(plugins: &[&str]) -> String {
        let plugins: Vec<PluginDep> = plugins.iter().map(|p| plugin(p)).collect();
        render(Path::new("velox.toml"), "rr", "1.0.0", "{ path = \"r\" }", None, &plugins, &Links::default()).unwrap().cargo_toml
    }

    #[test]
    fn opt_level_overrides_only_for_the_plugins_that_bring_the_crates() {
        assert_eq!(overrides(&cargo_toml(&["rr-http", "rr-grpc"])), BTreeMap::new(), "cargo warns about an entry that matches no package");
        let temporal = overrides(&cargo_toml(&["rr-http", "rr-temporal"]));
        assert!(temporal.contains_key("temporalio-protos") && temporal.contains_key("rr-temporal"), "{temporal:?}");
        assert!(!temporal.contains_key("aws-sdk-sqs"), "{temporal:?}");
        assert!(overrides(&cargo_toml(&["rr-jobs-sqs"])).contains_key("aws-sdk-sqs"));
    }

    #[test]
    fn overrides_match_the_workspace_root_profile() {
        let root = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
        let all = overrides(&cargo_toml(&["rr-temporal", "rr-jobs-sqs"]));
        assert!(!all.is_empty());
        assert_eq!(all, overrides(&root), "plugin-templates/server/Cargo.toml.tera and the root Cargo.toml must set the same per-package profile");
    }
}
