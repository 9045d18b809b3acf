//! vessel: a wasmtime host in which sandboxed WebAssembly components run as
//! functions, with Modal-style storage (volumes and dicts) handed to them as
//! capabilities defined in the `vessel:storage` WIT package.
//!
//! Modules, one per concern:
//! - [`engine`]: the shared wasmtime engine, timeouts and the compile cache.
//! - [`container`]: one instance with its store, limits, scratch dir, mounts.
//! - [`call`]: typed calls of exports, JSON ↔ component values.
//! - [`volume`], [`dict`], [`functions`]: the capability interfaces;
//!   [`keyvalue`]: the standard `wasi:keyvalue` over the dicts.
//! - [`bindings`]: the one `bindgen!`; [`error`]: errors across the boundary.
//! - [`cli`]: the `vessel` command line (the binary only parses and calls).

pub mod bindings;
pub mod call;
pub mod cli;
pub mod container;
pub mod dict;
pub mod engine;
pub mod error;
pub mod functions;
pub mod keyvalue;
pub mod service;
pub mod storage;
pub mod volume;
