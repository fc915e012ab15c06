//! `.rr.yaml` loading (config version "3"): YAML or JSON, `envfile`, `--dotenv`, `${VAR}`
//! expansion in every string value, `-o key=value` overrides, `include`. Sections are
//! deserialized on demand by the plugins that own them; errors name the key path.
//!
//! Order: read the file → load `envfile` (next to the config) → expand every string →
//! apply `-o` overrides (values expanded too) → check `version` → merge `include` files (each
//! expanded the same way; later files overwrite top-level keys).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// What the command line says about where the config comes from.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub path: PathBuf,
    /// `-o key=value`, in order.
    pub overrides: Vec<String>,
    /// `--dotenv FILE`.
    pub dotenv: Option<PathBuf>,
}

/// The loaded, expanded configuration tree.
#[derive(Debug, Clone, Default)]
pub struct Config {
    root: Value,
    path: Option<PathBuf>,
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::File { path: path.display().to_string(), message: message.to_string() }
}

fn parse_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    parse_text(&text).map_err(|m| file_error(path, m))
}

/// YAML (JSON is YAML); an empty file is an empty map.
fn parse_text(text: &str) -> Result<Value, String> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    match value {
        Value::Null => Ok(Value::Object(Default::default())),
        Value::Object(_) => Ok(value),
        other => Err(format!("the top level must be a map of sections, found {}", kind(&other))),
    }
}

impl Config {
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        if let Some(dotenv) = &opts.dotenv {
            dotenvy::from_path(dotenv).map_err(|e| file_error(dotenv, format!("cannot load the .env file: {e}")))?;
        }
        let mut root = parse_file(&opts.path)?;
        if let Some(envfile) = root.get("envfile").and_then(Value::as_str) {
            let envfile = opts.path.parent().unwrap_or(Path::new(".")).join(expand(envfile));
            dotenvy::from_path(&envfile).map_err(|e| ConfigError::Key { key: "envfile".into(), message: format!("cannot load `{}`: {e}", envfile.display()) })?;
        }
        expand_tree(&mut root);
        for o in &opts.overrides {
            apply_override(&mut root, o)?;
        }
        check_version(&root)?;
        let includes = match root.get("include") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            Some(other) => return Err(ConfigError::Key { key: "include".into(), message: format!("expected a list of file paths, found {}", kind(other)) }),
        };
        for include in includes {
            let path = std::path::absolute(&include).unwrap_or_else(|_| PathBuf::from(&include));
            let mut extra = parse_file(&path)?;
            expand_tree(&mut extra);
            if extra.get("version") != root.get("version") {
                return Err(file_error(&path, format!("included file has version {}, the main config has {}; they must match", show(extra.get("version")), show(root.get("version")))));
            }
            if let (Value::Object(main), Value::Object(extra)) = (&mut root, extra) {
                main.extend(extra);
            }
        }
        Ok(Config { root, path: Some(opts.path.clone()) })
    }

    /// Parse YAML text as a config (expanded, version not required); for tests and tools.
    pub fn from_str(text: &str) -> Result<Config, ConfigError> {
        let mut root = parse_text(text).map_err(ConfigError::Other)?;
        expand_tree(&mut root);
        Ok(Config { root, path: None })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The value at a dotted key path, if present.
    pub fn value(&self, key: &str) -> Option<&Value> {
        key.split('.').try_fold(&self.root, |v, k| v.get(k)).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    /// Deserialize the section at a dotted key; `Ok(None)` when absent. Scalars written as
    /// strings (from `-o` or `${VAR}`) are accepted where numbers or booleans are expected, and
    /// a string where a list is expected is split on commas, as RoadRunner's config decoding
    /// (viper) does: `-o http.middleware=static` (Laravel Octane passes that) is `[static]`.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.value(key) else { return Ok(None) };
        let attempt = |v: &Value| serde_path_to_error::deserialize::<_, T>(v);
        match attempt(value) {
            Ok(v) => Ok(Some(v)),
            Err(first) => {
                let mut coerced = value.clone();
                coerce_scalars(&mut coerced);
                let mut result = attempt(&coerced);
                // One list per round: each retry reaches the next string that should be a list.
                for _ in 0..64 {
                    let Err(e) = &result else { break };
                    if !e.inner().to_string().contains("expected a sequence") {
                        break;
                    }
                    let Some(slot @ Value::String(_)) = coerced.pointer_mut(&pointer(e.path())) else { break };
                    *slot = string_list(slot.as_str().unwrap_or_default());
                    result = attempt(&coerced);
                }
                result.map(Some).map_err(|_| {
                    let inner = first.path().to_string();
                    let full = if inner == "." { key.to_string() } else { format!("{key}.{inner}") };
                    let at = value.pointer(&pointer(first.path()));
                    let message = first.into_inner().to_string();
                    let found = match at {
                        Some(v) if !message.starts_with("invalid type") && !v.is_object() => format!(", found {}", describe(v)),
                        _ => String::new(),
                    };
                    ConfigError::Key { key: full, message: format!("{message}{found}") }
                })
            }
        }
    }

    /// The whole tree, for `rpc.Config`.
    pub fn root(&self) -> &Value {
        &self.root
    }
}

