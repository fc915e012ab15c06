//! The embedded persistent KV driver, RoadRunner's `boltdb` role on redb: each storage is a
//! table in a file (`file`, default `rr.db`) and survives restarts. Expired keys disappear on
//! access. Timeouts are kept as given, so `TTL` answers them exactly.

use std::sync::Arc;

use futures::future::BoxFuture;
use redb::{Database, ReadableTable, TableDefinition};
use rr_runtime::kv::{DriverFactory, Item, KvResult, Storage};
use rr_runtime::{BoxError, InitContext};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "kv.boltdb";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::kv::driver_used(ctx.config, "boltdb") {
            return Ok(None);
        }
        ctx.services.kv_drivers.register("boltdb", Arc::new(Factory) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

struct Factory;

impl DriverFactory for Factory {
    fn create(&self, storage: &str, config: &serde_json::Value) -> BoxFuture<'static, KvResult<Arc<dyn Storage>>> {
        let file = config.get("file").and_then(|v| v.as_str()).unwrap_or("rr.db").to_string();
        let table = format!("kv.{storage}");
        Box::pin(async move {
            let db = Database::create(&file).map_err(|e| format!("cannot open `{file}`: {e}"))?;
            Ok(Arc::new(Boltdb { db, table }) as Arc<dyn Storage>)
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    value: Vec<u8>,
    timeout: String,
}

impl Record {
    fn expired(&self, now: OffsetDateTime) -> bool {
        !self.timeout.is_empty() && OffsetDateTime::parse(&self.timeout, &Rfc3339).is_ok_and(|t| t <= now)
    }
}

pub struct Boltdb {
    db: Database,
    table: String,
}

fn check(timeout: &str) -> KvResult<()> {
    if !timeout.is_empty() {
        OffsetDateTime::parse(timeout, &Rfc3339).map_err(|e| format!("invalid timeout `{timeout}`: expected RFC 3339 ({e})"))?;
    }
    Ok(())
}

impl Boltdb {
    fn def(&self) -> TableDefinition<'_, &'static str, &'static [u8]> {
        TableDefinition::new(&self.table)
    }

    /// Live records of `keys` (expired ones are removed).
    fn live(&self, keys: &[String]) -> KvResult<Vec<(String, Record)>> {
        let now = OffsetDateTime::now_utc();
        let txn = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut table = txn.open_table(self.def())?;
            for k in keys {
                let record: Option<Record> = table.get(k.as_str())?.map(|v| serde_json::from_slice(v.value())).transpose()?;
                match record {
                    Some(r) if r.expired(now) => {
                        table.remove(k.as_str())?;
                    }
                    Some(r) => out.push((k.clone(), r)),
                    None => {}
                }
            }
        }
        txn.commit()?;
        Ok(out)
    }

    fn write(&self, f: impl FnOnce(&mut redb::Table<&'static str, &'static [u8]>) -> KvResult<()>) -> KvResult<()> {
        let txn = self.db.begin_write()?;
        f(&mut txn.open_table(self.def())?)?;
        txn.commit()?;
        Ok(())
    }
}

impl Storage for Boltdb {
    fn has(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<String>>> {
        Box::pin(async move { Ok(self.live(&keys)?.into_iter().map(|(k, _)| k).collect()) })
    }

    fn set(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            self.write(|t| {
                for i in items {
                    check(&i.timeout)?;
                    let bytes = serde_json::to_vec(&Record { value: i.value.to_vec(), timeout: i.timeout })?;
                    t.insert(i.key.as_str(), bytes.as_slice())?;
                }
                Ok(())
            })
        })
    }

    fn mget(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>> {
        Box::pin(async move { Ok(self.live(&keys)?.into_iter().map(|(key, r)| Item { key, value: r.value.into(), timeout: String::new() }).collect()) })
    }

    fn mexpire(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
            let live = self.live(&keys)?;
            self.write(|t| {
                for (key, mut record) in live {
                    if let Some(i) = items.iter().find(|i| i.key == key) {
                        check(&i.timeout)?;
                        record.timeout = i.timeout.clone();
                        t.insert(key.as_str(), serde_json::to_vec(&record)?.as_slice())?;
                    }
                }
                Ok(())
            })
        })
    }

    fn ttl(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>> {
        Box::pin(async move { Ok(self.live(&keys)?.into_iter().map(|(key, r)| Item { key, value: Default::default(), timeout: r.timeout }).collect()) })
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            self.write(|t| {
                for k in keys {
                    t.remove(k.as_str())?;
                }
                Ok(())
            })
        })
    }

    fn clear(&self) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            self.write(|t| {
                let keys: Vec<String> = t.iter()?.map(|r| r.map(|(k, _)| k.value().to_string())).collect::<Result<_, _>>()?;
                for k in keys {
                    t.remove(k.as_str())?;
                }
                Ok(())
            })
        })
    }
}
