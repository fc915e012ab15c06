//! One WebSocket session of the Centrifuge client protocol: the handshake (path, origin,
//! subprotocol), the command loop, and a writer that owns the socket (send queue, server pings,
//! close frames). Client events go to PHP as proxy-mode requests (`crate::codec`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use super::protocol::{self as cp, Command, Error, Protocol, Reply};
use super::{Client, Hub, Identity, Mutex, Out, broker::Position, config::WEBSOCKET_PATH, jwt};
use crate::codec::{self, Kind, Metadata};
use crate::proxy_proto as pb;

/// A client that has not connected by then is closed with 3502 (Centrifuge's default).
const STALE_DELAY: Duration = Duration::from_secs(15);
/// How long a client may take to send its upgrade request: a client that dribbles its headers
/// would otherwise hold a task and a descriptor forever (the stale timer starts after it).
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close frame may wait behind a slow client's unread data.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from a socket at once (see `serve`).
const READ_BUFFER: usize = 4096;
/// Queued bytes the writer sends with one flush.
const WRITE_BATCH: usize = 64 * 1024;

type Closed = (u16, String);

fn closed(d: cp::Disconnect) -> Closed {
    (d.0, d.1.to_string())
}

/// Serve one accepted TCP connection.
pub async fn serve(hub: Arc<Hub>, stream: tokio::net::TcpStream) {
    let mut handshake: Option<(Protocol, Metadata)> = None;
    let cfg = hub.cfg.clone();
    // tungstenite's callback signature: its error type is the HTTP response itself.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != WEBSOCKET_PATH {
            return Err(refuse(http::StatusCode::NOT_FOUND, "not found"));
        }
        let origin = req.headers().get("origin").and_then(|o| o.to_str().ok());
        if !cfg.origin_allowed(origin) {
            tracing::info!(target: "centrifuge", origin, "hub: websocket origin not allowed");
            return Err(refuse(http::StatusCode::FORBIDDEN, "request origin is not allowed"));
        }
        let offered: Vec<String> = req.headers().get_all("sec-websocket-protocol").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',').map(|p| p.trim().to_string())).collect();
        let query = req.uri().query().unwrap_or_default();
        let protobuf = offered.iter().any(|p| p == "centrifuge-protobuf") || query.split('&').any(|kv| kv == "cf_protocol=protobuf" || kv == "format=protobuf");
        // Echo the subprotocol the client asked for (Node's `ws` fails without it).
        let chosen = if protobuf { "centrifuge-protobuf" } else { "centrifuge-json" };
        if offered.iter().any(|p| p == chosen) {
            resp.headers_mut().insert("sec-websocket-protocol", http::HeaderValue::from_static(chosen));
        }
        let mut md = Metadata::new();
        for (name, value) in req.headers() {
            md.append(name.as_str(), String::from_utf8_lossy(value.as_bytes()));
        }
        handshake = Some((if protobuf { Protocol::Protobuf } else { Protocol::Json }, md));
        Ok(resp)
    };
    let mut ws_cfg = WebSocketConfig::default();
    ws_cfg.max_message_size = Some(hub.cfg.max_message_size);
    ws_cfg.max_frame_size = Some(hub.cfg.max_message_size);
    // tungstenite zero-fills its whole read buffer on the first read: its 128 KiB default would
    // be 128 KiB of RSS per idle connection. Commands are small; a bigger frame grows it.
    ws_cfg.read_buffer_size = READ_BUFFER;
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_cfg))).await {
        Ok(Ok(ws)) => ws,
        Err(_) => {
            tracing::debug!(target: "centrifuge", "hub: websocket handshake not done within {HANDSHAKE_TIMEOUT:?}");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(target: "centrifuge", error = %e, "hub: websocket handshake failed");
            return;
        }
    };
    let Some((protocol, metadata)) = handshake else { return };
    let (client, rx) = new_client(&hub, protocol);
    let (sink, mut stream) = ws.split();
    let pong_pending = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write(client.clone(), sink, rx, hub.cfg.ping_interval, hub.cfg.pong_timeout, pong_pending.clone()));
    let mut session = Session { hub: hub.clone(), client: client.clone(), metadata: Arc::new(metadata), pong_pending, transport: "websocket" };
    let stale = tokio::time::sleep(STALE_DELAY);
    tokio::pin!(stale);
    loop {
        let frame = tokio::select! {
            _ = client.closing.cancelled() => break,
            _ = hub.shutdown.cancelled() => { session.end(closed(cp::DISCONNECT_SHUTDOWN)); break }
            _ = &mut stale, if !client.is_connected() => { session.end(closed(cp::DISCONNECT_STALE)); break }
            msg = stream.next() => msg,
        };
        let data: Bytes = match frame {
            Some(Ok(Message::Text(t))) => Bytes::from(t),
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(tungstenite::Error::Capacity(e))) => {
                tracing::info!(target: "centrifuge", client = %client.id, error = %e, "hub: frame over max_message_size");
                session.end(closed(cp::DISCONNECT_MESSAGE_SIZE));
                break;
            }
            Some(Err(e)) => {
                tracing::debug!(target: "centrifuge", client = %client.id, error = %e, "hub: websocket read failed");
                break;
            }
        };
        // Boxed: the command's state (calls to PHP) lives only while a frame is handled, not in
        // every idle connection's task.
        if let Err(reason) = Box::pin(session.frame(&data)).await {
            session.end(reason);
            break;
        }
    }
    hub.remove(&client);
    client.closing.cancel();
    let _ = writer.await;
}

