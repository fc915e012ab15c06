//! Step 4: render `plugin-templates/server` into a project. Pure: the same plan and resolution
//! give the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::ops::resolve::Resolved;

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

pub fn render(recipe: &Path, name: &str, version: &str, runtime: &Resolved, plugins: &[PluginDep]) -> anyhow::Result<Rendered> {
    let runtime_dep = dependency(runtime, &[]);
    let runtime_patch = matches!(runtime, Resolved::Dir { .. }).then(|| runtime_dep.clone());
    let mut ctx = tera::Context::new();
    ctx.insert("recipe", &recipe.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default());
    ctx.insert("name", name);
    ctx.insert("version", version);
    ctx.insert("runtime_dep", &runtime_dep);
    ctx.insert("runtime_patch", &runtime_patch);
    ctx.insert("plugins", plugins);
    Ok(Rendered {
        cargo_toml: tera::Tera::one_off(SERVER_CARGO, &ctx, false).context("rendering server/Cargo.toml.tera")?,
        main_rs: tera::Tera::one_off(SERVER_MAIN, &ctx, false).context("rendering server/src/main.rs.tera")?,
    })
}

/// Write the project; files are only rewritten when their bytes change, so cargo's
/// fingerprints (and the second build's speed) survive.
pub fn write(dir: &Path, rendered: &Rendered) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("src")).with_context(|| format!("cannot create `{}`", dir.display()))?;
    for (path, text) in [(dir.join("Cargo.toml"), &rendered.cargo_toml), (dir.join("src/main.rs"), &rendered.main_rs)] {
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
        }
    }
    Ok(())
}

/// Features from `binary.features` (`crate/feature`), grouped by crate.
pub fn features_by_crate(features: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in features {
        if let Some((krate, feature)) = f.split_once('/') {
            map.entry(krate.to_string()).or_default().push(feature.to_string());
        }
    }
    map
}
