//! The supervisor: every `watch_tick`, soft limits (ttl, idle_ttl, max_worker_memory) retire idle
//! workers at once and mark busy ones, which then leave after their current request. `exec_ttl`
//! is hard and enforced on the exec path itself.

use std::sync::Weak;

use super::workers::Inner;
use super::{SupervisorConfig, WorkerState};

pub(super) async fn run(pool: Weak<Inner>, cfg: SupervisorConfig) {
    let mut tick = tokio::time::interval(cfg.watch_tick.max(std::time::Duration::from_millis(10)));
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        for shared in inner.live() {
            let verdict = if !cfg.ttl.is_zero() && shared.age() >= cfg.ttl {
                Some(WorkerState::TtlReached)
            } else if !cfg.idle_ttl.is_zero() && shared.state() == WorkerState::Ready && shared.idle_for().is_some_and(|d| d >= cfg.idle_ttl) {
                Some(WorkerState::IdleTtlReached)
            } else if cfg.max_worker_memory > 0 && shared.rss() >= cfg.max_worker_memory * 1024 * 1024 {
                Some(WorkerState::MaxMemoryReached)
            } else {
                None
            };
            let Some(verdict) = verdict else { continue };
            match shared.state() {
                // Soft: never interrupt a request; it leaves when released.
                WorkerState::Working => {
                    if shared.transition(WorkerState::Working, WorkerState::Invalid) {
                        tracing::info!(pool = inner.name(), pid = shared.pid, state = verdict.as_str(), "worker will be replaced after its current request");
                    }
                }
                WorkerState::Ready => {
                    if let Some(worker) = inner.take_idle_worker(shared.pid) {
                        tracing::info!(pool = inner.name(), pid = shared.pid, state = verdict.as_str(), "replacing worker");
                        inner.retire(worker, verdict, true, true);
                    }
                }
                _ => {}
            }
        }
    }
}
