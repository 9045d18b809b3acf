//! # vessel-sdk
//!
//! The Rust guest SDK for [vessel]: volumes, dicts and calls to other
//! functions, from a WebAssembly component built for `wasm32-wasip2`.
//!
//! ```no_run
//! use vessel_sdk::{Dict, Volume};
//!
//! # fn main() -> Result<(), vessel_sdk::Error> {
//! let vol = Volume::mounted("/data")?;
//! std::fs::write("/data/hello.txt", b"hello")?;
//! vol.commit()?;
//!
//! let kv = Dict::open("kv", true)?;
//! kv.put("cloud", &"dictionary")?;
//! let v: Option<String> = kv.get("cloud")?;
//! # Ok(()) }
//! ```
//!
//! Your component's own world only needs its exports; this crate brings the
//! `vessel:storage` imports. The generated bindings are private: the types
//! here are the API.
//!
//! [vessel]: https://example.invalid/vessel

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "vessel:storage/imports",
        generate_all,
    });
}

mod dict;
mod error;
mod functions;
mod volume;

pub use dict::{Dict, Lease, Limits, ScanItem, Versioned};
pub use error::{Error, Raised};
pub use functions::{Call, fail, map, remote, remote_json, spawn, spawn_json, starmap};
pub use volume::{
    CommitInfo, Conflicts, DiffChange, DiffEntry, Entry, EntryKind, FileReader, FileWriter,
    History, VersionInfo, Volume,
};
