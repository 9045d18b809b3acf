//! What one HTTP tenant (a token holder) may hold at once, and the other
//! limits of `vessel serve` an operator can set.
//!
//! Token holders are not trusted (DESIGN.md §7). Each token gets two
//! budgets, kept here and taken before a request's body is read:
//! - concurrent calls: `call`s in flight plus `spawn`ed calls still running;
//! - bytes of request bodies being held in memory (dict values, call
//!   arguments, JSON requests), taken as the body arrives.
//!
//! Past either, the request is refused with 429 and `Retry-After`. The
//! owner's socket is trusted (its callers are the owner's own user) and has
//! neither budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::Caller;

/// How long a request body may send nothing before it is cut off (408).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Calls one token may have running at once (`call` and `spawn` together):
/// below a function's default `max_containers` (10), so one token alone
/// cannot take every container of a function.
pub const DEFAULT_MAX_CALLS_PER_TOKEN: u32 = 8;
/// Bytes of request bodies one token may have in the server's memory at
/// once: two dict values of the largest size (100 MiB) and change.
pub const DEFAULT_BODY_BYTES_PER_TOKEN: usize = 256 << 20;
/// Spawned calls the server keeps (running, or finished and not yet
/// evicted) for `GET /v1/calls/{id}`.
pub const DEFAULT_MAX_STORED_CALLS: usize = 10_000;
/// Bytes of finished calls' results the server keeps at most; the oldest
/// finished calls are evicted past it.
pub const DEFAULT_STORED_RESULT_BYTES: usize = 256 << 20;
/// What `Retry-After` says on a 429 or 503 from these limits, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Body budgets are counted in units of this many bytes (a semaphore
/// permit each), so a budget of gibibytes fits a semaphore.
const BODY_UNIT: usize = 1024;

/// The limits of one server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a request body may send nothing before it is cut off.
    pub body_timeout: Duration,
    /// Calls a token may have running at once, unless the token itself
    /// says otherwise (`vessel token create --max-calls`).
    pub max_calls_per_token: u32,
    /// Bytes of request bodies a token may have in memory at once.
    pub body_bytes_per_token: usize,
    /// Spawned calls kept at most.
    pub max_stored_calls: usize,
    /// Bytes of finished calls' results kept at most.
    pub stored_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_calls_per_token: DEFAULT_MAX_CALLS_PER_TOKEN,
            body_bytes_per_token: DEFAULT_BODY_BYTES_PER_TOKEN,
            max_stored_calls: DEFAULT_MAX_STORED_CALLS,
            stored_result_bytes: DEFAULT_STORED_RESULT_BYTES,
        }
    }
}

/// A tenant's budget was spent: the request is refused (429).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    #[error(
        "this token already has {max} call(s) running, its limit; retry when one finishes \
         (the operator sets the limit with `vessel serve --max-calls-per-token` or \
         `vessel token create --max-calls`)"
    )]
    Calls { max: u32 },
    #[error(
        "this token's requests already hold their limit of {max} bytes of bodies in the \
         server's memory; retry when they finish (`vessel serve --body-mib-per-token`)"
    )]
    BodyBytes { max: usize },
}

/// One token's budgets.
#[derive(Debug)]
struct Tenant {
    calls: Arc<Semaphore>,
    max_calls: u32,
    body: Arc<Semaphore>,
}

/// The budgets of every token that has made a request.
#[derive(Debug)]
pub struct Tenants {
    limits: Limits,
    by_token: Mutex<HashMap<String, Arc<Tenant>>>,
}

/// A running call's place in its token's budget, given back when dropped.
#[derive(Debug)]
pub struct CallPermit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

/// The body bytes a request holds in its token's budget, given back when
/// dropped (once the body is no longer in memory).
#[derive(Debug)]
pub struct BodyHold {
    budget: Option<(Arc<Semaphore>, usize)>,
    held: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl BodyHold {
    /// Counts `more` bytes of body against the budget.
    pub fn grow(&mut self, more: usize) -> Result<(), LimitError> {
        let Some((budget, max)) = &self.budget else {
            return Ok(());
        };
        let bytes = self.bytes.saturating_add(more);
        let units = bytes.div_ceil(BODY_UNIT) - self.bytes.div_ceil(BODY_UNIT);
        if units > 0 {
            let n = u32::try_from(units).map_err(|_| LimitError::BodyBytes { max: *max })?;
            let permit = budget
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| LimitError::BodyBytes { max: *max })?;
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
        }
        self.bytes = bytes;
        Ok(())
    }
}

