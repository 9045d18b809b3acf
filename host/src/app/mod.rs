//! Apps: functions named by a manifest, each run in containers drawn from a
//! warm pool, calling each other with `remote`, `spawn` and `map`.
//!
//! [`Runtime`] (an engine plus stores) loads a [`Manifest`] into an
//! [`App`]; loading compiles every component, resolves every export and
//! checks every mount against the store, so a broken app fails at load with
//! the key at fault rather than at its first call. [`Function`] is the
//! handle callers use: from Rust (`call`, `spawn`, `map`), from the CLI, and
//! from guests through the `functions` interface.

mod component;
mod instances;
use crate::error_kind::ErrorKind;
use instances::sweep;
pub mod manifest;
mod pool;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use wasmtime::component::{Component, Linker, Val};

use crate::call::{self, CallArgs, CallError, Export};
use crate::container::{
    self, Container, ContainerConfig, ContainerError, Grant, Grants, GuestStdio, HostState,
};
use crate::engine::{EngineError, VesselEngine};
use crate::error::{WitError, chain};
use crate::functions::{Callee, CalleeError, CalleeRun, CallerCtx};
use crate::storage::Stores;
use crate::volume::VolumeMount;
#[cfg(all(feature = "server", feature = "remote"))]
pub(crate) use component::as_call_error;
pub use component::{call_component, call_loaded_component};
pub use manifest::{FunctionSpec, Manifest, ManifestError, MountSpec};
pub use pool::PoolStats;

/// How deep calls between functions may nest (`f` calls `g` calls ...).
/// Deeper chains are almost always runaway recursion, and every level holds
/// a container.
pub const MAX_CALL_DEPTH: usize = 16;

/// How often the sweeper looks for idle containers to retire or commit.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// Why an app did not load or a call of one of its functions failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{manifest}: `{key}`: {message}")]
    Invalid {
        manifest: PathBuf,
        key: String,
        message: String,
    },
    #[error("{manifest}: `{key}`: {source}")]
    Component {
        manifest: PathBuf,
        key: String,
        source: EngineError,
    },
    #[error("app `{app}` has no function `{name}`; it has: {available}")]
    NoSuchFunction {
        app: String,
        name: String,
        available: String,
    },
    #[error(
        "app `{app}` names no entrypoint; pass --entrypoint with one of: {available}, or set `entrypoint` in [app]"
    )]
    NoEntrypoint { app: String, available: String },
    #[error("`{0}` is a command (wasi:cli/run): run it with arguments, it takes no JSON")]
    IsCommand(String),
    #[error("`{0}` is not a command (wasi:cli/run); call it with JSON arguments")]
    NotCommand(String),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(
        "`{function}` is already running in all of its {max} container(s) further up this call chain ({chain}), so calling it again would wait forever; raise its max_containers"
    )]
    Saturated {
        function: String,
        max: usize,
        chain: String,
    },
    #[error("calls nest more than {MAX_CALL_DEPTH} deep ({chain})")]
    TooDeep { chain: String },
    #[error("the app is shutting down")]
    ShuttingDown,
    #[error("the final commit of `{function}`'s volumes failed: {source}")]
    Retire {
        function: String,
        source: ContainerError,
    },
    #[error("cannot set up the host: {0}")]
    Host(String),
}

impl AppError {
    /// The kind of failure, which every surface maps with one table (see
    /// [`ErrorKind`]): a bad manifest, component or argument is
    /// `invalid-argument`, a function the app does not have `not-found`,
    /// and a call that ran and failed `call-failed`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::Manifest(_)
            | AppError::Invalid { .. }
            | AppError::Component { .. }
            | AppError::NoEntrypoint { .. }
            | AppError::IsCommand(_)
            | AppError::NotCommand(_) => ErrorKind::InvalidArgument,
            AppError::NoSuchFunction { .. } => ErrorKind::NotFound,
            AppError::Call(e) => e.kind(),
            AppError::Saturated { .. } | AppError::TooDeep { .. } | AppError::Retire { .. } => {
                ErrorKind::CallFailed
            }
            AppError::ShuttingDown => ErrorKind::Unavailable,
            AppError::Host(_) => ErrorKind::Io,
        }
    }

    /// Whether the caller got something wrong (manifest, names, arguments)
    /// rather than the call failing while it ran.
    /// What the guest raised, when it ended the call with `fail`.
    pub fn raised(&self) -> Option<&crate::functions::Raised> {
        match self {
            AppError::Call(e) => e.raised(),
            _ => None,
        }
    }

    pub fn is_usage(&self) -> bool {
        self.kind().is_usage()
    }
}

