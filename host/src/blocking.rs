//! Blocking work (fsyncs, store round trips) from code that runs on an
//! async worker: a host function, or wasmtime's epoch callback.
//!
//! Guests run on tokio's workers; a commit that waits for an fsync there
//! stalls every other guest scheduled on that worker. On the multi-threaded
//! runtime (the CLI's and `vessel serve`'s) [`off_worker`] hands the
//! worker's other tasks to another thread for the duration (tokio's
//! `block_in_place`); elsewhere (a current-thread runtime, or none) it just
//! runs the work, which is all such a runtime can do.

/// Runs `f`, a blocking piece of work, without holding up the async
/// worker's other tasks when the runtime allows it.
pub fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}
