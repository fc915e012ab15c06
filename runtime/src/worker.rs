//! One PHP worker process (in progress).

use crate::config::Config;

/// Run `server.on_init` once before any pool starts.
pub async fn on_init(_config: &Config) -> anyhow::Result<()> {
    Ok(())
}
