//! The `otel` plugin: exports the spans every plugin creates through the runtime's trace
//! service (`Services::tracing`) to an OTLP collector (HTTP/protobuf or gRPC), zipkin, or
//! stdout/stderr, and provides the `otel` HTTP middleware.
//!
//! - [`config`]: the section and its `OTEL_*` fallbacks, resolved (pure);
//! - [`exporter`]: the tracer provider for resolved settings; [`json`]: the stdout/stderr exporter;
//! - [`middleware`]: the HTTP server spans and the headers PHP sees.

pub mod config;
mod exporter;
mod json;
mod middleware;
mod zipkin;

use std::sync::Arc;

use opentelemetry_sdk::trace::SdkTracerProvider;
use rr_runtime::http::Middleware;
use rr_runtime::{BoxError, InitContext};

const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Plugin {
    provider: SdkTracerProvider,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "otel";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(config) = ctx.section::<config::Config>("otel")? else { return Ok(None) };
        let settings = config::resolve(config, |k| std::env::var(k).ok())?;
        for warning in &settings.warnings {
            tracing::warn!(target: "otel", "{warning}");
        }
        let provider = exporter::provider(&settings, ctx.services.version)?;
        if !ctx.services.tracing.install(provider.clone()) {
            return Err("otel: a tracer provider is installed already (is the otel plugin listed twice?)".into());
        }
        ctx.services.http_middleware.register("otel", Arc::new(middleware::Otel { services: ctx.services.clone() }) as Arc<dyn Middleware>);
        tracing::debug!(target: "otel", exporter = ?settings.exporter, "tracing enabled");
        Ok(Some(Plugin { provider }))
    }

    /// Every other plugin has drained by now (the host stops all `serve`s before any `stop`):
    /// export what the batch holds, so a graceful stop loses no span. A collector that is down
    /// costs a warning and at most `FLUSH_TIMEOUT`, not a failed stop.
    async fn stop(&self) -> Result<(), BoxError> {
        let provider = self.provider.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT)).await? {
            tracing::warn!(target: "otel", error = %e, "exporting the last spans failed");
        }
        Ok(())
    }
}
