//! The `lock` plugin: RoadRunner's `lock.*` RPC service (roadrunner-php/lock) on the
//! `lock.v1beta1` protobuf messages. No config section: it is on whenever `rpc` is.
//!
//! Wire semantics (PLUGINS-MORE.md §B): `ttl` and `wait` are microseconds; `ttl` 0 means one year,
//! `wait` 0 means 1 ms; a lock not obtained in time is `ok: false`, not an error; an empty id is
//! the error `empty ID is not allowed`, an empty resource (Lock, LockRead) `empty resource is not
//! allowed`. A caller that disconnects while it waits stops waiting.

pub mod proto;
pub mod table;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rr_runtime::rpc::{RpcError, RpcRegistry};
use rr_runtime::{BoxError, InitContext};
use tokio_util::sync::CancellationToken;

pub use table::{Locks, Mode};

/// RoadRunner's "forever": a TTL of 0 is one (Julian) year.
pub const FOREVER: Duration = Duration::from_micros(31_555_952_000_000);
/// What a `wait` of 0 gives: one immediate attempt, with 1 ms for a lock being released.
pub const IMMEDIATE: Duration = Duration::from_millis(1);

pub struct Plugin {
    locks: Locks,
}

impl rr_runtime::Plugin for Plugin {
    const NAME: &'static str = "lock";

    fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
        if !ctx.config.has("rpc") {
            return Ok(None);
        }
        let locks = Locks::default();
        register_rpc(&ctx.services.rpc, &locks);
        Ok(Some(Plugin { locks }))
    }

    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
        shutdown.cancelled().await;
        self.locks.close();
        Ok(())
    }
}

fn micros(name: &str, value: Option<i64>, zero: Duration) -> Result<Duration, RpcError> {
    match value.unwrap_or(0) {
        0 => Ok(zero),
        v if v < 0 => Err(RpcError::new(format!("{name} must not be negative, got {v} microseconds"))),
        v => Ok(Duration::from_micros(v as u64)),
    }
}

fn ttl(req: &proto::Request) -> Result<Duration, RpcError> {
    micros("ttl", req.ttl, FOREVER)
}

fn wait(req: &proto::Request) -> Result<Duration, RpcError> {
    micros("wait", req.wait, IMMEDIATE)
}

fn with_id(req: &proto::Request) -> Result<(), RpcError> {
    if req.id.is_empty() { Err(RpcError::new("empty ID is not allowed")) } else { Ok(()) }
}

fn with_resource(req: &proto::Request) -> Result<(), RpcError> {
    if req.resource.is_empty() { Err(RpcError::new("empty resource is not allowed")) } else { Ok(()) }
}

fn method<F, Fut>(rpc: &RpcRegistry, name: &'static str, locks: &Locks, f: F)
where
    F: Fn(Locks, proto::Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, RpcError>> + Send + 'static,
{
    let locks = locks.clone();
    rpc.register_proto(name, move |req: proto::Request| {
        tracing::debug!(target: "lock", method = name, resource = %req.resource, id = %req.id, ttl = ?req.ttl, wait = ?req.wait, "lock call");
        let reply = f(locks.clone(), req);
        async move { Ok(proto::Response { ok: reply.await? }) }
    });
}

fn register_rpc(rpc: &RpcRegistry, locks: &Locks) {
    let take = |mode| {
        move |l: Locks, r: proto::Request| async move {
            with_resource(&r)?;
            with_id(&r)?;
            let (ttl, wait) = (ttl(&r)?, wait(&r)?);
            Ok(l.lock(&r.resource, &r.id, mode, ttl, wait).await)
        }
    };
    method(rpc, "lock.Lock", locks, take(Mode::Exclusive));
    method(rpc, "lock.LockRead", locks, take(Mode::Shared));
    // A waiter whose caller is gone (a killed PHP process) stops waiting: it must not get a
    // lock nobody will release.
    rpc.drop_on_disconnect("lock.Lock");
    rpc.drop_on_disconnect("lock.LockRead");
    method(rpc, "lock.Release", locks, |l, r| async move { with_id(&r).map(|()| l.release(&r.resource, &r.id)) });
    // roadrunner-php/lock sends no id here.
    method(rpc, "lock.ForceRelease", locks, |l, r| async move { Ok(l.force_release(&r.resource)) });
    method(rpc, "lock.Exists", locks, |l, r| async move { with_id(&r).map(|()| l.exists(&r.resource, &r.id)) });
    method(rpc, "lock.UpdateTTL", locks, |l, r| async move {
        with_id(&r)?;
        Ok(l.update_ttl(&r.resource, &r.id, ttl(&r)?))
    });
}
