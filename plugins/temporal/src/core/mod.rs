//! The Temporal connection on Temporal's Rust core (`temporalio-sdk-core`, TEMPORAL.md §7):
//! one client connection, one Core worker per task queue PHP registered, an activity task loop
//! per worker ([`activities`]) and a workflow activation loop per worker ([`workflows`]).

pub mod activities;
pub mod convert;
pub mod metrics;
pub mod replay;
pub mod workflows;

use std::sync::Arc;

use futures::future::BoxFuture;
use rr_runtime::BoxError;
use temporalio_client::{ClientTlsOptions, Connection, ConnectionOptions, TlsOptions};
use temporalio_common::worker::WorkerTaskTypes;
use temporalio_sdk_core::{CoreRuntime, PollerBehavior, RuntimeOptions, Url, WorkerConfig, WorkerVersioningStrategy, init_worker};
use tokio_util::sync::CancellationToken;

use crate::codec::json::WorkerInfo;
use crate::config::Config;
use crate::driver::{Driver, Handshake};

/// The client name Temporal's server knows PHP workers by (RoadRunner's Go plugin sends it too).
const CLIENT_NAME: &str = "temporal-php-2";

/// The driver on Temporal's core.
pub struct CoreDriver;

impl Driver for CoreDriver {
    fn run(&self, handshake: Handshake, shutdown: CancellationToken) -> BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(run(handshake, shutdown))
    }
}

