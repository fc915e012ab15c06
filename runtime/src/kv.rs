//! KV driver contract shared by the kv plugin and its driver plugins (filled by the kv work).

/// Creates storages of one driver kind (`memory`, `redis`, ...).
pub trait DriverFactory: Send + Sync {}
