//! The background sweep of expired dict entries, for any backend: a thread
//! that calls [`DictStore::sweep_expired`] on a period. Reads already hide
//! expired entries; the sweep reclaims their space.

use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::DictStore;

/// Most entries one round removes, so a round never holds the store long.
const SWEEP_ROUND: usize = 100_000;

/// The sweeper's guard: dropping it stops and joins the thread, so the
/// store's files close with its last handle.
#[derive(Debug)]
pub struct Sweeper {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts a thread that sweeps `store` every `every` until the returned
/// guard drops. Without a thread (the OS refused one) nothing sweeps, which
/// costs space, never correctness.
pub fn spawn_sweeper(store: Arc<dyn DictStore>, every: Duration) -> Sweeper {
    let (stop, rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("vessel-dict-sweep".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                // Retried at the next round.
                if let Err(e) = store.sweep_expired(SWEEP_ROUND) {
                    tracing::warn!("dict sweep failed: {e}");
                }
            }
        })
        .ok();
    Sweeper {
        stop: Some(stop),
        handle,
    }
}
