//! `.rr.yaml` loading (config version "3"): YAML or JSON, `envfile`, `--dotenv`, `${VAR}`
//! expansion in every string value, `-o key=value` overrides, `include`. Sections are
//! deserialized on demand by the plugins that own them; errors name the key path.
//!
//! Order: read the file → load `envfile` (next to the config) → expand every string →
//! apply `-o` overrides (values expanded too) → check `version` (a "2.7" file is upgraded, with
//! a warning) → merge `include` files (each expanded the same way; later files overwrite
//! top-level keys). Sections are decoded with RoadRunner's weak typing (`weak`); the keys no
//! section knows are warned about once the plugins have read theirs (`unknown`).

pub mod duration;
mod unknown;
mod weak;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    /// Accept a file without `version` (the client commands only need `rpc.listen`).
    pub version_optional: bool,
}

/// The loaded, expanded configuration tree.
#[derive(Debug, Clone, Default)]
pub struct Config {
    root: Value,
    path: Option<PathBuf>,
    /// What the sections read so far took and ignored (shared by clones).
    keys: Arc<Mutex<unknown::Reads>>,
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::File { path: path.display().to_string(), message: message.to_string() }
}

fn parse_file(path: &Path) -> Result<Value, ConfigError> {
    if path.is_dir() {
        return Err(file_error(path, format!("is a directory, not a config file: pass the file, e.g. `-c {}`", path.join(".rr.yaml").display())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    parse_text(&text).map_err(|m| file_error(path, m))
}

/// YAML (JSON is YAML); an empty file is an empty map; a key twice in one mapping is an error
/// (YAML 1.2 forbids it; RoadRunner's parser keeps the last silently).
fn parse_text(text: &str) -> Result<Value, String> {
    let Unique(value) = serde_yaml_ng::from_str(text).map_err(|e| match duplicate_key(text, &e) {
        Some(message) => message,
        None => format!("invalid YAML: {e}"),
    })?;
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
        let version = root.get("version").cloned().unwrap_or_default();
        if !(opts.version_optional && version.is_null()) {
            check_version(&version)?;
        }
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
            if extra.get("version") != Some(&version) {
                return Err(file_error(&path, format!("included file has version {}, the main config has {version}; they must match", show(extra.get("version")))));
            }
            if let (Value::Object(main), Value::Object(extra)) = (&mut root, extra) {
                main.extend(extra);
            }
        }
        if version == "2.7" {
            upgrade_from_2_7(&mut root);
        }
        Ok(Config { root, path: Some(opts.path.clone()), keys: Default::default() })
    }

    /// Parse YAML text as a config (expanded, version not required); for tests and tools.
    pub fn from_str(text: &str) -> Result<Config, ConfigError> {
        let mut root = parse_text(text).map_err(ConfigError::Other)?;
        expand_tree(&mut root);
        Ok(Config { root, path: None, keys: Default::default() })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The value at a dotted key path, if present.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.lock_keys().taken.insert(key.to_string());
        key.split('.').try_fold(&self.root, |v, k| v.get(k)).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    /// Deserialize the section at a dotted key with RoadRunner's weak typing (`weak`: e.g.
    /// `-o http.middleware=static,gzip` is a list); `Ok(None)` when absent. Errors name the key.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.value(key) else { return Ok(None) };
        let keys = RefCell::default();
        let result = decode_with(value, key, &keys);
        self.lock_keys().record(keys.into_inner());
        result.map(Some)
    }

    /// Keys that sections read so far ignored and no other read took, each with the nearest
    /// valid key: `http.pool.num_wrokers: unknown key, did you mean `num_workers`?`.
    pub fn unknown_keys(&self) -> Vec<String> {
        self.lock_keys().unknown()
    }

    /// Warn about [`Config::unknown_keys`]; `serve` calls it once every plugin has read its config.
    pub fn warn_unknown_keys(&self) {
        for message in self.unknown_keys() {
            tracing::warn!("config key {message}");
        }
    }

    fn lock_keys(&self) -> std::sync::MutexGuard<'_, unknown::Reads> {
        self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The whole tree, for `rpc.Config`.
    pub fn root(&self) -> &Value {
        &self.root
    }
}

/// Decode a value with the rules of [`Config::section`], for config a plugin hands on (a jobs
/// pipeline's or a kv storage's `config`); `key` is its path, for errors.
pub fn decode<T: DeserializeOwned>(value: &Value, key: &str) -> Result<T, ConfigError> {
    decode_with(value, key, &RefCell::default())
}

fn decode_with<T: DeserializeOwned>(value: &Value, key: &str, keys: &RefCell<weak::Keys>) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(weak::Weak { value, path: key.to_string(), keys }).map_err(|e| {
        let inner = e.path().to_string();
        let full = if inner == "." { key.to_string() } else { format!("{key}.{inner}") };
        let at = value.pointer(&pointer(e.path()));
        let message = e.into_inner().to_string();
        let found = match at {
            Some(v) if !message.starts_with("invalid type") && !v.is_object() => format!(", found {}", describe(v)),
            _ => String::new(),
        };
        ConfigError::Key { key: full, message: format!("{message}{found}") }
    })
}

