//! A pipeline's consumer task, started by `resume` and cancelled by `pause` and `stop`: the
//! switch every broker driver needs.

use std::future::Future;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct Consuming(Mutex<Option<CancellationToken>>);

impl Consuming {
    /// Spawns `consume(stop)` unless a consumer runs already; false when one did.
    pub fn start<F>(&self, consume: impl FnOnce(CancellationToken) -> F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut slot = self.0.lock().unwrap();
        if slot.is_some() {
            return false;
        }
        let stop = CancellationToken::new();
        tokio::spawn(consume(stop.clone()));
        *slot = Some(stop);
        true
    }

    /// Cancels the running consumer; false when none ran.
    pub fn stop(&self) -> bool {
        self.0.lock().unwrap().take().map(|stop| stop.cancel()).is_some()
    }

    pub fn is_running(&self) -> bool {
        self.0.lock().unwrap().is_some()
    }
}
