//! The warm pool of one function: containers kept alive between calls so a
//! later call reuses the instance, its memory and its volume snapshot (as
//! Modal reuses containers), bounded by the function's `max_containers`.
//!
//! A semaphore with `max_containers` permits bounds the busy containers; a
//! call takes a permit, then an idle container or a new one. A container is
//! only made when none is idle, so busy plus idle never exceeds the bound.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::Func;

use crate::container::{Container, ContainerError};

/// A container waiting for its next call.
pub(crate) struct Warm {
    pub container: Container,
    /// The container's number in this process, for logs.
    pub id: u64,
    /// The function's export in this container's instance (`None` for a
    /// command, which is never kept warm).
    pub func: Option<Func>,
    pub idle_since: Instant,
    /// Whether the idle sweep has committed what the last call left.
    pub committed: bool,
}

/// Counters of a pool, for tests, benchmarks and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Containers made since the app loaded.
    pub started: u64,
    /// Containers retired (idle timeout, failure, shutdown).
    pub retired: u64,
    /// Containers waiting for a call now.
    pub idle: usize,
    /// Calls running now.
    pub busy: usize,
}

pub(crate) struct Pool {
    pub max: usize,
    pub permits: std::sync::Arc<tokio::sync::Semaphore>,
    idle: Mutex<Vec<Warm>>,
    started: AtomicU64,
    retired: AtomicU64,
}

impl Pool {
    pub fn new(max: usize) -> Self {
        Pool {
            max,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(max)),
            idle: Mutex::new(Vec::new()),
            started: AtomicU64::new(0),
            retired: AtomicU64::new(0),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        // A panic while the lock was held cannot leave the list itself
        // inconsistent (pushes and pops only), so a poisoned lock is usable.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used idle container, if any: it is the likeliest
    /// to have warm caches, and the others then age out.
    pub fn take(&self) -> Option<Warm> {
        let warm = self.idle().pop();
        if warm.is_some() {
            crate::metrics::global().containers_warm.dec();
        }
        warm
    }

    pub fn put(&self, warm: Warm) {
        self.idle().push(warm);
        crate::metrics::global().containers_warm.inc();
    }

    pub fn note_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        crate::metrics::global().containers_started.inc();
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            started: self.started.load(Ordering::Relaxed),
            retired: self.retired.load(Ordering::Acquire),
            idle: self.idle().len(),
            busy: self.max.saturating_sub(self.permits.available_permits()),
        }
    }

    /// Ends a container: a final commit of its volumes, then its scratch
    /// and mount directories go.
    pub fn retire(&self, mut container: Container) -> Result<(), ContainerError> {
        let done = container.shutdown();
        // Counted once the final commit is over, so whoever sees the count
        // also sees what that commit published.
        self.retired.fetch_add(1, Ordering::Release);
        crate::metrics::global().containers_retired.inc();
        done
    }

    /// Takes out the containers idle for `idle_timeout` or longer, and
    /// commits what the others' last calls left once they have been idle for
    /// `commit_every`.
    pub fn sweep(
        &self,
        now: Instant,
        idle_timeout: Duration,
        commit_every: Option<Duration>,
    ) -> Vec<Container> {
        let mut expired = Vec::new();
        let mut idle = self.idle();
        let mut i = 0;
        while i < idle.len() {
            let due = idle
                .get(i)
                .is_some_and(|w| now.duration_since(w.idle_since) >= idle_timeout);
            if due {
                expired.push(idle.swap_remove(i).container);
                continue;
            }
            if let Some(w) = idle.get_mut(i)
                && !w.committed
                && commit_every.is_some_and(|every| now.duration_since(w.idle_since) >= every)
            {
                w.committed = true;
                for e in w.container.commit_pending() {
                    tracing::warn!(error = %e, "background commit of an idle container failed");
                }
            }
            i += 1;
        }
        gone_from_pool(expired.len());
        expired
    }

    /// Takes out every idle container (the app is shutting down).
    pub fn drain(&self) -> Vec<Container> {
        let drained: Vec<Container> = self.idle().drain(..).map(|w| w.container).collect();
        gone_from_pool(drained.len());
        drained
    }
}

/// Takes `n` containers off the warm gauge.
fn gone_from_pool(n: usize) {
    if n > 0 {
        crate::metrics::global()
            .containers_warm
            .dec_by(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
