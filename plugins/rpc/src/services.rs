//! The built-in RPC services: `rpc` (Version, Config), `informer` (List, Workers, Jobs,
//! AddWorker, RemoveWorker) and `resetter` (List, Reset), with the JSON shapes of
//! PROTOCOL.md §4.5-4.6.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use base64::Engine;
use bytes::Bytes;
use rr_runtime::Services;
use rr_runtime::pool::WorkerInfo;
use rr_runtime::rpc::{Codec, RpcError};
use serde_json::{Value, json};

/// `informer.Workers` entry (exact key case, as PHP's WorkerPool reads them).
pub fn process_state(w: &WorkerInfo) -> Value {
    json!({
        "pid": w.pid,
        "status": w.state.code(),
        "numExecs": w.num_execs,
        "created": w.created.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
        "memoryUsage": w.memory,
        "CPUPercent": w.cpu_percent,
        "command": "",
        "statusStr": w.state.as_str(),
    })
}

pub fn register(services: &Arc<Services>, config_json: Bytes) {
    let rpc = &services.rpc;
    let version = services.version;
    rpc.register_json("rpc.Version", move |_: bool| async move { Ok(version.to_string()) });
    rpc.register_raw(
        "rpc.Config",
        Arc::new(move |codec, _| {
            let config = config_json.clone();
            Box::pin(async move {
                match codec {
                    Codec::Raw => Ok(config),
                    // Go's JSON codec sends a byte slice as a base64 string.
                    Codec::Json => Ok(Bytes::from(serde_json::to_vec(&base64::engine::general_purpose::STANDARD.encode(&config)).unwrap())),
                    other => Err(RpcError::new(format!("rpc.Config: codec {other:?} is not supported, use JSON or RAW"))),
                }
            })
        }),
    );

    let s = services.clone();
    rpc.register_json("informer.List", move |_: bool| {
        let names = s.pools.names();
        async move { Ok(names) }
    });
    let s = services.clone();
    rpc.register_json("informer.Workers", move |plugin: String| {
        let workers = s.plugin_workers(&plugin).map(|w| w.iter().map(process_state).collect::<Vec<_>>());
        async move { Ok(json!({ "workers": workers })) }
    });
    let s = services.clone();
    rpc.register_json("informer.Jobs", move |plugin: String| {
        // Go field names, as RoadRunner's JobsInformer state has no JSON tags.
        let states = s.jobs_informers.get(&plugin).map(|i| {
            i.states()
                .into_iter()
                .map(|st| {
                    json!({
                        "Pipeline": st.pipeline, "Driver": st.driver, "Queue": st.queue, "Active": st.active,
                        "Delayed": st.delayed, "Reserved": st.reserved, "Ready": st.ready, "Priority": st.priority, "ErrorMessage": "",
                    })
                })
                .collect::<Vec<_>>()
        });
        async move { Ok(states.map(Value::from).unwrap_or(Value::Null)) }
    });
    for (method, add) in [("informer.AddWorker", true), ("informer.RemoveWorker", false)] {
        let s = services.clone();
        rpc.register_json(method, move |plugin: String| {
            let pool = s.pools.get(&plugin);
            async move {
                let pool = pool.ok_or_else(|| RpcError::new(format!("plugin {plugin} does not support workers management")))?;
                let result = if add { pool.add_worker().await } else { pool.remove_worker().await };
                result.map(|()| false).map_err(RpcError::new)
            }
        });
    }

    let s = services.clone();
    rpc.register_json("resetter.List", move |_: bool| {
        let names = s.resetters.names();
        async move { Ok(names) }
    });
    let s = services.clone();
    rpc.register_json("resetter.Reset", move |plugin: String| {
        let target = s.resetters.get(&plugin);
        async move {
            let target = target.ok_or_else(|| RpcError::new(format!("resetter.Reset: no such plugin: {plugin}")))?;
            tracing::info!(target: "rpc", plugin = %plugin, "resetting plugin");
            target.reset().await.map_err(|e| RpcError::new(format!("resetter.Reset: {plugin}: {e}")))?;
            Ok(true)
        }
    });
}
