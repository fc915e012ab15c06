//! `velox.toml`: what to build. Parsed with toml_edit so every error names the file, the line and
//! the key, and says how to fix it.
//!
//! ```toml
//! [binary]
//! name = "rr"            # output binary name
//! version = "2025.1.0"   # embedded, printed by `rr --version`
//! profile = "release"    # or "debug"
//! target = "x86_64-unknown-linux-gnu"   # optional
//! features = []          # optional features of the generated crate's dependencies (`crate/feature`)
//!
//! [runtime]
//! path = "runtime"       # any source kind
//!
//! [plugins.http]
//! path = "plugins/http"
//! [plugins.kv-redis]
//! git = "https://github.com/acme/rr-plugins"
//! tag = "v1.2.0"         # exactly one of tag / branch / rev
//! subdir = "kv-redis"    # optional, monorepos
//! [plugins.audit]
//! version = "1.4"        # from a cargo registry
//! registry = "internal"  # optional
//! [plugins.geo]
//! url = "https://example.com/rr-geo-0.3.0.tar.gz"
//! sha256 = "…"           # required with url
//! ```

use std::path::{Path, PathBuf};

use toml_edit::{Item, Table};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Tag(String),
    Branch(String),
    Rev(String),
}

impl GitRef {
    pub fn describe(&self) -> String {
        match self {
            GitRef::Tag(t) => format!("tag {t}"),
            GitRef::Branch(b) => format!("branch {b}"),
            GitRef::Rev(r) => format!("rev {r}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(PathBuf),
    Git { url: String, reference: GitRef, subdir: Option<String> },
    Registry { version: String, registry: Option<String> },
    Url { url: String, sha256: String },
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Path(p) => format!("path {}", p.display()),
            Source::Git { url, reference, subdir } => {
                format!("git {} ({}){}", redact(url), reference.describe(), subdir.as_ref().map(|s| format!(" /{s}")).unwrap_or_default())
            }
            Source::Registry { version, registry } => format!("version {version}{}", registry.as_ref().map(|r| format!(" from {r}")).unwrap_or_default()),
            Source::Url { url, .. } => format!("url {}", redact(url)),
        }
    }
}

/// Hide credentials in URLs (`https://user:TOKEN@host` → `https://user:***@host`).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The key under `[plugins]`.
    pub key: String,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    pub debug: bool,
    pub target: Option<String>,
    pub features: Vec<String>,
    pub runtime: Source,
    pub plugins: Vec<PluginSpec>,
}

impl Plan {
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }
}

/// One velox.toml problem: where it is and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: `{key}`: {message}")]
pub struct PlanError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> usize {
        span.map(|s| self.text[..s.start.min(self.text.len())].matches('\n').count() + 1).unwrap_or(1)
    }
    fn err(&self, span: Option<std::ops::Range<usize>>, key: &str, message: impl Into<String>) -> PlanError {
        PlanError { file: self.file.display().to_string(), line: self.line_of(span), key: key.to_string(), message: message.into() }
    }
}

pub fn load(file: &Path) -> Result<Plan, PlanError> {
    let text = std::fs::read_to_string(file).map_err(|e| PlanError {
        file: file.display().to_string(),
        line: 0,
        key: String::new(),
        message: format!("cannot read: {e}; pass the recipe with `-c velox.toml`"),
    })?;
    parse(file, &text)
}

