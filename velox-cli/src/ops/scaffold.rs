//! `velox new-plugin NAME`: a plugin crate from `plugin-templates/plugin` that builds, passes
//! its own test, and can be added to velox.toml at once.

use std::path::Path;

use anyhow::{Context, bail};

use crate::ops::render::{PLUGIN_CARGO, PLUGIN_LIB, PLUGIN_TEST};

pub fn new_plugin(name: &str, dir: &Path, runtime_dep: &str) -> anyhow::Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        bail!("plugin name `{name}` must be lowercase letters, digits and `_` (it is the `.rr.yaml` key)");
    }
    if dir.exists() && !std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()) {
        bail!("`{}` exists and is not an empty directory; choose another directory with --dir", dir.display());
    }
    let crate_name = format!("rr-{}", name.replace('_', "-"));
    let mut ctx = tera::Context::new();
    ctx.insert("name", name);
    ctx.insert("crate_name", &crate_name);
    ctx.insert("lib_name", &crate_name.replace('-', "_"));
    ctx.insert("runtime_dep", runtime_dep);
    for (path, template) in [("Cargo.toml", PLUGIN_CARGO), ("src/lib.rs", PLUGIN_LIB), ("tests/plugin.rs", PLUGIN_TEST)] {
        let target = dir.join(path);
        let parent = target.parent().unwrap();
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create `{}`; choose a writable place with --dir", parent.display()))?;
        let text = tera::Tera::one_off(template, &ctx, false).with_context(|| format!("rendering plugin/{path}"))?;
        std::fs::write(&target, text).with_context(|| format!("cannot write `{}`", target.display()))?;
    }
    Ok(())
}
