//! rr-runtime: the shared runtime every server binary built by velox links.
//!
//! Layout (data flows top to bottom):
//! - [`frame`]: the goridge frame codec, pure code.
//! - [`relay`]: frame transport over pipes, TCP and unix sockets.
//! - [`worker`]: one PHP process: spawn, handshake, exec, stop.
//! - [`pool`]: a cloneable handle over N workers: allocation, limits, supervisor, reset.
//! - [`server`]: the `server` section; the pool factory plugins use.
//! - [`config`]: `.rr.yaml` loading; [`logging`]: the `logs` section; [`error`]: the shared error type.
//! - [`plugin`], [`services`], [`host`]: the plugin contract, typed services, lifecycle.
//! - [`rpc`], [`http`], [`jobs`], [`kv`]: contracts shared by plugins; [`trace`]: the shared trace context.
//! - [`cli`]: the `rr` command line.

pub mod cli;
pub mod config;
pub mod error;
pub mod frame;
pub mod host;
pub mod http;
pub mod jobs;
pub mod kv;
pub mod logging;
pub mod metrics;
pub mod plugin;
pub mod pool;
pub mod reaper;
pub mod relay;
pub mod rpc;
pub mod server;
pub mod services;
pub mod shards;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod worker;
mod worker_boot;

pub use error::BoxError;
pub use plugin::{Build, InitContext, Plugin};

/// The allocator generated servers install (`#[global_allocator]` in their `main.rs`): mimalloc
/// measured 5 % more hello-world requests per second than glibc malloc (docs/BENCHMARKS.md),
/// as the request path allocates and frees many small buffers across tasks.
pub use mimalloc::MiMalloc as Allocator;
pub use services::Services;

/// `GOMAXPROCS`, honoured as RoadRunner (Go) honours it: the most threads rr runs its own work
/// on (`None` when unset). A value that is not a positive number is an error naming it.
pub fn gomaxprocs() -> Result<Option<usize>, String> {
    match std::env::var("GOMAXPROCS") {
        Err(_) => Ok(None),
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!("GOMAXPROCS=`{value}` is not a positive number of threads; unset it or set e.g. GOMAXPROCS=2")),
        },
    }
}