pub fn parse(file: &Path, text: &str) -> Result<Plan, PlanError> {
    let ctx = Ctx { file, text };
    let doc: toml_edit::Document<&str> = toml_edit::Document::parse(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(1);
        PlanError { file: file.display().to_string(), line, key: String::new(), message: format!("invalid TOML: {}", e.message()) }
    })?;
    let root = doc.as_table();
    for (key, item) in root.iter() {
        if !["binary", "runtime", "plugins"].contains(&key) {
            return Err(ctx.err(item.span(), key, "unknown section; expected `[binary]`, `[runtime]` or `[plugins.<name>]`"));
        }
    }
    let binary = table(&ctx, root, "binary", true)?.unwrap();
    for (key, item) in binary.iter() {
        if !["name", "version", "profile", "target", "features"].contains(&key) {
            return Err(ctx.err(item.span(), &format!("binary.{key}"), "unknown key; expected name, version, profile, target or features"));
        }
    }
    let name = string(&ctx, binary, "binary", "name")?.unwrap_or_else(|| "rr".into());
    let version = string(&ctx, binary, "binary", "version")?.unwrap_or_else(|| "0.0.0".into());
    let debug = match string(&ctx, binary, "binary", "profile")?.as_deref() {
        None | Some("release") => false,
        Some("debug") | Some("dev") => true,
        Some(other) => return Err(ctx.err(binary.get("profile").and_then(Item::span), "binary.profile", format!("unknown profile `{other}`; use \"release\" or \"debug\""))),
    };
    let target = string(&ctx, binary, "binary", "target")?;
    let features = match binary.get("features") {
        None => Vec::new(),
        Some(item) => item
            .as_array()
            .ok_or_else(|| ctx.err(item.span(), "binary.features", "expected an array of strings"))?
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| ctx.err(item.span(), "binary.features", "expected an array of strings")))
            .collect::<Result<_, _>>()?,
    };
    let runtime_table = table(&ctx, root, "runtime", true)?.unwrap();
    let runtime = source(&ctx, runtime_table, "runtime")?;
    let mut plugins = Vec::new();
    if let Some(plugins_table) = table(&ctx, root, "plugins", false)? {
        for (key, item) in plugins_table.iter() {
            let path = format!("plugins.{key}");
            let t = item.as_table_like().ok_or_else(|| ctx.err(item.span(), &path, "expected a table, e.g. `[plugins.http]` with `path = \"plugins/http\"`"))?;
            let t = t.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Table>();
            let mut spec = source(&ctx, &t, &path).map_err(|mut e| {
                if e.line <= 1 {
                    e.line = ctx.line_of(item.span());
                }
                e
            })?;
            if let Source::Path(p) = &mut spec {
                *p = file.parent().unwrap_or(Path::new(".")).join(&*p);
            }
            plugins.push(PluginSpec { key: key.to_string(), source: spec });
        }
    }
    let runtime = match runtime {
        Source::Path(p) => Source::Path(file.parent().unwrap_or(Path::new(".")).join(p)),
        other => other,
    };
    Ok(Plan { file: file.to_path_buf(), name, version, debug, target, features, runtime, plugins })
}

fn table<'a>(ctx: &Ctx, root: &'a Table, key: &str, required: bool) -> Result<Option<&'a Table>, PlanError> {
    match root.get(key) {
        None if required => Err(ctx.err(None, key, format!("missing section; add `[{key}]`"))),
        None => Ok(None),
        Some(item) => item.as_table().map(Some).ok_or_else(|| ctx.err(item.span(), key, "expected a table")),
    }
}

fn string(ctx: &Ctx, t: &Table, section: &str, key: &str) -> Result<Option<String>, PlanError> {
    match t.get(key) {
        None => Ok(None),
        Some(item) => item
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| ctx.err(item.span(), &format!("{section}.{key}"), "expected a string")),
    }
}

