//! The `temporal` section with RoadRunner's keys and defaults (TEMPORAL.md §1).
//!
//! As RoadRunner (mapstructure) unknown keys are not errors; the runtime warns about misspelt
//! ones. The v1.0 keys `codec` and `debug_level` are read only to be warned about.

use std::path::Path;
use std::time::Duration;

use rr_runtime::config::duration;
use rr_runtime::pool::PoolConfig;
use serde::Deserialize;

/// Where the Go SDK connects when `address` is empty (`client.DefaultHostPort`).
pub const DEFAULT_ADDRESS: &str = "localhost:7233";
pub const DEFAULT_NAMESPACE: &str = "default";
/// Sticky workflow cache size; 0 also means this.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;
pub const DEFAULT_PROMETHEUS_ADDRESS: &str = "127.0.0.1:9091";
pub const DEFAULT_PROMETHEUS_TYPE: &str = "summary";
pub const DEFAULT_STATSD_HOST_PORT: &str = "127.0.0.1:8125";
pub const DEFAULT_STATSD_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_STATSD_FLUSH_BYTES: usize = 1432;
/// The workflow process waits this long for its one worker (RoadRunner: 240h).
pub const WORKFLOW_ALLOCATE_TIMEOUT: Duration = Duration::from_secs(240 * 3600);
/// `worker_heartbeat_interval` bounds (the SDK's); 0 keeps the SDK default of 60s.
pub const HEARTBEAT_MIN: Duration = Duration::from_secs(1);
pub const HEARTBEAT_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Temporal frontend `host:port`; empty = [`DEFAULT_ADDRESS`].
    pub address: String,
    /// Empty = [`DEFAULT_NAMESPACE`].
    pub namespace: String,
    /// 0 = [`DEFAULT_CACHE_SIZE`].
    pub cache_size: usize,
    /// The activity worker pool; its `command` (else `server.command`) also runs the workflow process.
    pub activities: PoolConfig,
    /// No activity workers: task queues only run workflows.
    pub disable_activity_workers: bool,
    pub metrics: Option<MetricsSection>,
    pub tls: Option<Tls>,
    /// Go interceptor plugins by name; absent = all registered (none in this server).
    pub interceptors: Option<Vec<String>>,
    /// Go payload-converter plugins by name; absent = all registered (none in this server).
    pub data_converters: Option<Vec<String>>,
    #[serde(with = "duration")]
    pub worker_heartbeat_interval: Duration,
    /// Not RoadRunner's: a local activity retry further away than this is a timer in the
    /// workflow's history and then a new attempt (Core's `DoBackoff`); nearer ones are retried
    /// inside Core. Absent = Core's one minute.
    #[serde(with = "opt_duration")]
    pub local_retry_threshold: Option<Duration>,
    /// Not RoadRunner's: when to recycle the workflow process (evict every run, restart, replay).
    pub workflow_process: WorkflowProcess,
    /// v1.0 keys, removed in roadrunner-temporal v1.1.0 (2022).
    pub codec: Option<serde_json::Value>,
    pub debug_level: Option<serde_json::Value>,
}

/// `temporal.workflow_process` (ours, not RoadRunner's: roadrunner#2076): limits after which the
/// workflow process is recycled safely. 0 = never.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct WorkflowProcess {
    /// Workflow activations handled (evictions not counted).
    pub max_jobs: u64,
    /// Resident memory in MB (as the supervisor's key), checked after each activation.
    pub max_worker_memory: u64,
}

/// `metrics` as written: nested `prometheus:` / `statsd:` sections, or their keys flat in
/// `metrics` itself (RoadRunner re-reads the section as either).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MetricsSection {
    pub driver: Option<String>,
    pub prometheus: Option<PrometheusKeys>,
    pub statsd: Option<StatsdKeys>,
    #[serde(flatten)]
    pub flat: FlatKeys,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PrometheusKeys {
    pub address: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StatsdKeys {
    pub host_port: Option<String>,
    pub prefix: Option<String>,
    #[serde(with = "opt_duration")]
    pub flush_interval: Option<Duration>,
    pub flush_bytes: Option<usize>,
    pub tags: Option<std::collections::BTreeMap<String, String>>,
    pub tag_prefix: Option<String>,
    pub tag_separator: Option<String>,
}

/// The flat form: any Prometheus or statsd key directly under `metrics`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FlatKeys {
    #[serde(flatten)]
    pub prometheus: PrometheusKeys,
    #[serde(flatten)]
    pub statsd: StatsdKeys,
}

