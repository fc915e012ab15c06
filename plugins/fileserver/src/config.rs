//! The `fileserver` section with RoadRunner's keys and defaults (PLUGINS-MORE.md §D).

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `host:port`, `:port` or `tcp://host:port`.
    pub address: Option<String>,
    /// Send an ETag with every file and answer a matching `If-None-Match` with 304.
    pub calculate_etag: bool,
    /// The ETag is weak (`W/"..."`).
    pub weak: bool,
    /// Accepted for compatibility; a file server reads no request bodies.
    pub stream_request_body: bool,
    pub serve: Vec<Serve>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// URL path prefix, matched case-insensitively on whole segments and stripped.
    pub prefix: String,
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// gzip by `Accept-Encoding`.
    #[serde(default)]
    pub compress: bool,
    /// Seconds; Fiber's open-file cache. Accepted; files are opened per request here.
    #[serde(default = "default_cache_duration")]
    pub cache_duration: i64,
    /// Seconds; > 0 adds `Cache-Control: public, max-age=N`.
    #[serde(default)]
    pub max_age: u64,
    /// `Range` requests (`Accept-Ranges: bytes`).
    #[serde(default)]
    pub bytes_range: bool,
}

fn default_root() -> PathBuf {
    PathBuf::from(".")
}

fn default_cache_duration() -> i64 {
    10
}

impl Config {
    /// The address, or what is wrong with the section.
    pub fn validate(&self) -> Result<&str, String> {
        let address = self.address.as_deref().filter(|a| !a.trim().is_empty());
        let address = address.ok_or("config key `fileserver.address`: required, e.g. `fileserver: {address: 127.0.0.1:10101}`")?;
        if self.serve.is_empty() {
            return Err("config key `fileserver.serve`: at least one entry is required, e.g. `serve: [{prefix: /assets, root: public}]`".into());
        }
        for (i, s) in self.serve.iter().enumerate() {
            if !s.prefix.starts_with('/') {
                return Err(format!("config key `fileserver.serve[{i}].prefix`: `{}` must start with `/`", s.prefix));
            }
        }
        Ok(address)
    }
}
