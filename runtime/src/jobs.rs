//! Job driver contract shared by the jobs plugin and its driver plugins (filled by the jobs work).

/// Creates pipelines of one driver kind (`memory`, `amqp`, ...).
pub trait DriverFactory: Send + Sync {}
