//! Thread per core: the server runs one I/O thread per core (a single-threaded runtime each), and
//! each thread has its own listening socket on the same address (`SO_REUSEPORT`: the kernel
//! spreads connections over them) and its own share of the workers (their pipes belong to its
//! reactor, `crate::pool::set_home`). A request is read, handed to a worker and answered on
//! one thread, so no thread wakes another on the way; a thread whose workers are all busy borrows
//! another's (the pool's `slots`). When the threads have the machine to themselves, each keeps to
//! its CPU with its workers ([`own_cpus`]).
//!
//! Why (docs/BENCHMARKS.md): with one I/O thread for all workers, that thread was the bottleneck
//! and every worker it woke ran on its CPU; two rr processes of one worker each served ~50 % more
//! hello-world requests than one of two workers. `GOMAXPROCS=1` serves from the main runtime.
//! The http and grpc plugins serve this way, each with threads of its own; the grpc plugin binds
//! one socket and deals its few long-lived connections out to the threads in turn instead.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpSocket;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The shard threads; dropping this lets them end (after the pool is destroyed: the workers'
/// pipes live on their runtimes).
pub struct Shards {
    handles: Vec<Handle>,
    alive: CancellationToken,
}

/// One thread per core, `GOMAXPROCS` capping it as it caps Go's threads (`rr serve` has already
/// refused a value that is not a number), and no more threads than workers. 1 means no shard
/// threads: the main runtime serves.
pub fn count(workers: usize) -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cap = crate::gomaxprocs().ok().flatten().unwrap_or(cores);
    cores.min(cap).min(workers).max(1)
}

impl Shards {
    /// Start `n` shard threads (none for `n` = 1), named `rr-<plugin>-<i>`.
    pub fn start(plugin: &str, n: usize) -> io::Result<Shards> {
        let alive = CancellationToken::new();
        let cpus = if n > 1 { own_cpus(n) } else { None };
        let mut handles = Vec::new();
        for index in (0..n).filter(|_| n > 1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let cpu = cpus.as_ref().map(|cpus| cpus[index]);
            handles.push(runtime.handle().clone());
            let alive = alive.clone();
            std::thread::Builder::new().name(format!("rr-{plugin}-{index}")).spawn(move || {
                crate::pool::set_home(index);
                if let Some(cpu) = cpu {
                    pin(cpu);
                }
                runtime.block_on(alive.cancelled());
            })?;
        }
        Ok(Shards { handles, alive })
    }

    /// The shard runtimes (empty: serve on the current one).
    pub fn handles(&self) -> Vec<Handle> {
        self.handles.clone()
    }
}

/// Listening sockets for `address`, one per shard thread (one when there are none), as std
/// sockets to be registered on the runtime that serves each.
pub async fn bind(address: &str, threads: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let shared = threads > 1;
    let mut last_error = None;
    for addr in tokio::net::lookup_host(address).await? {
        match listen(addr, shared) {
            Ok(first) => {
                let bound = first.local_addr()?; // port 0 resolved, for the others
                let mut all = vec![first];
                for _ in 1..threads {
                    all.push(listen(bound, true)?);
                }
                return Ok(all);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing")))
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.alive.cancel();
    }
}

/// The CPUs this process may run on, when there are exactly `n` (the whole machine, or a cpuset
/// of its own): then shard thread i keeps to the i-th, and the workers it starts inherit that, so
/// each thread and its workers hand requests to each other on one CPU, never stacked on another's.
/// With fewer threads than allowed CPUs (a CPU quota, `GOMAXPROCS`, fewer workers than cores)
/// nothing is pinned and the kernel places them.
#[cfg(target_os = "linux")]
fn own_cpus(n: usize) -> Option<Vec<usize>> {
    use nix::sched::{CpuSet, sched_getaffinity};
    let allowed = sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let cpus: Vec<usize> = (0..CpuSet::count()).filter(|&c| allowed.is_set(c).unwrap_or(false)).collect();
    (cpus.len() == n).then_some(cpus)
}

#[cfg(not(target_os = "linux"))]
fn own_cpus(_n: usize) -> Option<Vec<usize>> {
    None
}

#[cfg(target_os = "linux")]
fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok()
        && let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
    {
        tracing::warn!(cpu, error = %e, "cannot keep an I/O thread to its CPU; the kernel places it");
    }
}

#[cfg(not(target_os = "linux"))]
fn pin(_cpu: usize) {}

fn listen(addr: SocketAddr, shared: bool) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if shared {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}
