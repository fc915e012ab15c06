//! `temporal.metrics` (TEMPORAL.md §1): Temporal's SDK metrics, as Core names them
//! (`temporal_request`, `temporal_workflow_completed`, `temporal_activity_execution_latency`,
//! ...), served for Prometheus by Core's own exporter at `metrics.prometheus.address`. Next to
//! them, RoadRunner's two pool gauges `rr_activities_pool_queue_size` and
//! `rr_workflows_pool_queue_size`. Core has no statsd exporter: that driver is warned about.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use temporalio_common::telemetry::metrics::{CoreMeter, MetricParameters, NewAttributes};
use temporalio_common::telemetry::{PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter};

use crate::config::{Config, Metrics};
use crate::workers::PhpWorkers;

/// The exporter while the driver runs; dropping it stops serving.
pub struct Exporter {
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Go tally's naming: RoadRunner's `prefix` goes in front of `temporal_`, joined by `_`.
pub fn metric_prefix(prefix: &str) -> String {
    match prefix.trim_end_matches('_') {
        "" => "temporal_".to_string(),
        p => format!("{p}_temporal_"),
    }
}

/// Core's telemetry for `temporal.metrics`; the exporter serves until dropped.
pub fn telemetry(cfg: &Config, php: &Arc<PhpWorkers>) -> Result<(TelemetryOptions, Option<Exporter>), String> {
    let Some(metrics) = cfg.metrics()? else { return Ok((TelemetryOptions::default(), None)) };
    let (address, prefix) = match metrics {
        Metrics::Prometheus { address, prefix, .. } => (address, prefix),
        Metrics::Statsd(_) => {
            tracing::warn!(target: "temporal", "`temporal.metrics.driver: statsd` is not supported: Temporal's core exports Prometheus only; no Temporal SDK metrics are sent");
            return Ok((TelemetryOptions::default(), None));
        }
    };
    let key = "`temporal.metrics.prometheus.address`";
    let socket = address
        .to_socket_addrs()
        .map_err(|e| format!("temporal: {key} `{address}`: {e}"))?
        .next()
        .ok_or_else(|| format!("temporal: {key} `{address}` resolves to no address"))?;
    // Durations in seconds, as Go's tally reporter records them.
    let options = PrometheusExporterOptions::builder().socket_addr(socket).use_seconds_for_durations(true).build();
    let server = start_prometheus_metric_exporter(options).map_err(|e| format!("temporal: cannot serve Temporal SDK metrics at {key} {address}: {e}"))?;
    tracing::info!(target: "temporal", address = %server.bound_addr, "Temporal SDK metrics served for Prometheus");
    let meter: Arc<dyn CoreMeter> = server.meter;
    let queues = tokio::spawn(pool_queues(meter.clone(), php.clone()));
    let telemetry = TelemetryOptions::builder().metrics(meter).metric_prefix(metric_prefix(&prefix)).build();
    Ok((telemetry, Some(Exporter { tasks: vec![server.abort_handle, queues.abort_handle()] })))
}

/// RoadRunner's gauges of requests waiting for a PHP process, and our count of workflow process
/// recycles, sampled every second.
async fn pool_queues(meter: Arc<dyn CoreMeter>, php: Arc<PhpWorkers>) {
    let activities = meter.gauge(MetricParameters::from("rr_activities_pool_queue_size"));
    let workflows = meter.gauge(MetricParameters::from("rr_workflows_pool_queue_size"));
    // Ours: how often `temporal.workflow_process` recycled the workflow process.
    let recycles = meter.gauge(MetricParameters::from("rr_workflow_process_recycles"));
    let none = meter.new_attributes(NewAttributes::new(Vec::new()));
    loop {
        activities.record(php.activities().map_or(0, |p| p.queue_size()), &none);
        workflows.record(php.workflow().queue_size(), &none);
        recycles.record(php.recycles(), &none);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_prefix_goes_in_front_as_with_go() {
        assert_eq!(super::metric_prefix(""), "temporal_");
        assert_eq!(super::metric_prefix("app"), "app_temporal_");
        assert_eq!(super::metric_prefix("app_"), "app_temporal_");
    }
}
