//! The `otel` section as RoadRunner (otel plugin v5.6.0) reads it, resolved against the
//! `OTEL_*` environment: pure code, no exporter is built here.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `otlp` (default), `zipkin`, `stdout`, `stderr`; `jaeger` is refused.
    pub exporter: String,
    /// OTLP transport: `http` (default) or `grpc`; empty reads `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`.
    pub client: String,
    /// `host:port` for OTLP (no scheme), the full collector URL for zipkin.
    pub endpoint: String,
    /// Plain HTTP / gRPC without TLS.
    pub insecure: bool,
    /// gzip the exported batches.
    pub compress: bool,
    /// OTLP over HTTP: the URL path (default `/v1/traces`).
    pub custom_url: String,
    /// Sent with every export (e.g. an `api-key`).
    pub headers: BTreeMap<String, String>,
    pub resource: ResourceConfig,
    /// Deprecated: `resource.service_name`.
    pub service_name: String,
    /// Deprecated: `resource.service_version`.
    pub service_version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResourceConfig {
    pub service_name: String,
    pub service_version: String,
    pub service_namespace: String,
    pub service_instance_id: String,
}

const DEFAULT_SERVICE_NAME: &str = "RoadRunner";
const DEFAULT_SERVICE_VERSION: &str = "1.0.0";
const DEFAULT_OTLP_PATH: &str = "/v1/traces";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    OtlpHttp { url: Option<String> },
    OtlpGrpc { endpoint: Option<String> },
    Zipkin { url: String },
    Stdout,
    Stderr,
}

