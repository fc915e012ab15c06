//! `.rr.yaml` loading (config version "3"): YAML or JSON, env expansion, `-o` overrides,
//! `include`, `envfile`, `--dotenv`. Sections are deserialized on demand by the plugins that own
//! them; errors name the key path.
//!
//! (Minimal version; the config work completes expansion, overrides, includes and messages.)

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

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
    root: serde_json::Value,
    path: Option<PathBuf>,
}

impl Config {
    pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(&opts.path)
            .map_err(|e| ConfigError::File { path: opts.path.display().to_string(), message: e.to_string() })?;
        let mut config = Config::from_str(&text)?;
        config.path = Some(opts.path.clone());
        Ok(config)
    }

    /// Parse YAML (JSON is YAML) without touching the environment's files.
    pub fn from_str(text: &str) -> Result<Config, ConfigError> {
        let root: serde_json::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Other(format!("invalid YAML: {e}")))?;
        Ok(Config { root, path: None })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The value at a dotted key path, if present.
    pub fn value(&self, key: &str) -> Option<&serde_json::Value> {
        key.split('.').try_fold(&self.root, |v, k| v.get(k)).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.value(key).is_some()
    }

    /// Deserialize the section at a dotted key; `Ok(None)` when absent.
    pub fn section<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.value(key) else { return Ok(None) };
        serde_path_to_error::deserialize(value).map(Some).map_err(|e| {
            let inner = e.path().to_string();
            let key = if inner == "." { key.to_string() } else { format!("{key}.{inner}") };
            ConfigError::Key { key, message: e.into_inner().to_string() }
        })
    }

    /// The whole tree, for `rpc.Config`.
    pub fn root(&self) -> &serde_json::Value {
        &self.root
    }
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
