//! The redis broker: publications travel through one Redis pub/sub channel shared by every hub
//! with the same `prefix`, so a client on one `rr` receives what PHP published on another. Each
//! hub delivers (and keeps in its history) what arrives on the channel, its own publications
//! included, so all hubs see them in Redis's order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use redis::AsyncCommands;

use super::Hub;
use super::config::RedisConfig;
use super::protocol::ClientInfo;

/// One publication on the wire between hubs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Wire {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    pub info: Option<ClientInfo>,
    #[prost(map = "string, string", tag = "4")]
    pub tags: HashMap<String, String>,
    #[prost(bool, tag = "5")]
    pub skip_history: bool,
}

pub struct Remote {
    conn: redis::aio::MultiplexedConnection,
    channel: String,
}

impl Remote {
    /// Connect, subscribe, and deliver what arrives until the hub stops (reconnecting after a
    /// lost connection).
    pub async fn start(hub: &Arc<Hub>, cfg: &RedisConfig) -> Result<Remote, String> {
        let fail = |e: redis::RedisError| format!("config key `centrifuge.hub.broker.config`: cannot use Redis at {:?}: {e}", cfg.addrs);
        let client = redis::Client::open(cfg.url()).map_err(fail)?;
        let conn = client.get_multiplexed_async_connection().await.map_err(fail)?;
        let channel = format!("{}.publications", cfg.prefix);
        let mut pubsub = client.get_async_pubsub().await.map_err(fail)?;
        pubsub.subscribe(&channel).await.map_err(fail)?;
        let (hub2, name) = (hub.clone(), channel.clone());
        tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                if let Some(p) = pubsub.take() {
                    let mut messages = p.into_on_message();
                    loop {
                        tokio::select! {
                            _ = hub2.shutdown.cancelled() => return,
                            msg = messages.next() => match msg {
                                Some(msg) => deliver(&hub2, msg.get_payload_bytes()),
                                None => break,
                            },
                        }
                    }
                    tracing::warn!(target: "centrifuge", "hub: the Redis subscription was lost; reconnecting");
                }
                tokio::select! {
                    _ = hub2.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                match client.get_async_pubsub().await {
                    Ok(mut p) => match p.subscribe(&name).await {
                        Ok(()) => pubsub = Some(p),
                        Err(e) => tracing::warn!(target: "centrifuge", error = %e, "hub: Redis subscribe failed"),
                    },
                    Err(e) => tracing::warn!(target: "centrifuge", error = %e, "hub: Redis connect failed"),
                }
            }
        });
        Ok(Remote { conn, channel })
    }

    pub async fn publish(&self, wire: Wire) -> Result<(), String> {
        let mut conn = self.conn.clone();
        conn.publish::<_, _, ()>(&self.channel, wire.encode_to_vec()).await.map_err(|e| format!("redis publish: {e}"))
    }
}

fn deliver(hub: &Hub, payload: &[u8]) {
    match Wire::decode(payload) {
        Ok(w) => {
            hub.broker.publish(&w.channel, w.data, w.info, w.tags, w.skip_history);
        }
        Err(e) => tracing::warn!(target: "centrifuge", error = %e, "hub: a message on the Redis channel is not a publication; ignored"),
    }
}
