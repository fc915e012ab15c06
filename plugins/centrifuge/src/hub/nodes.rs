//! What `centrifuge.Info` and `centrifuge.Channels` report: every server's counts and channels.
//! Alone, that is this server. With Redis each server writes its state into one hash
//! (`<prefix>.nodes`, field = node id) every `ANNOUNCE_EVERY`, stamped with an expiry, and
//! removes it when it stops; readers take the live entries (a server that died drops out after
//! `NODE_TTL`) and this server's own state as it is now. Centrifugo shares node info over its
//! broker the same way, and answers Channels by asking every node.

use std::collections::HashMap;
use std::time::Duration;

use super::Hub;
use super::api::NodeResult;
use super::broker::now_ms;

/// How often a server writes its state to Redis.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(3);
/// How long an entry counts after it was written: a few missed writes, then the server is gone.
pub const NODE_TTL: Duration = Duration::from_secs(10);

/// One server's entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeState {
    #[prost(message, optional, tag = "1")]
    pub node: Option<NodeResult>,
    /// Channel → this server's subscribers.
    #[prost(map = "string, uint32", tag = "2")]
    pub channels: HashMap<String, u32>,
    /// Unix milliseconds after which the entry no longer counts.
    #[prost(int64, tag = "3")]
    pub expires_ms: i64,
}

/// This server now.
pub fn local(hub: &Hub) -> NodeState {
    let channels: HashMap<String, u32> = hub.broker.channels().into_iter().map(|(name, n)| (name, n as u32)).collect();
    let node = NodeResult {
        uid: hub.node_id.clone(),
        name: "rr".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        num_clients: hub.num_clients() as u32,
        num_users: hub.num_users() as u32,
        num_channels: channels.len() as u32,
        uptime: hub.started.elapsed().as_secs() as u32,
    };
    NodeState { node: Some(node), channels, expires_ms: now_ms() + NODE_TTL.as_millis() as i64 }
}

/// Every live server, this one first.
pub async fn all(hub: &Hub) -> Result<Vec<NodeState>, String> {
    let mut nodes = vec![local(hub)];
    if let Some(remote) = hub.remote.get() {
        nodes.extend(remote.nodes().await?.into_iter().filter(|n| n.node.as_ref().is_some_and(|n| n.uid != hub.node_id)));
    }
    Ok(nodes)
}

/// Channels over all servers: subscribers summed, names matching `pattern`.
pub fn channels(nodes: &[NodeState], pattern: impl Fn(&str) -> bool) -> HashMap<String, u32> {
    let mut all = HashMap::new();
    for (name, n) in nodes.iter().flat_map(|s| &s.channels) {
        if pattern(name) {
            *all.entry(name.clone()).or_default() += n;
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_summed_over_servers() {
        let node = |c: &[(&str, u32)]| NodeState { channels: c.iter().map(|(k, v)| (k.to_string(), *v)).collect(), ..Default::default() };
        let all = channels(&[node(&[("a", 1), ("b", 2)]), node(&[("a", 3), ("c", 1)])], |n| n != "c");
        assert_eq!(all, HashMap::from([("a".to_string(), 4), ("b".to_string(), 2)]));
    }
}