/// A client and the receiving end of its send queue.
pub(super) fn new_client(hub: &Hub, protocol: Protocol) -> (Arc<Client>, mpsc::UnboundedReceiver<Out>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Arc::new(Client {
        id: uuid::Uuid::new_v4().to_string(),
        protocol,
        identity: Mutex::new(Identity::default()),
        connected: AtomicBool::new(false),
        queue: tx,
        queued: AtomicUsize::new(0),
        queue_max: hub.cfg.client_queue_max_size,
        in_calls: AtomicUsize::new(0),
        close: Mutex::new(None),
        closing: Default::default(),
    });
    (client, rx)
}

fn refuse(status: http::StatusCode, text: &str) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(text.to_string()));
    *resp.status_mut() = status;
    resp
}

/// Owns the socket's write half: queued frames, server pings, the pong deadline and the
/// final close frame.
async fn write<S>(client: Arc<Client>, mut sink: S, mut rx: mpsc::UnboundedReceiver<Out>, ping: Duration, pong_timeout: Duration, pong_pending: Arc<AtomicBool>)
where
    S: futures::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    let mut pong_deadline: Option<tokio::time::Instant> = None;
    // One wait for the end, polled by every turn: a fresh `cancelled()` per frame registers and
    // unregisters a waiter each time, a cost every delivery paid.
    let closing = client.closing.clone();
    let cancelled = closing.cancelled();
    tokio::pin!(cancelled);
    let message = |b: Bytes| match client.protocol {
        Protocol::Json | Protocol::UniJson => Message::Text(tungstenite::Utf8Bytes::try_from(b).unwrap_or_default()),
        Protocol::Protobuf => Message::Binary(b),
    };
    loop {
        tokio::select! {
            biased;
            _ = &mut cancelled => break,
            _ = async { tokio::time::sleep_until(pong_deadline.unwrap()).await }, if pong_deadline.is_some() => {
                if client.in_calls.load(Ordering::Acquire) > 0 {
                    // The pong may be queued behind commands waiting on PHP: not the client's fault.
                    pong_deadline = Some(tokio::time::Instant::now() + pong_timeout);
                    continue;
                }
                if pong_pending.load(Ordering::Acquire) {
                    let d = cp::DISCONNECT_NO_PONG;
                    client.disconnect(d.0, d.1);
                    break;
                }
                pong_deadline = None;
            }
            _ = ticker.tick() => {
                if client.is_connected() {
                    // The ping is an empty reply; the client answers with an empty command.
                    pong_pending.store(true, Ordering::Release);
                    pong_deadline = Some(tokio::time::Instant::now() + pong_timeout);
                    client.send_replies(&[Reply::default()]);
                }
            }
            out = rx.recv() => {
                let Some(Out::Frame(frame)) = out else { break };
                // Frames queued meanwhile go out with it, up to WRITE_BATCH bytes: a burst of
                // publications costs one write, not one per frame.
                let mut n = frame.len();
                let sent = tokio::select! {
                    r = async {
                        sink.feed(message(frame)).await?;
                        while n < WRITE_BATCH {
                            let Ok(Out::Frame(more)) = rx.try_recv() else { break };
                            n += more.len();
                            sink.feed(message(more)).await?;
                        }
                        sink.flush().await
                    } => r,
                    _ = &mut cancelled => break,
                };
                client.written(n);
                if sent.is_err() {
                    client.closing.cancel();
                    break;
                }
            }
        }
    }
    if let Some((code, reason)) = client.close_reason() {
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.close()).await;
}

