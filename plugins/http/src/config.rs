//! The `http` section with RoadRunner's keys and defaults (RR-FEATURES.md §2.3 `http`).

use std::path::PathBuf;

use rr_runtime::pool::PoolConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `host:port` for HTTP/1.1 (and h2c).
    pub address: Option<String>,
    pub internal_error_code: u16,
    pub access_logs: bool,
    /// Megabytes; 0 means 1000 (RoadRunner's code).
    pub max_request_size: u64,
    pub raw_body: bool,
    /// First listed = outermost (RoadRunner v6 order).
    pub middleware: Vec<String>,
    /// How long an HTTP/1 connection may wait for a complete request head, idle keep-alive time
    /// included; then it is closed. Ours (RoadRunner hard-codes 5 minutes); `0` disables it.
    #[serde(with = "rr_runtime::config::duration")]
    pub read_header_timeout: std::time::Duration,
    /// Largest request head (request line and headers; HTTP/2: the header list) in bytes; larger
    /// ones get 431. Go's `http.DefaultMaxHeaderBytes`, which RoadRunner keeps.
    pub max_header_bytes: usize,
    /// Most header fields in an HTTP/1 request; more get 431. Go counts none (only bytes); up to
    /// 100 costs nothing, more a heap buffer per request in hyper.
    pub max_headers: usize,
    pub uploads: Uploads,
    pub http2: Http2,
    pub ssl: Option<Ssl>,
    pub fcgi: Option<Fcgi>,
    pub http3: Option<Http3>,
    pub pool: PoolConfig,
    /// Request context encoding: `auto` (ours, the default: by the app's spiral/roadrunner-http,
    /// `codec_choice`), `proto` (RoadRunner ≥ 2024.1) or `json` (roadrunner-http < 3.5, and twice
    /// as fast in PHP without ext-protobuf).
    pub codec: Codec,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: None,
            internal_error_code: 500,
            access_logs: false,
            max_request_size: 0,
            raw_body: false,
            middleware: Vec::new(),
            read_header_timeout: std::time::Duration::from_secs(300),
            max_header_bytes: 1 << 20,
            max_headers: 100,
            uploads: Uploads::default(),
            http2: Http2::default(),
            ssl: None,
            fcgi: None,
            http3: None,
            pool: PoolConfig::default(),
            codec: Codec::Auto,
        }
    }
}

impl Config {
    pub fn max_body_bytes(&self) -> usize {
        let mb = if self.max_request_size == 0 { 1000 } else { self.max_request_size };
        (mb as usize).saturating_mul(1024 * 1024)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Resolved at start (`codec_choice`); an unresolved `Auto` encodes as `Proto`.
    Auto,
    Proto,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Uploads {
    pub dir: Option<PathBuf>,
    pub forbid: Vec<String>,
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Http2 {
    pub h2c: bool,
    pub max_concurrent_streams: u32,
}

impl Default for Http2 {
    fn default() -> Self {
        Http2 { h2c: false, max_concurrent_streams: 128 }
    }
}

/// The FastCGI frontend (behind nginx's `fastcgi_pass`).
#[derive(Debug, Clone, Deserialize)]
pub struct Fcgi {
    /// `tcp://host:port` or `unix:///path`.
    pub address: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ssl {
    #[serde(default = "default_ssl_address")]
    pub address: String,
    #[serde(default)]
    pub redirect: bool,
    /// Required unless `acme` is set.
    #[serde(default)]
    pub cert: PathBuf,
    #[serde(default)]
    pub key: PathBuf,
    #[serde(default)]
    pub root_ca: Option<PathBuf>,
    #[serde(default)]
    pub client_auth_type: ClientAuth,
    /// Certificates from an ACME CA instead of `cert` and `key`.
    #[serde(default)]
    pub acme: Option<crate::acme::Config>,
}

fn default_ssl_address() -> String {
    "127.0.0.1:443".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    NoClientCerts,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// HTTP/3 over QUIC (UDP), TLS 1.3 only. RoadRunner's keys; on without `-e` here.
#[derive(Debug, Clone, Deserialize)]
pub struct Http3 {
    /// `host:port` of the UDP socket (`:8443` for every interface).
    pub address: String,
    /// PEM files; without them the certificate comes from `http.ssl.acme`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}
