//! The `memory` KV driver: a map in the server's memory with TTL (expired keys disappear on
//! access and every `interval`, default 60 s). Enabled when a `kv.<name>.driver` is `memory`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rr_runtime::kv::{DriverFactory, Item, KvResult, Storage};
use rr_runtime::{BoxError, InitContext};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "kv.memory";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::kv::driver_used(ctx.config, "memory") {
            return Ok(None);
        }
        ctx.services.kv_drivers.register("memory", Arc::new(Factory) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

struct Factory;

impl DriverFactory for Factory {
    fn create(&self, _storage: &str, config: &serde_json::Value) -> BoxFuture<'static, KvResult<Arc<dyn Storage>>> {
        let interval = config.get("interval").and_then(|v| v.as_u64()).unwrap_or(60);
        Box::pin(async move {
            let store = Arc::new(Memory::default());
            let weak = Arc::downgrade(&store);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval.max(1)));
                loop {
                    tick.tick().await;
                    let Some(store) = weak.upgrade() else { return };
                    let now = OffsetDateTime::now_utc();
                    store.map.lock().unwrap().retain(|_, e| !e.expired(now));
                }
            });
            Ok(store as Arc<dyn Storage>)
        })
    }
}

struct Entry {
    value: bytes::Bytes,
    timeout: String,
    expires: Option<OffsetDateTime>,
}

impl Entry {
    fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|t| t <= now)
    }
}

#[derive(Default)]
pub struct Memory {
    map: Mutex<HashMap<String, Entry>>,
}

fn parse_timeout(t: &str) -> KvResult<Option<OffsetDateTime>> {
    if t.is_empty() {
        return Ok(None);
    }
    OffsetDateTime::parse(t, &Rfc3339).map(Some).map_err(|e| format!("invalid timeout `{t}`: expected RFC 3339 ({e})").into())
}

impl Memory {
    /// Live entries for `keys`, mapped by `f`.
    fn live<T>(&self, keys: Vec<String>, f: impl Fn(&String, &Entry) -> T) -> Vec<T> {
        let now = OffsetDateTime::now_utc();
        let mut map = self.map.lock().unwrap();
        let mut out = Vec::new();
        for key in keys {
            match map.get(&key) {
                Some(e) if e.expired(now) => {
                    map.remove(&key);
                }
                Some(e) => out.push(f(&key, e)),
                None => {}
            }
        }
        out
    }
}

impl Storage for Memory {
    fn has(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<String>>> {
        Box::pin(async move { Ok(self.live(keys, |k, _| k.clone())) })
    }

    fn set(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            let parsed = items.into_iter().map(|i| Ok((parse_timeout(&i.timeout)?, i))).collect::<KvResult<Vec<_>>>()?;
            let mut map = self.map.lock().unwrap();
            for (expires, i) in parsed {
                map.insert(i.key, Entry { value: i.value, timeout: i.timeout, expires });
            }
            Ok(())
        })
    }

    fn mget(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>> {
        Box::pin(async move { Ok(self.live(keys, |k, e| Item { key: k.clone(), value: e.value.clone(), timeout: String::new() })) })
    }

    fn mexpire(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            let parsed = items.into_iter().map(|i| Ok((parse_timeout(&i.timeout)?, i))).collect::<KvResult<Vec<_>>>()?;
            let mut map = self.map.lock().unwrap();
            for (expires, i) in parsed {
                if let Some(e) = map.get_mut(&i.key) {
                    e.expires = expires;
                    e.timeout = i.timeout;
                }
            }
            Ok(())
        })
    }

    fn ttl(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>> {
        Box::pin(async move { Ok(self.live(keys, |k, e| Item { key: k.clone(), value: Default::default(), timeout: e.timeout.clone() })) })
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            let mut map = self.map.lock().unwrap();
            for k in keys {
                map.remove(&k);
            }
            Ok(())
        })
    }

    fn clear(&self) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            self.map.lock().unwrap().clear();
            Ok(())
        })
    }
}
