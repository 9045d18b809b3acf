//! The in-process harness of the integration tests and the benches, one
//! copy of each piece:
//! - [`Host`]: a data dir with its stores, an engine and a runtime in this
//!   process;
//! - [`Program`] and [`Guest`]: a component loaded, and started in a
//!   container of its own, called by export name with JSON; [`call_once`]
//!   for a call in a fresh container;
//! - [`Bystander`]: the well-behaved neighbour of the hostile tests;
//! - [`nodes`]: volume contents committed straight to a store;
//! - [`figures`]: the benches' medians and sizes from the environment;
//! - [`ok`] and [`err_of`]: reading the `result<_, string>` answers of the
//!   test programs.
//!
//! The `vessel` binary's side (`Vessel`, `serve`, `http`) is in lib.rs.

// Test helpers: a panic with a message is the right failure here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bystander;
pub mod figures;
mod guest;
mod host;
pub mod nodes;

pub use bystander::{BYSTANDER, BYSTANDER_EVERY, BYSTANDER_PATIENCE, Bystander, Seen};
pub use guest::{Guest, Program, call_once};
pub use host::Host;

use serde_json::{Value, json};

/// The answer of a test program's `result<_, string>` export that
/// succeeded with nothing.
pub fn ok() -> Value {
    json!({"ok": null})
}

/// The message of a test program's `result<_, string>` answer that must be
/// an error.
pub fn err_of(v: &Value) -> String {
    v.get("err")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("expected an error, got {v}"))
        .to_owned()
}

/// A temporary directory on a tmpfs when there is one, else in the system's
/// temporary directory: for stores whose faults are injected (a power or
/// I/O model decides what survives), where real fsyncs would only cost
/// time.
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}
