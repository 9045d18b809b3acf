//! The store of spawned calls behind the HTTP routes `call` (answer when
//! done), `spawn` (answer at once with an id) and `GET /v1/calls/{id}`
//! (whose handlers are in `routes/calls.rs`).
//!
//! What a tenant can hold here is bounded: each token has a number of calls
//! it may have running at once ([`super::limits`]), and the store keeps at
//! most `max_stored_calls` calls and `stored_result_bytes` bytes of
//! finished results. Finished calls are evicted oldest first; a running
//! call is never evicted, so when the store is full of running calls a new
//! spawn is refused (503) rather than a running call's result lost.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value as Json;

use crate::app::AppError;
use crate::functions::Raised;

/// Largest error message kept for a failed spawned call; longer ones (a
/// guest's panic message can be long) are cut.
const MAX_ERROR: usize = 64 << 10;

/// How a spawned call ended: its result as JSON text, or why it failed.
pub(crate) type Outcome = Result<Bytes, Failed>;

/// Why a spawned call failed: the message, and what the guest raised when
/// it ended the call with an error it did not catch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    pub message: String,
    pub raised: Option<Raised>,
}

impl From<String> for Failed {
    fn from(message: String) -> Self {
        Failed {
            message,
            raised: None,
        }
    }
}

impl Failed {
    /// The bytes it holds, for the store's budget.
    fn len(&self) -> usize {
        self.message.len()
            + self.raised.as_ref().map_or(0, |r| {
                r.type_name.len() + r.message.len() + r.traceback.len()
            })
    }
}

/// One stored call.
struct Stored {
    app: String,
    /// `None` while it runs.
    outcome: Option<Outcome>,
    /// Turns `true` when the outcome is set.
    done: tokio::sync::watch::Receiver<bool>,
}

#[derive(Default)]
struct Inner {
    calls: BTreeMap<u64, Stored>,
    /// The ids of finished calls in the order they finished: the eviction
    /// order.
    finished: VecDeque<u64>,
    /// Bytes of finished calls' outcomes.
    outcome_bytes: usize,
    next: u64,
}

impl Inner {
    /// Drops the oldest finished call; `false` when every call runs.
    fn evict_one(&mut self) -> bool {
        let Some(id) = self.finished.pop_front() else {
            return false;
        };
        if let Some(gone) = self.calls.remove(&id) {
            self.outcome_bytes = self
                .outcome_bytes
                .saturating_sub(outcome_len(&gone.outcome));
        }
        true
    }
}

fn outcome_len(o: &Option<Outcome>) -> usize {
    match o {
        Some(Ok(b)) => b.len(),
        Some(Err(f)) => f.len(),
        None => 0,
    }
}

/// Why a spawn was not stored.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server already holds {max} spawned calls and every one is still running; retry when \
     some finish (the operator sets this with `vessel serve --max-stored-calls`)"
)]
pub struct StoreFull {
    max: usize,
}

/// Spawned calls, running and finished.
pub struct CallStore {
    max_calls: usize,
    max_outcome_bytes: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallStore")
            .field("max_calls", &self.max_calls)
            .finish_non_exhaustive()
    }
}

/// What a call's task uses to record its outcome. Dropped without one (the
/// task panicked or was aborted), it records a failure, so no stored call
/// stays `running` forever.
pub struct Finisher {
    store: Arc<CallStore>,
    id: u64,
    done: Option<tokio::sync::watch::Sender<bool>>,
}

impl Finisher {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records how the call ended.
    pub fn finish(mut self, result: Result<Json, AppError>) {
        let outcome = match result {
            Ok(v) => match serde_json::to_vec(&v) {
                Ok(text) => Ok(Bytes::from(text)),
                Err(e) => Err(format!("the result cannot be written as JSON: {e}").into()),
            },
            Err(e) => Err(Failed {
                message: e.to_string(),
                raised: e.raised().cloned(),
            }),
        };
        self.record(outcome);
    }

    fn record(&mut self, outcome: Outcome) {
        let Some(done) = self.done.take() else {
            return;
        };
        self.store.record(self.id, outcome);
        let _ = done.send(true);
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        self.record(Err(String::from(
            "the call ended without a result (its task was cancelled or failed)",
        )
        .into()));
    }
}

/// What `GET /v1/calls/{id}` found.
pub(crate) enum Lookup {
    Running(tokio::sync::watch::Receiver<bool>),
    Done(Outcome),
}

