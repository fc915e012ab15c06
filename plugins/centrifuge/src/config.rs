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
    /// The embedded hub: `rr` serves the Centrifuge client protocol itself.
    pub hub: Option<crate::hub::HubConfig>,
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
            hub: None,
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
        self.api_target()?;
        self.hub = self.hub.take().map(|h| h.resolve()).transpose()?;
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

    /// `grpc_api_address` as a grpc-go target: `host:port` (a leading `tcp://` is dropped, as
    /// RoadRunner does), `dns:///host:port`, or `unix:///path` / `unix:path`.
    pub fn api_target(&self) -> Result<ApiTarget, String> {
        let address = self.grpc_api_address.trim();
        let address = address.strip_prefix("tcp://").unwrap_or(address);
        if let Some(path) = address.strip_prefix("unix://").or_else(|| address.strip_prefix("unix:")) {
            return Ok(ApiTarget::Unix(PathBuf::from(path)));
        }
        // `dns:///host:port` or `dns://resolver/host:port`: the system resolver is used.
        let address = match address.strip_prefix("dns:") {
            Some(rest) => rest.strip_prefix("//").map_or(rest, |r| r.split_once('/').map_or(r, |(_, host)| host)),
            None => address,
        };
        if address.contains("://") || !address.contains(':') {
            return Err(format!(
                "config key `centrifuge.grpc_api_address`: `{}` is not an address of Centrifugo's gRPC API; use `host:port`, `tcp://host:port`, `dns:///host:port` or `unix:///path`",
                self.grpc_api_address
            ));
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(ApiTarget::Tcp(format!("{scheme}://{address}")))
    }
}

/// Where Centrifugo's API is dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTarget {
    /// An `http://` or `https://` (with `tls`) URI.
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for ApiTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiTarget::Tcp(uri) => f.write_str(uri),
            ApiTarget::Unix(path) => write!(f, "unix://{}", path.display()),
        }
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
        assert_eq!(c.api_target().unwrap(), ApiTarget::Tcp("http://127.0.0.1:10000".into()));
        let c = parse("proxy_address: ''\ngrpc_api_address: tcp://127.0.0.1:1\n").unwrap();
        assert_eq!((c.proxy_address.as_str(), c.api_target().unwrap()), ("tcp://127.0.0.1:30000", ApiTarget::Tcp("http://127.0.0.1:1".into())));
        let target = |a: &str| parse(&format!("grpc_api_address: '{a}'")).map(|c| c.api_target().unwrap());
        assert_eq!(target("dns:///centrifugo:10000").unwrap(), ApiTarget::Tcp("http://centrifugo:10000".into()));
        assert_eq!(target("dns://8.8.8.8/centrifugo:10000").unwrap(), ApiTarget::Tcp("http://centrifugo:10000".into()));
        assert_eq!(target("unix:///run/c.sock").unwrap(), ApiTarget::Unix("/run/c.sock".into()));
        assert_eq!(target("unix:c.sock").unwrap(), ApiTarget::Unix("c.sock".into()));
        assert!(target("http://x:1").unwrap_err().starts_with("config key `centrifuge.grpc_api_address`: `http://x:1` is not an address"));
        assert!(target("centrifugo").is_err());
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
