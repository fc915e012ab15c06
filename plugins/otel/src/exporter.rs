//! Builds the tracer provider for resolved [`Settings`]: one exporter behind the SDK's batch
//! span processor (its own thread; `OTEL_BSP_*` tune it), and RoadRunner's resource.

use std::collections::HashMap;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Compression, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};

use crate::config::{Exporter, Settings};
use crate::json::JsonExporter;

pub fn provider(settings: &Settings, rr_version: &str) -> Result<SdkTracerProvider, String> {
    let resource = resource(settings, rr_version);
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("otel: cannot create the {what} exporter: {e}");
    Ok(match &settings.exporter {
        Exporter::OtlpHttp { url } => {
            let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
            if !settings.headers.is_empty() {
                builder = builder.with_headers(headers(settings));
            }
            if let Some(url) = url {
                builder = builder.with_endpoint(url);
            }
            if settings.compress {
                builder = builder.with_compression(Compression::Gzip);
            }
            batched(builder.build().map_err(|e| fail("OTLP http", &e))?, resource)
        }
        Exporter::OtlpGrpc { endpoint } => {
            let metadata = http::HeaderMap::try_from(&headers(settings)).map_err(|e| fail("OTLP grpc", &format!("config key `otel.headers`: {e}")))?;
            let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_metadata(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(metadata));
            // A configured endpoint is https unless `insecure`; one from OTEL_EXPORTER_OTLP_* keeps its scheme.
            if let Some(endpoint) = endpoint {
                if endpoint.starts_with("https://") {
                    builder = builder.with_tls_config(opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new().with_webpki_roots());
                }
                builder = builder.with_endpoint(endpoint);
            }
            if settings.compress {
                builder = builder.with_compression(Compression::Gzip);
            }
            batched(builder.build().map_err(|e| fail("OTLP grpc", &e))?, resource)
        }
        Exporter::Zipkin { url } => {
            // The zipkin builder makes a blocking HTTP client, which must not be made on a tokio thread.
            let (url, service) = (url.clone(), settings.service[0].1.clone());
            let exporter = std::thread::spawn(move || {
                opentelemetry_zipkin::ZipkinExporter::builder().with_http_client(crate::zipkin::ServiceNamed::new(service)).with_collector_endpoint(url).build()
            })
                .join()
                .map_err(|_| "otel: the zipkin exporter panicked while starting".to_string())?
                .map_err(|e| fail("zipkin", &e))?;
            batched(exporter, resource)
        }
        Exporter::Stdout => batched(JsonExporter::stdout(), resource),
        Exporter::Stderr => batched(JsonExporter::stderr(), resource),
    })
}

fn batched(exporter: impl SpanExporter + 'static, resource: Resource) -> SdkTracerProvider {
    SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build()
}

fn headers(settings: &Settings) -> HashMap<String, String> {
    settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The SDK's own attributes (`telemetry.sdk.*`, `OTEL_RESOURCE_ATTRIBUTES`) under RoadRunner's.
fn resource(settings: &Settings, rr_version: &str) -> Resource {
    let service = settings.service.iter().map(|(k, v)| KeyValue::new(*k, v.clone()));
    Resource::builder()
        .with_attributes(service)
        .with_attributes([
            KeyValue::new("os.name", std::env::consts::OS),
            KeyValue::new("host.arch", std::env::consts::ARCH),
            KeyValue::new("webengine.name", "RoadRunner"),
            KeyValue::new("webengine.version", rr_version.to_string()),
        ])
        .build()
}
