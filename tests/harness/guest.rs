//! A guest: a component loaded on an engine ([`Program`]) and started in a
//! container of its own ([`Guest`]), called by export name with JSON
//! arguments the way the CLI and apps call it (find the export, convert the
//! arguments to its types, call, convert the result back); or called once
//! in a container of its own ([`call_once`]), as `vessel call` does.

use std::path::Path;

use serde_json::Value;
use vessel_host::app::call_component;
use vessel_host::call::{CallArgs, CallError, Export, build_params, find_export, to_json};
use vessel_host::container::{Container, ContainerConfig, HostState, linker};
use vessel_host::engine::VesselEngine;
use wasmtime::component::{Component, Func, Instance, Linker};

/// A component loaded on an engine, with the linker its containers use.
/// Cheap to clone: the engine, linker and component are shared.
#[derive(Clone)]
pub struct Program {
    engine: VesselEngine,
    linker: Linker<HostState>,
    component: Component,
    /// Names the component in errors.
    name: String,
}

impl Program {
    /// Loads the component at `path` (a .wasm or .wat file) on `engine`.
    pub fn load(engine: &VesselEngine, path: &Path) -> Program {
        let linker = linker(engine).unwrap_or_else(|e| panic!("the linker: {e:#}"));
        Program::with_linker(engine, &linker, path)
    }

    /// [`load`](Self::load) with a linker made before (a host makes one
    /// for all its programs).
    pub fn with_linker(engine: &VesselEngine, linker: &Linker<HostState>, path: &Path) -> Program {
        let (component, _) = engine
            .load(path)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Program {
            engine: engine.clone(),
            linker: linker.clone(),
            component,
            name,
        }
    }

    pub fn engine(&self) -> &VesselEngine {
        &self.engine
    }

    /// The export `name` with its parameter and result types.
    pub fn export(&self, name: &str) -> Export {
        find_export(&self.engine, &self.component, &self.name, name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// A new container made with `config`, with the program instantiated.
    pub async fn start(&self, config: &ContainerConfig) -> Guest {
        let mut c = Container::new(&self.engine, config)
            .unwrap_or_else(|e| panic!("cannot make a container for {}: {e}", self.name));
        let instance = c
            .instantiate(&self.linker, &self.component)
            .await
            .unwrap_or_else(|e| panic!("cannot instantiate {}: {e}", self.name));
        Guest {
            c,
            instance,
            program: self.clone(),
        }
    }

    /// Runs the program as a `wasi:cli/run` command with `argv` (after
    /// argv[0]) in a new container made with `config`; its exit status.
    pub async fn run_command(&self, config: &ContainerConfig, argv: &[&str]) -> i32 {
        let mut config = config.clone();
        config.args = std::iter::once(self.name.clone())
            .chain(argv.iter().map(|a| (*a).to_owned()))
            .collect();
        let mut c = Container::new(&self.engine, &config)
            .unwrap_or_else(|e| panic!("cannot make a container for {}: {e}", self.name));
        c.run_command(&self.linker, &self.component)
            .await
            .unwrap_or_else(|e| panic!("{} failed: {e}", self.name))
    }

    /// The loaded component.
    pub fn component(&self) -> &Component {
        &self.component
    }
}

/// One started container of a [`Program`].
pub struct Guest {
    /// The container, for what a test checks beside calls (its memory, its
    /// final commit at `shutdown`).
    pub c: Container,
    instance: Instance,
    program: Program,
}

impl Guest {
    /// The instance's export `name`, to call with component values.
    pub fn func(&mut self, name: &str) -> Func {
        self.instance
            .get_func(self.c.store_mut(), name)
            .unwrap_or_else(|| panic!("{} has no export `{name}`", self.program.name))
    }

    /// Calls export `name` with JSON `args` (an array of the parameters, or
    /// an object by name); the result as JSON (`null` for none), or a
    /// container error (trap, timeout) as its message.
    pub async fn try_call(&mut self, name: &str, args: Value) -> Result<Value, String> {
        let export = self.program.export(name);
        let params = build_params(
            &export,
            &CallArgs {
                args: Some(args),
                flags: vec![],
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", self.program.name));
        let func = self
            .instance
            .get_func(self.c.store_mut(), export.index)
            .unwrap_or_else(|| panic!("export `{name}` vanished after instantiation"));
        let r = self
            .c
            .call(func, &params, usize::from(export.result.is_some()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.as_ref().map(to_json).unwrap_or(Value::Null))
    }

    /// [`try_call`](Self::try_call) that must not fail.
    pub async fn call(&mut self, name: &str, args: Value) -> Value {
        self.try_call(name, args)
            .await
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", self.program.name))
    }
}

/// Calls export `export` of test program `program` with JSON `args` the
/// way `vessel call` does: in a fresh container made with `config`, which
/// ends (with its final commits) after the call. `None` for an export
/// without results.
pub async fn call_once(
    engine: &VesselEngine,
    program: &str,
    export: &str,
    args: Value,
    config: &ContainerConfig,
) -> Result<Option<Value>, CallError> {
    call_component(
        engine,
        &crate::guest(program),
        export,
        &CallArgs {
            args: Some(args),
            flags: vec![],
        },
        config,
    )
    .await
}