mod opt_duration {
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        rr_runtime::config::duration::deserialize(d).map(Some)
    }
}

/// The Temporal SDK metrics exporter, resolved with defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metrics {
    Prometheus { address: String, kind: PrometheusType, prefix: String },
    Statsd(Statsd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrometheusType {
    Summary,
    Histogram,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statsd {
    pub host_port: String,
    pub prefix: String,
    pub flush_interval: Duration,
    pub flush_bytes: usize,
    pub tags: std::collections::BTreeMap<String, String>,
    pub tag_prefix: String,
    pub tag_separator: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Tls {
    pub key: String,
    pub cert: String,
    pub root_ca: String,
    /// Go's `tls.ClientAuthType` names; empty or unknown = `no_client_cert` (as RoadRunner).
    pub client_auth_type: String,
    pub server_name: String,
    pub use_h2c: bool,
}

pub const CLIENT_AUTH_TYPES: &[&str] =
    &["no_client_cert", "request_client_cert", "require_any_client_cert", "verify_client_cert_if_given", "require_and_verify_client_cert"];

impl Config {
    pub fn address(&self) -> &str {
        if self.address.trim().is_empty() { DEFAULT_ADDRESS } else { self.address.trim() }
    }

    pub fn namespace(&self) -> &str {
        if self.namespace.is_empty() { DEFAULT_NAMESPACE } else { &self.namespace }
    }

    pub fn cache_size(&self) -> usize {
        if self.cache_size == 0 { DEFAULT_CACHE_SIZE } else { self.cache_size }
    }

    /// 0 = the SDK default; otherwise clamped to 1s..=60s (a warning says so in [`Config::validate`]).
    pub fn worker_heartbeat_interval(&self) -> Option<Duration> {
        let d = self.worker_heartbeat_interval;
        (!d.is_zero()).then(|| d.clamp(HEARTBEAT_MIN, HEARTBEAT_MAX))
    }

    /// The workflow process's pool: one worker, the activities' command, no supervisor (a restart
    /// would invalidate the sticky cache: roadrunner#2076), allocate timeout 240h.
    pub fn workflow_pool(&self) -> PoolConfig {
        PoolConfig {
            command: self.activities.command.clone(),
            num_workers: 1,
            max_jobs: 0,
            max_queue_size: 0,
            allocate_timeout: WORKFLOW_ALLOCATE_TIMEOUT,
            destroy_timeout: self.activities.destroy_timeout,
            reset_timeout: self.activities.reset_timeout,
            stream_timeout: self.activities.stream_timeout,
            debug: false,
            supervisor: None,
        }
    }

    /// `metrics` resolved with RoadRunner's defaults; `None` when the section is absent.
    pub fn metrics(&self) -> Result<Option<Metrics>, String> {
        let Some(m) = &self.metrics else { return Ok(None) };
        let driver = m.driver.as_deref().map(str::trim).filter(|d| !d.is_empty()).unwrap_or("prometheus");
        match driver {
            "prometheus" => {
                let p = m.prometheus.clone().unwrap_or_else(|| m.flat.prometheus.clone());
                let kind = match p.kind.as_deref().map(str::trim).filter(|t| !t.is_empty()).unwrap_or(DEFAULT_PROMETHEUS_TYPE) {
                    "summary" => PrometheusType::Summary,
                    "histogram" => PrometheusType::Histogram,
                    other => {
                        return Err(format!(
                            "config key `temporal.metrics.prometheus.type`: unknown metrics type `{other}`; use `summary` (the default) or `histogram`"
                        ));
                    }
                };
                Ok(Some(Metrics::Prometheus {
                    address: p.address.filter(|a| !a.trim().is_empty()).unwrap_or_else(|| DEFAULT_PROMETHEUS_ADDRESS.into()),
                    kind,
                    prefix: p.prefix.unwrap_or_default(),
                }))
            }
            "statsd" => {
                // Flat, `prefix` lands in the Prometheus half (both structs have the key).
                let s = m.statsd.clone().unwrap_or_else(|| StatsdKeys { prefix: m.flat.prometheus.prefix.clone(), ..m.flat.statsd.clone() });
                Ok(Some(Metrics::Statsd(Statsd {
                    host_port: s.host_port.filter(|h| !h.trim().is_empty()).unwrap_or_else(|| DEFAULT_STATSD_HOST_PORT.into()),
                    prefix: s.prefix.unwrap_or_default(),
                    flush_interval: s.flush_interval.filter(|d| !d.is_zero()).unwrap_or(DEFAULT_STATSD_FLUSH_INTERVAL),
                    flush_bytes: s.flush_bytes.filter(|n| *n > 0).unwrap_or(DEFAULT_STATSD_FLUSH_BYTES),
                    tags: s.tags.unwrap_or_default(),
                    tag_prefix: s.tag_prefix.unwrap_or_default(),
                    tag_separator: s.tag_separator.unwrap_or_default(),
                })))
            }
            other => Err(format!("config key `temporal.metrics.driver`: unknown metrics driver `{other}`; use `prometheus` (the default) or `statsd`")),
        }
    }

    /// RoadRunner's init checks plus ours, each naming the key and the fix. Warnings (legacy keys,
    /// clamped values) are logged here.
    pub fn validate(&self) -> Result<(), String> {
        if self.codec.is_some() {
            tracing::warn!(target: "temporal", "config key `temporal.codec` is ignored: the JSON codec was removed in roadrunner-temporal v1.1.0; workers always get RR_CODEC=protobuf; remove the key");
        }
        if self.debug_level.is_some() {
            tracing::warn!(target: "temporal", "config key `temporal.debug_level` is ignored (a roadrunner-temporal v1.0 key); use `logs` to set the log level; remove the key");
        }
        let address = self.address();
        match address.split_once("://") {
            // gRPC target schemes (`dns:///host:port`) are left to the client; a URL is a mistake.
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {
                return Err(format!("config key `temporal.address`: `{address}` is a URL; write `host:port`, e.g. `127.0.0.1:7233` (TLS comes from `temporal.tls`)"));
            }
            Some(_) => {}
            None if address.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) => {
                return Err(format!("config key `temporal.address`: `{address}` is not `host:port`; write e.g. `127.0.0.1:7233`"));
            }
            None => {}
        }
        self.metrics()?;
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        for (key, list) in [("interceptors", &self.interceptors), ("data_converters", &self.data_converters)] {
            let Some(list) = list else { continue };
            let mut seen = std::collections::BTreeSet::new();
            for name in list {
                if name.trim().is_empty() {
                    return Err(format!("config key `temporal.{key}`: empty name in the list; remove it"));
                }
                if !seen.insert(name.as_str()) {
                    return Err(format!("config key `temporal.{key}`: `{name}` is listed twice; list each plugin once"));
                }
            }
            // RoadRunner's are Go plugins compiled into rr; this server has none to name.
            if let Some(name) = list.first() {
                let kind = if key == "interceptors" { "interceptor" } else { "data converter" };
                return Err(format!("config key `temporal.{key}`: plugin `{name}` is not registered: this server has no Go {kind} plugins; remove the key"));
            }
        }
        let hb = self.worker_heartbeat_interval;
        if !hb.is_zero() && (hb < HEARTBEAT_MIN || hb > HEARTBEAT_MAX) {
            tracing::warn!(target: "temporal", configured = ?hb, used = ?hb.clamp(HEARTBEAT_MIN, HEARTBEAT_MAX), "config key `temporal.worker_heartbeat_interval` must be between 1s and 60s; clamped");
        }
        if self.activities.command.as_ref().is_some_and(|c| c.args().is_empty()) {
            return Err("config key `temporal.activities.command`: command should not be empty; remove it to use `server.command`".into());
        }
        Ok(())
    }
}

impl Tls {
    /// RoadRunner checks at init that the named files exist (its texts), and reads the auth type.
    pub fn validate(&self) -> Result<(), String> {
        let exists = |what: &str, key: &str, path: &str| -> Result<(), String> {
            match Path::new(path).try_exists() {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("config key `temporal.tls.{key}`: {what} file '{path}' does not exists")),
                Err(e) => Err(format!("config key `temporal.tls.{key}`: {what} file '{path}': {e}")),
            }
        };
        match (self.key.is_empty(), self.cert.is_empty()) {
            (false, false) => {
                exists("key", "key", &self.key)?;
                exists("cert", "cert", &self.cert)?;
            }
            (true, true) => {}
            _ => return Err("config key `temporal.tls`: `key` and `cert` go together (a client certificate); set both or neither".into()),
        }
        if !self.root_ca.is_empty() && !Path::new(&self.root_ca).exists() {
            return Err(format!("config key `temporal.tls.root_ca`: root ca path provided, but key file '{}' does not exists", self.root_ca));
        }
        if !self.client_auth_type.is_empty() && !CLIENT_AUTH_TYPES.contains(&self.client_auth_type.as_str()) {
            tracing::warn!(target: "temporal", value = %self.client_auth_type, "config key `temporal.tls.client_auth_type` is unknown; `no_client_cert` is used (as RoadRunner); expected one of {}", CLIENT_AUTH_TYPES.join(", "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through the runtime's loader, as the plugin reads it (weak typing: a command string).
    fn parse(yaml: &str) -> Config {
        let yaml = format!("version: '3'\ntemporal:\n{}", yaml.lines().map(|l| format!("  {l}\n")).collect::<String>());
        let config = rr_runtime::config::Config::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        config.section::<Config>("temporal").unwrap_or_else(|e| panic!("{yaml}: {e}")).expect("the section")
    }

    fn error(yaml: &str) -> String {
        parse(yaml).validate().expect_err(yaml)
    }

    #[test]
    fn defaults_are_roadrunners() {
        let cfg = parse("{}");
        cfg.validate().unwrap();
        assert_eq!(cfg.address(), "localhost:7233");
        assert_eq!(cfg.namespace(), "default");
        assert_eq!(cfg.cache_size(), 10_000);
        assert!(!cfg.disable_activity_workers);
        assert_eq!(cfg.metrics().unwrap(), None);
        assert!(cfg.tls.is_none());
        assert_eq!(cfg.worker_heartbeat_interval(), None);
        assert_eq!(cfg.activities.num_workers, 0);
        assert_eq!(cfg.activities.allocate_timeout, Duration::from_secs(60));
        assert_eq!(cfg.activities.destroy_timeout, Duration::from_secs(60));
        // 0 means the default, as in Go's InitDefault.
        assert_eq!(parse("cache_size: 0\nnamespace: ''").cache_size(), 10_000);
        assert_eq!(parse("cache_size: 5").cache_size(), 5);
        assert_eq!(cfg.workflow_process, WorkflowProcess::default(), "never recycled by default");
        let wp = parse("workflow_process: {max_jobs: 3, max_worker_memory: 128}").workflow_process;
        assert_eq!((wp.max_jobs, wp.max_worker_memory), (3, 128));
    }

    #[test]
    fn workflow_pool_is_one_unsupervised_process_with_the_activity_command() {
        let cfg = parse("activities: {command: 'php wf.php', num_workers: 4, destroy_timeout: 3s, supervisor: {max_worker_memory: 10}}");
        let wf = cfg.workflow_pool();
        assert_eq!(wf.num_workers, 1);
        assert_eq!(wf.command.unwrap().args(), ["php", "wf.php"]);
        assert_eq!(wf.allocate_timeout, Duration::from_secs(864_000));
        assert_eq!(wf.destroy_timeout, Duration::from_secs(3));
        assert!(wf.supervisor.is_none());
        assert!(parse("{}").workflow_pool().command.is_none(), "no activities.command: server.command");
    }

    #[test]
    fn metrics_defaults_nested_and_flat() {
        let m = parse("metrics: {}").metrics().unwrap().unwrap();
        assert_eq!(m, Metrics::Prometheus { address: "127.0.0.1:9091".into(), kind: PrometheusType::Summary, prefix: String::new() });
        let m = parse("metrics: {address: '0.0.0.0:9095', type: histogram, prefix: t}").metrics().unwrap().unwrap();
        assert_eq!(m, Metrics::Prometheus { address: "0.0.0.0:9095".into(), kind: PrometheusType::Histogram, prefix: "t".into() });
        let m = parse("metrics: {driver: prometheus, prometheus: {address: '127.0.0.1:9999'}}").metrics().unwrap().unwrap();
        assert_eq!(m, Metrics::Prometheus { address: "127.0.0.1:9999".into(), kind: PrometheusType::Summary, prefix: String::new() });
        let Metrics::Statsd(s) = parse("metrics: {driver: statsd}").metrics().unwrap().unwrap() else { panic!("statsd") };
        assert_eq!((s.host_port.as_str(), s.flush_interval, s.flush_bytes), ("127.0.0.1:8125", Duration::from_secs(1), 1432));
        let Metrics::Statsd(s) =
            parse("metrics: {driver: statsd, statsd: {host_port: 'h:1', prefix: p, flush_interval: 2s, tags: {a: b}}}").metrics().unwrap().unwrap()
        else {
            panic!("statsd")
        };
        assert_eq!((s.host_port.as_str(), s.prefix.as_str(), s.flush_interval, s.tags["a"].as_str()), ("h:1", "p", Duration::from_secs(2), "b"));
        let Metrics::Statsd(s) = parse("metrics: {driver: statsd, host_port: 'flat:2'}").metrics().unwrap().unwrap() else { panic!("statsd") };
        assert_eq!(s.host_port, "flat:2");
    }

    #[test]
    fn each_error_names_the_key() {
        assert!(error("metrics: {driver: influx}").contains("`temporal.metrics.driver`: unknown metrics driver `influx`"));
        assert!(error("metrics: {type: gauge}").contains("`temporal.metrics.prometheus.type`: unknown metrics type `gauge`"));
        assert!(error("address: 'http://127.0.0.1:7233'").contains("is a URL"));
        parse("address: 'dns:///temporal.internal:7233'").validate().unwrap();
        assert!(error("address: '127.0.0.1'").contains("is not `host:port`"));
        assert!(error("address: '127.0.0.1:99999'").contains("is not `host:port`"));
        assert!(error("tls: {key: /nonexistent/k.pem, cert: /nonexistent/c.pem}").contains("key file '/nonexistent/k.pem' does not exists"));
        assert!(error("tls: {key: /nonexistent/k.pem}").contains("`key` and `cert` go together"));
        assert!(error("tls: {root_ca: /nonexistent/ca.pem}").contains("root ca path provided, but key file '/nonexistent/ca.pem' does not exists"));
        assert!(error("interceptors: [logging]").contains("`temporal.interceptors`: plugin `logging` is not registered"));
        assert!(error("data_converters: [custom]").contains("`temporal.data_converters`: plugin `custom` is not registered"));
        assert!(error("interceptors: ['']").contains("empty name"));
        assert!(error("interceptors: [a, a]").contains("`a` is listed twice"));
        assert!(error("activities: {command: ''}").contains("`temporal.activities.command`"));
    }

    #[test]
    fn tls_cert_checked_after_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "k").unwrap();
        let yaml = format!("tls: {{key: '{}', cert: /nonexistent/c.pem, client_auth_type: bogus}}", key.display());
        assert!(error(&yaml).contains("cert file '/nonexistent/c.pem' does not exists"));
        let yaml = format!("tls: {{key: '{0}', cert: '{0}', root_ca: '{0}', client_auth_type: require_and_verify_client_cert, server_name: x}}", key.display());
        parse(&yaml).validate().unwrap();
    }

    #[test]
    fn legacy_keys_and_empty_lists_are_accepted() {
        let cfg = parse("codec: json\ndebug_level: 2\ninterceptors: []\ndata_converters: []");
        cfg.validate().unwrap();
        assert!(cfg.codec.is_some() && cfg.debug_level.is_some());
    }

    #[test]
    fn only_misspelt_keys_are_unknown() {
        let yaml = "version: '3'\ntemporal:\n  cache_sise: 5\n  codec: proto\n  metrics: {address: '127.0.0.1:9095', type: histogram, prefix: p}\n  tls: {server_name: x}\n";
        let config = rr_runtime::config::Config::from_str(yaml).unwrap();
        config.section::<Config>("temporal").unwrap().unwrap().validate().unwrap();
        let unknown = config.unknown_keys();
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert!(unknown[0].contains("temporal.cache_sise") && unknown[0].contains("cache_size"), "{unknown:?}");
        let yaml = "version: '3'\ntemporal:\n  metrics: {driver: statsd, host_port: 'h:1', flush_bytes: 10, tag_separator: ','}\n";
        let config = rr_runtime::config::Config::from_str(yaml).unwrap();
        let Metrics::Statsd(s) = config.section::<Config>("temporal").unwrap().unwrap().metrics().unwrap().unwrap() else { panic!("statsd") };
        assert_eq!((s.host_port.as_str(), s.flush_bytes, s.tag_separator.as_str()), ("h:1", 10, ","));
        assert_eq!(config.unknown_keys(), Vec::<String>::new());
    }

    #[test]
    fn heartbeat_interval_is_clamped() {
        assert_eq!(parse("worker_heartbeat_interval: 500ms").worker_heartbeat_interval(), Some(Duration::from_secs(1)));
        assert_eq!(parse("worker_heartbeat_interval: 5m").worker_heartbeat_interval(), Some(Duration::from_secs(60)));
        assert_eq!(parse("worker_heartbeat_interval: 10s").worker_heartbeat_interval(), Some(Duration::from_secs(10)));
        parse("worker_heartbeat_interval: 5m").validate().unwrap();
    }

    #[test]
    fn local_retry_threshold_is_a_duration_absent_by_default() {
        assert_eq!(parse("local_retry_threshold: 500ms").local_retry_threshold, Some(Duration::from_millis(500)));
        assert_eq!(parse("address: 127.0.0.1:7233").local_retry_threshold, None);
    }
}