/// An engine and the stores apps use: what embedders create once.
#[derive(Clone, Debug)]
pub struct Runtime {
    engine: VesselEngine,
    stores: Stores,
    work_dir: Option<PathBuf>,
    stdio: GuestStdio,
}

impl Runtime {
    /// A runtime over `engine` and `stores` (use `Stores::default()` for
    /// apps that use no storage).
    pub fn new(engine: VesselEngine, stores: Stores) -> Self {
        Runtime {
            engine,
            stores,
            work_dir: None,
            stdio: GuestStdio::Inherit,
        }
    }

    /// Where the apps' guests read and write stdio (default: this
    /// process's).
    pub fn with_stdio(mut self, stdio: GuestStdio) -> Self {
        self.stdio = stdio;
        self
    }

    /// Where containers keep their scratch and mount directories; it should
    /// be on the blob folder's filesystem, since mounts hard-link blobs.
    pub fn with_work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }

    pub fn engine(&self) -> &VesselEngine {
        &self.engine
    }

    /// Reads the manifest at `path` and loads the app.
    pub fn load_path(&self, path: &std::path::Path) -> Result<App, AppError> {
        self.load(Manifest::from_path(path)?)
    }

    /// Loads an app: compiles its components, resolves its exports, checks
    /// its mounts and creates what it declares `create_if_missing`. Must run
    /// inside a tokio runtime (the app sweeps idle containers in a task).
    pub fn load(&self, manifest: Manifest) -> Result<App, AppError> {
        let invalid = |key: String, message: String| AppError::Invalid {
            manifest: manifest.path.clone(),
            key,
            message,
        };
        if manifest.uses_fuel() && !self.engine.fuel() {
            let f = manifest
                .functions
                .iter()
                .find(|(_, f)| f.fuel.is_some())
                .map(|(n, _)| n.clone())
                .unwrap_or_default();
            return Err(invalid(
                format!("functions.{f}.fuel"),
                "this runtime's engine does not meter fuel (EngineConfig::fuel)".into(),
            ));
        }
        let linker = container::linker(&self.engine).map_err(|e| AppError::Host(chain(&e)))?;
        self.prepare_storage(&manifest)?;
        let mut functions = BTreeMap::new();
        for (name, spec) in &manifest.functions {
            let (component, outcome) =
                self.engine
                    .load(&spec.component)
                    .map_err(|source| AppError::Component {
                        manifest: manifest.path.clone(),
                        key: format!("functions.{name}.component"),
                        source,
                    })?;
            tracing::debug!(function = %name, ?outcome, "component loaded");
            let export = if spec.is_command() {
                if !exports_command(&self.engine, &component) {
                    return Err(invalid(
                        format!("functions.{name}.export"),
                        format!(
                            "{} does not export wasi:cli/run, so it cannot run as a command",
                            spec.component.display()
                        ),
                    ));
                }
                None
            } else {
                let component_name = spec.component.display().to_string();
                Some(
                    call::find_export(&self.engine, &component, &component_name, &spec.export)
                        .map_err(|e| invalid(format!("functions.{name}.export"), e.to_string()))?,
                )
            };
            if (!spec.mounts.is_empty() || !spec.volumes.is_empty())
                && self.stores.volumes.is_none()
            {
                return Err(AppError::Host(format!(
                    "function `{name}` uses volumes but the runtime has no volume store"
                )));
            }
            if !spec.dicts.is_empty() && self.stores.dicts.is_none() {
                return Err(AppError::Host(format!(
                    "function `{name}` uses dicts but the runtime has no dict store"
                )));
            }
            let config = ContainerConfig {
                memory_limit: usize::try_from(spec.memory_mib)
                    .ok()
                    .and_then(|m| m.checked_mul(1 << 20))
                    .ok_or_else(|| {
                        invalid(
                            format!("functions.{name}.memory"),
                            "too large for this machine".into(),
                        )
                    })?,
                disk_limit: spec.disk_mib << 20,
                timeout: Some(spec.timeout),
                stores: self.stores.clone(),
                grants: Grants {
                    dicts: Grant::Only(spec.dicts.clone()),
                    volumes: Grant::Only(spec.volumes.clone()),
                },
                volume_mounts: spec
                    .mounts
                    .iter()
                    .map(|m| VolumeMount {
                        guest: m.guest.clone(),
                        volume: m.volume.clone(),
                        read_only: m.read_only,
                        version: m.version,
                        conflicts: m.conflicts,
                    })
                    .collect(),
                background_commit: spec.commit_every,
                work_dir: self.work_dir.clone(),
                fuel: spec.fuel,
                stdio: self.stdio.clone(),
                ..ContainerConfig::default()
            };
            functions.insert(
                name.clone(),
                Arc::new(FunctionState {
                    name: name.clone(),
                    spec: spec.clone(),
                    component,
                    export,
                    config,
                    pool: pool::Pool::new(spec.max_containers),
                }),
            );
        }
        Ok(self.start_app(
            manifest.name.clone(),
            manifest.entrypoint.clone(),
            linker,
            functions,
            manifest.unreachable_names(),
            true,
        ))
    }

    /// An app of `functions`, with its idle sweeper running. `calls`: its
    /// guests may call its other functions (an app from a manifest), or
    /// run on their own (a bare component).
    fn start_app(
        &self,
        name: String,
        entrypoint: Option<String>,
        linker: Linker<HostState>,
        functions: BTreeMap<String, Arc<FunctionState>>,
        warnings: Vec<String>,
        calls: bool,
    ) -> App {
        let inner = Arc::new(AppInner {
            name,
            entrypoint,
            engine: self.engine.clone(),
            linker,
            functions,
            warnings,
            calls,
            closing: AtomicBool::new(false),
            sweeper: std::sync::OnceLock::new(),
        });
        if let Some(volumes) = &self.stores.volumes {
            let weak: Weak<AppInner> = Arc::downgrade(&inner);
            let holder: Weak<dyn crate::storage::volume::pins::IdleMounts> = weak;
            volumes.mounts().add_idle_holder(holder);
        }
        let sweeper = tokio::spawn(sweep(Arc::downgrade(&inner)));
        let _ = inner.sweeper.set(AbortOnDrop(sweeper));
        App { inner }
    }

    /// Checks that every mounted volume exists and creates the volumes and
    /// dicts declared `create_if_missing`.
    fn prepare_storage(&self, manifest: &Manifest) -> Result<(), AppError> {
        let invalid = |key: String, message: String| AppError::Invalid {
            manifest: manifest.path.clone(),
            key,
            message,
        };
        if let Some(volumes) = &self.stores.volumes {
            for (name, create) in &manifest.volumes {
                if *create {
                    volumes
                        .create(name)
                        .map_err(|e| invalid(format!("volumes.{name}"), e.to_string()))?;
                }
            }
            for (fname, f) in &manifest.functions {
                for m in &f.mounts {
                    if let Err(e) = volumes.info(&m.volume) {
                        let key = format!("functions.{fname}.mounts.\"{}\"", m.guest);
                        return Err(match e {
                            crate::storage::volume::VolumeError::NotFound(_) => invalid(
                                key,
                                format!(
                                    "volume `{0}` does not exist; create it with `vessel volume create {0}` or declare it with [volumes.{0}] create_if_missing = true",
                                    m.volume
                                ),
                            ),
                            e => invalid(key, e.to_string()),
                        });
                    }
                }
            }
        }
        if let Some(dicts) = &self.stores.dicts {
            for (name, create) in &manifest.dicts {
                if *create {
                    dicts
                        .create(name)
                        .map_err(|e| invalid(format!("dicts.{name}"), e.to_string()))?;
                }
            }
        }
        Ok(())
    }
}

