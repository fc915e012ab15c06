//! `velox add` / `velox remove`: edit velox.toml in place with toml_edit, keeping comments and
//! formatting; the result is validated before it is written.

use std::path::Path;

use anyhow::{Context, bail};
use toml_edit::{DocumentMut, Item, Table, value};

/// The source flags of `velox add`.
#[derive(Debug, Default, clap::Args)]
pub struct SourceArgs {
    #[arg(long, group = "kind")]
    pub path: Option<String>,
    #[arg(long, group = "kind")]
    pub git: Option<String>,
    #[arg(long, requires = "git")]
    pub tag: Option<String>,
    #[arg(long, requires = "git")]
    pub branch: Option<String>,
    #[arg(long, requires = "git")]
    pub rev: Option<String>,
    #[arg(long, requires = "git")]
    pub subdir: Option<String>,
    #[arg(long = "version", group = "kind")]
    pub version_req: Option<String>,
    #[arg(long, requires = "version_req")]
    pub registry: Option<String>,
    #[arg(long, group = "kind")]
    pub url: Option<String>,
    #[arg(long, requires = "url")]
    pub sha256: Option<String>,
}

pub fn add(recipe: &Path, name: &str, src: &SourceArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(recipe).with_context(|| format!("cannot read `{}`", recipe.display()))?;
    let mut doc: DocumentMut = text.parse().with_context(|| format!("`{}` is not valid TOML", recipe.display()))?;
    let plugins = doc.entry("plugins").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let plugins = plugins.as_table_mut().context("`plugins` in velox.toml is not a table")?;
    if plugins.contains_key(name) {
        bail!("plugin `{name}` is already in `{}`; `velox remove {name}` first to change its source", recipe.display());
    }
    let mut t = Table::new();
    let pairs = [
        ("path", &src.path),
        ("git", &src.git),
        ("tag", &src.tag),
        ("branch", &src.branch),
        ("rev", &src.rev),
        ("subdir", &src.subdir),
        ("version", &src.version_req),
        ("registry", &src.registry),
        ("url", &src.url),
        ("sha256", &src.sha256),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            t.insert(k, value(v.as_str()));
        }
    }
    if t.is_empty() {
        bail!("give a source: --path DIR, --git URL (--tag/--branch/--rev), --version REQ or --url URL --sha256 HEX");
    }
    plugins.insert(name, Item::Table(t));
    let new_text = doc.to_string();
    // The new entry is not in the file yet, so a mistake in it is named by its flag.
    crate::plan::parse(recipe, &new_text).map_err(|e| match e.key.strip_prefix(&format!("plugins.{name}")) {
        Some(rest) => {
            let flag = rest.strip_prefix('.').map(|k| if k == "version" { "--version".to_string() } else { format!("--{k}") });
            anyhow::anyhow!("velox add {name}: {}{}", flag.map(|f| format!("`{f}`: ")).unwrap_or_default(), e.message)
        }
        None => e.into(),
    })?;
    write(recipe, &text, new_text)
}

/// Write the edited recipe with the line endings it had (toml_edit writes `\n` for new lines).
fn write(recipe: &Path, original: &str, text: String) -> anyhow::Result<()> {
    let text = if original.contains("\r\n") { text.replace("\r\n", "\n").replace('\n', "\r\n") } else { text };
    std::fs::write(recipe, text).with_context(|| format!("cannot write `{}`", recipe.display()))
}

pub fn remove(recipe: &Path, name: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(recipe).with_context(|| format!("cannot read `{}`", recipe.display()))?;
    let mut doc: DocumentMut = text.parse().with_context(|| format!("`{}` is not valid TOML", recipe.display()))?;
    let removed = doc.get_mut("plugins").and_then(Item::as_table_mut).and_then(|t| t.remove(name));
    if removed.is_none() {
        bail!("no plugin `{name}` in `{}`", recipe.display());
    }
    write(recipe, &text, doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_remove_keep_comments() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("velox.toml");
        let original = "# my server\n[binary]\nname = \"rr\" # the name\n\n[runtime]\npath = \"runtime\"\n";
        std::fs::write(&recipe, original).unwrap();
        add(&recipe, "geo", &SourceArgs { git: Some("file:///r".into()), tag: Some("v1".into()), ..Default::default() }).unwrap();
        let text = std::fs::read_to_string(&recipe).unwrap();
        assert!(text.starts_with("# my server\n[binary]\nname = \"rr\" # the name\n"), "{text}");
        assert!(text.contains("[plugins.geo]\ngit = \"file:///r\"\ntag = \"v1\"\n"), "{text}");
        assert!(add(&recipe, "geo", &SourceArgs { path: Some("x".into()), ..Default::default() }).unwrap_err().to_string().contains("already"));
        remove(&recipe, "geo").unwrap();
        assert!(!std::fs::read_to_string(&recipe).unwrap().contains("geo"));
        assert!(remove(&recipe, "geo").is_err());
    }

    #[test]
    fn add_rejects_an_invalid_source() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("velox.toml");
        std::fs::write(&recipe, "[binary]\n[runtime]\npath = \"r\"\n").unwrap();
        let err = add(&recipe, "x", &SourceArgs { url: Some("https://h/x.tgz".into()), ..Default::default() }).unwrap_err().to_string();
        assert!(err.contains("sha256"), "{err}");
        assert!(!std::fs::read_to_string(&recipe).unwrap().contains("plugins"), "nothing written");
        let two_refs = SourceArgs { git: Some("https://h/r".into()), tag: Some("v1".into()), branch: Some("main".into()), ..Default::default() };
        let err = add(&recipe, "x", &two_refs).unwrap_err().to_string();
        assert_eq!(err, "velox add x: `--branch`: set only one of `tag`, `branch` or `rev`");
        let escape = SourceArgs { git: Some("https://h/r".into()), tag: Some("v1".into()), subdir: Some("../x".into()), ..Default::default() };
        assert!(add(&recipe, "x", &escape).unwrap_err().to_string().starts_with("velox add x: `--subdir`: `../x` must be a relative path"));
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("velox.toml");
        std::fs::write(&recipe, "[binary]\r\nname = \"rr\"\r\n\r\n[runtime]\r\npath = \"runtime\"\r\n").unwrap();
        add(&recipe, "geo", &SourceArgs { path: Some("geo".into()), ..Default::default() }).unwrap();
        let text = std::fs::read_to_string(&recipe).unwrap();
        assert!(text.contains("[plugins.geo]\r\npath = \"geo\"\r\n") && !text.replace("\r\n", "").contains('\n'), "{text:?}");
        remove(&recipe, "geo").unwrap();
        assert_eq!(std::fs::read_to_string(&recipe).unwrap(), "[binary]\r\nname = \"rr\"\r\n\r\n[runtime]\r\npath = \"runtime\"\r\n");
    }
}
