// Helpers of the jobs tests, shared by the driver crates' tests through `#[path]`: the `jobs.*`
// RPC calls, the PHP worker's JSON log of the jobs it ran, and waiting for a condition.

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use rr_runtime::rpc::Codec;
use rr_runtime::rpc::client::RpcClient;
use serde_json::Value;

/// One `jobs.*` RPC call with a protobuf request and reply.
pub async fn call<R: Message + Default>(c: &mut RpcClient, method: &str, msg: impl Message) -> Result<R, String> {
    let reply = c.call(method, Codec::Proto, &msg.encode_to_vec()).await.map_err(|e| e.to_string())?;
    R::decode(&reply[..]).map_err(|e| e.to_string())
}

/// The worker's log: one JSON object per job it ran.
pub fn log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// How many times the log shows the job `id`.
pub fn count(entries: &[Value], id: &str) -> usize {
    entries.iter().filter(|e| e["id"] == id).count()
}

/// Poll `cond` until it holds; fail the test after `secs` seconds.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
