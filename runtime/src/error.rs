//! The error type shared by plugin contracts and services: a leaf module, so that the modules
//! that use it (plugin, services, http, jobs, kv) need not import each other for it.

/// Any error a plugin or driver returns; its `Display` text is what the user sees.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
