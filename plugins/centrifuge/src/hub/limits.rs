//! Limits on what clients may ask of the hub, as Centrifugo names them: connections on this
//! node (`client_connection_limit`) and new ones per second (`client_connection_rate_limit`),
//! both refused with HTTP 503 before the session starts; commands per second of one connection
//! (`client_command_rate_limit`, ours: Centrifugo has it in PRO only) answered with error 111.
//! Per-user connections and channels per client are checked where the session learns them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::{Hub, Mutex};

/// A token bucket: `rate` tokens a second, at most `rate` saved up (a burst of one second's
/// worth). Ten lines, so no crate for it.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn per_second(rate: usize) -> Bucket {
        Bucket { rate: rate as f64, tokens: rate as f64, last: Instant::now() }
    }

    /// Take a token if there is one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// The node's connection limits.
pub struct Limits {
    connections: Option<Mutex<Bucket>>,
    /// When a refusal was last logged (ms since `Hub::started`): a flood logs every 3 s.
    logged: AtomicU64,
}

type Refusal = (http::StatusCode, &'static str);

impl Limits {
    pub fn new(cfg: &super::HubConfig) -> Limits {
        Limits { connections: Some(cfg.client_connection_rate_limit).filter(|&r| r > 0).map(|r| Mutex::new(Bucket::per_second(r))), logged: AtomicU64::new(0) }
    }

    /// Whether a new connection (WebSocket upgrade or unidirectional request) may start; every
    /// attempt counts toward the rate, as in Centrifugo's middleware.
    pub fn admit(&self, hub: &Hub) -> Result<(), Refusal> {
        const BUSY: Refusal = (http::StatusCode::SERVICE_UNAVAILABLE, "connection limit reached, try again later");
        let key = if self.connections.as_ref().is_some_and(|b| !b.lock().take()) {
            "client_connection_rate_limit"
        } else if hub.cfg.client_connection_limit > 0 && hub.num_clients() >= hub.cfg.client_connection_limit {
            "client_connection_limit"
        } else {
            return Ok(());
        };
        let now = hub.started.elapsed().as_millis() as u64 + 3000;
        let last = self.logged.load(Ordering::Relaxed);
        if now >= last + 3000 && self.logged.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            tracing::warn!(target: "centrifuge", "hub: {key} reached: new connections are refused with 503");
        }
        Err(BUSY)
    }
}

#[cfg(test)]
mod tests {
    use super::Bucket;

    #[test]
    fn a_bucket_allows_its_rate_and_refills() {
        let mut b = Bucket::per_second(3);
        assert_eq!((0..5).map(|_| b.take()).collect::<Vec<_>>(), [true, true, true, false, false]);
        b.last -= std::time::Duration::from_millis(400);
        assert!(b.take(), "1.2 tokens back after 0.4 s");
        assert!(!b.take());
        b.last -= std::time::Duration::from_secs(60);
        assert_eq!((0..4).filter(|_| b.take()).count(), 3, "never more than a second's worth saved up");
    }
}
