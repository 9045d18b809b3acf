//! A bare component as an app of one function: what `vessel call x.wasm f`
//! and `vessel run x.wasm` carry out, through the same function state,
//! pool and containers as every app function (the only path that builds
//! containers). Its container comes whole from the caller (the limits and
//! mounts of a command line), it keeps no container warm unless asked (a
//! data dir's owner keeps them for forwarded calls), and its guest is
//! told it runs on its own: calls to other functions need an app.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::app::manifest::COMMAND_EXPORT;

impl Runtime {
    /// Loads the component at `path` as an app whose one function, named
    /// `name`, is export `export` (or, with [`COMMAND_EXPORT`], the
    /// component's `wasi:cli/run`), run in containers made with `config`.
    /// A component that does not load, or lacks the export, is the
    /// [`CallError`] `vessel call` reports for it.
    pub fn load_component(
        &self,
        path: &Path,
        name: &str,
        export: &str,
        config: ContainerConfig,
    ) -> Result<App, AppError> {
        let (component, outcome) = self.engine.load(path).map_err(CallError::from)?;
        tracing::debug!(?outcome, path = %path.display(), "component loaded");
        self.app_of_component(component, path, name, export, config)
    }

    /// [`load_component`](Self::load_component) for a component already
    /// loaded from `path`.
    pub fn app_of_component(
        &self,
        component: Component,
        path: &Path,
        name: &str,
        export: &str,
        config: ContainerConfig,
    ) -> Result<App, AppError> {
        self.app_of_component_kept(component, path, name, export, config, Duration::ZERO)
    }

    /// [`app_of_component`](Self::app_of_component) whose container stays
    /// warm for `idle_timeout` after a call, for the next call to reuse.
    /// Each call still sees what a fresh container would: its mounts start
    /// at their volumes' heads and it commits before it returns.
    pub fn app_of_component_kept(
        &self,
        component: Component,
        path: &Path,
        name: &str,
        export: &str,
        config: ContainerConfig,
        idle_timeout: Duration,
    ) -> Result<App, AppError> {
        let resolved = if export == COMMAND_EXPORT {
            None
        } else {
            let component_name = path.display().to_string();
            Some(call::find_export(
                &self.engine,
                &component,
                &component_name,
                export,
            )?)
        };
        let linker = container::linker(&self.engine).map_err(|e| AppError::Host(chain(&e)))?;
        let spec = FunctionSpec {
            component: path.to_owned(),
            export: export.to_owned(),
            mounts: config
                .volume_mounts
                .iter()
                .map(|m| MountSpec {
                    guest: m.guest.clone(),
                    volume: m.volume.clone(),
                    read_only: m.read_only,
                    version: m.version,
                    conflicts: m.conflicts,
                })
                .collect(),
            dicts: BTreeSet::new(),
            volumes: BTreeSet::new(),
            timeout: config.timeout.unwrap_or(Duration::MAX),
            memory_mib: u64::try_from(config.memory_limit >> 20).unwrap_or(u64::MAX),
            disk_mib: config.disk_limit >> 20,
            max_containers: 1,
            // Without a keep, the container ends, with its final commits,
            // after each call.
            idle_timeout,
            commit_every: config.background_commit,
            fuel: config.fuel,
            sync_mounts_each_call: !idle_timeout.is_zero(),
        };
        let state = FunctionState {
            name: name.to_owned(),
            spec,
            component,
            export: resolved,
            config,
            pool: pool::Pool::new(1),
        };
        Ok(self.start_app(
            name.to_owned(),
            None,
            linker,
            BTreeMap::from([(name.to_owned(), Arc::new(state))]),
            Vec::new(),
            false,
        ))
    }
}

/// Calls export `export` of the component at `path` with `args`, in a
/// fresh container made with `config` that ends (with its final commits)
/// after the call, as `vessel call` does; `None` for an export without
/// results. Runs inside a tokio runtime.
pub async fn call_component(
    engine: &VesselEngine,
    path: &Path,
    export: &str,
    args: &CallArgs,
    config: &ContainerConfig,
) -> Result<Option<Json>, CallError> {
    let (component, outcome) = engine.load(path)?;
    tracing::debug!(?outcome, path = %path.display(), "component loaded");
    call_loaded_component(engine, component, path, export, args, config.clone()).await
}

/// [`call_component`] for a component already loaded from `path`.
pub async fn call_loaded_component(
    engine: &VesselEngine,
    component: Component,
    path: &Path,
    export: &str,
    args: &CallArgs,
    config: ContainerConfig,
) -> Result<Option<Json>, CallError> {
    let app = Runtime::new(engine.clone(), config.stores.clone())
        .app_of_component(component, path, export, export, config)
        .map_err(as_call_error)?;
    let result = match app.function(export) {
        Ok(f) => f.call_args(args).await,
        Err(e) => Err(e),
    };
    let shutdown = app.shutdown().await;
    let result = result.map_err(as_call_error)?;
    shutdown.map_err(as_call_error)?;
    Ok(result)
}

/// An app's error for a bare component, as the call reports it: a failed
/// final commit is the call's container failing, as before apps.
pub(crate) fn as_call_error(e: AppError) -> CallError {
    match e {
        AppError::Call(e) => e,
        AppError::Retire { function, source } => CallError::Container { function, source },
        e => CallError::Host(e.to_string()),
    }
}
