//! Zombie reaping when the server runs as PID 1 (containers without an init; RoadRunner issue
//! #2384). Orphaned grandchildren of workers are re-parented to PID 1 and must be waited for.
//!
//! Workers themselves are reaped by their own watcher task (tokio), which must see their exit
//! status, so on every SIGCHLD the reaper peeks at exited children without reaping them
//! (`WNOWAIT`) and reaps only those that are not workers.

use std::collections::HashSet;
use std::sync::Mutex;

use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

/// Pids of live workers. The kernel's child list is process-wide, so this set is too.
static WORKERS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

pub(crate) fn track(pid: u32) {
    WORKERS.lock().unwrap().get_or_insert_with(HashSet::new).insert(pid as i32);
}

pub(crate) fn untrack(pid: u32) {
    if let Some(set) = WORKERS.lock().unwrap().as_mut() {
        set.remove(&(pid as i32));
    }
}

/// SIGKILL every live worker: a forced exit (second stop signal) must not leave PHP behind.
pub(crate) fn kill_workers() {
    for pid in WORKERS.lock().unwrap().iter().flatten() {
        let _ = nix::sys::signal::kill(Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
    }
}

fn is_worker(pid: i32) -> bool {
    WORKERS.lock().unwrap().as_ref().is_some_and(|s| s.contains(&pid))
}

/// Start reaping orphans if this process is PID 1 (or `RR_SUBREAPER=1` asks for it, which also
/// makes this process the subreaper of its descendants on Linux).
pub fn start_if_init() {
    let wanted = std::process::id() == 1 || std::env::var("RR_SUBREAPER").is_ok_and(|v| v == "1");
    if !wanted {
        return;
    }
    if std::process::id() != 1 {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and no pointers.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let Ok(mut sigchld) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) else { return };
    tokio::spawn(async move {
        loop {
            reap_orphans();
            if sigchld.recv().await.is_none() {
                return;
            }
        }
    });
    tracing::debug!("reaping orphaned processes (running as init)");
}

fn reap_orphans() {
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pid = match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => match status.pid() {
                Some(pid) => pid,
                None => return,
            },
        };
        if is_worker(pid.as_raw()) {
            // Its watcher reaps it; other zombies wait for the next SIGCHLD.
            return;
        }
        let _ = waitpid(Pid::from_raw(pid.as_raw()), Some(WaitPidFlag::WNOHANG));
        tracing::debug!(pid = pid.as_raw(), "reaped an orphaned process");
    }
}
