//! The bystander: a well-behaved function beside a hostile guest, called in
//! a loop that fails the test unless every call answers, correctly and
//! within [`BYSTANDER_PATIENCE`]. RELIABILITY.md's threat model rests on
//! it: a limit holds only if the neighbours never noticed the attack.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use vessel_host::app::App;

/// The manifest lines of a bystander function, `bystander`, to add to a
/// test's app: the `add` program (`@ADD@`, see [`crate::harness::Host::load`])
/// with its own container pool.
pub const BYSTANDER: &str = r#"
[functions.bystander]
component = "@ADD@"
export = "add"
max_containers = 2
"#;

/// The longest a bystander call may take while a hostile guest runs beside
/// it. Generous for a shared 2-core machine; a host that a hostile guest
/// stalls takes far longer.
pub const BYSTANDER_PATIENCE: Duration = Duration::from_secs(2);

/// How often a bystander calls.
pub const BYSTANDER_EVERY: Duration = Duration::from_millis(20);

/// What a bystander saw while it ran.
#[derive(Debug, Default)]
pub struct Seen {
    pub answered: u32,
    pub slowest: Duration,
}

impl Seen {
    /// Counts a call that answered correctly after `took`.
    pub fn answer(&mut self, took: Duration) {
        self.answered += 1;
        self.slowest = self.slowest.max(took);
    }
}

/// Calls an app's `bystander` function (`add`) in a loop, every
/// [`BYSTANDER_EVERY`], from a task of its own, until
/// [`finish`](Self::finish).
pub struct Bystander {
    stop: Arc<AtomicBool>,
    /// Calls answered so far, for `finish` to wait on the first.
    answered: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<Result<Seen, String>>,
}

impl Bystander {
    pub fn start(app: &App) -> Bystander {
        let f = app
            .function("bystander")
            .unwrap_or_else(|e| panic!("the app has no bystander: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let answered = Arc::new(AtomicU32::new(0));
        let count = answered.clone();
        let task = tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut i = 0i64;
            while !flag.load(Ordering::SeqCst) {
                i += 1;
                let t = Instant::now();
                let got = tokio::time::timeout(BYSTANDER_PATIENCE, f.call(json!([i, 1]))).await;
                let took = t.elapsed();
                match got {
                    Ok(Ok(v)) if v == json!(i + 1) => {}
                    Ok(Ok(v)) => return Err(format!("call {i} answered {v}, not {}", i + 1)),
                    Ok(Err(e)) => return Err(format!("call {i} failed: {e}")),
                    Err(_) => return Err(format!("call {i} took over {BYSTANDER_PATIENCE:?}")),
                }
                seen.answer(took);
                count.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(BYSTANDER_EVERY).await;
            }
            Ok(seen)
        });
        Bystander {
            stop,
            answered,
            task,
        }
    }

    /// Stops the loop and fails the test unless every call answered, and at
    /// least one did.
    pub async fn finish(self) -> Seen {
        // A hostile guest refused at once can be done before the
        // bystander's first call (a cold container, on a busy machine)
        // answers. Let that call finish, so "every call answered" covers at
        // least one; each call still fails past BYSTANDER_PATIENCE.
        let deadline = Instant::now() + BYSTANDER_PATIENCE * 2;
        while self.answered.load(Ordering::SeqCst) == 0
            && !self.task.is_finished()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        let seen = self
            .task
            .await
            .unwrap_or_else(|e| panic!("bystander task: {e}"))
            .unwrap_or_else(|e| panic!("the bystander stopped answering: {e}"));
        assert!(seen.answered > 0, "the bystander never answered");
        seen
    }
}
