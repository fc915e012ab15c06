//! The `tcp` plugin: raw TCP servers whose connections PHP workers (`RR_MODE=tcp`) handle event
//! by event, RoadRunner-compatible (PLUGINS-MORE.md §A, docs/TCP.md).
//!
//! `config` reads `tcp`; `listener` binds each `tcp.servers` entry; `connection` runs one client
//! (events out, reply words in, through `codec`); RPC `tcp.Close` closes a connection by uuid.

pub mod codec;
pub mod config;
mod connection;
mod listener;

use std::sync::Arc;

use bytes::Bytes;
use rr_runtime::pool::Pool;
use rr_runtime::rpc::RpcError;
use rr_runtime::{BoxError, InitContext, Services};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
use connection::{Connections, Settings};
use listener::Listener;

pub struct Plugin {
    cfg: Config,
    services: Arc<Services>,
    pool: tokio::sync::OnceCell<Pool>,
    connections: Arc<Connections>,
    /// Said once its listeners are bound (systemd `READY=1` waits for it).
    serving: rr_runtime::services::Starting,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "tcp";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        let Some(cfg) = ctx.section::<Config>("tcp")? else { return Ok(None) };
        cfg.validate()?;
        let connections = Arc::new(Connections::default());
        let open = connections.clone();
        // RoadRunner answers true for an unknown uuid too.
        ctx.services.rpc.register_json("tcp.Close", move |uuid: String| {
            let closed = open.close(&uuid);
            tracing::debug!(target: "tcp", %uuid, closed, "tcp.Close");
            async { Ok::<_, RpcError>(true) }
        });
        Ok(Some(Plugin { cfg, services: ctx.services.clone(), pool: Default::default(), connections, serving: ctx.services.lifecycle.starting() }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        // Workers first: a client that can connect finds them ready.
        let pool = self.services.new_pool("tcp", "tcp", self.cfg.pool.clone()).await?;
        let _ = self.pool.set(pool.clone());
        let mut listeners = Vec::new();
        for (name, server) in &self.cfg.servers {
            let listener = Listener::bind(name, &server.addr).await?;
            tracing::info!(target: "tcp", server = %name, address = %listener.local_addr(), "tcp server listening");
            listeners.push((name.clone(), server.delimiter.clone(), self.cfg.max_message(server), listener));
        }
        self.serving.serving();
        let connections = TaskTracker::new();
        let accepting = TaskTracker::new();
        for (server, delimiter, max_message, listener) in listeners {
            let settings = Arc::new(Settings {
                server,
                delimiter: Bytes::from(delimiter),
                read_chunk: self.cfg.read_chunk(),
                max_message,
                pool: pool.clone(),
                connections: self.connections.clone(),
            });
            accepting.spawn(accept_loop(listener, settings, connections.clone(), shutdown.clone()));
        }
        accepting.close();
        accepting.wait().await;
        // Stop: every connection was closed by the cancelled token and sends CLOSE to a worker.
        connections.close();
        if tokio::time::timeout(pool.config().destroy_timeout, connections.wait()).await.is_err() {
            tracing::warn!(target: "tcp", open = self.connections.len(), "connections did not finish within pool.destroy_timeout");
        }
        Ok(())
    }

    async fn stop(&self) -> Result<(), BoxError> {
        if let Some(pool) = self.pool.get() {
            pool.destroy().await;
        }
        Ok(())
    }
}

/// Accept until `shutdown`; each connection runs in its own task with a child token.
async fn accept_loop(listener: Listener, settings: Arc<Settings>, connections: TaskTracker, shutdown: CancellationToken) {
    loop {
        let (stream, remote_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::error!(target: "tcp", server = %settings.server, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        connections.spawn(connection::serve(settings.clone(), stream, remote_addr, shutdown.child_token()));
    }
}