/// Exactly one source kind, with its own keys.
fn source(ctx: &Ctx, t: &Table, path: &str) -> Result<Source, PlanError> {
    const KINDS: [&str; 4] = ["path", "git", "version", "url"];
    const KEYS: [&str; 9] = ["path", "git", "version", "url", "tag", "branch", "rev", "subdir", "sha256"];
    let span_of = |k: &str| t.get(k).and_then(Item::span);
    for (key, item) in t.iter() {
        if !KEYS.contains(&key) && key != "registry" {
            return Err(ctx.err(
                item.span(),
                &format!("{path}.{key}"),
                "unknown key; a source is one of `path`, `git` (+ `tag`/`branch`/`rev`, `subdir`), `version` (+ `registry`), `url` (+ `sha256`)",
            ));
        }
    }
    let kinds: Vec<&str> = KINDS.iter().copied().filter(|k| t.contains_key(k)).collect();
    let kind = match kinds.as_slice() {
        [one] => *one,
        [] => return Err(ctx.err(t.span(), path, "no source: set exactly one of `path`, `git`, `version` or `url`")),
        many => {
            return Err(ctx.err(span_of(many[1]), path, format!("several sources ({}): set exactly one of `path`, `git`, `version` or `url`", many.join(", "))));
        }
    };
    let get = |k: &str| string(ctx, t, path, k);
    let forbid = |keys: &[&str]| -> Result<(), PlanError> {
        for k in keys {
            if t.contains_key(k) {
                return Err(ctx.err(span_of(k), &format!("{path}.{k}"), format!("`{k}` does not apply to a `{kind}` source")));
            }
        }
        Ok(())
    };
    match kind {
        "path" => {
            forbid(&["tag", "branch", "rev", "subdir", "sha256", "registry"])?;
            Ok(Source::Path(PathBuf::from(get("path")?.unwrap())))
        }
        "git" => {
            forbid(&["sha256", "registry"])?;
            let refs: Vec<(&str, String)> = ["tag", "branch", "rev"].iter().filter_map(|k| Some((*k, get(k).ok()??))).collect();
            let reference = match refs.as_slice() {
                [(k, v)] => match *k {
                    "tag" => GitRef::Tag(v.clone()),
                    "branch" => GitRef::Branch(v.clone()),
                    _ => GitRef::Rev(v.clone()),
                },
                [] => return Err(ctx.err(span_of("git"), path, "a git source needs exactly one of `tag`, `branch` or `rev`")),
                [_, (second, _), ..] => {
                    return Err(ctx.err(span_of(second), &format!("{path}.{second}"), "set only one of `tag`, `branch` or `rev`"));
                }
            };
            Ok(Source::Git { url: get("git")?.unwrap(), reference, subdir: get("subdir")? })
        }
        "version" => {
            forbid(&["tag", "branch", "rev", "subdir", "sha256"])?;
            let version = get("version")?.unwrap();
            semver::VersionReq::parse(&version)
                .map_err(|e| ctx.err(span_of("version"), &format!("{path}.version"), format!("not a semver requirement: {e}")))?;
            Ok(Source::Registry { version, registry: get("registry")? })
        }
        _ => {
            forbid(&["tag", "branch", "rev", "subdir", "registry"])?;
            let sha256 = get("sha256")?.ok_or_else(|| {
                ctx.err(span_of("url"), &format!("{path}.sha256"), "missing `sha256`: a `url` source must pin the tarball's SHA-256 (`sha256sum FILE`)")
            })?;
            if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ctx.err(span_of("sha256"), &format!("{path}.sha256"), "expected 64 hex digits"));
            }
            Ok(Source::Url { url: get("url")?.unwrap(), sha256: sha256.to_lowercase() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("velox.toml"), text).unwrap_err().to_string()
    }

    const HEAD: &str = "[binary]\nname = \"rr\"\n[runtime]\npath = \"runtime\"\n";

    #[test]
    fn full_plan() {
        let plan = parse(
            Path::new("/x/velox.toml"),
            &format!("{HEAD}[plugins.http]\npath = \"plugins/http\"\n[plugins.g]\ngit = \"https://u:secret@h/r\"\nbranch = \"main\"\n[plugins.v]\nversion = \"1.2\"\n[plugins.u]\nurl = \"https://h/x.tgz\"\nsha256 = \"{}\"\n", "a".repeat(64)),
        )
        .unwrap();
        assert_eq!(plan.plugins.len(), 4);
        assert_eq!(plan.plugins[0].source, Source::Path("/x/plugins/http".into()));
        assert_eq!(plan.runtime, Source::Path("/x/runtime".into()));
        assert!(plan.plugins[1].source.describe().contains("u:***@h"), "tokens are never printed");
    }

    #[test]
    fn unknown_source_kind() {
        let e = err(&format!("{HEAD}[plugins.x]\nsvn = \"http://x\"\n"));
        assert_eq!(e, "velox.toml:6: `plugins.x.svn`: unknown key; a source is one of `path`, `git` (+ `tag`/`branch`/`rev`, `subdir`), `version` (+ `registry`), `url` (+ `sha256`)");
    }

    #[test]
    fn two_git_refs() {
        let e = err(&format!("{HEAD}[plugins.x]\ngit = \"file:///r\"\ntag = \"v1\"\nbranch = \"main\"\n"));
        assert_eq!(e, "velox.toml:8: `plugins.x.branch`: set only one of `tag`, `branch` or `rev`");
    }

    #[test]
    fn missing_sha256() {
        let e = err(&format!("{HEAD}[plugins.x]\nurl = \"https://h/x.tgz\"\n"));
        assert!(e.starts_with("velox.toml:6: `plugins.x.sha256`: missing `sha256`"), "{e}");
    }

    #[test]
    fn duplicate_plugin_key() {
        let e = err(&format!("{HEAD}[plugins.x]\npath = \"a\"\n[plugins.x]\npath = \"b\"\n"));
        assert!(e.starts_with("velox.toml:7: ``: invalid TOML"), "{e}");
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn unknown_key_and_section() {
        assert_eq!(err(&format!("{HEAD}[extra]\n")), "velox.toml:5: `extra`: unknown section; expected `[binary]`, `[runtime]` or `[plugins.<name>]`");
        assert!(err("[binary]\nnmae = \"rr\"\n[runtime]\npath = \"r\"\n").starts_with("velox.toml:2: `binary.nmae`: unknown key"));
    }

    #[test]
    fn two_sources_and_none() {
        assert!(err(&format!("{HEAD}[plugins.x]\npath = \"a\"\nversion = \"1\"\n")).contains("several sources (path, version)"));
        assert!(err(&format!("{HEAD}[plugins.x]\nsubdir = \"a\"\n")).contains("no source"));
        assert!(err(&format!("{HEAD}[plugins.x]\ngit = \"file:///r\"\n")).contains("needs exactly one of `tag`, `branch` or `rev`"));
    }
}