/// The settings the plugin builds from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub exporter: Exporter,
    pub insecure: bool,
    pub compress: bool,
    pub headers: BTreeMap<String, String>,
    /// `service.name`, `service.version`, `service.namespace`, `service.instance.id`, in that order.
    pub service: [(&'static str, String); 4],
    /// Said once at start (deprecated keys, ignored env values).
    pub warnings: Vec<String>,
}

/// Resolve `config` with `env` (the process environment in production).
pub fn resolve(config: Config, env: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
    let mut warnings = Vec::new();
    let env = |key: &str| env(key).filter(|v| !v.is_empty());
    let exporter = match config.exporter.as_str() {
        "" | "otlp" => {
            let grpc = match config.client.as_str() {
                "grpc" => true,
                "http" => false,
                "" => protocol_from_env(&env, &mut warnings),
                other => {
                    warnings.push(format!("config key `otel.client`: unknown exporter client `{other}` (use `http` or `grpc`); using http"));
                    false
                }
            };
            if config.endpoint.contains("://") {
                return Err(format!(
                    "config key `otel.endpoint`: `{}` has a scheme; the OTLP endpoint is host:port (e.g. `127.0.0.1:4318`), with `insecure: true` for plain HTTP",
                    config.endpoint
                ));
            }
            let scheme = if config.insecure { "http" } else { "https" };
            if grpc {
                Exporter::OtlpGrpc { endpoint: (!config.endpoint.is_empty()).then(|| format!("{scheme}://{}", config.endpoint)) }
            } else if config.endpoint.is_empty() && config.custom_url.is_empty() {
                // The SDK reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else localhost:4318.
                Exporter::OtlpHttp { url: None }
            } else {
                let endpoint = if config.endpoint.is_empty() { "localhost:4318" } else { config.endpoint.as_str() };
                let path = if config.custom_url.is_empty() { DEFAULT_OTLP_PATH } else { config.custom_url.as_str() };
                let slash = if path.starts_with('/') { "" } else { "/" };
                Exporter::OtlpHttp { url: Some(format!("{scheme}://{endpoint}{slash}{path}")) }
            }
        }
        "zipkin" => {
            if config.endpoint.is_empty() {
                return Err("config key `otel.endpoint`: the zipkin exporter needs the collector URL, e.g. `http://127.0.0.1:9411/api/v2/spans`".into());
            }
            Exporter::Zipkin { url: config.endpoint.clone() }
        }
        "stdout" => Exporter::Stdout,
        "stderr" => Exporter::Stderr,
        "jaeger" => return Err("jaeger exporter is deprecated, use OTLP instead: https://github.com/roadrunner-server/roadrunner/issues/1699".into()),
        other => return Err(format!("unknown exporter: {other} (config key `otel.exporter`: use `otlp`, `zipkin`, `stdout` or `stderr`)")),
    };

    for (key, value) in [("service_name", &config.service_name), ("service_version", &config.service_version)] {
        if !value.is_empty() {
            warnings.push(format!("{key} is deprecated, use resource.{key} instead"));
        }
    }
    let env_resource = env_resource_attributes(&env);
    let pick = |configured: &str, deprecated: &str, env_key: &str, default: String| -> String {
        [configured, deprecated, env_resource.get(env_key).map(String::as_str).unwrap_or("")]
            .into_iter()
            .find(|v| !v.is_empty())
            .map_or(default, str::to_string)
    };
    let r = &config.resource;
    let name = pick(&r.service_name, &config.service_name, "service.name", DEFAULT_SERVICE_NAME.into());
    let version = pick(&r.service_version, &config.service_version, "service.version", DEFAULT_SERVICE_VERSION.into());
    let instance = pick(&r.service_instance_id, "", "service.instance.id", uuid::Uuid::new_v4().to_string());
    let namespace = pick(&r.service_namespace, "", "service.namespace", format!("{name}-{}", uuid::Uuid::new_v4()));
    Ok(Settings {
        exporter,
        insecure: config.insecure,
        compress: config.compress,
        headers: config.headers,
        service: [("service.name", name), ("service.version", version), ("service.namespace", namespace), ("service.instance.id", instance)],
        warnings,
    })
}

fn protocol_from_env(env: &impl Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> bool {
    let Some((key, value)) = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"].into_iter().find_map(|k| env(k).map(|v| (k, v))) else {
        return false;
    };
    match value.as_str() {
        "grpc" => true,
        "http/protobuf" => false,
        "http/json" => {
            warnings.push(format!("unsupported exporter protocol {key}={value}; using http/protobuf"));
            false
        }
        _ => {
            warnings.push(format!("unknown exporter protocol {key}={value}; using http/protobuf"));
            false
        }
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k=v`) with `OTEL_SERVICE_NAME` over its `service.name`,
/// as the OpenTelemetry SDKs read them.
fn env_resource_attributes(env: &impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    let mut attrs: BTreeMap<String, String> = env("OTEL_RESOURCE_ATTRIBUTES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if let Some(name) = env("OTEL_SERVICE_NAME") {
        attrs.insert("service.name".into(), name);
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string())
    }

    fn yaml(text: &str) -> Config {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_roadrunners() {
        let s = resolve(Config::default(), env(&[])).unwrap();
        assert_eq!(s.exporter, Exporter::OtlpHttp { url: None });
        assert_eq!(s.service[0].1, "RoadRunner");
        assert_eq!(s.service[1].1, "1.0.0");
        assert!(s.service[2].1.starts_with("RoadRunner-"), "{:?}", s.service);
        assert_eq!(s.service[3].1.len(), 36);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn otlp_endpoint_is_host_port_and_custom_url_is_the_path() {
        let s = resolve(yaml("endpoint: 127.0.0.1:4318\ninsecure: true\ncustom_url: /custom/traces"), env(&[])).unwrap();
        assert_eq!(s.exporter, Exporter::OtlpHttp { url: Some("http://127.0.0.1:4318/custom/traces".into()) });
        let s = resolve(yaml("endpoint: collector:4318"), env(&[])).unwrap();
        assert_eq!(s.exporter, Exporter::OtlpHttp { url: Some("https://collector:4318/v1/traces".into()) });
        let s = resolve(yaml("client: grpc\nendpoint: 127.0.0.1:4317\ninsecure: true"), env(&[])).unwrap();
        assert_eq!(s.exporter, Exporter::OtlpGrpc { endpoint: Some("http://127.0.0.1:4317".into()) });
    }

    #[test]
    fn the_client_falls_back_to_the_otel_protocol_variables() {
        let s = resolve(Config::default(), env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).unwrap();
        assert_eq!(s.exporter, Exporter::OtlpGrpc { endpoint: None });
        let s = resolve(Config::default(), env(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).unwrap();
        assert_eq!(s.exporter, Exporter::OtlpHttp { url: None });
        let s = resolve(yaml("client: quic"), env(&[])).unwrap();
        assert_eq!(s.exporter, Exporter::OtlpHttp { url: None });
        assert!(s.warnings[0].contains("unknown exporter client `quic`"), "{:?}", s.warnings);
    }

    #[test]
    fn service_name_precedence_is_resource_then_deprecated_key_then_env_then_default() {
        let vars = [("OTEL_SERVICE_NAME", "from-env"), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr,service.version=9.9,deployment=x")];
        let s = resolve(yaml("resource: {service_name: resource}\nservice_name: old"), env(&vars)).unwrap();
        assert_eq!(s.service[0].1, "resource");
        let s = resolve(yaml("service_name: old"), env(&vars)).unwrap();
        assert_eq!(s.service[0].1, "old");
        assert_eq!(s.warnings, ["service_name is deprecated, use resource.service_name instead"]);
        let s = resolve(Config::default(), env(&vars)).unwrap();
        assert_eq!((s.service[0].1.as_str(), s.service[1].1.as_str()), ("from-env", "9.9"));
        let s = resolve(Config::default(), env(&vars[1..])).unwrap();
        assert_eq!(s.service[0].1, "attr");
    }

    #[test]
    fn jaeger_and_unknown_exporters_are_refused_with_roadrunners_words() {
        let e = resolve(yaml("exporter: jaeger"), env(&[])).unwrap_err();
        assert_eq!(e, "jaeger exporter is deprecated, use OTLP instead: https://github.com/roadrunner-server/roadrunner/issues/1699");
        let e = resolve(yaml("exporter: newrelic"), env(&[])).unwrap_err();
        assert!(e.starts_with("unknown exporter: newrelic"), "{e}");
        let e = resolve(yaml("endpoint: http://127.0.0.1:4318"), env(&[])).unwrap_err();
        assert!(e.starts_with("config key `otel.endpoint`: `http://127.0.0.1:4318` has a scheme"), "{e}");
        let e = resolve(yaml("exporter: zipkin"), env(&[])).unwrap_err();
        assert!(e.contains("`otel.endpoint`"), "{e}");
    }
}