#[derive(Clone)]
pub(super) struct Session {
    pub hub: Arc<Hub>,
    pub client: Arc<Client>,
    pub metadata: Arc<Metadata>,
    pub pong_pending: Arc<AtomicBool>,
    /// `transport` in PHP's requests: "websocket" or "uni_sse".
    pub transport: &'static str,
}

impl Session {
    fn end(&self, (code, reason): Closed) {
        self.client.disconnect(code, &reason);
    }

    fn reply(&self, reply: Reply) {
        self.client.send_replies(&[reply]);
    }

    /// One frame: a batch of commands, answered one by one in order.
    async fn frame(&mut self, data: &[u8]) -> Result<(), Closed> {
        let commands = cp::decode_commands(self.client.protocol, data).map_err(|e| {
            tracing::info!(target: "centrifuge", client = %self.client.id, error = %e, "hub: bad frame");
            closed(cp::DISCONNECT_BAD_REQUEST)
        })?;
        for cmd in commands {
            if cmd.is_empty() {
                self.pong_pending.store(false, Ordering::Release);
                continue;
            }
            let connected = self.client.is_connected();
            if cmd.id == 0 && cmd.send.is_none() || connected == cmd.connect.is_some() {
                tracing::info!(target: "centrifuge", client = %self.client.id, connected, "hub: command out of place (no id, or not connected first)");
                return Err(closed(cp::DISCONNECT_BAD_REQUEST));
            }
            if let Some(reply) = self.command(cmd).await? {
                self.reply(reply);
            }
        }
        Ok(())
    }

    async fn command(&mut self, cmd: Command) -> Result<Option<Reply>, Closed> {
        let id = cmd.id;
        let error = |code: u32| Ok(Some(Reply::error(id, Error::new(code))));
        if let Some(c) = cmd.connect {
            return self.connect(id, c).await;
        }
        if let Some(s) = cmd.subscribe {
            return self.subscribe(id, s).await;
        }
        if let Some(p) = cmd.publish {
            return self.publish(id, p).await;
        }
        if let Some(r) = cmd.rpc {
            return self.rpc(id, r).await;
        }
        let hub = self.hub.clone();
        if let Some(u) = cmd.unsubscribe {
            hub.broker.unsubscribe(&u.channel, &self.client.id);
            return Ok(Some(Reply { id, unsubscribe: Some(cp::Empty {}), ..Default::default() }));
        }
        if let Some(p) = cmd.presence.or(cmd.presence_stats.clone()) {
            if !hub.cfg.presence {
                return error(cp::ERROR_NOT_AVAILABLE);
            }
            if !hub.broker.is_subscribed(&p.channel, &self.client.id) {
                return error(cp::ERROR_PERMISSION_DENIED);
            }
            let presence = hub.broker.presence(&p.channel);
            if cmd.presence_stats.is_some() {
                let users: std::collections::HashSet<&String> = presence.values().map(|i| &i.user).collect();
                let stats = cp::PresenceStatsResult { num_clients: presence.len() as u32, num_users: users.len() as u32 };
                return Ok(Some(Reply { id, presence_stats: Some(stats), ..Default::default() }));
            }
            return Ok(Some(Reply { id, presence: Some(cp::PresenceResult { presence }), ..Default::default() }));
        }
        if let Some(h) = cmd.history {
            if !hub.broker.history_enabled() {
                return error(cp::ERROR_NOT_AVAILABLE);
            }
            if !hub.broker.is_subscribed(&h.channel, &self.client.id) {
                return error(cp::ERROR_PERMISSION_DENIED);
            }
            let since = h.since.map(|s| Position { offset: s.offset, epoch: s.epoch });
            let (publications, position) = hub.broker.history(&h.channel, h.limit, since.as_ref(), h.reverse);
            return Ok(Some(Reply { id, history: Some(cp::HistoryResult { publications, epoch: position.epoch, offset: position.offset }), ..Default::default() }));
        }
        if cmd.ping.is_some() {
            return Ok(Some(Reply { id, ping: Some(cp::Empty {}), ..Default::default() }));
        }
        if cmd.send.is_some() {
            // Asynchronous messages have no proxy in RoadRunner: dropped, as Centrifugo does
            // without a handler.
            return Ok(None);
        }
        // refresh / sub_refresh: connections and subscriptions here do not expire yet.
        error(cp::ERROR_NOT_AVAILABLE)
    }

