//! One WebSocket session of the Centrifuge client protocol: the handshake (path, origin,
//! subprotocol), the command loop, and a writer that owns the socket (send queue, server pings,
//! close frames). Client events go to PHP as proxy-mode requests (`crate::codec`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use super::protocol::{self as cp, Command, Error, Protocol, Reply};
use super::limits::Bucket;
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

/// What an upgrade request asked for: the framing and the request's headers (PHP's context).
pub(super) struct Upgrade {
    pub protocol: Protocol,
    pub metadata: Metadata,
    /// The subprotocol to echo, when the client offered it (Node's `ws` fails without it).
    pub echo: Option<&'static str>,
}

/// Check an upgrade request to the WebSocket endpoint: origin, node limits, framing. The path
/// is the caller's to check.
pub(super) fn upgrade(hub: &Hub, uri: &http::Uri, headers: &http::HeaderMap) -> Result<Upgrade, (http::StatusCode, &'static str)> {
    let origin = headers.get("origin").and_then(|o| o.to_str().ok());
    if !hub.cfg.origin_allowed(origin) {
        tracing::info!(target: "centrifuge", origin, "hub: websocket origin not allowed");
        return Err((http::StatusCode::FORBIDDEN, "request origin is not allowed"));
    }
    hub.limits.admit(hub)?;
    let offered: Vec<&str> = headers.get_all("sec-websocket-protocol").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',').map(str::trim)).collect();
    let query = uri.query().unwrap_or_default();
    let protobuf = offered.contains(&"centrifuge-protobuf") || query.split('&').any(|kv| kv == "cf_protocol=protobuf" || kv == "format=protobuf");
    let chosen = if protobuf { "centrifuge-protobuf" } else { "centrifuge-json" };
    let mut metadata = Metadata::new();
    for (name, value) in headers {
        metadata.append(name.as_str(), String::from_utf8_lossy(value.as_bytes()));
    }
    Ok(Upgrade { protocol: if protobuf { Protocol::Protobuf } else { Protocol::Json }, metadata, echo: offered.contains(&chosen).then_some(chosen) })
}

/// Frames over `max_message_size` fail the read (closed with 1009).
pub(super) fn ws_config(hub: &Hub) -> WebSocketConfig {
    let mut ws_cfg = WebSocketConfig::default();
    ws_cfg.max_message_size = Some(hub.cfg.max_message_size);
    ws_cfg.max_frame_size = Some(hub.cfg.max_message_size);
    // tungstenite zero-fills its whole read buffer on the first read: its 128 KiB default would
    // be 128 KiB of RSS per idle connection. Commands are small; a bigger frame grows it.
    ws_cfg.read_buffer_size = READ_BUFFER;
    ws_cfg
}

/// Serve one TCP connection accepted on the hub's own listener.
pub async fn serve(hub: Arc<Hub>, stream: tokio::net::TcpStream) {
    let mut handshake: Option<Upgrade> = None;
    // tungstenite's callback signature: its error type is the HTTP response itself.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != WEBSOCKET_PATH {
            return Err(refuse(http::StatusCode::NOT_FOUND, "not found"));
        }
        let up = upgrade(&hub, req.uri(), req.headers()).map_err(|(status, text)| refuse(status, text))?;
        if let Some(chosen) = up.echo {
            resp.headers_mut().insert("sec-websocket-protocol", http::HeaderValue::from_static(chosen));
        }
        handshake = Some(up);
        Ok(resp)
    };
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config(&hub)))).await {
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
    let Some(up) = handshake else { return };
    session(hub, ws, up).await
}

/// One WebSocket session after the handshake, on the hub's listener or the http plugin's.
pub(super) async fn session<S>(hub: Arc<Hub>, ws: tokio_tungstenite::WebSocketStream<S>, up: Upgrade)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, rx) = new_client(&hub, up.protocol);
    let (sink, mut stream) = ws.split();
    let pong_pending = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write(client.clone(), sink, rx, hub.cfg.ping_interval, hub.cfg.pong_timeout, pong_pending.clone()));
    let mut session = Session::new(hub.clone(), client.clone(), up.metadata, pong_pending, "websocket");
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
        stats: hub.stats.clone(),
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
    /// `transport` in PHP's requests: "websocket", "uni_sse" or "uni_http_stream".
    pub transport: &'static str,
    /// `client_command_rate_limit`: only the reader takes from it.
    commands: Option<Bucket>,
    /// Channel → its subscription's expiry timer (numbered, so that a timer ending removes only
    /// itself); a new subscription to the channel or an unsubscribe ends the old one.
    expiring: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
    /// Client-side expiry: the `exp` (Unix seconds) of the connection token, renewed by the
    /// client's `refresh` commands; 0 when the connection does not expire that way.
    token_exp: Arc<AtomicI64>,
}