fn check_version(root: &Value) -> Result<(), ConfigError> {
    match root.get("version") {
        None | Some(Value::Null) => Err(ConfigError::Other("rr configuration file should contain a version e.g: version: 3".into())),
        Some(Value::String(v)) if v == "3" => Ok(()),
        Some(Value::String(v)) if v.starts_with('2') => {
            Err(ConfigError::Key { key: "version".into(), message: format!("configuration version \"{v}\" is not supported; migrate the file to version \"3\"") })
        }
        Some(Value::String(v)) => Err(ConfigError::Key { key: "version".into(), message: format!("unknown configuration version \"{v}\"; expected \"3\"") }),
        Some(other) => Err(ConfigError::Key {
            key: "version".into(),
            message: format!("version should be a string: write `version: \"3\"` (found {})", kind(other)),
        }),
    }
}

/// `-o key=value` (RoadRunner's rules: split on the first `=`, trim quotes, expand the value).
fn apply_override(root: &mut Value, flag: &str) -> Result<(), ConfigError> {
    let flag = flag.trim_start_matches([' ', '"', '\'']);
    let Some((key, value)) = flag.split_once('=') else {
        return Err(ConfigError::Other(format!("invalid flag `-o {flag}`: expected `-o key=value`, e.g. `-o http.address=:8080`")));
    };
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() {
        return Err(ConfigError::Other(format!("invalid flag `-o {flag}`: key should not be empty")));
    }
    if value.is_empty() {
        return Err(ConfigError::Other(format!("invalid flag `-o {flag}`: value should not be empty")));
    }
    let value = value.trim_matches(['"', '\'', '`']).replace("\\\"", "\"");
    let value = expand(&value);
    // A string, as in RoadRunner; `section` reads numbers and booleans out of strings.
    let parsed = Value::String(value);
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = match node {
            Value::Object(map) => map,
            other => {
                *other = Value::Object(Default::default());
                let Value::Object(map) = other else { unreachable!() };
                map
            }
        };
        if i == parts.len() - 1 {
            map.insert(part.to_string(), parsed);
            return Ok(());
        }
        node = map.entry(part.to_string()).or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// Expand `$VAR`, `${VAR}` and `${VAR:-default}` (default when unset or empty); `$$` is `$`.
pub fn expand(text: &str) -> String {
    if !text.contains('$') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            match body.find('}') {
                Some(end) => {
                    let inner = &body[..end];
                    let (name, default) = match inner.split_once(":-") {
                        Some((n, d)) => (n, Some(d)),
                        None => (inner, None),
                    };
                    let value = std::env::var(name).unwrap_or_default();
                    match default {
                        Some(d) if value.is_empty() => out.push_str(&expand(d)),
                        _ => out.push_str(&value),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&std::env::var(&after[..len]).unwrap_or_default());
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

fn expand_tree(value: &mut Value) {
    match value {
        Value::String(s) => *s = expand(s),
        Value::Array(items) => items.iter_mut().for_each(expand_tree),
        Value::Object(map) => map.values_mut().for_each(expand_tree),
        _ => {}
    }
}

/// Strings that read as numbers or booleans become those (for `${VAR}`-driven settings).
fn coerce_scalars(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Ok(parsed @ (Value::Number(_) | Value::Bool(_))) = serde_yaml_ng::from_str::<Value>(s) {
                *value = parsed;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(coerce_scalars),
        Value::Object(map) => map.values_mut().for_each(coerce_scalars),
        _ => {}
    }
}

/// A list from a string as viper reads one: split on commas, each part a scalar; empty: none.
fn string_list(text: &str) -> Value {
    let mut list = Value::Array(text.split(',').filter(|_| !text.is_empty()).map(|p| Value::String(p.to_string())).collect());
    coerce_scalars(&mut list);
    list
}

/// A deserialization error's path as a JSON pointer into the value (`a.b[0]` → `/a/b/0`).
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|segment| match segment {
            Segment::Seq { index } => format!("/{index}"),
            Segment::Map { key } => format!("/{}", key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => format!("/{variant}"),
            Segment::Unknown => "/?".to_string(),
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("string {s:?}"),
        Value::Number(n) => format!("number {n}"),
        Value::Bool(b) => format!("boolean {b}"),
        other => kind(other).to_string(),
    }
}

fn show(v: Option<&Value>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
}

/// Go-style durations (`60s`, `1m30s`, `500ms`); a bare integer is seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Duration::from_secs(n)),
            Raw::Text(s) => parse(&s).map_err(serde::de::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    /// Parse a Go duration string.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let bad = || format!("invalid duration `{text}`: expected a Go duration such as `60s`, `1m30s` or `500ms`");
        let s = text.trim();
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        if s.is_empty() {
            return Err(bad());
        }
        let mut total = 0f64;
        let mut rest = s;
        while !rest.is_empty() {
            let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
            if num_end == 0 {
                return Err(bad());
            }
            let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
            rest = &rest[num_end..];
            let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
            let factor = match &rest[..unit_end] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            total += n * factor;
            rest = &rest[unit_end..];
        }
        Ok(Duration::from_secs_f64(total))
    }
}