fn exports_command(engine: &VesselEngine, component: &Component) -> bool {
    component
        .component_type()
        .exports(engine.engine())
        .any(|(name, _)| name.starts_with("wasi:cli/run@"))
}

/// Aborts a task when the last handle goes.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A loaded app. Cheap to clone; the app shuts down (idle containers make
/// their final commits) when the last clone of it and of its [`Function`]s
/// is dropped, or explicitly with [`App::shutdown`].
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.inner.name)
            .field("functions", &self.inner.functions.keys())
            .finish_non_exhaustive()
    }
}

impl App {
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The names of the app's functions, sorted.
    pub fn function_names(&self) -> Vec<String> {
        self.inner.functions.keys().cloned().collect()
    }

    /// Problems worth a warning that do not stop the app, such as declared
    /// volumes or dicts no function can reach.
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// The function called `name`.
    pub fn function(&self, name: &str) -> Result<Function, AppError> {
        let state = self.inner.function(name)?;
        Ok(Function {
            app: self.inner.clone(),
            state,
        })
    }

    /// The entrypoint: `name` if given, else the manifest's `entrypoint`,
    /// else the only function of a one-function app.
    pub fn entrypoint(&self, name: Option<&str>) -> Result<Function, AppError> {
        if let Some(n) = name.or(self.inner.entrypoint.as_deref()) {
            return self.function(n);
        }
        match self.inner.functions.keys().collect::<Vec<_>>().as_slice() {
            [only] => self.function(only),
            _ => Err(AppError::NoEntrypoint {
                app: self.inner.name.clone(),
                available: self.function_names().join(", "),
            }),
        }
    }