async fn run(hs: Handshake, shutdown: CancellationToken) -> Result<(), BoxError> {
    let (telemetry, exporter) = metrics::telemetry(&hs.config, &hs.workers)?;
    let runtime = CoreRuntime::new_assume_tokio(
        RuntimeOptions::builder()
            .telemetry_options(telemetry)
            .heartbeat_interval(hs.config.worker_heartbeat_interval())
            .build()
            .map_err(|e| format!("temporal: core runtime options: {e}"))?,
    )
    .map_err(|e| format!("temporal: cannot start Temporal's core runtime: {e}"))?;
    let api_key = hs.api_key.lock().unwrap().clone();
    // The client's request metrics (`temporal_request`, `temporal_long_request`, ...) too.
    let meter = runtime.telemetry().get_temporal_metric_meter();
    let connection = connect(&hs.config, &hs.infos[0], api_key, meter).await?;
    {
        // `temporal.UpdateAPIKey` reaches the live connection from now on.
        let conn = connection.clone();
        *hs.on_api_key.lock().unwrap() = Some(Box::new(move |key: &str| conn.set_api_key(Some(key.to_string()))));
    }
    hs.replay.connect(Some((connection.clone(), hs.config.namespace().to_string(), hs.workers.clone())));
    let activity_workers = hs.workers.activities().map(|p| p.workers().len().max(1));
    let mut runs = workflows::Runs::new(hs.config.namespace());
    runs.local_retry_threshold = hs.config.local_retry_threshold;
    runs.live = true;
    let runs = Arc::new(runs);
    let evictor = tokio::spawn(workflows::evict_stale(hs.workers.clone(), runs.clone()));
    let recycler = tokio::spawn(workflows::recycle_idle(hs.workers.clone(), runs.clone()));
    let mut loops = tokio::task::JoinSet::new();
    let mut workers = Vec::new();
    for info in &hs.infos {
        let config = worker_config(&hs.config, info, activity_workers).map_err(|e| format!("temporal: task queue `{}`: {e}", info.task_queue()))?;
        let polls_activities = config.task_types.enable_remote_activities || config.task_types.enable_local_activities;
        let worker = Arc::new(init_worker(&runtime, config, connection.clone()).map_err(|e| format!("temporal: task queue `{}`: cannot create the core worker: {e}", info.task_queue()))?);
        worker.validate().await.map_err(|e| format!("temporal: cannot reach namespace `{}` at {}: {e}", hs.config.namespace(), hs.config.address()))?;
        let tq = info.task_queue().to_string();
        if polls_activities {
            let (w, php, running, tq) = (worker.clone(), hs.workers.clone(), hs.running.clone(), tq.clone());
            loops.spawn(async move { activities::run(w, tq.clone(), php, running).await.map_err(|e| format!("temporal: task queue `{tq}`: polling activity tasks failed: {e}")) });
        }
        if !info.workflows.is_empty() {
            runs.set_panic_policy(&tq, info.options.workflow_panic_policy);
            let (w, php, runs, tq) = (worker.clone(), hs.workers.clone(), runs.clone(), tq.clone());
            loops.spawn(async move { workflows::run(w, tq.clone(), php, runs).await.map_err(|e| format!("temporal: task queue `{tq}`: polling workflow activations failed: {e}")) });
        }
        tracing::info!(target: "temporal", task_queue = %tq, namespace = %hs.config.namespace(), address = %hs.config.address(), "core worker polling");
        workers.push(worker);
    }
    // Run until shutdown or until a loop fails; then drain every worker.
    let failed = tokio::select! {
        _ = shutdown.cancelled() => None,
        Some(result) = loops.join_next() => match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(format!("temporal: a poll loop stopped: {e}")),
        },
    };
    evictor.abort();
    recycler.abort();
    for w in &workers {
        w.initiate_shutdown();
    }
    while loops.join_next().await.is_some() {}
    for w in &workers {
        w.shutdown().await;
    }
    for w in workers {
        if let Ok(w) = Arc::try_unwrap(w) {
            w.finalize_shutdown().await;
        }
    }
    *hs.on_api_key.lock().unwrap() = None;
    hs.replay.connect(None);
    drop(runtime);
    drop(exporter);
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The client connection: `address`, TLS from the config, PHP's SDK version and API key.
async fn connect(cfg: &Config, info: &WorkerInfo, api_key: Option<String>, meter: Option<temporalio_common::telemetry::metrics::TemporalMeter>) -> Result<Connection, BoxError> {
    let tls = tls_options(cfg)?;
    let scheme = if tls.is_some() || api_key.is_some() { "https" } else { "http" };
    let address = cfg.address().trim_start_matches("dns:///");
    let url = Url::parse(&format!("{scheme}://{address}")).map_err(|e| format!("temporal: `temporal.address` `{}`: {e}", cfg.address()))?;
    let identity = match info.options.identity.as_str() {
        "" => format!("roadrunner:{}:{}", info.task_queue(), uuid::Uuid::new_v4()),
        id => id.to_string(),
    };
    let version = match info.php_sdk_version.as_str() {
        "" => "2.0.0".to_string(),
        v => v.to_string(),
    };
    let options = ConnectionOptions::new(url)
        .identity(identity)
        .maybe_api_key(api_key)
        .maybe_tls_options(tls)
        .client_name(CLIENT_NAME.to_string())
        .client_version(version)
        .maybe_metrics_meter(meter)
        .build();
    Connection::connect(options)
        .await
        .map_err(|e| format!("temporal: cannot connect to the Temporal server at {} (`temporal.address`): {e}{}", cfg.address(), tls_hint(cfg, &e.to_string())).into())
}

/// Which `temporal.tls` key a TLS failure points at (rustls' error names only the symptom).
fn tls_hint(cfg: &Config, error: &str) -> String {
    let Some(tls) = &cfg.tls else { return String::new() };
    if error.contains("InvalidCertificate") || error.contains("UnknownIssuer") {
        let ca = if tls.root_ca.is_empty() { "the system's roots".to_string() } else { format!("'{}'", tls.root_ca) };
        let name = if tls.server_name.is_empty() { "the host of `temporal.address`".to_string() } else { format!("'{}'", tls.server_name) };
        return format!("; the server's certificate is not trusted: check that `temporal.tls.root_ca` ({ca}) signed it for `temporal.tls.server_name` ({name})");
    }
    // With TLS 1.3 the server checks the client certificate after the client thinks the
    // handshake is done: its rejection is an alert or just a closed connection on the first call.
    if !tls.cert.is_empty() && (error.contains("received fatal alert") || error.contains("after connection")) {
        return "; the server closed the connection: if it refused the client certificate, check `temporal.tls.cert` and `temporal.tls.key`".into();
    }
    String::new()
}