impl Tenants {
    pub fn new(limits: Limits) -> Self {
        Tenants {
            limits,
            by_token: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn tenant(&self, caller: &Caller) -> Option<Arc<Tenant>> {
        let Caller::Token(record) = caller else {
            return None;
        };
        let max_calls = record.max_calls.unwrap_or(self.limits.max_calls_per_token);
        let units = self.limits.body_bytes_per_token.div_ceil(BODY_UNIT);
        // A poisoned map only means another request panicked while holding
        // it; the map itself is still whole.
        let mut map = self
            .by_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tenant = map.entry(record.id.clone()).or_insert_with(|| {
            Arc::new(Tenant {
                calls: Arc::new(Semaphore::new(max_calls as usize)),
                max_calls,
                body: Arc::new(Semaphore::new(units.min(Semaphore::MAX_PERMITS))),
            })
        });
        Some(tenant.clone())
    }

    /// A place for one more running call of `caller`, or 429.
    pub fn call(&self, caller: &Caller) -> Result<CallPermit, LimitError> {
        let Some(t) = self.tenant(caller) else {
            return Ok(CallPermit(None));
        };
        t.calls
            .clone()
            .try_acquire_owned()
            .map(|p| CallPermit(Some(p)))
            .map_err(|_| LimitError::Calls { max: t.max_calls })
    }

    /// An empty hold on `caller`'s body budget, to grow as a body arrives.
    pub fn body(&self, caller: &Caller) -> BodyHold {
        BodyHold {
            budget: self
                .tenant(caller)
                .map(|t| (t.body.clone(), self.limits.body_bytes_per_token)),
            held: None,
            bytes: 0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::server::auth::TokenRecord;

    fn token(id: &str, max_calls: Option<u32>) -> Caller {
        Caller::Token(TokenRecord {
            id: id.into(),
            name: None,
            hash: String::new(),
            scopes: Vec::new(),
            created_ms: 0,
            max_calls,
            expires_ms: None,
        })
    }

    #[test]
    fn calls_are_limited_per_token_and_given_back() {
        let t = Tenants::new(Limits {
            max_calls_per_token: 2,
            ..Limits::default()
        });
        let a = token("a", None);
        let p1 = t.call(&a).unwrap();
        let _p2 = t.call(&a).unwrap();
        assert!(matches!(t.call(&a), Err(LimitError::Calls { max: 2 })));
        // Another token has its own budget; the owner has none.
        t.call(&token("b", None)).unwrap();
        for _ in 0..10 {
            std::mem::forget(t.call(&Caller::Owner).unwrap());
        }
        drop(p1);
        t.call(&a).unwrap();
        // A token's own limit wins over the server's.
        let c = token("c", Some(3));
        let held: Vec<_> = (0..3).map(|_| t.call(&c).unwrap()).collect();
        assert!(matches!(t.call(&c), Err(LimitError::Calls { max: 3 })));
        drop(held);
    }

    #[test]
    fn body_bytes_are_limited_per_token() {
        let t = Tenants::new(Limits {
            body_bytes_per_token: 10 * BODY_UNIT,
            ..Limits::default()
        });
        let a = token("a", None);
        let mut h1 = t.body(&a);
        h1.grow(6 * BODY_UNIT).unwrap();
        let mut h2 = t.body(&a);
        h2.grow(3 * BODY_UNIT).unwrap();
        h2.grow(BODY_UNIT - 1).unwrap();
        assert!(h2.grow(2).is_err(), "past the budget");
        drop(h1);
        h2.grow(5 * BODY_UNIT).unwrap();
        let mut owner = t.body(&Caller::Owner);
        owner.grow(1 << 30).unwrap();
    }
}