    /// Stops taking calls, retires every idle container with a final commit,
    /// and reports the commits that failed. Calls still running finish and
    /// retire their containers as they end.
    pub async fn shutdown(&self) -> Result<(), AppError> {
        self.inner.closing.store(true, Ordering::SeqCst);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.retire_idle())
            .await
            .map_err(|e| AppError::Host(format!("shutdown task failed: {e}")))?
    }
}

/// What the app holds; containers reach it weakly through their
/// [`CallerCtx`].
pub struct AppInner {
    name: String,
    entrypoint: Option<String>,
    engine: VesselEngine,
    linker: Linker<HostState>,
    functions: BTreeMap<String, Arc<FunctionState>>,
    warnings: Vec<String>,
    /// Whether its guests may call its other functions (false for a bare
    /// component, whose guest runs on its own).
    calls: bool,
    closing: AtomicBool,
    /// Stopped when the app goes.
    sweeper: std::sync::OnceLock<AbortOnDrop>,
}

impl std::fmt::Debug for AppInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppInner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for AppInner {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Err(e) = self.retire_idle() {
            tracing::warn!(app = %self.name, error = %e, "final commit at shutdown failed");
        }
    }
}

struct FunctionState {
    name: String,
    spec: FunctionSpec,
    component: Component,
    export: Option<Export>,
    config: ContainerConfig,
    pool: pool::Pool,
}

