//! The `grpc` section with RoadRunner's keys, defaults and error texts (GRPC.md §1).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rr_runtime::config::duration;
use rr_runtime::pool::PoolConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `tcp://host:port`, `host:port`, `:port` or `unix:///path`.
    pub listen: String,
    /// .proto files or globs (`**` included), relative to the working directory.
    pub proto: Vec<String>,
    pub tls: Option<Tls>,
    /// Megabytes; 0 means 50.
    pub max_send_msg_size: u64,
    pub max_recv_msg_size: u64,
    /// 0 means no limit.
    #[serde(with = "duration")]
    pub max_connection_idle: Duration,
    #[serde(with = "duration")]
    pub max_connection_age: Duration,
    /// Read from its own key (RoadRunner ≤ v5.3 uses `max_connection_age` here by mistake).
    #[serde(with = "duration")]
    pub max_connection_age_grace: Duration,
    /// Per connection; 0 means 10.
    pub max_concurrent_streams: u32,
    /// Bytes of request metadata per call (grpc-go's `MaxHeaderListSize`, counted as HTTP/2
    /// does: name + value + 32 per field); 0 means grpc-go's 16 MiB.
    pub max_header_list_size: u32,
    /// Keepalive ping interval; 0 means 2h.
    #[serde(with = "duration")]
    pub ping_time: Duration,
    /// Keepalive ack timeout; 0 means 20s.
    #[serde(with = "duration")]
    pub timeout: Duration,
    pub pool: PoolConfig,
    /// Extra worker environment (`RR_MODE=grpc` is always set).
    pub env: BTreeMap<String, String>,
    /// Go interceptor plugins in RoadRunner; none exist here, so any name is an error.
    pub interceptors: Vec<String>,
    /// Server reflection v1 and v1alpha (ours; RoadRunner has none).
    pub reflection: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: String::new(),
            proto: Vec::new(),
            tls: None,
            max_send_msg_size: 0,
            max_recv_msg_size: 0,
            max_connection_idle: Duration::ZERO,
            max_connection_age: Duration::ZERO,
            max_connection_age_grace: Duration::ZERO,
            max_concurrent_streams: 0,
            max_header_list_size: 0,
            ping_time: Duration::ZERO,
            timeout: Duration::ZERO,
            pool: PoolConfig::default(),
            env: BTreeMap::new(),
            interceptors: Vec::new(),
            reflection: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Tls {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub root_ca: Option<PathBuf>,
    /// Only used with `root_ca`; unknown values mean `no_client_cert`, as in RoadRunner.
    pub client_auth_type: String,
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(String),
    Unix(PathBuf),
}

const MB: usize = 1024 * 1024;

impl Config {
    /// Check what RoadRunner checks at start, with its texts.
    pub fn validate(&self) -> Result<(), String> {
        self.listen()?;
        if let Some(name) = self.interceptors.first() {
            return Err(format!("interceptor {name} is not registered (config key `grpc.interceptors`: interceptors are Go plugins of RoadRunner; remove the key)"));
        }
        if let Some(tls) = self.tls.as_ref().filter(|t| t.enabled()) {
            if !tls.key.exists() {
                return Err(format!("key file '{}' does not exists", tls.key.display()));
            }
            if !tls.cert.exists() {
                return Err(format!("cert file '{}' does not exists", tls.cert.display()));
            }
            if let Some(ca) = tls.root_ca.as_ref().filter(|ca| !ca.as_os_str().is_empty() && !ca.exists()) {
                return Err(format!("root ca path provided, but path '{}' does not exists", ca.display()));
            }
        }
        Ok(())
    }

    pub fn listen(&self) -> Result<Listen, String> {
        let addr = self.listen.as_str();
        if !addr.contains(':') {
            return Err(format!("malformed grpc address, provided: {addr} (config key `grpc.listen`, e.g. `tcp://127.0.0.1:9001`)"));
        }
        if let Some(path) = addr.strip_prefix("unix://") {
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let addr = addr.strip_prefix("tcp://").unwrap_or(addr);
        Ok(Listen::Tcp(if addr.starts_with(':') { format!("0.0.0.0{addr}") } else { addr.to_string() }))
    }

    pub fn max_send_bytes(&self) -> usize {
        mb_or_50(self.max_send_msg_size)
    }

    pub fn max_recv_bytes(&self) -> usize {
        mb_or_50(self.max_recv_msg_size)
    }

    pub fn max_concurrent_streams(&self) -> u32 {
        if self.max_concurrent_streams == 0 { 10 } else { self.max_concurrent_streams }
    }

    pub fn max_header_list_size(&self) -> usize {
        if self.max_header_list_size == 0 { 16 * MB } else { self.max_header_list_size as usize }
    }

    /// What HTTP/2 itself accepts: twice the limit, so that a call over it still reaches the
    /// handler, which answers RESOURCE_EXHAUSTED for that call alone (HTTP/2's own answer is a
    /// 431 the client reads as UNKNOWN, or, for a block spread over CONTINUATION frames, a
    /// GOAWAY that fails every call on the connection).
    pub fn http2_header_list_size(&self) -> u32 {
        (self.max_header_list_size() as u64 * 2).min(u64::from(u32::MAX)) as u32
    }

    pub fn ping_time(&self) -> Duration {
        if self.ping_time.is_zero() { Duration::from_secs(7200) } else { self.ping_time.max(Duration::from_secs(1)) }
    }

    pub fn ping_timeout(&self) -> Duration {
        if self.timeout.is_zero() { Duration::from_secs(20) } else { self.timeout }
    }
}

impl Tls {
    /// TLS is on iff both key and cert are set.
    pub fn enabled(&self) -> bool {
        !self.key.as_os_str().is_empty() && !self.cert.as_os_str().is_empty()
    }
}

fn mb_or_50(mb: u64) -> usize {
    (if mb == 0 { 50 } else { mb as usize }).saturating_mul(MB)
}