    /// Call PHP with a proxy request; any failure (worker error, timeout, bad answer) is
    /// error 100, temporary, so the client retries.
    async fn call(&self, kind: Kind, request: Vec<u8>) -> Result<Bytes, Error> {
        struct InCall<'a>(&'a AtomicUsize);
        impl Drop for InCall<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.client.in_calls.fetch_add(1, Ordering::AcqRel);
        let _in_call = InCall(&self.client.in_calls);
        let payload = codec::payload(kind, &self.metadata, request.into());
        let timeout = self.hub.cfg.proxy_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let answer = match tokio::time::timeout_at(deadline, self.hub.pool.exec_until(payload, deadline)).await {
            Ok(Ok(reply)) => codec::reply(kind, &reply.payload, reply.stream.is_some()).map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within proxy_timeout ({timeout:?})")),
        };
        answer.map_err(|error| {
            tracing::error!(target: "centrifuge", client = %self.client.id, r#type = kind.type_name(), %error, "hub: proxy call to PHP failed");
            Error::new(cp::ERROR_INTERNAL)
        })
    }

    /// PHP's `error` as the client sees it; its `disconnect` as the close frame.
    fn answer(id: u32, error: Option<pb::Error>, disconnect: Option<pb::Disconnect>) -> Option<Result<Option<Reply>, Closed>> {
        if let Some(d) = disconnect {
            return Some(Err(close_code(d.code, d.reason)));
        }
        error.map(|e| Ok(Some(Reply::error(id, Error { code: e.code, message: e.message, temporary: e.temporary }))))
    }

    fn common(&self) -> (String, String, String, String) {
        (self.client.id.clone(), self.transport.into(), self.client.protocol.name().into(), "json".into())
    }

    pub async fn connect(&mut self, id: u32, req: cp::ConnectRequest) -> Result<Option<Reply>, Closed> {
        let hub = self.hub.clone();
        let (user, info, data, mut subs): (String, Vec<u8>, Vec<u8>, HashMap<String, pb::SubscribeOptions>);
        let mut meta = Vec::new();
        let mut expire_at = 0;
        if !req.token.is_empty() && !hub.cfg.token_hmac_secret_key.is_empty() {
            let claims = match jwt::verify(&req.token, hub.cfg.token_hmac_secret_key.as_bytes(), super::broker::now_ms() / 1000) {
                Ok(c) => c,
                Err(jwt::TokenError::Expired) => return Ok(Some(Reply::error(id, Error::new(cp::ERROR_TOKEN_EXPIRED)))),
                Err(e) => {
                    tracing::info!(target: "centrifuge", client = %self.client.id, error = %e, "hub: connection token refused");
                    return Err(closed(cp::DISCONNECT_INVALID_TOKEN));
                }
            };
            user = claims.sub;
            info = claims.info.map(|i| i.to_string().into_bytes()).unwrap_or_default();
            data = Vec::new();
            subs = claims.channels.into_iter().map(|c| (c, pb::SubscribeOptions::default())).collect();
        } else {
            let (client, transport, protocol, encoding) = self.common();
            let mut channels: Vec<String> = req.subs.keys().cloned().collect();
            channels.sort();
            let request = pb::ConnectRequest { client, transport, protocol, encoding, data: req.data, name: req.name, version: req.version, channels, ..Default::default() };
            let body = match self.call(Kind::Connect, request.encode_to_vec()).await {
                Ok(b) => b,
                Err(e) => return Ok(Some(Reply::error(id, e))),
            };
            let resp = pb::ConnectResponse::decode(body).unwrap_or_default();
            if let Some(answer) = Self::answer(id, resp.error, resp.disconnect) {
                return answer;
            }
            let result = resp.result.unwrap_or_default();
            if result.expire_at > 0 && result.expire_at <= super::broker::now_ms() / 1000 {
                return Ok(Some(Reply::error(id, Error::new(cp::ERROR_EXPIRED))));
            }
            expire_at = result.expire_at;
            (user, info, data, meta) = (result.user, result.info, result.data, result.meta);
            subs = result.subs;
            for c in result.channels {
                subs.entry(c).or_default();
            }
        }
        *self.client.identity.lock() = Identity { user, info, meta: std::mem::take(&mut meta) };
        self.client.connected.store(true, Ordering::Release);
        hub.add(self.client.clone());
        if expire_at > 0 {
            // Server-side expiry: the client is not told; PHP's refresh decides at expire_at.
            tokio::spawn(self.clone().expire(expire_at));
        }
        let mut results = HashMap::new();
        for (channel, opts) in &subs {
            results.insert(channel.clone(), self.subscribe_result(channel, opts.data.clone(), None));
        }
        let connect = cp::ConnectResult { client: self.client.id.clone(), version: String::new(), data, subs: results, ping: hub.cfg.ping_interval.as_secs().max(1) as u32, pong: self.transport == "websocket", ..Default::default() };
        // The reply goes first: publications of the server-side channels follow it.
        self.reply(Reply { id, connect: Some(connect), ..Default::default() });
        for (channel, opts) in subs {
            hub.broker.subscribe(&channel, &self.client, opts.info, false);
        }
        Ok(None)
    }