impl AppInner {
    fn function(&self, name: &str) -> Result<Arc<FunctionState>, AppError> {
        self.functions
            .get(name)
            .cloned()
            .ok_or_else(|| AppError::NoSuchFunction {
                app: self.name.clone(),
                name: name.to_owned(),
                available: self
                    .functions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn retire_idle(&self) -> Result<(), AppError> {
        let mut first_error = None;
        for f in self.functions.values() {
            for c in f.pool.drain() {
                if let Err(source) = f.pool.retire(c) {
                    tracing::warn!(function = %f.name, error = %source, "final commit failed");
                    first_error.get_or_insert(AppError::Retire {
                        function: f.name.clone(),
                        source,
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Checks a call from a guest (`remote` or `spawn`) and returns the
    /// future that runs it, which resolves to the callee's JSON result text.
    /// Errors the caller can see right away (no such function, bad JSON,
    /// arguments that do not fit) come back now.
    pub(crate) fn prepare_remote(
        app: &Arc<AppInner>,
        function: &str,
        args_json: &str,
        chain: &[String],
    ) -> Result<impl Future<Output = Result<String, CalleeError>> + Send + 'static, WitError> {
        let state = app
            .function(function)
            .map_err(|e| WitError::NotFound(e.to_string()))?;
        let Some(export) = &state.export else {
            return Err(WitError::InvalidArgument(
                AppError::IsCommand(function.to_owned()).to_string(),
            ));
        };
        let args: Json = serde_json::from_str(args_json).map_err(|e| {
            WitError::InvalidArgument(format!("arguments for `{function}` are not JSON: {e}"))
        })?;
        let params = call::build_params(
            export,
            &CallArgs {
                args: Some(args),
                flags: Vec::new(),
            },
        )
        .map_err(|e| WitError::InvalidArgument(e.to_string()))?;
        check_chain(&state, chain).map_err(|e| WitError::CallFailed(e.to_string()))?;
        let app = app.clone();
        let chain = chain.to_vec();
        Ok(async move {
            match state.invoke(&app, params, chain).await {
                Ok(json) => Ok(json.unwrap_or(Json::Null).to_string()),
                Err(e) => Err(CalleeError {
                    raised: e.raised().cloned(),
                    error: WitError::CallFailed(e.to_string()),
                }),
            }
        })
    }
}

impl Callee for AppInner {
    fn prepare(
        self: Arc<Self>,
        function: &str,
        args_json: &str,
        chain: &[String],
    ) -> Result<CalleeRun, WitError> {
        Ok(Box::pin(AppInner::prepare_remote(
            &self, function, args_json, chain,
        )?))
    }
}

/// Refuses calls that could never start: too deep, or waiting for a
/// container that only the waiting chain itself could free.
fn check_chain(state: &FunctionState, chain: &[String]) -> Result<(), AppError> {
    let render = || {
        chain
            .iter()
            .chain(std::iter::once(&state.name))
            .cloned()
            .collect::<Vec<_>>()
            .join(" → ")
    };
    if chain.len() >= MAX_CALL_DEPTH {
        return Err(AppError::TooDeep { chain: render() });
    }
    let held = chain.iter().filter(|f| **f == state.name).count();
    if held >= state.pool.max {
        return Err(AppError::Saturated {
            function: state.name.clone(),
            max: state.pool.max,
            chain: render(),
        });
    }
    Ok(())
}

/// A function of a loaded app: call it, spawn it, or map it over inputs.
#[derive(Clone)]
pub struct Function {
    app: Arc<AppInner>,
    state: Arc<FunctionState>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.state.name)
            .finish_non_exhaustive()
    }
}

impl Function {
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The function's manifest entry.
    pub fn spec(&self) -> &FunctionSpec {
        &self.state.spec
    }

    /// Whether this function is a `wasi:cli/run` command.
    pub fn is_command(&self) -> bool {
        self.state.export.is_none()
    }

    /// The export's signature, `name(a: s32) -> s32`, for help and errors.
    pub fn signature(&self) -> Option<String> {
        self.state.export.as_ref().map(Export::signature)
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.state.pool.stats()
    }

    /// Calls the function with `args` (a JSON array of positional arguments
    /// or an object keyed by parameter name) and returns its JSON result
    /// (`null` for a function without results).
    pub async fn call(&self, args: Json) -> Result<Json, AppError> {
        let out = self
            .call_args(&CallArgs {
                args: Some(args),
                flags: Vec::new(),
            })
            .await?;
        Ok(out.unwrap_or(Json::Null))
    }

    /// [`call`](Self::call) with arguments as the CLI takes them (a document
    /// plus `--NAME VALUE` flags); `None` for a function without results.
    pub async fn call_args(&self, args: &CallArgs) -> Result<Option<Json>, AppError> {
        let export = self
            .state
            .export
            .as_ref()
            .ok_or_else(|| AppError::IsCommand(self.state.name.clone()))?;
        let params = call::build_params(export, args)?;
        self.state
            .clone()
            .invoke(&self.app, params, Vec::new())
            .await
    }

    /// Starts a call in the background.
    pub fn spawn(&self, args: Json) -> FunctionCall {
        let f = self.clone();
        FunctionCall {
            handle: tokio::spawn(async move { f.call(args).await }),
        }
    }

    /// Calls the function once per input, concurrently (as many at a time
    /// as its `max_containers` allows), and returns the results in input
    /// order. Each input is the function's single argument, as in Modal's
    /// `f.map(inputs)`; see [`starmap`](Self::starmap) for several.
    pub async fn map<I>(&self, inputs: I) -> Vec<Result<Json, AppError>>
    where
        I: IntoIterator<Item = Json>,
    {
        self.starmap(inputs.into_iter().map(|v| Json::Array(vec![v])))
            .await
    }

    /// Like [`map`](Self::map), but each input is a whole argument document
    /// (an array of positional arguments or an object by name), as for
    /// [`call`](Self::call).
    pub async fn starmap<I>(&self, inputs: I) -> Vec<Result<Json, AppError>>
    where
        I: IntoIterator<Item = Json>,
    {
        let calls: Vec<FunctionCall> = inputs.into_iter().map(|a| self.spawn(a)).collect();
        let mut out = Vec::with_capacity(calls.len());
        for c in calls {
            out.push(c.get().await);
        }
        out
    }

    /// Runs a command function with `argv` (after the program name) and
    /// returns its exit status.
    pub async fn run_command(
        &self,
        argv: Vec<String>,
        inherit_stdin: bool,
    ) -> Result<i32, AppError> {
        if self.state.export.is_some() {
            return Err(AppError::NotCommand(self.state.name.clone()));
        }
        if self.app.closing.load(Ordering::SeqCst) {
            return Err(AppError::ShuttingDown);
        }
        self.state.run_command(&self.app, argv, inherit_stdin).await
    }
}

/// A call started by [`Function::spawn`].
#[derive(Debug)]
pub struct FunctionCall {
    handle: tokio::task::JoinHandle<Result<Json, AppError>>,
}

impl FunctionCall {
    /// Waits for the call's result.
    pub async fn get(self) -> Result<Json, AppError> {
        self.handle
            .await
            .unwrap_or_else(|e| Err(AppError::Host(format!("the call's task failed: {e}"))))
    }
}