impl Session {
    pub fn new(hub: Arc<Hub>, client: Arc<Client>, metadata: Metadata, pong_pending: Arc<AtomicBool>, transport: &'static str) -> Session {
        let commands = Some(hub.cfg.client_command_rate_limit).filter(|&r| r > 0).map(Bucket::per_second);
        Session { hub, client, metadata: Arc::new(metadata), pong_pending, transport, commands, expiring: Arc::new(Mutex::new(HashMap::new())), token_exp: Arc::new(AtomicI64::new(0)) }
    }

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
            // Connect is not a command the rate counts: node limits govern connections.
            if cmd.connect.is_none() && self.commands.as_mut().is_some_and(|b| !b.take()) {
                tracing::debug!(target: "centrifuge", client = %self.client.id, "hub: command over client_command_rate_limit");
                if cmd.id > 0 {
                    self.reply(Reply::error(cmd.id, Error::new(cp::ERROR_TOO_MANY_REQUESTS)));
                }
                continue;
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
            if let Some((_, timer)) = self.expiring.lock().remove(&u.channel) {
                timer.cancel();
            }
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
            let Ok(presence) = hub.presence(&p.channel).await.inspect_err(|e| tracing::error!(target: "centrifuge", error = %e, "hub: presence failed")) else {
                return error(cp::ERROR_INTERNAL);
            };
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
            let Ok((publications, position)) = hub.history(&h.channel, h.limit, since.as_ref(), h.reverse).await.inspect_err(|e| tracing::error!(target: "centrifuge", error = %e, "hub: history failed")) else {
                return error(cp::ERROR_INTERNAL);
            };
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
        if let Some(r) = cmd.refresh {
            return self.refresh(id, r);
        }
        // sub_refresh: subscription tokens are PHP's to check (subscribe proxy), so
        // subscriptions expire server-side only.
        error(cp::ERROR_NOT_AVAILABLE)
    }

    /// A client's new connection token, as Centrifugo takes it: same user, a later `exp`.
    fn refresh(&mut self, id: u32, r: cp::RefreshRequest) -> Result<Option<Reply>, Closed> {
        let hub = &self.hub;
        if hub.cfg.token_hmac_secret_key.is_empty() {
            return Ok(Some(Reply::error(id, Error::new(cp::ERROR_NOT_AVAILABLE))));
        }
        if r.token.is_empty() || self.token_exp.load(Ordering::Acquire) == 0 {
            tracing::info!(target: "centrifuge", client = %self.client.id, "hub: refresh without a token, or of a connection that does not expire client-side");
            return Err(closed(cp::DISCONNECT_BAD_REQUEST));
        }
        let now = super::broker::now_ms() / 1000;
        let claims = match jwt::verify(&r.token, hub.cfg.token_hmac_secret_key.as_bytes(), now) {
            Ok(c) => c,
            Err(jwt::TokenError::Expired) => return Ok(Some(Reply::error(id, Error::new(cp::ERROR_TOKEN_EXPIRED)))),
            Err(e) => {
                tracing::info!(target: "centrifuge", client = %self.client.id, error = %e, "hub: refresh token refused");
                return Err(closed(cp::DISCONNECT_INVALID_TOKEN));
            }
        };
        if claims.sub != self.client.identity().user {
            tracing::info!(target: "centrifuge", client = %self.client.id, "hub: refresh token of another user");
            return Err(closed(cp::DISCONNECT_INVALID_TOKEN));
        }
        if let Some(info) = claims.info {
            self.client.identity.lock().info = info.to_string().into_bytes();
        }
        let exp = claims.exp.unwrap_or(0).max(0);
        // 0 ends expiry: the watcher sees it and stops.
        self.token_exp.store(exp, Ordering::Release);
        let result = cp::RefreshResult { client: self.client.id.clone(), version: String::new(), expires: exp > 0, ttl: ttl(exp, now) };
        Ok(Some(Reply { id, refresh: Some(result), ..Default::default() }))
    }

