//! In-process servers for plugin integration tests (feature `testing`).
//!
//! Every plugin test starts a host from YAML, waits until some probe answers and stops it at the
//! end. Waiting is bounded and watches the server: a server that fails to start (no `php` on the
//! machine, a bad config) fails the test with its own error instead of hanging it.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::host::Host;
use crate::rpc::client::RpcClient;
use crate::Build;

/// How long a test waits for a server to come up.
const STARTUP: Duration = Duration::from_secs(20);

/// A running in-process server; stop it with [`TestServer::stop`].
pub struct TestServer {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Init every plugin of `build` from `yaml` and start serving in the background.
    pub fn start(build: &Build, yaml: &str) -> TestServer {
        let config = Config::from_str(yaml).unwrap_or_else(|e| panic!("test config: {e}"));
        let host = Host::init(build, &config).unwrap_or_else(|e| panic!("init: {e:#}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(host.run_until(
            async {
                let _ = stopped.await;
            },
            STARTUP,
        ));
        TestServer { stop: Some(stop), task }
    }

    /// Poll `probe` until it yields a value; panics naming `what` after 20 s, or at once with the
    /// server's error when it exits.
    pub async fn until<T, F: Future<Output = Option<T>>>(&mut self, what: &str, mut probe: impl FnMut() -> F) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = probe().await {
                return value;
            }
            if self.task.is_finished() {
                panic!("the server exited while waiting for {what}: {:?}", (&mut self.task).await);
            }
            assert!(start.elapsed() < STARTUP, "timed out after {STARTUP:?} waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An RPC client connected to `address` once the rpc plugin listens.
    pub async fn rpc(&mut self, address: &str) -> RpcClient {
        self.until(&format!("the RPC server on {address}"), || async { RpcClient::connect(address).await.ok() }).await
    }

    /// Ask the server to stop gracefully and return how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind 127.0.0.1:0")
}

/// The `rr-bare` binary (the runtime's command line, no plugins), built into the calling test's
/// target directory: the client commands (`rr reset`, `rr workers`, `rr jobs`) every built `rr`
/// shares.
pub fn rr_bare() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>").to_path_buf();
    let target = profile.parent().expect("target/<profile>");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "rr-runtime", "--bin", "rr-bare", "--target-dir"])
        .arg(target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --bin rr-bare failed");
    profile.join("rr-bare")
}