    /// At `at` (Unix seconds) ask PHP's refresh whether the connection lives on: `expired`
    /// closes it with 3005, a new `expire_at` waits again, none ends expiry. A failed call is
    /// retried 10 s later.
    async fn expire(self, mut at: i64) {
        loop {
            let wait = Duration::from_secs(u64::try_from(at - super::broker::now_ms() / 1000).unwrap_or(0));
            tokio::select! {
                _ = self.client.closing.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let (client, transport, protocol, encoding) = self.common();
            let who = self.client.identity();
            let request = pb::RefreshRequest { client, transport, protocol, encoding, user: who.user, meta: who.meta };
            let Ok(body) = self.call(Kind::Refresh, request.encode_to_vec()).await else {
                at = super::broker::now_ms() / 1000 + 10;
                continue;
            };
            let resp = pb::RefreshResponse::decode(body).unwrap_or_default();
            if let Some(d) = resp.disconnect {
                let (code, reason) = close_code(d.code, d.reason);
                self.client.disconnect(code, &reason);
                return;
            }
            let result = resp.result.unwrap_or_default();
            if result.expired || (result.expire_at > 0 && result.expire_at <= super::broker::now_ms() / 1000) {
                self.end(closed(cp::DISCONNECT_EXPIRED));
                return;
            }
            {
                let mut identity = self.client.identity.lock();
                if !result.info.is_empty() {
                    identity.info = result.info;
                }
                if !result.meta.is_empty() {
                    identity.meta = result.meta;
                }
            }
            if result.expire_at <= 0 {
                return;
            }
            at = result.expire_at;
        }
    }

    /// The stream position (with history) and, for a client recovering from `since`, what it
    /// missed.
    fn subscribe_result(&self, channel: &str, data: Vec<u8>, recover: Option<&cp::SubscribeRequest>) -> cp::SubscribeResult {
        let broker = &self.hub.broker;
        if !broker.history_enabled() {
            return cp::SubscribeResult { data, ..Default::default() };
        }
        let mut result = cp::SubscribeResult { data, recoverable: true, positioned: true, ..Default::default() };
        match recover.filter(|r| r.recover) {
            Some(r) => {
                let since = Position { offset: r.offset, epoch: r.epoch.clone() };
                let (publications, position) = broker.history(channel, -1, Some(&since), false);
                result.was_recovering = true;
                // Recovered when the epoch is the same and nothing missed fell out of history.
                result.recovered = position.epoch == r.epoch && publications.first().is_none_or(|p| p.offset == r.offset + 1);
                if result.recovered {
                    result.publications = publications;
                }
                (result.epoch, result.offset) = (position.epoch, position.offset);
            }
            None => {
                let position = broker.position(channel);
                (result.epoch, result.offset) = (position.epoch, position.offset);
            }
        }
        result
    }

    async fn subscribe(&mut self, id: u32, req: cp::SubscribeRequest) -> Result<Option<Reply>, Closed> {
        if req.channel.is_empty() {
            return Ok(Some(Reply::error(id, Error::new(cp::ERROR_BAD_REQUEST))));
        }
        if self.hub.broker.is_subscribed(&req.channel, &self.client.id) {
            return Ok(Some(Reply::error(id, Error::new(cp::ERROR_ALREADY_SUBSCRIBED))));
        }
        if req.channel.len() > self.hub.cfg.channel_max_length || self.hub.broker.channels_of(&self.client.id).len() >= self.hub.cfg.client_channel_limit {
            return Ok(Some(Reply::error(id, Error::new(cp::ERROR_LIMIT_EXCEEDED))));
        }
        let (client, transport, protocol, encoding) = self.common();
        let who = self.client.identity();
        let request = pb::SubscribeRequest { client, transport, protocol, encoding, user: who.user, channel: req.channel.clone(), token: req.token.clone(), meta: who.meta, data: req.data.clone(), ..Default::default() };
        let body = match self.call(Kind::Subscribe, request.encode_to_vec()).await {
            Ok(b) => b,
            Err(e) => return Ok(Some(Reply::error(id, e))),
        };
        let resp = pb::SubscribeResponse::decode(body).unwrap_or_default();
        if let Some(answer) = Self::answer(id, resp.error, resp.disconnect) {
            return answer;
        }
        let result = resp.result.unwrap_or_default();
        let subscribed = self.subscribe_result(&req.channel, result.data, Some(&req));
        self.reply(Reply { id, subscribe: Some(subscribed), ..Default::default() });
        self.hub.broker.subscribe(&req.channel, &self.client, result.info, req.join_leave);
        Ok(None)
    }

    async fn publish(&mut self, id: u32, req: cp::PublishRequest) -> Result<Option<Reply>, Closed> {
        if req.channel.is_empty() {
            return Ok(Some(Reply::error(id, Error::new(cp::ERROR_BAD_REQUEST))));
        }
        let (client, transport, protocol, encoding) = self.common();
        let who = self.client.identity();
        let request = pb::PublishRequest { client, transport, protocol, encoding, user: who.user.clone(), channel: req.channel.clone(), data: req.data.clone(), meta: who.meta, ..Default::default() };
        let body = match self.call(Kind::Publish, request.encode_to_vec()).await {
            Ok(b) => b,
            Err(e) => return Ok(Some(Reply::error(id, e))),
        };
        let resp = pb::PublishResponse::decode(body).unwrap_or_default();
        if let Some(answer) = Self::answer(id, resp.error, resp.disconnect) {
            return answer;
        }
        let result = resp.result.unwrap_or_default();
        let data = if result.data.is_empty() { req.data } else { result.data };
        let info = cp::ClientInfo { user: who.user, client: self.client.id.clone(), conn_info: who.info, chan_info: self.hub.broker.chan_info(&req.channel, &self.client.id) };
        if let Err(e) = self.hub.publish(&req.channel, data, Some(info), HashMap::new(), result.skip_history).await {
            tracing::error!(target: "centrifuge", client = %self.client.id, error = %e, "hub: publish failed");
            return Ok(Some(Reply::error(id, Error::new(cp::ERROR_INTERNAL))));
        }
        Ok(Some(Reply { id, publish: Some(cp::Empty {}), ..Default::default() }))
    }

    async fn rpc(&mut self, id: u32, req: cp::RpcRequest) -> Result<Option<Reply>, Closed> {
        let (client, transport, protocol, encoding) = self.common();
        let who = self.client.identity();
        let request = pb::RpcRequest { client, transport, protocol, encoding, user: who.user, method: req.method, data: req.data, meta: who.meta, ..Default::default() };
        let body = match self.call(Kind::Rpc, request.encode_to_vec()).await {
            Ok(b) => b,
            Err(e) => return Ok(Some(Reply::error(id, e))),
        };
        let resp = pb::RpcResponse::decode(body).unwrap_or_default();
        if let Some(answer) = Self::answer(id, resp.error, resp.disconnect) {
            return answer;
        }
        Ok(Some(Reply { id, rpc: Some(cp::RpcResult { data: resp.result.unwrap_or_default().data }), ..Default::default() }))
    }
}

/// A close code PHP chose: codes WebSocket does not allow an application to send become 4500
/// (terminal), reasons are cut to the 123 bytes a close frame holds.
pub fn close_code(code: u32, mut reason: String) -> Closed {
    let code = if (3000..=4999).contains(&code) { code as u16 } else { 4500 };
    if reason.len() > 123 {
        let mut cut = 123;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    (code, reason)
}

#[cfg(test)]
mod tests {
    #[test]
    fn php_close_codes_are_valid_websocket_codes() {
        assert_eq!(super::close_code(4001, "x".into()), (4001, "x".into()));
        assert_eq!(super::close_code(500, "x".into()).0, 4500);
        assert_eq!(super::close_code(3000, "é".repeat(100)).1.len(), 122);
    }
}
