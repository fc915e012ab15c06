//! The local broker: channels, this process's subscribers and fan-out; with the memory driver
//! also history (`history_size`, `history_ttl`) with a stream position (offset, epoch) per
//! channel. With the redis driver history lives in Redis, and joins and leaves go out as
//! [`Event`]s (for presence in Redis and for other servers' subscribers) instead of being
//! pushed here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::protocol::{ClientInfo, Join, Protocol, Publication, Push, Reply, Unsubscribe, encode_replies};
use super::{Client, HubConfig, Mutex};

pub struct Broker {
    channels: Mutex<HashMap<String, Channel>>,
    /// Set by the redis driver: joins and leaves are sent here.
    events: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Event>>,
    join_leave: bool,
    history_size: usize,
    history_ttl: Duration,
}

struct Subscriber {
    client: Arc<Client>,
    chan_info: Vec<u8>,
    /// Asked for join/leave pushes (`join_leave` in its subscribe request).
    join_leave: bool,
    /// Publications held back while the subscribe reply is prepared (see [`Broker::release`]).
    pending: Option<Vec<Publication>>,
}

/// A subscription that began or ended here, for the redis driver.
#[derive(Debug, Clone)]
pub enum Event {
    Join { channel: String, info: ClientInfo },
    Leave { channel: String, info: ClientInfo },
}

#[derive(Default)]
struct Channel {
    /// Client id → the subscriber.
    subscribers: HashMap<String, Subscriber>,
    /// Subscribers whose publications are held back (so that fan-out skips the check when none).
    held: usize,
    history: VecDeque<(Publication, Instant)>,
    offset: u64,
    epoch: String,
}

/// Where a channel's stream is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
}

impl Broker {
    pub fn new(cfg: &HubConfig) -> Broker {
        Broker { channels: Mutex::new(HashMap::new()), events: Default::default(), join_leave: cfg.join_leave, history_size: cfg.history_size, history_ttl: cfg.history_ttl }
    }

    pub fn history_enabled(&self) -> bool {
        self.history_size > 0
    }

    /// Joins and leaves go to `events` from now on (the redis driver).
    pub fn send_events(&self, events: tokio::sync::mpsc::UnboundedSender<Event>) {
        let _ = self.events.set(events);
    }

    /// A join or leave: an event for the redis driver, else pushed here to those that asked.
    fn joined(&self, ch: &Channel, channel: &str, info: ClientInfo, leave: bool) {
        if let Some(events) = self.events.get() {
            let _ = events.send(if leave { Event::Leave { channel: channel.into(), info } } else { Event::Join { channel: channel.into(), info } });
        } else if self.join_leave {
            let join = Some(Join { info: Some(info) });
            let push = if leave { Push { channel: channel.into(), leave: join, ..Default::default() } } else { Push { channel: channel.into(), join, ..Default::default() } };
            fan_out(ch, push, |s| s.join_leave && s.pending.is_none());
        }
    }