fn tls_options(cfg: &Config) -> Result<Option<TlsOptions>, BoxError> {
    let Some(tls) = &cfg.tls else { return Ok(None) };
    let read = |key: &str, path: &str| std::fs::read(path).map_err(|e| format!("temporal: `temporal.tls.{key}` `{path}`: {e}"));
    let root_ca = match tls.root_ca.as_str() {
        "" => None,
        path => Some(read("root_ca", path)?),
    };
    let client = match (tls.cert.as_str(), tls.key.as_str()) {
        ("", _) | (_, "") => None,
        (cert, key) => Some(ClientTlsOptions::builder().client_cert(read("cert", cert)?).client_private_key(read("key", key)?).build()),
    };
    let domain = (!tls.server_name.is_empty()).then(|| tls.server_name.clone());
    Ok(Some(TlsOptions::builder().maybe_server_root_ca_cert(root_ca).maybe_domain(domain).maybe_client_tls_options(client).build()))
}

/// PHP's Go `worker.Options` as Core's worker config. Activity slots default to the number of
/// PHP activity workers (RoadRunner-temporal#36: the Go default of 1000 hands out tasks no PHP
/// worker is free for, which then time out).
pub fn worker_config(cfg: &Config, info: &WorkerInfo, activity_workers: Option<usize>) -> Result<WorkerConfig, String> {
    let o = &info.options;
    let positive = |v: i64| (v > 0).then_some(v as usize);
    let activities = activity_workers.is_some() && !info.activities.is_empty() && !o.local_activity_worker_only;
    let workflows = !info.workflows.is_empty() && !o.disable_workflow_worker;
    let slots = activity_workers.unwrap_or(1);
    let task_types = WorkerTaskTypes {
        enable_workflows: workflows,
        // Local activities are scheduled by workflows and run on the activity pool; SideEffect is
        // one too, answered here, so workflows get them even without activity workers.
        enable_local_activities: workflows,
        enable_remote_activities: activities,
        enable_nexus: false,
    };
    let cache = cfg.cache_size();
    WorkerConfig::builder()
        .namespace(cfg.namespace())
        .task_queue(info.task_queue())
        .maybe_client_identity_override((!o.identity.is_empty()).then(|| o.identity.clone()))
        .versioning_strategy(WorkerVersioningStrategy::None { build_id: o.build_id.clone() })
        .task_types(task_types)
        .max_cached_workflows(cache)
        .max_outstanding_workflow_tasks(positive(o.max_concurrent_workflow_task_execution_size).unwrap_or(1000).max(2))
        .max_outstanding_activities(positive(o.max_concurrent_activity_execution_size).unwrap_or(slots))
        .max_outstanding_local_activities(positive(o.max_concurrent_local_activity_execution_size).unwrap_or(slots))
        // PHP's poller counts (Go's MaxConcurrent*TaskPollers); workflow polling needs two with a cache.
        .maybe_workflow_task_poller_behavior(positive(o.max_concurrent_workflow_task_pollers).map(|n| PollerBehavior::SimpleMaximum(n.max(2))))
        .maybe_activity_task_poller_behavior(positive(o.max_concurrent_activity_task_pollers).map(PollerBehavior::SimpleMaximum))
        .maybe_max_task_queue_activities_per_second((o.task_queue_activities_per_second > 0.0).then_some(o.task_queue_activities_per_second))
        .maybe_max_worker_activities_per_second((o.worker_activities_per_second > 0.0).then_some(o.worker_activities_per_second))
        .maybe_sticky_queue_schedule_to_start_timeout((!o.sticky_schedule_to_start_timeout.is_zero()).then_some(o.sticky_schedule_to_start_timeout))
        .maybe_max_heartbeat_throttle_interval((!o.max_heartbeat_throttle_interval.is_zero()).then_some(o.max_heartbeat_throttle_interval))
        .ignore_evicts_on_shutdown(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json::{ActivityRegistration, WorkerOptions, WorkflowRegistration};

    fn info(options: WorkerOptions) -> WorkerInfo {
        WorkerInfo {
            task_queue: "q".into(),
            options,
            workflows: vec![WorkflowRegistration { name: "W".into(), ..Default::default() }],
            activities: vec![ActivityRegistration { name: "a".into() }],
            ..Default::default()
        }
    }

    fn cfg(section: &str) -> Config {
        let yaml = format!("version: '3'\nserver:\n  command: php w.php\ntemporal: {section}\n");
        rr_runtime::config::Config::from_str(&yaml).unwrap().section::<Config>("temporal").unwrap().unwrap()
    }

    #[test]
    fn activity_slots_follow_the_php_activity_workers() {
        // RoadRunner-temporal#36: not the Go SDK's 1000 slots for a pool of 3.
        let c = worker_config(&cfg("{address: 127.0.0.1:7233}"), &info(WorkerOptions::default()), Some(3)).unwrap();
        assert_eq!((c.max_outstanding_activities, c.max_outstanding_local_activities), (Some(3), Some(3)));
        assert_eq!(c.max_outstanding_workflow_tasks, Some(1000));
        assert_eq!((c.namespace.as_str(), c.task_queue.as_str(), c.max_cached_workflows), ("default", "q", 10000));
        assert!(c.task_types.enable_workflows && c.task_types.enable_remote_activities && c.task_types.enable_local_activities && !c.task_types.enable_nexus);
        // What PHP asks for wins.
        let o = WorkerOptions { max_concurrent_activity_execution_size: 7, max_concurrent_local_activity_execution_size: 2, ..Default::default() };
        let c = worker_config(&cfg("{namespace: ns, cache_size: 5}"), &info(o), Some(3)).unwrap();
        assert_eq!((c.max_outstanding_activities, c.max_outstanding_local_activities, c.max_cached_workflows), (Some(7), Some(2), 5));
        assert_eq!(c.namespace, "ns");
        assert!(c.workflow_task_poller_behavior.is_none() && c.activity_task_poller_behavior.is_none(), "the core's defaults");
        let o = WorkerOptions { max_concurrent_workflow_task_pollers: 1, max_concurrent_activity_task_pollers: 3, ..Default::default() };
        let c = worker_config(&cfg("{}"), &info(o), Some(3)).unwrap();
        assert!(matches!(c.workflow_task_poller_behavior, Some(PollerBehavior::SimpleMaximum(2))), "at least two with a sticky cache");
        assert!(matches!(c.activity_task_poller_behavior, Some(PollerBehavior::SimpleMaximum(3))));
    }

    #[test]
    fn task_types_follow_what_runs_here() {
        // disable_activity_workers: no activity tasks, but local ones (SideEffect runs here).
        let c = worker_config(&cfg("{}"), &info(WorkerOptions::default()), None).unwrap();
        assert!(c.task_types.enable_workflows && !c.task_types.enable_remote_activities && c.task_types.enable_local_activities);
        // A task queue with activities only.
        let mut only = info(WorkerOptions::default());
        only.workflows.clear();
        let c = worker_config(&cfg("{}"), &only, Some(2)).unwrap();
        assert!(!c.task_types.enable_workflows && c.task_types.enable_remote_activities && !c.task_types.enable_local_activities);
        // Nothing to run is the core's own error.
        only.activities.clear();
        let err = worker_config(&cfg("{}"), &only, Some(2)).err().expect("no task types");
        assert!(err.contains("task type"), "{err}");
    }
}
