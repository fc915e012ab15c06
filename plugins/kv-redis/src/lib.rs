//! The `redis` KV driver, configured as RoadRunner's (Go's universal client): with `master_name`,
//! `addrs` are Sentinels and the driver follows their master across failovers; otherwise a
//! cluster when `addrs` lists several nodes, else a single node. `username`, `password`, `db`,
//! `sentinel_username`, `sentinel_password`. Timeouts become `EXAT`/`EXPIREAT`; `TTL` reads
//! `EXPIRETIME` back as RFC 3339. `Clear` flushes the database (`FLUSHDB`), as RoadRunner does:
//! give each storage its own `db`.

use std::sync::Arc;

use futures::future::BoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use rr_runtime::kv::{DriverFactory, Item, KvResult, Storage};
use rr_runtime::{BoxError, InitContext};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct Plugin;

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "kv.redis";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !rr_runtime::kv::driver_used(ctx.config, "redis") {
            return Ok(None);
        }
        ctx.services.kv_drivers.register("redis", Arc::new(Factory) as Arc<dyn DriverFactory>);
        Ok(Some(Plugin))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct Config {
    addrs: Vec<String>,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    master_name: Option<String>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addrs: vec!["127.0.0.1:6379".into()],
            username: None,
            password: None,
            db: 0,
            master_name: None,
            sentinel_username: None,
            sentinel_password: None,
        }
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<Failover>),
}

/// The master named by the Sentinels (`SENTINEL GET-MASTER-ADDR-BY-NAME`, as Go's failover
/// client asks: it names the promoted replica as soon as a failover reaches it). A dropped
/// connection or a READONLY answer (the node was demoted) makes it ask again and retry, a few
/// times while a failover settles.
struct Failover {
    master_name: String,
    /// Sentinel URLs, with the sentinel credentials.
    sentinels: Vec<String>,
    /// Credentials and `db` for the master.
    node: Config,
    master: tokio::sync::RwLock<MultiplexedConnection>,
}

const FAILOVER_ATTEMPTS: u32 = 5;

impl Failover {
    async fn connect(c: &Config, master_name: &str) -> KvResult<Failover> {
        let sentinels: Vec<String> = c.addrs.iter().map(|a| url(a, c.sentinel_username.as_deref(), c.sentinel_password.as_deref(), 0)).collect();
        let master = resolve(&sentinels, master_name, c)
            .await
            .map_err(|e| format!("cannot reach the Redis master `{master_name}` through the Sentinels {:?}: {e}", c.addrs))?;
        Ok(Failover { master_name: master_name.to_string(), sentinels, node: c.clone(), master: tokio::sync::RwLock::new(master) })
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Pipeline) -> redis::RedisResult<T> {
        let mut conn = self.master.read().await.clone();
        let mut result = cmd.query_async(&mut conn).await;
        for attempt in 1..FAILOVER_ATTEMPTS {
            match &result {
                Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.kind() == redis::ErrorKind::ReadOnly => {}
                _ => break,
            }
            if attempt > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            result = match resolve(&self.sentinels, &self.master_name, &self.node).await {
                Ok(mut fresh) => {
                    *self.master.write().await = fresh.clone();
                    cmd.query_async(&mut fresh).await
                }
                Err(e) => Err(e),
            };
        }
        result
    }
}

/// Ask each Sentinel in turn for the master's address and connect to it, checking that the
/// node really is a master now.
async fn resolve(sentinels: &[String], master_name: &str, node: &Config) -> redis::RedisResult<MultiplexedConnection> {
    let mut last = redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Sentinel addresses in `addrs`"));
    for sentinel in sentinels {
        let attempt = async {
            let mut s = redis::Client::open(sentinel.as_str())?.get_multiplexed_async_connection().await?;
            let (host, port): (String, u16) = redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(master_name).query_async(&mut s).await?;
            let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
            let mut master = redis::Client::open(url(&addr, node.username.as_deref(), node.password.as_deref(), node.db))?.get_multiplexed_async_connection().await?;
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut master).await?;
            match role.first() {
                Some(redis::Value::BulkString(r)) if r == b"master" => Ok(master),
                _ => Err(redis::RedisError::from((redis::ErrorKind::ReadOnly, "the node the Sentinel named is not a master yet"))),
            }
        };
        match attempt.await {
            Ok(master) => return Ok(master),
            Err(e) => last = e,
        }
    }
    Err(last)
}

struct Factory;

fn url(addr: &str, username: Option<&str>, password: Option<&str>, db: i64) -> String {
    let auth = match (username, password) {
        (Some(u), Some(p)) => format!("{u}:{p}@"),
        (None, Some(p)) => format!(":{p}@"),
        _ => String::new(),
    };
    format!("redis://{auth}{addr}/{db}")
}