impl CallStore {
    pub fn new(max_calls: usize, max_outcome_bytes: usize) -> Self {
        CallStore {
            max_calls: max_calls.max(1),
            max_outcome_bytes,
            inner: Mutex::new(Inner {
                next: 1,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The store's invariants hold between statements: a panic elsewhere
        // while it was locked leaves it usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a new running call of `app`, evicting the oldest finished
    /// call if the store is full; refused when every stored call runs.
    pub fn admit(self: &Arc<Self>, app: &str) -> Result<Finisher, StoreFull> {
        let mut inner = self.lock();
        while inner.calls.len() >= self.max_calls {
            if !inner.evict_one() {
                return Err(StoreFull {
                    max: self.max_calls,
                });
            }
        }
        let id = inner.next;
        inner.next += 1;
        let (tx, rx) = tokio::sync::watch::channel(false);
        inner.calls.insert(
            id,
            Stored {
                app: app.to_owned(),
                outcome: None,
                done: rx,
            },
        );
        Ok(Finisher {
            store: self.clone(),
            id,
            done: Some(tx),
        })
    }

    fn record(&self, id: u64, outcome: Outcome) {
        let outcome = match outcome {
            Ok(text) if text.len() > self.max_outcome_bytes => Err(format!(
                "the result is {} bytes, more than this server keeps for a spawned call ({} \
                 bytes); call the function with /call to get it",
                text.len(),
                self.max_outcome_bytes
            )
            .into()),
            Err(Failed {
                mut message,
                raised,
            }) if message.len() > MAX_ERROR => {
                let mut cut = MAX_ERROR;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                let more = message.len() - cut;
                message.truncate(cut);
                Err(Failed {
                    message: format!("{message}... ({more} more bytes cut)"),
                    raised,
                })
            }
            o => o,
        };
        let mut inner = self.lock();
        let Some(stored) = inner.calls.get_mut(&id) else {
            return;
        };
        let len = outcome.as_ref().map_or_else(Failed::len, Bytes::len);
        stored.outcome = Some(outcome);
        inner.finished.push_back(id);
        inner.outcome_bytes = inner.outcome_bytes.saturating_add(len);
        // Oldest finished first, never the one that just finished: its
        // caller may be waiting for it.
        while inner.outcome_bytes > self.max_outcome_bytes
            && inner.finished.len() > 1
            && inner.evict_one()
        {}
    }

    /// The app of call `id` and where it stands, or why it is not here.
    pub(crate) fn lookup(&self, id: u64) -> Result<(String, Lookup), String> {
        let inner = self.lock();
        let Some(stored) = inner.calls.get(&id) else {
            return Err(if id > 0 && id < inner.next {
                format!(
                    "call `{id}` finished and was dropped to make room: this server keeps at \
                     most {} calls and {} bytes of results; fetch results sooner",
                    self.max_calls, self.max_outcome_bytes
                )
            } else {
                format!("no call `{id}`")
            });
        };
        let state = match &stored.outcome {
            Some(o) => Lookup::Done(o.clone()),
            None => Lookup::Running(stored.done.clone()),
        };
        Ok((stored.app.clone(), state))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn done(store: &CallStore, id: u64) -> Option<Outcome> {
        match store.lookup(id).ok()?.1 {
            Lookup::Done(o) => Some(o),
            Lookup::Running(_) => None,
        }
    }

    #[test]
    fn running_calls_are_never_evicted() {
        let store = Arc::new(CallStore::new(3, 1 << 20));
        let a = store.admit("app").unwrap();
        let b = store.admit("app").unwrap();
        let c = store.admit("app").unwrap();
        // Full of running calls: refused, and all three are still there.
        assert!(store.admit("app").is_err());
        for f in [&a, &b, &c] {
            assert!(matches!(store.lookup(f.id()), Ok((_, Lookup::Running(_)))));
        }
        // One finishes: the next spawn evicts it, the running ones stay.
        let b_id = b.id();
        b.finish(Ok(json!(7)));
        assert_eq!(done(&store, b_id), Some(Ok(Bytes::from_static(b"7"))));
        let d = store.admit("app").unwrap();
        let gone = store.lookup(b_id).err().unwrap();
        assert!(gone.contains("dropped to make room"), "{gone}");
        assert!(store.lookup(a.id()).is_ok() && store.lookup(c.id()).is_ok());
        assert!(store.lookup(99).err().unwrap().starts_with("no call"));
        // The oldest to finish goes first.
        let (a_id, c_id) = (a.id(), c.id());
        c.finish(Ok(json!(3)));
        a.finish(Ok(json!(1)));
        store.admit("app").unwrap();
        assert!(store.lookup(c_id).is_err());
        assert!(done(&store, a_id).is_some());
        drop(d);
    }

    #[test]
    fn results_are_kept_within_their_byte_budget() {
        let store = Arc::new(CallStore::new(100, 10));
        let ids: Vec<u64> = (0..3)
            .map(|_| {
                let f = store.admit("app").unwrap();
                let id = f.id();
                f.finish(Ok(json!("abcd")));
                id
            })
            .collect();
        // Each result is 6 bytes of JSON: only the newest fits in 10.
        assert!(store.lookup(ids[0]).is_err() && store.lookup(ids[1]).is_err());
        assert!(done(&store, ids[2]).is_some());
        // One result over the whole budget is kept as a failure saying so.
        let f = store.admit("app").unwrap();
        let id = f.id();
        f.finish(Ok(json!("a string longer than ten bytes")));
        let Some(Err(f)) = done(&store, id) else {
            panic!("an oversized result is kept as a failure")
        };
        assert!(
            f.message.contains("more than this server keeps"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_call_whose_task_goes_is_failed_not_running() {
        let store = Arc::new(CallStore::new(10, 1 << 20));
        let f = store.admit("app").unwrap();
        let id = f.id();
        drop(f);
        assert!(matches!(done(&store, id), Some(Err(f)) if f.message.contains("without a result")));
    }
}