    /// Close the connection with 3005 once its token's `exp` plus `client_expired_close_delay`
    /// has passed without a `refresh` that moved `exp` on.
    async fn expire_token(self) {
        let delay = self.hub.cfg.client_expired_close_delay;
        loop {
            let exp = self.token_exp.load(Ordering::Acquire);
            if exp <= 0 {
                return;
            }
            let now = super::broker::now_ms() / 1000;
            if exp <= now {
                // Expired: the delay is the client's last chance, measured from now.
                tokio::select! {
                    _ = self.client.closing.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                if self.token_exp.load(Ordering::Acquire) == exp {
                    tracing::info!(target: "centrifuge", client = %self.client.id, "hub: connection token expired without a refresh");
                    self.end(closed(cp::DISCONNECT_EXPIRED));
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = self.client.closing.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs((exp - now) as u64)) => {}
            }
        }
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
            if let Some(exp) = claims.exp.filter(|&e| e > 0) {
                self.token_exp.store(exp, Ordering::Release);
            }
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
        if subs.len() > hub.cfg.client_channel_limit {
            tracing::info!(target: "centrifuge", client = %self.client.id, channels = subs.len(), "hub: server-side channels over client_channel_limit");
            return Err(closed(cp::DISCONNECT_CHANNEL_LIMIT));
        }
        let limit = hub.cfg.client_user_connection_limit;
        if limit > 0 && !user.is_empty() && hub.clients_of(&user, "").len() >= limit {
            tracing::info!(target: "centrifuge", client = %self.client.id, %user, limit, "hub: client_user_connection_limit reached");
            return Err(closed(cp::DISCONNECT_CONNECTION_LIMIT));
        }
        *self.client.identity.lock() = Identity { user, info, meta: std::mem::take(&mut meta) };
        self.client.connected.store(true, Ordering::Release);
        hub.add(self.client.clone());
        let token_exp = self.token_exp.load(Ordering::Acquire);
        if token_exp > 0 {
            // Client-side expiry: the client refreshes its token before `ttl` runs out.
            tokio::spawn(self.clone().expire_token());
        }
        if expire_at > 0 {
            // Server-side expiry: the client is not told; PHP's refresh decides at expire_at.
            tokio::spawn(self.clone().expire(expire_at));
        }
        // Subscribed first (publications held back), positioned, released after the reply.
        let mut results = HashMap::new();
        for (channel, opts) in &subs {
            hub.broker.subscribe_held(channel, &self.client, opts.info.clone(), false);
            match self.subscribe_result(channel, opts.data.clone(), None).await {
                Ok(r) => results.insert(channel.clone(), r),
                // Redis failed: as Centrifugo, the connection ends (its subscriptions with it).
                Err(_) => return Err(closed(cp::DISCONNECT_INTERNAL)),
            };
        }
        let results_offsets: Vec<(String, u64)> = results.iter().map(|(c, r)| (c.clone(), r.offset)).collect();
        let (expires, ttl) = (token_exp > 0, ttl(token_exp, super::broker::now_ms() / 1000));
        let connect = cp::ConnectResult { client: self.client.id.clone(), version: String::new(), expires, ttl, data, subs: results, ping: hub.cfg.ping_interval.as_secs().max(1) as u32, pong: self.transport == "websocket", ..Default::default() };
        // The reply goes first: publications of the server-side channels follow it.
        self.reply(Reply { id, connect: Some(connect), ..Default::default() });
        for (channel, result) in results_offsets {
            hub.broker.release(&channel, &self.client.id, result);
        }
        for (channel, opts) in subs {
            if opts.expire_at > 0 {
                self.expire_subscription(channel, opts.expire_at, true);
            }
        }
        Ok(None)
    }

    /// Watch a subscription that expires at `at` (Unix seconds), as Centrifugo does with a
    /// sub-refresh proxy (the client is not told): then PHP's sub_refresh decides. Expired, or
    /// the call failed: a client-side subscription gets an `unsubscribe` push 2501 (the client
    /// subscribes again, through PHP's subscribe), a server-side one closes the connection with
    /// 3006. A new `expire_at` waits again; none ends expiry.
    fn expire_subscription(&self, channel: String, at: i64, server_side: bool) {
        static TIMERS: AtomicU64 = AtomicU64::new(0);
        let (n, timer) = (TIMERS.fetch_add(1, Ordering::Relaxed), self.client.closing.child_token());
        if let Some((_, old)) = self.expiring.lock().insert(channel.clone(), (n, timer.clone())) {
            old.cancel();
        }
        tokio::spawn(self.clone().sub_refresh(channel, at, server_side, (n, timer)));
    }

    async fn sub_refresh(self, channel: String, mut at: i64, server_side: bool, (n, timer): (u64, CancellationToken)) {
        let done = || {
            let mut expiring = self.expiring.lock();
            if expiring.get(&channel).is_some_and(|(m, _)| *m == n) {
                expiring.remove(&channel);
            }
        };
        loop {
            let wait = Duration::from_secs(u64::try_from(at - super::broker::now_ms() / 1000).unwrap_or(0));
            tokio::select! {
                _ = timer.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if !self.hub.broker.is_subscribed(&channel, &self.client.id) {
                return done();
            }
            let (client, transport, protocol, encoding) = self.common();
            let who = self.client.identity();
            let request = pb::SubRefreshRequest { client, transport, protocol, encoding, user: who.user, channel: channel.clone(), meta: who.meta };
            let answer = self.call(Kind::SubRefresh, request.encode_to_vec()).await.map(|body| pb::SubRefreshResponse::decode(body).unwrap_or_default());
            if timer.is_cancelled() {
                return;
            }
            if let Ok(pb::SubRefreshResponse { disconnect: Some(d), .. }) = answer {
                let (code, reason) = close_code(d.code, d.reason);
                self.client.disconnect(code, &reason);
                return;
            }
            let now = super::broker::now_ms() / 1000;
            let next = match answer {
                Ok(pb::SubRefreshResponse { result: Some(r), error: None, .. }) if !r.expired && (r.expire_at <= 0 || r.expire_at > now) => r.expire_at,
                _ => {
                    done();
                    if server_side {
                        self.end(closed(cp::DISCONNECT_SUB_EXPIRED));
                    } else if self.hub.broker.unsubscribe(&channel, &self.client.id) {
                        let (code, reason) = cp::UNSUBSCRIBE_EXPIRED;
                        let push = cp::Push { channel, unsubscribe: Some(cp::Unsubscribe { code, reason: reason.into() }), ..Default::default() };
                        self.client.send_replies(&[Reply::push(push)]);
                    }
                    return;
                }
            };
            if next <= 0 {
                return done();
            }
            at = next;
        }
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
    async fn subscribe_result(&self, channel: &str, data: Vec<u8>, recover: Option<&cp::SubscribeRequest>) -> Result<cp::SubscribeResult, Error> {
        let hub = &self.hub;
        if !hub.broker.history_enabled() {
            return Ok(cp::SubscribeResult { data, ..Default::default() });
        }
        let failed = |e: String| {
            tracing::error!(target: "centrifuge", client = %self.client.id, channel, error = %e, "hub: reading the channel's stream failed");
            Error::new(cp::ERROR_INTERNAL)
        };
        let mut result = cp::SubscribeResult { data, recoverable: true, positioned: true, ..Default::default() };
        match recover.filter(|r| r.recover) {
            Some(r) => {
                let since = Position { offset: r.offset, epoch: r.epoch.clone() };
                let (publications, position) = hub.history(channel, -1, Some(&since), false).await.map_err(failed)?;
                result.was_recovering = true;
                // Recovered when the epoch is the same and nothing missed fell out of history.
                result.recovered = position.epoch == r.epoch && publications.first().is_none_or(|p| p.offset == r.offset + 1);
                if result.recovered {
                    result.publications = publications;
                }
                (result.epoch, result.offset) = (position.epoch, position.offset);
            }
            None => {
                let position = hub.position(channel).await.map_err(failed)?;
                (result.epoch, result.offset) = (position.epoch, position.offset);
            }
        }
        Ok(result)
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
        if result.expire_at > 0 && result.expire_at <= super::broker::now_ms() / 1000 {
            return Ok(Some(Reply::error(id, Error::new(cp::ERROR_EXPIRED))));
        }
        // Subscribed first (publications held back), positioned, released after the reply.
        self.hub.broker.subscribe_held(&req.channel, &self.client, result.info, req.join_leave);
        let subscribed = match self.subscribe_result(&req.channel, result.data, Some(&req)).await {
            Ok(s) => s,
            Err(e) => {
                self.hub.broker.unsubscribe(&req.channel, &self.client.id);
                return Ok(Some(Reply::error(id, e)));
            }
        };
        let offset = subscribed.offset;
        self.reply(Reply { id, subscribe: Some(subscribed), ..Default::default() });
        self.hub.broker.release(&req.channel, &self.client.id, offset);
        if result.expire_at > 0 {
            self.expire_subscription(req.channel, result.expire_at, false);
        }
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

/// Seconds from `now` to `exp` as a reply's `ttl` (0 without expiry).
fn ttl(exp: i64, now: i64) -> u32 {
    u32::try_from((exp - now).max(0)).unwrap_or(u32::MAX)
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
