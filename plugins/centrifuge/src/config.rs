//! The `centrifuge` section with RoadRunner's keys, defaults and error texts (CENTRIFUGE.md §1).

use std::path::PathBuf;

use rr_runtime::pool::PoolConfig;
use serde::Deserialize;

pub const DEFAULT_PROXY_ADDRESS: &str = "tcp://127.0.0.1:30000";
pub const DEFAULT_GRPC_API_ADDRESS: &str = "127.0.0.1:10000";
pub const DEFAULT_VERSION: &str = "1.0.0";
pub const DEFAULT_NAME: &str = "roadrunner";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where Centrifugo's gRPC proxy calls arrive: `tcp://host:port` or `unix:///path`
    /// (plain HTTP/2, no TLS, as RoadRunner).
    pub proxy_address: String,
    /// Centrifugo's gRPC server API: `host:port`, a leading `tcp://` is dropped.
    pub grpc_api_address: String,
    /// gzip on calls to the Centrifugo API.
    pub use_compressor: bool,
    /// Read and kept, never used (as in RoadRunner).
    pub version: String,
    /// Read and kept, never used (as in RoadRunner).
    pub name: String,
    /// Client certificate for the API connection (not for `proxy_address`).
    pub tls: Option<Tls>,
    pub pool: PoolConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            proxy_address: DEFAULT_PROXY_ADDRESS.into(),
            grpc_api_address: DEFAULT_GRPC_API_ADDRESS.into(),
            use_compressor: false,
            version: DEFAULT_VERSION.into(),
            name: DEFAULT_NAME.into(),
            tls: None,
            pool: PoolConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    pub key: PathBuf,
    pub cert: PathBuf,
}

/// Where the proxy server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(String),
    Unix(PathBuf),
}

impl Config {
    /// Fill what RoadRunner's `InitDefaults` fills (empty strings count as unset) and run its
    /// checks, with its texts.
    pub fn resolve(mut self) -> Result<Config, String> {
        for (value, default) in [
            (&mut self.proxy_address, DEFAULT_PROXY_ADDRESS),
            (&mut self.grpc_api_address, DEFAULT_GRPC_API_ADDRESS),
            (&mut self.version, DEFAULT_VERSION),
            (&mut self.name, DEFAULT_NAME),
        ] {
            if value.trim().is_empty() {
                *value = default.to_string();
            }
        }
        if let Some(tls) = &self.tls {
            if tls.key.as_os_str().is_empty() || !tls.key.exists() {
                return Err(format!("key file '{}' does not exists (config key `centrifuge.tls.key`)", tls.key.display()));
            }
            if tls.cert.as_os_str().is_empty() || !tls.cert.exists() {
                return Err(format!("cert file '{}' does not exists (config key `centrifuge.tls.cert`)", tls.cert.display()));
            }
        }
        self.listen()?;
        Ok(self)
    }

    /// `proxy_address` as RoadRunner's `tcplisten.CreateListener` reads it.
    pub fn listen(&self) -> Result<Listen, String> {
        let address = self.proxy_address.as_str();
        let Some((scheme, rest)) = address.split_once("://") else {
            return Err(format!("invalid DSN (tcp://:6001, unix://file.sock): config key `centrifuge.proxy_address` is `{address}`, e.g. `tcp://127.0.0.1:30000`"));
        };
        match scheme {
            "tcp" if rest.starts_with(':') => Ok(Listen::Tcp(format!("0.0.0.0{rest}"))),
            "tcp" => Ok(Listen::Tcp(rest.to_string())),
            "unix" => Ok(Listen::Unix(PathBuf::from(rest))),
            _ => Err(format!("invalid Protocol (tcp://:6001, unix://file.sock): config key `centrifuge.proxy_address` is `{address}`")),
        }
    }

    /// The API endpoint as an `http://` URI for the gRPC channel (`tcp://` dropped as RoadRunner
    /// does; `https://` when a client certificate is configured).
    pub fn api_uri(&self) -> String {
        let address = self.grpc_api_address.strip_prefix("tcp://").unwrap_or(&self.grpc_api_address);
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        if address.contains("://") { address.to_string() } else { format!("{scheme}://{address}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, String> {
        serde_yaml_ng::from_str::<Config>(yaml).map_err(|e| e.to_string())?.resolve()
    }

    #[test]
    fn defaults_are_roadrunners() {
        let c = parse("{}").unwrap();
        assert_eq!(c.proxy_address, "tcp://127.0.0.1:30000");
        assert_eq!(c.grpc_api_address, "127.0.0.1:10000");
        assert_eq!((c.version.as_str(), c.name.as_str(), c.use_compressor), ("1.0.0", "roadrunner", false));
        assert_eq!(c.listen().unwrap(), Listen::Tcp("127.0.0.1:30000".into()));
        assert_eq!(c.api_uri(), "http://127.0.0.1:10000");
        let c = parse("proxy_address: ''\ngrpc_api_address: tcp://127.0.0.1:1\n").unwrap();
        assert_eq!((c.proxy_address.as_str(), c.api_uri().as_str()), ("tcp://127.0.0.1:30000", "http://127.0.0.1:1"));
        assert_eq!(parse("proxy_address: unix:///tmp/c.sock").unwrap().listen().unwrap(), Listen::Unix("/tmp/c.sock".into()));
        assert_eq!(parse("proxy_address: tcp://:30001").unwrap().listen().unwrap(), Listen::Tcp("0.0.0.0:30001".into()));
    }

    #[test]
    fn errors_name_the_key() {
        assert!(parse("proxy_address: 127.0.0.1:1").unwrap_err().starts_with("invalid DSN (tcp://:6001, unix://file.sock)"));
        assert!(parse("proxy_address: udp://x:1").unwrap_err().starts_with("invalid Protocol"));
        assert_eq!(parse("tls: {key: /nope.key, cert: /nope.crt}").unwrap_err(), "key file '/nope.key' does not exists (config key `centrifuge.tls.key`)");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "x").unwrap();
        let err = parse(&format!("tls: {{key: {}, cert: /nope.crt}}", key.display())).unwrap_err();
        assert_eq!(err, "cert file '/nope.crt' does not exists (config key `centrifuge.tls.cert`)");
        assert!(parse("grpc_api_addr: x").unwrap_err().contains("unknown field `grpc_api_addr`"));
    }
}
