//! `grpc.health.v1.Health` with RoadRunner's semantics (GRPC.md §5): one status for the whole
//! server whatever service name is asked, NOT_SERVING until the pool is up and while it is reset
//! or stopped; Watch sends the current status, then each change.

use prost::Message;
use tokio::sync::watch;

pub const SERVICE: &str = "grpc.health.v1.Health";

pub const SERVING: i32 = 1;
pub const NOT_SERVING: i32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListResponse {
    #[prost(map = "string, message", tag = "1")]
    pub statuses: std::collections::HashMap<String, CheckResponse>,
}

/// The server's health status, shared by the calls and the plugin's lifecycle.
pub struct Health {
    status: watch::Sender<i32>,
}

impl Default for Health {
    fn default() -> Self {
        Health { status: watch::Sender::new(NOT_SERVING) }
    }
}

impl Health {
    pub fn set(&self, status: i32) {
        self.status.send_replace(status);
    }

    pub fn get(&self) -> i32 {
        *self.status.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i32> {
        self.status.subscribe()
    }

    /// The encoded answer of `Check` (`status`) or `List` (`{"grpc": status}`).
    pub fn answer(&self, method: &str) -> Option<Vec<u8>> {
        let check = CheckResponse { status: self.get() };
        match method {
            "Check" => Some(check.encode_to_vec()),
            "List" => Some(ListResponse { statuses: [("grpc".to_string(), check)].into() }.encode_to_vec()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_roadrunner() {
        let h = Health::default();
        assert_eq!(h.answer("Check").unwrap(), [0x08, 0x02]);
        h.set(SERVING);
        assert_eq!(h.answer("Check").unwrap(), [0x08, 0x01]);
        assert_eq!(h.answer("List").unwrap(), [0x0a, 0x0a, 0x0a, 0x04, b'g', b'r', b'p', b'c', 0x12, 0x02, 0x08, 0x01]);
        assert_eq!(h.answer("Nope"), None);
    }
}