/// RoadRunner ≥ 2023 reads version "3" files, and "2.7" ones with a warning (its config plugin
/// converts nothing). What changed in "3" is converted here: `http.otel` moved to the top-level
/// `otel`, and the `reload` plugin is gone (`pool.debug` replaces it).
fn check_version(version: &Value) -> Result<(), ConfigError> {
    match version {
        Value::Null => Err(ConfigError::Other("rr configuration file should contain a version e.g: version: 3".into())),
        Value::String(v) if v == "3" || v == "2.7" => Ok(()),
        Value::String(v) => Err(ConfigError::Key { key: "version".into(), message: format!("unknown configuration version \"{v}\"; expected \"3\" (or \"2.7\")") }),
        other => Err(ConfigError::Key {
            key: "version".into(),
            message: format!("version should be a string: write `version: \"3\"` (found {})", kind(other)),
        }),
    }
}

fn upgrade_from_2_7(root: &mut Value) {
    // Logging is not set up yet at this point; RoadRunner prints this line to stderr too.
    eprintln!("please, update your configuration version from version: '2.7' to version: '3' (docs/INTEGRATIONS.md lists the changes)");
    let Some(map) = root.as_object_mut() else { return };
    if let Some(otel) = map.get_mut("http").and_then(Value::as_object_mut).and_then(|http| http.remove("otel")) {
        map.entry("otel").or_insert(otel);
    }
    if map.remove("reload").is_some() {
        eprintln!("config section `reload` (version 2.7) is ignored: set `pool.debug: true` for a fresh worker per request");
    }
    map.insert("version".into(), Value::String("3".into()));
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
    // A string, as in RoadRunner; `section` reads numbers, booleans and lists out of strings.
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


/// A YAML tree read into JSON values, refusing a key given twice in one mapping.
struct Unique(Value);

const DUPLICATE: &str = "duplicate key ";

/// The lines of a duplicate key: the parser points at the start of the mapping, so look for
/// the key at that indentation below it (block style; flow style gets the mapping's line).
fn duplicate_key(text: &str, error: &serde_yaml_ng::Error) -> Option<String> {
    let message = error.to_string();
    let key = message.split(DUPLICATE).nth(1)?.split('`').nth(1)?;
    let at = error.location()?;
    let indent = at.column() - 1;
    let lines = text.lines().enumerate().skip(at.line() - 1);
    let block = lines.take_while(|(_, l)| {
        let trimmed = l.trim_start();
        trimmed.is_empty() || trimmed.starts_with('#') || l.len() - trimmed.len() >= indent
    });
    let found: Vec<usize> = block
        .filter(|(_, l)| l.len() - l.trim_start().len() == indent)
        .filter(|(_, l)| [key.to_string(), format!("\"{key}\""), format!("'{key}'")].iter().any(|k| l[indent..].starts_with(&format!("{k}:"))))
        .map(|(n, _)| n + 1)
        .collect();
    let lines = match found.as_slice() {
        [first, .., last] => format!("lines {first} and {last}"),
        _ => format!("the mapping at line {}", at.line()),
    };
    Some(format!("duplicate key `{key}` at {lines}: a key may appear once in a mapping; remove or merge one of them"))
}

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, SeqAccess, Visitor};
        struct Tree;
        impl<'de> Visitor<'de> for Tree {
            type Value = Unique;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Unique, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some(key) = entries.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(A::Error::custom(format_args!("{DUPLICATE}`{key}`")));
                    }
                    let Unique(value) = entries.next_value()?;
                    map.insert(key, value);
                }
                Ok(Unique(Value::Object(map)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Unique, A::Error> {
                let mut list = Vec::new();
                while let Some(Unique(item)) = items.next_element()? {
                    list.push(item);
                }
                Ok(Unique(Value::Array(list)))
            }
            fn visit_unit<E: Error>(self) -> Result<Unique, E> {
                Ok(Unique(Value::Null))
            }
            fn visit_none<E: Error>(self) -> Result<Unique, E> {
                Ok(Unique(Value::Null))
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Unique, D::Error> {
                d.deserialize_any(Tree)
            }
            fn visit_bool<E: Error>(self, b: bool) -> Result<Unique, E> {
                Ok(Unique(Value::Bool(b)))
            }
            fn visit_i64<E: Error>(self, n: i64) -> Result<Unique, E> {
                Ok(Unique(n.into()))
            }
            fn visit_u64<E: Error>(self, n: u64) -> Result<Unique, E> {
                Ok(Unique(n.into()))
            }
            fn visit_f64<E: Error>(self, n: f64) -> Result<Unique, E> {
                Ok(Unique(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)))
            }
            fn visit_str<E: Error>(self, s: &str) -> Result<Unique, E> {
                Ok(Unique(Value::String(s.to_string())))
            }
        }
        d.deserialize_any(Tree)
    }
}