    fn channel<'a>(channels: &'a mut HashMap<String, Channel>, name: &str) -> &'a mut Channel {
        channels.entry(name.to_string()).or_insert_with(|| Channel { epoch: new_epoch(), ..Default::default() })
    }

    /// Subscribe; false if the client already is. With `join_leave` on, the channel's
    /// subscribers that asked for it get a `join` push. Publications are pushed from now on.
    pub fn subscribe(&self, channel: &str, client: &Arc<Client>, chan_info: Vec<u8>, join_leave: bool) -> bool {
        self.add(channel, client, chan_info, join_leave, false)
    }

    /// As [`Broker::subscribe`], but publications arriving from now on are held back until
    /// [`Broker::release`]: the client gets its subscribe reply first, and nothing published
    /// between reading the stream position and the reply is lost or sent twice.
    pub fn subscribe_held(&self, channel: &str, client: &Arc<Client>, chan_info: Vec<u8>, join_leave: bool) -> bool {
        self.add(channel, client, chan_info, join_leave, true)
    }

    fn add(&self, channel: &str, client: &Arc<Client>, chan_info: Vec<u8>, join_leave: bool, held: bool) -> bool {
        let mut channels = self.channels.lock();
        let ch = Self::channel(&mut channels, channel);
        if ch.subscribers.contains_key(&client.id) {
            return false;
        }
        self.joined(ch, channel, info_of(client, &chan_info), false);
        ch.subscribers.insert(client.id.clone(), Subscriber { client: client.clone(), chan_info, join_leave, pending: held.then(Vec::new) });
        ch.held += usize::from(held);
        true
    }

    /// Send what was held back since [`Broker::subscribe`]: publications after `offset` (the
    /// position the subscribe reply named; all of them without history), then live delivery.
    pub fn release(&self, channel: &str, client: &str, offset: u64) {
        let mut channels = self.channels.lock();
        let Some(ch) = channels.get_mut(channel) else { return };
        let Some(s) = ch.subscribers.get_mut(client) else { return };
        let Some(held) = s.pending.take() else { return };
        ch.held -= 1;
        let replies: Vec<Reply> = held
            .into_iter()
            .filter(|p| p.offset == 0 || p.offset > offset)
            .map(|p| Reply::push(Push { channel: channel.into(), r#pub: Some(p), ..Default::default() }))
            .collect();
        s.client.send_replies(&replies);
    }

    pub fn is_subscribed(&self, channel: &str, client: &str) -> bool {
        self.channels.lock().get(channel).is_some_and(|c| c.subscribers.contains_key(client))
    }

    pub fn chan_info(&self, channel: &str, client: &str) -> Vec<u8> {
        self.channels.lock().get(channel).and_then(|c| c.subscribers.get(client)).map(|s| s.chan_info.clone()).unwrap_or_default()
    }

    /// Remove a subscription; true if there was one.
    pub fn unsubscribe(&self, channel: &str, client: &str) -> bool {
        let mut channels = self.channels.lock();
        let removed = self.remove(&mut channels, channel, client);
        self.forget_if_idle(&mut channels, channel);
        removed
    }

    /// With `join_leave` on, the remaining subscribers that asked for it get a `leave` push.
    fn remove(&self, channels: &mut HashMap<String, Channel>, channel: &str, client: &str) -> bool {
        let Some(ch) = channels.get_mut(channel) else { return false };
        let Some(gone) = ch.subscribers.remove(client) else { return false };
        ch.held -= usize::from(gone.pending.is_some());
        self.joined(ch, channel, info_of(&gone.client, &gone.chan_info), true);
        true
    }

    /// Server-side unsubscribe: the client gets an `unsubscribe` push (code 2000).
    pub fn unsubscribe_pushed(&self, channel: &str, client: &Client) -> bool {
        if !self.unsubscribe(channel, &client.id) {
            return false;
        }
        let push = Push { channel: channel.into(), unsubscribe: Some(Unsubscribe { code: 2000, reason: "server unsubscribe".into() }), ..Default::default() };
        client.send_replies(&[Reply::push(push)]);
        true
    }

    pub fn unsubscribe_all(&self, client: &Client) {
        let mut channels = self.channels.lock();
        let names: Vec<String> = channels.iter().filter(|(_, c)| c.subscribers.contains_key(&client.id)).map(|(n, _)| n.clone()).collect();
        for name in names {
            self.remove(&mut channels, &name, &client.id);
            self.forget_if_idle(&mut channels, &name);
        }
    }

    /// A channel without subscribers is kept only while it has history to serve.
    fn forget_if_idle(&self, channels: &mut HashMap<String, Channel>, name: &str) {
        if channels.get(name).is_some_and(|c| c.subscribers.is_empty() && (self.history_size == 0 || c.history.is_empty())) {
            channels.remove(name);
        }
    }

    pub fn channels_of(&self, client: &str) -> Vec<String> {
        self.channels.lock().iter().filter(|(_, c)| c.subscribers.contains_key(client)).map(|(n, _)| n.clone()).collect()
    }

    /// Publish: kept in history (unless `skip_history`) and pushed to every subscriber, each
    /// frame encoded once per framing. Returns the new stream position.
    pub fn publish(&self, channel: &str, data: Vec<u8>, info: Option<ClientInfo>, tags: HashMap<String, String>, skip_history: bool) -> Position {
        let mut channels = self.channels.lock();
        let history_size = self.history_size;
        let ch = Self::channel(&mut channels, channel);
        let mut publication = Publication { data, info, tags, time: now_ms(), ..Default::default() };
        if history_size > 0 && !skip_history {
            ch.offset += 1;
            publication.offset = ch.offset;
            ch.history.push_back((publication.clone(), Instant::now()));
            while ch.history.len() > history_size {
                ch.history.pop_front();
            }
        }
        let position = Position { offset: ch.offset, epoch: ch.epoch.clone() };
        deliver_to(ch, channel, publication);
        if ch.subscribers.is_empty() && history_size == 0 {
            channels.remove(channel);
        }
        position
    }

    /// Push a publication that another server (or Redis) positioned to this process's
    /// subscribers; nothing is kept.
    pub fn deliver(&self, channel: &str, publication: Publication) {
        let mut channels = self.channels.lock();
        if let Some(ch) = channels.get_mut(channel) {
            deliver_to(ch, channel, publication);
        }
    }

    /// A join or leave from Redis, pushed to this process's subscribers that asked.
    pub fn deliver_join(&self, channel: &str, info: ClientInfo, leave: bool) {
        let client = info.client.clone();
        let channels = self.channels.lock();
        if let Some(ch) = channels.get(channel) {
            let join = Some(Join { info: Some(info) });
            let push = if leave { Push { channel: channel.into(), leave: join, ..Default::default() } } else { Push { channel: channel.into(), join, ..Default::default() } };
            // Not to the client that joined or left itself, as with the memory broker.
            fan_out(ch, push, |s| s.join_leave && s.pending.is_none() && s.client.id != client);
        }
    }

    /// Every subscription here, by channel (the redis driver refreshes their presence).
    pub fn subscriptions(&self) -> Vec<(String, Vec<ClientInfo>)> {
        self.channels.lock().iter().filter(|(_, c)| !c.subscribers.is_empty()).map(|(n, c)| (n.clone(), c.subscribers.values().map(|s| info_of(&s.client, &s.chan_info)).collect())).collect()
    }

    pub fn num_subscriptions(&self) -> usize {
        self.channels.lock().values().map(|c| c.subscribers.len()).sum()
    }

    pub fn position(&self, channel: &str) -> Position {
        let mut channels = self.channels.lock();
        let ch = Self::channel(&mut channels, channel);
        let position = Position { offset: ch.offset, epoch: ch.epoch.clone() };
        self.forget_if_idle(&mut channels, channel);
        position
    }

    /// History after `since` (all when None), oldest first, at most `limit` (0: none, <0: all),
    /// newest first when `reverse`. Publications older than `history_ttl` are dropped first.
    pub fn history(&self, channel: &str, limit: i32, since: Option<&Position>, reverse: bool) -> (Vec<Publication>, Position) {
        let mut channels = self.channels.lock();
        let ttl = self.history_ttl;
        let ch = Self::channel(&mut channels, channel);
        if !ttl.is_zero() {
            while ch.history.front().is_some_and(|(_, at)| at.elapsed() >= ttl) {
                ch.history.pop_front();
            }
        }
        let position = Position { offset: ch.offset, epoch: ch.epoch.clone() };
        let mut pubs: Vec<Publication> = ch.history.iter().map(|(p, _)| p.clone()).filter(|p| since.is_none_or(|s| p.offset > s.offset)).collect();
        if reverse {
            pubs.reverse();
        }
        if limit >= 0 {
            pubs.truncate(limit as usize);
        }
        self.forget_if_idle(&mut channels, channel);
        (pubs, position)
    }

    /// Drop publications older than `history_ttl` and channels left with nothing; run
    /// periodically so that channels nobody reads again do not stay in memory.
    pub fn sweep(&self) {
        let mut channels = self.channels.lock();
        let ttl = self.history_ttl;
        if !ttl.is_zero() {
            for ch in channels.values_mut() {
                while ch.history.front().is_some_and(|(_, at)| at.elapsed() >= ttl) {
                    ch.history.pop_front();
                }
            }
        }
        channels.retain(|_, c| !c.subscribers.is_empty() || !c.history.is_empty());
    }

    pub fn remove_history(&self, channel: &str) {
        let mut channels = self.channels.lock();
        if let Some(ch) = channels.get_mut(channel) {
            ch.history.clear();
        }
        self.forget_if_idle(&mut channels, channel);
    }

    /// `ClientInfo` of every subscriber, by client id.
    pub fn presence(&self, channel: &str) -> HashMap<String, ClientInfo> {
        let channels = self.channels.lock();
        let Some(ch) = channels.get(channel) else { return HashMap::new() };
        ch.subscribers
            .iter()
            .map(|(id, s)| (id.clone(), info_of(&s.client, &s.chan_info)))
            .collect()
    }

    /// Channels with subscribers and their number of clients.
    pub fn channels(&self) -> Vec<(String, usize)> {
        self.channels.lock().iter().filter(|(_, c)| !c.subscribers.is_empty()).map(|(n, c)| (n.clone(), c.subscribers.len())).collect()
    }
}

/// A publication to every subscriber: held back for those whose subscribe reply is not out yet.
fn deliver_to(ch: &mut Channel, channel: &str, publication: Publication) {
    if ch.held > 0 {
        for s in ch.subscribers.values_mut() {
            if let Some(held) = &mut s.pending {
                held.push(publication.clone());
            }
        }
    }
    fan_out(ch, Push { channel: channel.into(), r#pub: Some(publication), ..Default::default() }, |s| s.pending.is_none());
}

/// Push to the subscribers `to` selects, each frame encoded once per framing.
fn fan_out(ch: &Channel, push: Push, to: impl Fn(&Subscriber) -> bool) {
    let reply = [Reply::push(push)];
    let (mut json, mut proto, mut uni) = (None, None, None);
    for s in ch.subscribers.values().filter(|s| to(s)) {
        let frame = match s.client.protocol {
            Protocol::Json => json.get_or_insert_with(|| encode_replies(Protocol::Json, &reply)),
            Protocol::Protobuf => proto.get_or_insert_with(|| encode_replies(Protocol::Protobuf, &reply)),
            Protocol::UniJson => uni.get_or_insert_with(|| encode_replies(Protocol::UniJson, &reply)),
        };
        s.client.send(frame.clone());
    }
}

fn info_of(client: &Client, chan_info: &[u8]) -> ClientInfo {
    let who = client.identity();
    ClientInfo { user: who.user, client: client.id.clone(), conn_info: who.info, chan_info: chan_info.to_vec() }
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..4].to_string()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use bytes::Bytes;

    use super::*;
    use crate::hub::{Identity, Out};

    fn client(id: &str) -> (Arc<Client>, tokio::sync::mpsc::UnboundedReceiver<Out>) {
        let (queue, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = Client {
            id: id.into(),
            protocol: Protocol::Json,
            identity: Mutex::new(Identity::default()),
            connected: AtomicBool::new(true),
            queue,
            stats: Default::default(),
            queued: AtomicUsize::new(0),
            queue_max: 1 << 20,
            in_calls: AtomicUsize::new(0),
            close: Mutex::new(None),
            closing: Default::default(),
        };
        (Arc::new(client), rx)
    }

    fn frames(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Out>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).map(|Out::Frame(f)| String::from_utf8_lossy(&f).into_owned()).collect()
    }

    /// What is published while a subscribe reply is prepared follows the reply, once: only what
    /// comes after the position the reply named.
    #[test]
    fn publications_during_a_subscribe_follow_its_reply_once() {
        let broker = Broker::new(&HubConfig { history_size: 10, history_ttl: Duration::from_secs(60), ..Default::default() });
        let publish = |n: u8| broker.publish("ch", vec![b'0' + n], None, HashMap::new(), false).offset;
        assert_eq!(publish(1), 1);
        let (c, mut rx) = client("a");
        assert!(broker.subscribe_held("ch", &c, Vec::new(), false));
        assert_eq!(publish(2), 2, "before the position was read: in the reply's recovery, not pushed");
        publish(3);
        assert!(frames(&mut rx).is_empty(), "held back until the reply is out");
        c.send(Bytes::from_static(b"reply"));
        broker.release("ch", "a", 2);
        publish(4);
        let seen = frames(&mut rx);
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0], "reply");
        assert!(seen[1].contains(r#""data":3"#) && seen[1].contains(r#""offset":3"#), "{seen:?}");
        assert!(seen[2].contains(r#""data":4"#), "{seen:?}");
        broker.unsubscribe("ch", "a");
        assert_eq!(broker.num_subscriptions(), 0);
    }
}
