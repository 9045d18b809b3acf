//! vessel: a wasmtime host in which sandboxed WebAssembly components run as
//! functions, with Modal-style storage (volumes and dicts) handed to them as
//! capabilities defined in the `vessel:storage` WIT package.
//!
//! Modules, one per concern (ARCHITECTURE.md draws the layers and the
//! direction of their imports):
//! - [`app`]: manifests, warm pools, `Runtime` → `App` → `Function`.
//! - [`call`]: typed calls of exports, JSON ↔ component values.
//! - [`container`]: one instance with its store, limits, scratch dir, mounts.
//! - [`volume`], [`dict`], [`functions`]: the capability interfaces;
//!   [`keyvalue`]: the standard `wasi:keyvalue` over the dicts.
//! - [`engine`]: the shared wasmtime engine, timeouts and the compile cache.
//! - [`storage`]: the backends behind traits (embedded: sled and a blob
//!   folder; `remote`: PostgreSQL and S3).
//! - [`service`]: the operations on stores that the CLI and the HTTP API
//!   perform (volume upload, listing, gc; dict administration).
//! - `server`, `client` (feature `server`): `vessel serve`'s HTTP API, the
//!   owner's control socket, and the Rust client of both.
//! - `cli` (feature `cli`): the `vessel` command line (the binary only
//!   parses and calls).
//! - [`bindings`]: the one `bindgen!`; [`error`]: errors across the
//!   boundary; [`error_kind`]: the one vocabulary of failure kinds; [`blocking`]: blocking work from async code; [`private`]:
//!   what vessel makes on disk is 0700/0600, its user's alone.
//!
//! Features: `cli`, `server` and `remote` are on by default; an embedder
//! who wants the runtime alone sets `default-features = false`.
//!
//! ## Embedding the host in a server
//!
//! Make one [`Runtime`](app::Runtime) at start-up, load each app once, and
//! call its functions from request handlers: warm containers are shared
//! between requests, concurrent requests get containers of their own.
//!
//! ```
//! use serde_json::{Value, json};
//! use vessel_host::app::{App, AppError, Runtime};
//! use vessel_host::engine::{EngineConfig, VesselEngine};
//! use vessel_host::service::Service;
//! use vessel_host::storage::embedded::EmbeddedOptions;
//!
//! /// What a request handler does: pick the function, pass the JSON body.
//! async fn handle(app: &App, function: &str, body: Value) -> Result<Value, AppError> {
//!     app.function(function)?.call(body).await
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! # // A tiny component in the text format, so this example needs no build.
//! # std::fs::write(dir.path().join("add.wat"), r#"(component
//! #   (core module $m (func (export "add") (param i32 i32) (result i32)
//! #     local.get 0 local.get 1 i32.add))
//! #   (core instance $i (instantiate $m))
//! #   (func (export "add") (param "a" s32) (param "b" s32) (result s32)
//! #     (canon lift (core func $i "add"))))"#)?;
//! std::fs::write(
//!     dir.path().join("vessel.toml"),
//!     "[functions.add]\ncomponent = \"add.wat\"\nmax_containers = 4\n",
//! )?;
//!
//! // Once, at start-up: the stores, the engine and the app.
//! let service = Service::open_embedded(&dir.path().join("data"), EmbeddedOptions::default())?;
//! let engine = VesselEngine::new(EngineConfig::default())?;
//! let runtime = Runtime::new(engine, service.stores.clone());
//!
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     let app = runtime.load_path(dir.path())?;
//!     // Per request.
//!     assert_eq!(handle(&app, "add", json!([2, 3])).await?, json!(5));
//!     assert_eq!(handle(&app, "add", json!({"a": 1, "b": 1})).await?, json!(2));
//!     // Many inputs at once, each in a container of its own.
//!     let add = app.function("add")?;
//!     let sums = add.starmap((0..8).map(|i| json!([i, i]))).await;
//!     assert_eq!(sums.len(), 8);
//!     // At shutdown: idle containers make their final commits.
//!     app.shutdown().await?;
//!     Ok::<_, AppError>(())
//! })?;
//! # Ok(()) }
//! ```

pub mod app;
pub mod bindings;
pub mod blocking;
#[cfg(feature = "cli")]
pub mod build;
pub mod call;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "server")]
pub mod client;
pub mod container;
pub mod dict;
pub mod engine;
pub mod error;
pub mod error_kind;
pub mod functions;
pub mod grant;
pub mod keyvalue;
pub mod metrics;
#[cfg(all(feature = "server", feature = "remote"))]
pub mod owner;
pub mod private;
#[cfg(feature = "server")]
pub mod server;
pub mod service;
pub mod storage;
pub mod volume;
pub mod wit;

/// docs/clients.md, so its Rust examples compile as doctests (the page's
/// commands run in tests/it/python_client.rs).
#[cfg(all(doctest, feature = "server"))]
#[doc = include_str!("../../docs/clients.md")]
pub struct ClientsDoc;
