//! The plugin contract (ARCHITECTURE.md "The plugin contract").
//!
//! A plugin crate exports one type implementing [`Plugin`] and names it in its `Cargo.toml`:
//!
//! ```toml
//! [package.metadata.rr-plugin]
//! name = "http"        # the `.rr.yaml` key, shown by `rr --version`
//! entry = "Plugin"     # the type path inside the crate: `rr_http::Plugin`
//! ```
//!
//! Lifecycle: `init` for every plugin in registration order (a plugin whose section is absent
//! returns `Ok(None)` and stays off), then `serve` for every enabled plugin concurrently, then on
//! shutdown each plugin's token is cancelled in reverse order and its `serve` is awaited (it drains
//! and returns), then `stop` runs for final cleanup.

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::BoxError;
use crate::services::Services;

/// What a plugin sees while it initialises.
pub struct InitContext<'a> {
    pub config: &'a Config,
    pub services: &'a Arc<Services>,
}

impl InitContext<'_> {
    /// Deserialize the plugin's own section (or any dotted key); `None` when absent.
    pub fn section<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, crate::config::ConfigError> {
        self.config.section(key)
    }
}

/// One plugin. `NAME` is its top-level `.rr.yaml` key.
pub trait Plugin: Send + Sync + Sized + 'static {
    const NAME: &'static str;

    /// Read config, validate, register services. `Ok(None)` = disabled (section absent).
    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError>;

    /// Run until `shutdown` is cancelled, then drain and return. A plugin with nothing to run
    /// may return at once.
    fn serve(self: Arc<Self>, shutdown: CancellationToken) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = shutdown;
        async { Ok(()) }
    }

    /// Final cleanup after `serve` has returned (destroy pools, close connections).
    fn stop(&self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }
}

/// Object-safe form the host stores; implemented for every [`Plugin`].
pub(crate) trait DynPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn serve(self: Arc<Self>, shutdown: CancellationToken) -> futures::future::BoxFuture<'static, Result<(), BoxError>>;
    fn stop(self: Arc<Self>) -> futures::future::BoxFuture<'static, Result<(), BoxError>>;
}

impl<P: Plugin> DynPlugin for P {
    fn name(&self) -> &'static str {
        P::NAME
    }
    fn serve(self: Arc<Self>, shutdown: CancellationToken) -> futures::future::BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(Plugin::serve(self, shutdown))
    }
    fn stop(self: Arc<Self>) -> futures::future::BoxFuture<'static, Result<(), BoxError>> {
        Box::pin(async move { Plugin::stop(&*self).await })
    }
}

/// A registered plugin type: its name and how to initialise it.
#[derive(Clone, Copy)]
pub struct PluginEntry {
    pub name: &'static str,
    pub(crate) init: fn(&InitContext<'_>) -> Result<Option<Arc<dyn DynPlugin>>, BoxError>,
}

impl PluginEntry {
    pub fn of<P: Plugin>() -> Self {
        fn init<P: Plugin>(ctx: &InitContext<'_>) -> Result<Option<Arc<dyn DynPlugin>>, BoxError> {
            Ok(P::init(ctx)?.map(|p| Arc::new(p) as Arc<dyn DynPlugin>))
        }
        PluginEntry { name: P::NAME, init: init::<P> }
    }
}

/// What velox's generated `main.rs` hands to [`crate::cli::main`]: the binary's identity and its
/// plugins, in order.
#[derive(Clone)]
pub struct Build {
    pub name: &'static str,
    pub version: &'static str,
    pub plugins: Vec<PluginEntry>,
}

impl Build {
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Build { name, version, plugins: Vec::new() }
    }

    pub fn plugin<P: Plugin>(mut self) -> Self {
        self.plugins.push(PluginEntry::of::<P>());
        self
    }
}