impl DriverFactory for Factory {
    fn create(&self, storage: &str, config: &serde_json::Value) -> BoxFuture<'static, KvResult<Arc<dyn Storage>>> {
        let parsed: Result<Config, _> = if config.is_null() { Ok(Config::default()) } else { rr_runtime::config::decode(config, &format!("kv.{storage}.config")) };
        Box::pin(async move {
            let c = parsed.map_err(|e| e.to_string())?;
            let node_url = |addr: &str| url(addr, c.username.as_deref(), c.password.as_deref(), c.db);
            let conn = if let Some(master_name) = &c.master_name {
                Conn::Sentinel(Arc::new(Failover::connect(&c, master_name).await?))
            } else if c.addrs.len() > 1 {
                let nodes: Vec<String> = c.addrs.iter().map(|a| node_url(a)).collect();
                let client = redis::cluster::ClusterClient::new(nodes)?;
                Conn::Cluster(client.get_async_connection().await.map_err(|e| format!("cannot connect to the Redis cluster {:?}: {e}", c.addrs))?)
            } else {
                let addr = c.addrs.first().cloned().unwrap_or_else(|| "127.0.0.1:6379".into());
                let client = redis::Client::open(node_url(&addr))?;
                Conn::Single(ConnectionManager::new(client).await.map_err(|e| format!("cannot connect to Redis at {addr}: {e}"))?)
            };
            Ok(Arc::new(Redis { conn }) as Arc<dyn Storage>)
        })
    }
}

pub struct Redis {
    conn: Conn,
}

/// Seconds since the epoch of an RFC 3339 timeout; `None` for `""`.
fn expiry(timeout: &str) -> KvResult<Option<i64>> {
    if timeout.is_empty() {
        return Ok(None);
    }
    Ok(Some(OffsetDateTime::parse(timeout, &Rfc3339).map_err(|e| format!("invalid timeout `{timeout}`: expected RFC 3339 ({e})"))?.unix_timestamp()))
}

/// `2024-05-01T12:00:00+00:00`, the form PHP writes and reads.
fn rfc3339(ts: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00", t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
}

async fn query<T: redis::FromRedisValue>(conn: &Conn, cmd: redis::Pipeline) -> KvResult<T> {
    Ok(match conn.clone() {
        Conn::Single(mut c) => run(&mut c, cmd).await?,
        Conn::Cluster(mut c) => run(&mut c, cmd).await?,
        Conn::Sentinel(f) => f.query(&cmd).await?,
    })
}

async fn run<T: redis::FromRedisValue>(c: &mut impl ConnectionLike, cmd: redis::Pipeline) -> redis::RedisResult<T> {
    cmd.query_async(c).await
}

impl Storage for Redis {
    fn has(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<String>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(vec![]);
            }
            let mut p = redis::pipe();
            for k in &keys {
                p.exists(k);
            }
            let found: Vec<bool> = query(&self.conn, p).await?;
            Ok(keys.into_iter().zip(found).filter(|(_, f)| *f).map(|(k, _)| k).collect())
        })
    }

    fn set(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            let mut p = redis::pipe();
            for i in &items {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&i.key).arg(i.value.as_ref());
                if let Some(at) = expiry(&i.timeout)? {
                    cmd.arg("EXAT").arg(at);
                }
                p.add_command(cmd).ignore();
            }
            query::<()>(&self.conn, p).await
        })
    }

    fn mget(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>> {
        Box::pin(async move {
            let mut p = redis::pipe();
            for k in &keys {
                p.get(k);
            }
            let values: Vec<Option<Vec<u8>>> = query(&self.conn, p).await?;
            Ok(keys.into_iter().zip(values).filter_map(|(key, v)| v.map(|v| Item { key, value: v.into(), timeout: String::new() })).collect())
        })
    }

    fn mexpire(&self, items: Vec<Item>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            let mut p = redis::pipe();
            for i in &items {
                match expiry(&i.timeout)? {
                    Some(at) => p.cmd("EXPIREAT").arg(&i.key).arg(at).ignore(),
                    None => p.cmd("PERSIST").arg(&i.key).ignore(),
                };
            }
            query::<()>(&self.conn, p).await
        })
    }

    fn ttl(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<Vec<Item>>> {
        Box::pin(async move {
            let mut p = redis::pipe();
            for k in &keys {
                p.cmd("EXPIRETIME").arg(k);
            }
            let times: Vec<i64> = query(&self.conn, p).await?;
            Ok(keys
                .into_iter()
                .zip(times)
                .filter(|(_, t)| *t != -2)
                .map(|(key, t)| Item { key, value: Default::default(), timeout: if t < 0 { String::new() } else { rfc3339(t) } })
                .collect())
        })
    }

    fn delete(&self, keys: Vec<String>) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            let mut p = redis::pipe();
            for k in &keys {
                p.del(k).ignore();
            }
            query::<()>(&self.conn, p).await
        })
    }

    fn clear(&self) -> BoxFuture<'_, KvResult<()>> {
        Box::pin(async move {
            let mut p = redis::pipe();
            p.cmd("FLUSHDB").ignore();
            query::<()>(&self.conn, p).await
        })
    }
}
