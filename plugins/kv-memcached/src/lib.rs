//! The `memcached` KV driver (RoadRunner's `memcached` settings: `addr`, one or a list).
//! Timeouts become absolute expirations; memcached cannot report them, so `TTL` answers
//! `memcached_plugin_ttl: not supported` (spiral/roadrunner-kv turns `_plugin_ttl` into
//! NotImplementedException). `Clear` flushes the server.

use std::sync::Arc;

use futures::future::BoxFuture;
use rr_runtime::kv::{DriverFactory, Item, KvResult, Storage};
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "kv.memcached";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::kv::driver_used(ctx.config, "memcached") {
            return Ok(None);
        }
        ctx.services.kv_drivers.register("memcached", Arc::new(Factory) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Addr {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Config {
    #[serde(default = "default_addr")]
    addr: Addr,
}

fn default_addr() -> Addr {
    Addr::One("127.0.0.1:11211".into())
}

struct Factory;

impl DriverFactory for Factory {
    fn create(&self, storage: &str, config: &serde_json::Value) -> BoxFuture<'static, KvResult<Arc<dyn Storage>>> {
        let parsed: Result<Config, _> = if config.is_null() { Ok(Config { addr: default_addr() }) } else { rr_runtime::config::decode(config, &format!("kv.{storage}.config")) };
        Box::pin(async move {
            let c = parsed.map_err(|e| e.to_string())?;
            let addrs = match c.addr {
                Addr::One(a) => vec![a],
                Addr::Many(v) => v,
            };
            let urls: Vec<String> = addrs.iter().map(|a| if a.starts_with("memcache://") { a.clone() } else { format!("memcache://{a}") }).collect();
            let client = tokio::task::spawn_blocking(move || memcache::Client::connect(urls))
                .await?
                .map_err(|e| format!("cannot connect to memcached at {addrs:?}: {e}"))?;
            Ok(Arc::new(Memcached(Arc::new(client))) as Arc<dyn Storage>)
        })
    }
}

pub struct Memcached(Arc<memcache::Client>);

/// Absolute unix time for memcached (values above 30 days are read as timestamps); 0 = never.
fn expiration(timeout: &str) -> KvResult<u32> {
    if timeout.is_empty() {
        return Ok(0);
    }
    let t = OffsetDateTime::parse(timeout, &Rfc3339).map_err(|e| format!("invalid timeout `{timeout}`: expected RFC 3339 ({e})"))?;
    Ok(t.unix_timestamp().max(1) as u32)
}

impl Memcached {
    /// Run blocking client calls off the async threads.
    async fn with<T: Send + 'static>(&self, f: impl FnOnce(&memcache::Client) -> KvResult<T> + Send + 'static) -> KvResult<T> {
        let client = self.0.clone();
        tokio::task::spawn_blocking(move || f(&client)).await?
    }
}

impl Storage for Memcached {
    fn has(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<String>>> {
        Box::pin(self.with(move |c| {
            let found = c.gets::<Vec<u8>>(&keys.iter().map(String::as_str).collect::<Vec<_>>())?;
            Ok(keys.into_iter().filter(|k| found.contains_key(k)).collect())
        }))
    }

    fn set(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(self.with(move |c| {
            for i in items {
                c.set(&i.key, i.value.as_ref(), expiration(&i.timeout)?)?;
            }
            Ok(())
        }))
    }

    fn mget(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>> {
        Box::pin(self.with(move |c| {
            let mut found = c.gets::<Vec<u8>>(&keys.iter().map(String::as_str).collect::<Vec<_>>())?;
            Ok(keys.into_iter().filter_map(|k| found.remove(&k).map(|v| Item { key: k, value: v.into(), timeout: String::new() })).collect())
        }))
    }

    fn mexpire(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(self.with(move |c| {
            for i in items {
                c.touch(&i.key, expiration(&i.timeout)?)?;
            }
            Ok(())
        }))
    }

    fn ttl(&self, _keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>> {
        Box::pin(async { Err("memcached_plugin_ttl: not supported".into()) })
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(self.with(move |c| {
            for k in keys {
                c.delete(&k)?;
            }
            Ok(())
        }))
    }

    fn clear(&self) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(self.with(|c| Ok(c.flush()?)))
    }
}
