//! The seam where the Temporal connection plugs in (TEMPORAL.md §2, §7, §8).
//!
//! The plugin owns config, the PHP processes and the handshake; a [`Driver`] owns everything that
//! talks to the Temporal server: the Core runtime and client, one Core worker per task queue
//! from the handshake, the workflow activation loop (activation jobs → a [`crate::codec::Batch`]
//! on [`PhpWorkers::workflow_exec`], PHP commands → Core commands) and the activity task loop
//! ([`PhpWorkers::invoke_activity`]). It returns when `shutdown` is cancelled and its workers
//! have drained.
//!
//! [`default_driver`] is [`crate::core::CoreDriver`]; [`NotImplemented`] stays for builds and
//! tests that want the PHP side checked without a server.

use std::sync::Arc;

use futures::future::BoxFuture;
use rr_runtime::BoxError;
use tokio_util::sync::CancellationToken;

use crate::codec::json::WorkerInfo;
use crate::config::Config;
use crate::workers::PhpWorkers;

/// What the plugin hands a driver once the PHP side answered `GetWorkerInfo`.
pub struct Handshake {
    pub config: Arc<Config>,
    /// One per task queue; never empty.
    pub infos: Vec<WorkerInfo>,
    pub workers: Arc<PhpWorkers>,
    /// The API key: PHP's `Flags.ApiKey`, later replaced by `temporal.UpdateAPIKey`.
    pub api_key: Arc<std::sync::Mutex<Option<String>>>,
    /// Set by the driver while connected: `temporal.UpdateAPIKey` hands the new key to it.
    pub on_api_key: Arc<std::sync::Mutex<Option<ApiKeyHook>>>,
    /// The running activities, for `temporal.RecordActivityHeartbeat`.
    pub running: Arc<crate::core::activities::Running>,
    /// The replay RPCs, which the driver connects while it is.
    pub replay: Arc<crate::core::replay::ReplayRpc>,
}

pub type ApiKeyHook = Box<dyn Fn(&str) + Send + Sync>;

/// A connection to Temporal that runs the task queues of a [`Handshake`].
pub trait Driver: Send + Sync + 'static {
    /// Connect and serve until `shutdown`; an error stops the server (as RoadRunner stops when
    /// it cannot dial Temporal).
    fn run(&self, handshake: Handshake, shutdown: CancellationToken) -> BoxFuture<'static, Result<(), BoxError>>;
}

/// The driver this build uses: Temporal's Rust core.
pub fn default_driver() -> Arc<dyn Driver> {
    Arc::new(crate::core::CoreDriver)
}

/// A driver that says the Temporal connection is not there instead of serving nothing (for
/// builds and tests without a server).
pub struct NotImplemented;

/// The start of [`NotImplemented`]'s error, for tests and log searches.
pub const NOT_IMPLEMENTED: &str = "the connection to the Temporal server is not implemented in this build";

impl NotImplemented {
    pub fn message(config: &Config, infos: &[WorkerInfo]) -> String {
        let queues: Vec<String> = infos
            .iter()
            .map(|i| format!("`{}` ({} workflows, {} activities)", i.task_queue(), i.workflows.len(), i.activities.len()))
            .collect();
        format!(
            "{NOT_IMPLEMENTED}: no workflow or activity would run. The PHP workers started and registered task queue(s) {}, \
             but nothing polls {} (namespace `{}`). Remove the `temporal` section, or run RoadRunner's Go binary for Temporal until this server gains its Temporal core driver (docs/TEMPORAL.md)",
            queues.join(", "),
            config.address(),
            config.namespace()
        )
    }
}

impl Driver for NotImplemented {
    fn run(&self, handshake: Handshake, _shutdown: CancellationToken) -> BoxFuture<'static, Result<(), BoxError>> {
        let message = NotImplemented::message(&handshake.config, &handshake.infos);
        Box::pin(async move { Err(message.into()) })
    }
}
