//! `rr workers [plugin...] [-i]`: the workers of each plugin (all plugins with workers when none
//! is named), as a table; `-i` redraws every second until Ctrl-C.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::rpc_target;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plugins to show (default: all with workers).
    pub plugins: Vec<String>,
    /// Redraw every second until Ctrl-C.
    #[arg(short = 'i', long)]
    pub interactive: bool,
}

#[derive(Debug, Deserialize)]
struct State {
    pid: u32,
    #[serde(rename = "statusStr")]
    status: String,
    #[serde(rename = "numExecs")]
    execs: u64,
    #[serde(rename = "memoryUsage")]
    memory: u64,
    #[serde(rename = "CPUPercent")]
    cpu: f64,
    created: u64,
}

#[derive(Debug, Deserialize)]
struct Workers {
    workers: Option<Vec<State>>,
}

pub fn exec(cli: &super::Cli, args: &Args) -> anyhow::Result<()> {
    let address = rpc_target::address(cli)?;
    super::block_on(async {
        let mut client = rpc_target::connect(&address).await?;
        loop {
            let plugins = if args.plugins.is_empty() { client.call_json::<_, Vec<String>>("informer.List", &true).await? } else { args.plugins.clone() };
            let mut out = String::new();
            for plugin in plugins {
                let w: Workers = client.call_json("informer.Workers", &plugin).await?;
                out.push_str(&table(&plugin, w.workers.unwrap_or_default()));
            }
            if args.interactive {
                super::out(format_args!("\x1b[2J\x1b[H{out}"));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
            super::out(format_args!("{out}"));
            return Ok(());
        }
    })
}

fn table(plugin: &str, mut workers: Vec<State>) -> String {
    workers.sort_by_key(|w| w.pid);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut out = format!("Workers of [{plugin}]:\n{:<8} {:<16} {:>8} {:>10} {:>7} {:>10}\n", "PID", "Status", "Execs", "Memory", "CPU%", "Created");
    for w in workers {
        let age = now.saturating_sub(w.created / 1_000_000_000);
        out.push_str(&format!(
            "{:<8} {:<16} {:>8} {:>10} {:>6.2}% {:>10}\n",
            w.pid,
            w.status,
            w.execs,
            format!("{:.1} MB", w.memory as f64 / 1_048_576.0),
            w.cpu,
            format!("{age}s ago")
        ));
    }
    out
}
