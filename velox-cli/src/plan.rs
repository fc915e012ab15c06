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

/// Hide credentials in URLs: the whole userinfo (a token is often the user, `https://TOKEN@host`)
/// and the query (`?private_token=…`) become `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let authority_end = url[scheme..].find('/').map_or(url.len(), |i| scheme + i);
    let mut out = match url[scheme..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme], &url[scheme + at..]),
        None => url.to_string(),
    };
    if let Some(q) = out.find('?') {
        out.replace_range(q + 1.., "***");
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The key under `[plugins]`.
    pub key: String,
    pub source: Source,
    /// Where its table starts in velox.toml.
    pub line: usize,
}

/// One `binary.features` entry, `crate/feature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub krate: String,
    pub feature: String,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    pub debug: bool,
    pub target: Option<String>,
    pub features: Vec<Feature>,
    pub runtime: Source,
    pub runtime_line: usize,
    pub plugins: Vec<PluginSpec>,
}

impl Plan {
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// `velox.toml:LINE: `key``, the prefix of every error about one entry of the recipe.
    pub fn at(&self, line: usize, key: &str) -> String {
        format!("{}:{line}: `{key}`", self.file.display())
    }

    pub fn at_plugin(&self, spec: &PluginSpec) -> String {
        self.at(spec.line, &format!("plugins.{}", spec.key))
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
        PlanError { file: file.display().to_string(), line, key: e.span().map(|s| key_on_line(text, s.start)).unwrap_or_default(), message: format!("invalid TOML: {}", e.message()) }
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
    if !is_crate_name(&name) {
        return Err(ctx.err(
            binary.get("name").and_then(Item::span),
            "binary.name",
            format!("`{name}` is not a binary name; use letters, digits, `-` and `_`, starting with a letter (e.g. \"rr\")"),
        ));
    }
    let version = string(&ctx, binary, "binary", "version")?.unwrap_or_else(|| "0.0.0".into());
    semver::Version::parse(&version).map_err(|e| {
        ctx.err(binary.get("version").and_then(Item::span), "binary.version", format!("`{version}` is not a semver version ({e}); write it like \"2025.1.0\" or \"1.2.0-rc.1\""))
    })?;
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
            .map(|v| {
                let span = v.span().or(item.span());
                let entry = v.as_str().ok_or_else(|| ctx.err(span.clone(), "binary.features", "expected an array of strings"))?;
                match entry.split_once('/') {
                    Some((krate, feature)) if is_crate_name(krate) && is_feature_name(feature) => {
                        Ok(Feature { krate: krate.into(), feature: feature.into(), line: ctx.line_of(span) })
                    }
                    _ => Err(ctx.err(span, "binary.features", format!("`{entry}` is not `crate/feature`; name a plugin's crate or rr-runtime, e.g. \"rr-http/some-feature\""))),
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let runtime_table = table(&ctx, root, "runtime", true)?.unwrap();
    let runtime = source(&ctx, runtime_table, "runtime")?;
    let runtime_line = ctx.line_of(root.get("runtime").and_then(Item::span));
    let mut plugins = Vec::new();
    if let Some(plugins_table) = table(&ctx, root, "plugins", false)? {
        for (key, item) in plugins_table.iter() {
            let path = format!("plugins.{key}");
            if !is_crate_name(key) {
                return Err(ctx.err(item.span(), &path, "a plugin key is letters, digits, `-` and `_`, starting with a letter (for a registry plugin it is the crate name)"));
            }
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
            plugins.push(PluginSpec { key: key.to_string(), source: spec, line: ctx.line_of(item.span()) });
        }
    }
    let runtime = match runtime {
        Source::Path(p) => Source::Path(file.parent().unwrap_or(Path::new(".")).join(p)),
        other => other,
    };
    Ok(Plan { file: file.to_path_buf(), name, version, debug, target, features, runtime, runtime_line, plugins })
}

/// The table header or key written on the line at `pos` (toml_edit's errors give only a span).
fn key_on_line(text: &str, pos: usize) -> String {
    let pos = pos.min(text.len());
    let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    match line.strip_prefix('[') {
        Some(header) => header.trim_start_matches('[').split(']').next().unwrap_or("").trim().to_string(),
        None => line.split('=').next().unwrap_or("").trim().to_string(),
    }
}

/// What cargo accepts as a crate, binary or feature name, and nothing that could break out of a
/// generated TOML or Rust string.
fn is_crate_name(s: &str) -> bool {
    s.len() <= 64 && s.starts_with(|c: char| c.is_ascii_alphabetic()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_feature_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c))
}

/// A git URL velox can fetch: http(s) (with `${TOKEN}` credentials), git:// or file://.
fn check_git_url(url: &str) -> Result<(), String> {
    let how = "write it as `https://host/owner/repo` (a token: `https://x-access-token:${GITHUB_TOKEN}@host/owner/repo`)";
    match url.split_once("://") {
        Some(("ssh", _)) => Err(format!("ssh URLs are not supported (velox fetches over https); {how}")),
        Some(("https" | "http" | "git", rest)) if !rest.trim_start_matches('/').is_empty() && !rest.starts_with('/') => Ok(()),
        Some(("file", rest)) if rest.starts_with('/') => Ok(()),
        Some((scheme, _)) => Err(format!("`{}` is not a git URL velox can fetch (scheme `{scheme}`); {how}", redact(url))),
        None if url.contains('@') && url.contains(':') => Err(format!("scp-style ssh URLs are not supported (velox fetches over https); {how}")),
        None => Err(format!("`{}` is not a URL; {how}, or use `path` for a local crate", redact(url))),
    }
}

/// A tarball URL: http or https.
fn check_url(url: &str) -> Result<(), String> {
    match url.parse::<ureq::http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(u) if u.scheme_str().is_none() => Err(format!("`{}` is not a URL; write it as `https://host/path/crate-1.0.0.tar.gz`", redact(url))),
        Ok(u) => Err(format!("`{}`: only http and https downloads are supported, not `{}`", redact(url), u.scheme_str().unwrap_or_default())),
        Err(e) => Err(format!("`{}` is not a URL ({e}); write it as `https://host/path/crate-1.0.0.tar.gz`", redact(url))),
    }
}

/// `subdir` is a plain relative path inside the checkout (symlinks are checked after checkout).
fn check_subdir(subdir: &str) -> Result<(), String> {
    let path = Path::new(subdir);
    if subdir.is_empty() || !path.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)) {
        return Err(format!("`{subdir}` must be a relative path inside the repository, without `..` (e.g. \"crates/geo\")"));
    }
    Ok(())
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
            let url = get("git")?.unwrap();
            check_git_url(&url).map_err(|m| ctx.err(span_of("git"), &format!("{path}.git"), m))?;
            let subdir = get("subdir")?;
            if let Some(s) = &subdir {
                check_subdir(s).map_err(|m| ctx.err(span_of("subdir"), &format!("{path}.subdir"), m))?;
            }
            Ok(Source::Git { url, reference, subdir })
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
            let url = get("url")?.unwrap();
            check_url(&url).map_err(|m| ctx.err(span_of("url"), &format!("{path}.url"), m))?;
            Ok(Source::Url { url, sha256: sha256.to_lowercase() })
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
        assert_eq!(plan.plugins[1].source.describe(), "git https://***@h/r (branch main)", "credentials are never printed");
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
    fn injection_through_name_or_version_is_refused() {
        let head = |binary: &str| format!("[binary]\n{binary}\n[runtime]\npath = \"r\"\n");
        let e = err(&head(r#"version = "1.0\".trim_matches({ eprintln!(\"INJECTED\"); 'x' })), // ""#));
        assert!(e.starts_with("velox.toml:2: `binary.version`: `1.0\".trim_matches("), "{e}");
        assert!(e.ends_with("write it like \"2025.1.0\" or \"1.2.0-rc.1\""), "{e}");
        assert!(err(&head("version = '1.0 \"beta\"'")).starts_with("velox.toml:2: `binary.version`: `1.0 \"beta\"` is not a semver version"));
        for name in ["../evil", "", "a\\nb", "rr\\\"x"] {
            let e = err(&head(&format!("name = \"{name}\"")));
            assert!(e.starts_with("velox.toml:2: `binary.name`: ") && e.contains("is not a binary name"), "{name}: {e}");
        }
        assert!(err(&format!("{HEAD}[plugins.'a\"b']\nversion = \"1\"\n")).starts_with("velox.toml:5: `plugins.a\"b`: a plugin key is letters"));
        let plan = parse(Path::new("velox.toml"), &head("version = \"2025.1.0-rs.1\"\nname = \"rr_2\"")).unwrap();
        assert_eq!((plan.name.as_str(), plan.version.as_str()), ("rr_2", "2025.1.0-rs.1"));
    }

    #[test]
    fn credentials_are_redacted_user_and_password() {
        assert_eq!(redact("https://ghp_SECRET@host/x"), "https://***@host/x");
        assert_eq!(redact("https://u:p@ss@host/x@y"), "https://***@host/x@y");
        assert_eq!(redact("https://host/x.tgz?private_token=glpat-1"), "https://host/x.tgz?***");
        assert_eq!(redact("https://host/a@b"), "https://host/a@b");
    }

    #[test]
    fn subdir_stays_inside_the_checkout() {
        for subdir in ["../../etc", "/abs/crate", "a/../../b", ""] {
            let e = err(&format!("{HEAD}[plugins.x]\ngit = \"https://h/r\"\ntag = \"v1\"\nsubdir = \"{subdir}\"\n"));
            assert!(e.starts_with("velox.toml:8: `plugins.x.subdir`: ") && e.contains("relative path inside the repository"), "{subdir}: {e}");
        }
    }

    #[test]
    fn urls_are_checked() {
        let e = err(&format!("{HEAD}[plugins.x]\nurl = \"not a url\"\nsha256 = \"{}\"\n", "a".repeat(64)));
        assert!(e.starts_with("velox.toml:6: `plugins.x.url`: `not a url` is not a URL ("), "{e}");
        let e = err(&format!("{HEAD}[plugins.x]\ngit = \"git@github.com:acme/x\"\ntag = \"v1\"\n"));
        assert!(e.starts_with("velox.toml:6: `plugins.x.git`: scp-style ssh URLs are not supported"), "{e}");
        let e = err(&format!("{HEAD}[plugins.x]\ngit = \"not a url\"\ntag = \"v1\"\n"));
        assert!(e.starts_with("velox.toml:6: `plugins.x.git`: `not a url` is not a URL"), "{e}");
    }

    #[test]
    fn features_are_crate_slash_feature() {
        let e = err("[binary]\nfeatures = [\n  \"rr-http/gzip\",\n  \"gzip\",\n]\n[runtime]\npath = \"r\"\n");
        assert!(e.starts_with("velox.toml:4: `binary.features`: `gzip` is not `crate/feature`"), "{e}");
    }

    #[test]
    fn duplicate_plugin_key() {
        let e = err(&format!("{HEAD}[plugins.x]\npath = \"a\"\n[plugins.x]\npath = \"b\"\n"));
        assert!(e.starts_with("velox.toml:7: `plugins.x`: invalid TOML"), "{e}");
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
