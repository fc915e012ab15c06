//! The `logs` section → a tracing subscriber (minimal version; the config work completes it).

use crate::config::Config;

pub struct Guard;

pub fn init(_config: &Config) -> anyhow::Result<Guard> {
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).try_init();
    Ok(Guard)
}
