//! The KV driver contract shared by the kv plugin and its driver plugins (`memory`, `redis`,
//! ...). Timeouts travel as RoadRunner has them: absolute RFC 3339 strings (`""` = none).

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::BoxError;

/// One key with its value and absolute expiry (`""` = no expiry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub value: Bytes,
    pub timeout: String,
}

pub type KvResult<T> = Result<T, BoxError>;

/// One storage (`kv.<name>`).
pub trait Storage: Send + Sync {
    /// The keys that exist.
    fn has(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<String>>>;
    fn set(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>>;
    /// Existing keys with their values.
    fn mget(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>>;
    fn mexpire(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>>;
    /// Existing keys with their timeout (`""` when none); a driver without TTL support returns
    /// an error containing `_plugin_ttl`.
    fn ttl(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>>;
    fn delete(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<()>>;
    fn clear(&self) -> BoxFuture<'_, KvResult<()>>;
}

/// Creates storages of one driver kind from their `config` section.
pub trait DriverFactory: Send + Sync {
    fn create(&self, storage: &str, config: &serde_json::Value) -> BoxFuture<'static, KvResult<Arc<dyn Storage>>>;
}

/// Whether any storage under `kv` uses `driver`: driver plugins stay off otherwise.
pub fn driver_used(config: &crate::config::Config, driver: &str) -> bool {
    config
        .value("kv")
        .and_then(|v| v.as_object())
        .is_some_and(|storages| storages.values().any(|s| s.get("driver").and_then(|d| d.as_str()) == Some(driver)))
}
