//! The JSON bodies of the `temporal` RPC service that PHP calls (TEMPORAL.md §5).

use serde::{Deserialize, Serialize};

use super::json::base64_bytes;
use crate::proto::Payloads;

/// RoadRunner's error for a heartbeat whose task is not running here.
pub const HEARTBEAT_NOT_RUNNING: &str = "heartbeat on non running activity";

/// `temporal.RecordActivityHeartbeat` request (PHP `ActivityContext::heartbeat`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    #[serde(rename = "taskToken", with = "base64_bytes", default)]
    pub task_token: Vec<u8>,
    /// A serialized `Payloads` message.
    #[serde(with = "base64_bytes", default)]
    pub details: Vec<u8>,
}

impl HeartbeatRequest {
    pub fn details(&self) -> Result<Payloads, String> {
        <Payloads as prost::Message>::decode(&self.details[..]).map_err(|e| format!("heartbeat details are not temporal Payloads: {e}"))
    }
}

/// Its reply: what the activity should know about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub canceled: bool,
    pub paused: bool,
    /// The activity was reset (read by PHP SDK 2.18; left out when false, as older PHP never saw it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use prost::Message;

    use super::*;
    use crate::proto::Payload;

    #[test]
    fn heartbeat_bodies() {
        let details = Payloads::of([Payload::json(&5)]);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = format!(r#"{{"taskToken":"{}","details":"{}"}}"#, b64(b"token"), b64(&details.encode_to_vec()));
        let request: HeartbeatRequest = serde_json::from_str(&body).unwrap();
        assert_eq!(request.task_token, b"token");
        assert_eq!(request.details().unwrap(), details);
        assert_eq!(serde_json::from_str::<HeartbeatRequest>(r#"{"taskToken":"dA==","details":null}"#).unwrap().details().unwrap(), Payloads::default());
        assert!(serde_json::from_str::<HeartbeatRequest>(r#"{"taskToken":"%%%"}"#).is_err());
        assert_eq!(serde_json::to_string(&HeartbeatResponse { canceled: true, ..Default::default() }).unwrap(), r#"{"canceled":true,"paused":false}"#);
        assert_eq!(serde_json::to_string(&HeartbeatResponse { reset: true, ..Default::default() }).unwrap(), r#"{"canceled":false,"paused":false,"reset":true}"#);
    }
}
