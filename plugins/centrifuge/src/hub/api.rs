//! PHP's `centrifuge.*` RPC calls served by the hub instead of Centrifugo: the same request and
//! response messages (`crate::api_proto`), errors in the response's `error` field with the
//! API's codes, as Centrifugo returns them.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message;
use rr_runtime::rpc::RpcError;

use super::Hub;
use super::protocol::{self as cp, Push, Reply, SubscribePush};
use crate::api_proto as api;

/// `Subscribe` (server-side subscription of a user's connections).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubscribeRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
    #[prost(string, tag = "2")]
    pub user: String,
    #[prost(bytes = "vec", tag = "4")]
    pub info: Vec<u8>,
    #[prost(string, tag = "5")]
    pub client: String,
    #[prost(bytes = "vec", tag = "6")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryRemoveRequest {
    #[prost(string, tag = "1")]
    pub channel: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeResult {
    #[prost(string, tag = "1")]
    pub uid: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub version: String,
    #[prost(uint32, tag = "4")]
    pub num_clients: u32,
    #[prost(uint32, tag = "5")]
    pub num_users: u32,
    #[prost(uint32, tag = "6")]
    pub num_channels: u32,
    #[prost(uint32, tag = "7")]
    pub uptime: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoResult {
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<NodeResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoResponse {
    #[prost(message, optional, tag = "1")]
    pub error: Option<api::Error>,
    #[prost(message, optional, tag = "2")]
    pub result: Option<InfoResult>,
}

/// Every API response has `error` as field 1: one shape serves all methods' errors.
fn error(code: u32) -> Bytes {
    api::EmptyResponse { error: Some(api::Error { code, message: cp::error_text(code).into() }), result: None }.encode_to_vec().into()
}

fn decode<M: Message + Default>(method: &str, body: Bytes) -> Result<M, RpcError> {
    M::decode(body).map_err(|e| RpcError::new(format!("centrifuge.{method}: {e}")))
}

/// Redis failed: logged, error 100 to PHP.
fn failed(method: &str, e: &str) -> Bytes {
    tracing::error!(target: "centrifuge", method, error = %e, "hub: API call failed");
    error(cp::ERROR_INTERNAL)
}

const EMPTY: fn() -> Bytes = || api::EmptyResponse { error: None, result: Some(api::Empty {}) }.encode_to_vec().into();

/// Serve one API method on the hub.
pub async fn call(hub: &Hub, method: &str, body: Bytes) -> Result<Bytes, RpcError> {
    let broker = &hub.broker;
    Ok(match method {
        "Publish" => {
            let r: api::PublishRequest = decode(method, body)?;
            if r.channel.is_empty() {
                return Ok(error(cp::ERROR_BAD_REQUEST));
            }
            publish_response(hub, &r.channel, r.data, r.tags, r.skip_history).await.encode_to_vec().into()
        }
        "Broadcast" => {
            let r: api::BroadcastRequest = decode(method, body)?;
            if r.channels.is_empty() {
                return Ok(error(cp::ERROR_BAD_REQUEST));
            }
            let mut responses = Vec::new();
            for c in &r.channels {
                responses.push(publish_response(hub, c, r.data.clone(), r.tags.clone(), r.skip_history).await);
            }
            api::BroadcastResponse { error: None, result: Some(api::BroadcastResult { responses }) }.encode_to_vec().into()
        }
        // Acting on connections: each server on its own clients; with Redis, every server.
        "Subscribe" | "Unsubscribe" | "Disconnect" => {
            let valid = match method {
                "Subscribe" => decode::<SubscribeRequest>(method, body.clone()).map(|r| !r.channel.is_empty() && !r.user.is_empty())?,
                "Unsubscribe" => decode::<api::UnsubscribeRequest>(method, body.clone()).map(|r| !r.channel.is_empty() && !r.user.is_empty())?,
                _ => decode::<api::DisconnectRequest>(method, body.clone()).map(|r| !r.user.is_empty())?,
            };
            if !valid {
                return Ok(error(cp::ERROR_BAD_REQUEST));
            }
            match hub.remote.get() {
                Some(remote) => {
                    if let Err(e) = remote.control(method, body.to_vec()).await {
                        return Ok(failed(method, &e));
                    }
                }
                None => act(hub, method, body).await,
            }
            EMPTY()
        }
        "Presence" | "PresenceStats" => {
            let r: api::PresenceRequest = decode(method, body)?;
            if r.channel.is_empty() {
                return Ok(error(cp::ERROR_BAD_REQUEST));
            }
            if !hub.cfg.presence {
                return Ok(error(cp::ERROR_NOT_AVAILABLE));
            }
            let presence = match hub.presence(&r.channel).await {
                Ok(p) => p,
                Err(e) => return Ok(failed(method, &e)),
            };
            if method == "PresenceStats" {
                let users: std::collections::HashSet<&String> = presence.values().map(|i| &i.user).collect();
                let stats = api::PresenceStatsResult { num_clients: presence.len() as u32, num_users: users.len() as u32 };
                api::PresenceStatsResponse { error: None, result: Some(stats) }.encode_to_vec().into()
            } else {
                let presence = presence.into_iter().map(|(id, i)| (id, api::ClientInfo { user: i.user, client: i.client, conn_info: i.conn_info, chan_info: i.chan_info })).collect();
                api::PresenceResponse { error: None, result: Some(api::PresenceResult { presence }) }.encode_to_vec().into()
            }
        }
        "History" => {
            let r: api::HistoryRequest = decode(method, body)?;
            if r.channel.is_empty() {
                return Ok(error(cp::ERROR_BAD_REQUEST));
            }
            if !broker.history_enabled() {
                return Ok(error(cp::ERROR_NOT_AVAILABLE));
            }
            let since = r.since.map(|s| super::broker::Position { offset: s.offset, epoch: s.epoch });
            let (pubs, position) = match hub.history(&r.channel, r.limit, since.as_ref(), r.reverse).await {
                Ok(h) => h,
                Err(e) => return Ok(failed(method, &e)),
            };
            if since.as_ref().is_some_and(|s| s.epoch != position.epoch) {
                // Centrifugo: a position from another epoch cannot be continued.
                return Ok(error(112));
            }
            let publications = pubs
                .into_iter()
                .map(|p| api::Publication {
                    data: p.data,
                    info: p.info.map(|i| api::ClientInfo { user: i.user, client: i.client, conn_info: i.conn_info, chan_info: i.chan_info }),
                    offset: p.offset,
                    tags: p.tags,
                })
                .collect();
            api::HistoryResponse { error: None, result: Some(api::HistoryResult { publications, epoch: position.epoch, offset: position.offset }) }.encode_to_vec().into()
        }
        "HistoryRemove" => {
            let r: HistoryRemoveRequest = decode(method, body)?;
            if r.channel.is_empty() {
                return Ok(error(cp::ERROR_BAD_REQUEST));
            }
            if !broker.history_enabled() {
                return Ok(error(cp::ERROR_NOT_AVAILABLE));
            }
            if let Err(e) = hub.remove_history(&r.channel).await {
                return Ok(failed(method, &e));
            }
            EMPTY()
        }
        "Channels" => {
            let r: api::ChannelsRequest = decode(method, body)?;
            let nodes = match super::nodes::all(hub).await {
                Ok(n) => n,
                Err(e) => return Ok(failed(method, &e)),
            };
            let channels = super::nodes::channels(&nodes, |name| glob(&r.pattern, name)).into_iter().map(|(name, n)| (name, api::ChannelInfo { num_clients: n })).collect();
            api::ChannelsResponse { error: None, result: Some(api::ChannelsResult { channels }) }.encode_to_vec().into()
        }
        "Info" => {
            let nodes = match super::nodes::all(hub).await {
                Ok(n) => n,
                Err(e) => return Ok(failed(method, &e)),
            };
            InfoResponse { error: None, result: Some(InfoResult { nodes: nodes.into_iter().filter_map(|n| n.node).collect() }) }.encode_to_vec().into()
        }
        // Batch, Refresh, Connections, user status, blocking, tokens, devices, push, RPC,
        // RateLimit: Centrifugo PRO or not in the hub yet.
        _ => error(cp::ERROR_NOT_AVAILABLE),
    })
}

/// Subscribe, Unsubscribe or Disconnect (already checked) on this server's clients.
pub async fn act(hub: &Hub, method: &str, body: Bytes) {
    let broker = &hub.broker;
    match method {
        "Subscribe" => {
            let Ok(r) = SubscribeRequest::decode(body) else { return };
            for client in hub.clients_of(&r.user, &r.client) {
                // Over client_channel_limit: closed, as Centrifuge does with server-side subscribes.
                if !broker.is_subscribed(&r.channel, &client.id) && broker.channels_of(&client.id).len() >= hub.cfg.client_channel_limit {
                    let (code, reason) = (cp::DISCONNECT_CHANNEL_LIMIT.0, cp::DISCONNECT_CHANNEL_LIMIT.1);
                    client.disconnect(code, reason);
                    continue;
                }
                if !broker.subscribe_held(&r.channel, &client, r.info.clone(), false) {
                    continue;
                }
                let position = if broker.history_enabled() {
                    match hub.position(&r.channel).await {
                        Ok(p) => p,
                        Err(e) => {
                            broker.unsubscribe(&r.channel, &client.id);
                            tracing::error!(target: "centrifuge", channel = r.channel, error = %e, "hub: reading the channel's stream failed; not subscribed");
                            continue;
                        }
                    }
                } else {
                    Default::default()
                };
                let offset = position.offset;
                let push = SubscribePush { recoverable: broker.history_enabled(), epoch: position.epoch, offset, positioned: broker.history_enabled(), data: r.data.clone() };
                client.send_replies(&[Reply::push(Push { channel: r.channel.clone(), subscribe: Some(push), ..Default::default() })]);
                broker.release(&r.channel, &client.id, offset);
            }
        }
        "Unsubscribe" => {
            let Ok(r) = api::UnsubscribeRequest::decode(body) else { return };
            for client in hub.clients_of(&r.user, &r.client) {
                broker.unsubscribe_pushed(&r.channel, &client);
            }
        }
        "Disconnect" => {
            let Ok(r) = api::DisconnectRequest::decode(body) else { return };
            let (code, reason) = match r.disconnect {
                Some(d) if d.code != 0 => super::conn::close_code(d.code, d.reason),
                _ => (cp::DISCONNECT_FORCE.0, cp::DISCONNECT_FORCE.1.to_string()),
            };
            for client in hub.clients_of(&r.user, &r.client) {
                if !r.whitelist.contains(&client.id) {
                    client.disconnect(code, &reason);
                }
            }
        }
        _ => {}
    }
}

async fn publish_response(hub: &Hub, channel: &str, data: Vec<u8>, tags: HashMap<String, String>, skip_history: bool) -> api::PublishResponse {
    let failed = |code: u32| api::PublishResponse { error: Some(api::Error { code, message: cp::error_text(code).into() }), result: None };
    if channel.is_empty() {
        return failed(cp::ERROR_BAD_REQUEST);
    }
    let position = match hub.publish(channel, data, None, tags, skip_history).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(target: "centrifuge", channel, error = %e, "hub: publish failed");
            return failed(cp::ERROR_INTERNAL);
        }
    };
    let result = if hub.broker.history_enabled() && !skip_history { api::PublishResult { offset: position.offset, epoch: position.epoch } } else { api::PublishResult::default() };
    api::PublishResponse { error: None, result: Some(result) }
}

/// Centrifugo's channel pattern: `*` matches any run of characters; empty matches all.
fn glob(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn channel_patterns() {
        for (p, n, m) in [("", "a", true), ("chat", "chat", true), ("chat", "chats", false), ("chat:*", "chat:1", true), ("*:1", "chat:1", true), ("a*b*c", "aXbYc", true), ("a*b*c", "ac", false), ("a*a", "a", false)] {
            assert_eq!(super::glob(p, n), m, "{p} {n}");
        }
    }
}
