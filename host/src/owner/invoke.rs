//! Calls and runs: the container options of a request, mounts, loading a
//! component or an app, and running it here or in the data dir's owner.

use super::home::{forward_or_hold, owner_to_forward};
use super::request::Request;
use super::*;
use crate::app::manifest::COMMAND_EXPORT;
use crate::app::{AppError, as_call_error};
use crate::container::ContainerError;

pub(crate) fn container_config(limits: &Limits) -> Result<ContainerConfig, Failure> {
    // The operator lifts the deadline with `--timeout 0`; by default a bare
    // component gets an app function's.
    let timeout = match limits.timeout {
        None => Some(crate::container::DEFAULT_TIMEOUT),
        Some(0.0) => None,
        Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(Failure::usage(format!(
                "--timeout must be a positive number of seconds, or 0 for no limit, got {t}"
            )));
        }
    };
    let mib = limits.memory.unwrap_or(512);
    let memory = usize::try_from(mib)
        .ok()
        .and_then(|m| m.checked_mul(1 << 20))
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            Failure::usage(format!(
                "--memory must be between 1 and {} MiB, got {mib}",
                usize::MAX >> 20,
            ))
        })?;
    let disk_mib = limits.disk.unwrap_or(DEFAULT_DISK_MIB);
    if disk_mib == 0 || disk_mib > MAX_DISK_MIB {
        return Err(Failure::usage(format!(
            "--disk must be between 1 and {MAX_DISK_MIB} MiB, got {disk_mib}"
        )));
    }
    let mut volume_mounts = Vec::new();
    for spec in &limits.volumes {
        volume_mounts.push(parse_volume_mount(spec).map_err(Failure::usage)?);
    }
    let background_commit = match limits.commit_every.unwrap_or(5.0) {
        0.0 => None,
        t if t.is_finite() && t > 0.0 && t < 1e9 => Some(Duration::from_secs_f64(t)),
        t => {
            return Err(Failure::usage(format!(
                "--commit-every must be a positive number of seconds or 0, got {t}"
            )));
        }
    };
    Ok(ContainerConfig {
        memory_limit: memory,
        disk_limit: disk_mib << 20,
        timeout,
        volume_mounts,
        background_commit,
        ..ContainerConfig::default()
    })
}

/// Parses `VOLUME[@VERSION]:GUEST_PATH[:ro|:fail]`; a version is mounted
/// read-only, `:ro` or not. `:fail` sets the conflict policy
/// [`Conflicts::Fail`](crate::volume::Conflicts::Fail).
pub fn parse_volume_mount(spec: &str) -> Result<VolumeMount, String> {
    let (rest, read_only, conflicts) = if let Some(s) = spec.strip_suffix(":ro") {
        (s, true, crate::volume::Conflicts::LastWriterWins)
    } else if let Some(s) = spec.strip_suffix(":fail") {
        (s, false, crate::volume::Conflicts::Fail)
    } else {
        (spec, false, crate::volume::Conflicts::LastWriterWins)
    };
    let (volume, guest) = rest
        .split_once(':')
        .ok_or_else(|| format!("--volume {spec}: expected VOLUME:GUEST_PATH"))?;
    if volume.is_empty() {
        return Err(format!("--volume {spec}: VOLUME is empty"));
    }
    if !guest.starts_with('/') {
        return Err(format!("--volume {spec}: GUEST_PATH must be absolute"));
    }
    let at = crate::service::volume::VolumeRef::parse(volume)
        .map_err(|e| format!("--volume {spec}: {e}"))?;
    Ok(VolumeMount {
        guest: guest.to_owned(),
        volume: at.name.to_owned(),
        read_only: read_only || at.version.is_some(),
        version: at.version,
        conflicts,
    })
}

/// Opens the data dir's stores and points the container at them, when the
/// container needs them: it mounts volumes or the component imports dicts or
/// volumes. Only one process can hold a data dir's store, so components that
/// use no storage must not take it (parallel `vessel call`s of those work).
pub(crate) fn attach_stores(
    home: &Home,
    engine: &VesselEngine,
    component: &Component,
    config: &mut ContainerConfig,
    held: &mut Option<Owner>,
) -> Result<(), Failure> {
    if config.volume_mounts.is_empty() && !call::uses_storage(engine, component) {
        return Ok(());
    }
    let owner = held.insert(Owner::open(home)?);
    config.stores = owner.service.stores.clone();
    config.work_dir = Some(home.dir.join("containers"));
    Ok(())
}

/// Carries out a call: in the data dir's owner when another process
/// holds it, else here (opening the store only if the call needs it).
/// Returns the exit code; the result goes to `inv`'s console.
pub async fn call(home: &Home, mut cmd: CallRequest, inv: &Invocation) -> Result<u8, Failure> {
    let owner = owner_to_forward(home);
    // Only this process can read its stdin.
    if owner.is_some() && cmd.args_file.as_deref() == Some(Path::new("-")) {
        cmd.args = Some(
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| Failure::usage(format!("--args-file -: cannot read stdin: {e}")))?,
        );
        cmd.args_file = None;
    }
    let sent = Request::Call(cmd.clone());
    forward_or_hold(home, owner, sent, false, async |held| {
        call_held(home, cmd, inv, held).await
    })
    .await
}

/// The arguments of a call, from JSON text, a file or `--NAME VALUE`
/// parameters.
pub(crate) fn call_args(cmd: &CallRequest, inv: &Invocation) -> Result<CallArgs, Failure> {
    let args = match (&cmd.args, &cmd.args_file) {
        (Some(text), _) => Some(
            serde_json::from_str::<Json>(text)
                .map_err(|e| Failure::usage(format!("--args is not valid JSON: {e}")))?,
        ),
        (None, Some(file)) => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| Failure::usage(format!("--args-file -: cannot read stdin: {e}")))?
            } else {
                std::fs::read_to_string(inv.path(file))
                    .map_err(|e| Failure::usage(format!("--args-file {}: {e}", file.display())))?
            };
            Some(serde_json::from_str::<Json>(&text).map_err(|e| {
                Failure::usage(format!(
                    "--args-file {} is not valid JSON: {e}",
                    file.display()
                ))
            })?)
        }
        (None, None) => None,
    };
    let flags =
        call::parse_param_flags_in(&cmd.params, inv.cwd.as_deref()).map_err(Failure::usage)?;
    Ok(CallArgs { args, flags })
}

pub(crate) async fn call_held(
    home: &Home,
    cmd: CallRequest,
    inv: &Invocation,
    held: &mut Option<Owner>,
) -> Result<u8, Failure> {
    let args = call_args(&cmd, inv)?;
    let path = inv.path(&cmd.component);
    if is_app(&path) {
        if let Some(flag) = cmd.limits.first_given() {
            return Err(app_flag(flag));
        }
        let app = load_app(home, &path, inv, held).await?;
        let function = app.function(&cmd.function).map_err(Failure::from)?;
        let result = function.call_args(&args).await;
        let shutdown = app.shutdown().await;
        let result = result.map_err(Failure::from)?;
        shutdown.map_err(Failure::from)?;
        if let Some(json) = result {
            inv.console.out_line(&json.to_string()).await;
        }
        return Ok(0);
    }
    let mut config = container_config(&cmd.limits)?;
    config.stdio = inv.console.guest_stdio();
    let engine = engine_for(home, false)?;
    let (component, outcome) = engine.load(&path).map_err(CallError::from)?;
    tracing::debug!(?outcome, path = %cmd.component.display(), "component loaded");
    attach_stores(home, &engine, &component, &mut config, held)?;
    // A bare component runs as an app of one function, on the path every
    // app function takes.
    let result = crate::app::call_loaded_component(
        &engine,
        component,
        &cmd.component,
        &cmd.function,
        &args,
        config,
    )
    .await?;
    if let Some(json) = result {
        inv.console.out_line(&json.to_string()).await;
    }
    Ok(0)
}

/// Parses `HOST_DIR:GUEST_PATH[:ro]`.
pub fn parse_mount(spec: &str) -> Result<DirMount, String> {
    parse_mount_in(spec, None)
}

/// [`parse_mount`] with a relative HOST_DIR starting at `base`.
pub fn parse_mount_in(spec: &str, base: Option<&Path>) -> Result<DirMount, String> {
    let (spec, read_only) = match spec.strip_suffix(":ro") {
        Some(s) => (s, true),
        None => (spec, false),
    };
    let (host, guest) = spec
        .rsplit_once(":/")
        .map(|(h, g)| (h, format!("/{g}")))
        .ok_or_else(|| {
            format!("--mount {spec}: expected HOST_DIR:GUEST_PATH with an absolute GUEST_PATH")
        })?;
    if host.is_empty() {
        return Err(format!("--mount {spec}: HOST_DIR is empty"));
    }
    if guest.split('/').any(|c| c == "..") {
        return Err(format!("--mount {spec}: GUEST_PATH must not contain `..`"));
    }
    let host = match base {
        Some(b) => b.join(host),
        None => PathBuf::from(host),
    };
    if !host.is_dir() {
        return Err(format!(
            "--mount {spec}: {} is not a directory",
            host.display()
        ));
    }
    Ok(DirMount {
        host,
        guest,
        read_only,
    })
}

/// Whether `path` names an app (a manifest, or a directory holding
/// `vessel.toml`) rather than a component.
pub fn is_app(path: &Path) -> bool {
    path.is_dir() || path.extension().is_some_and(|e| e == "toml")
}

pub(crate) fn app_flag(flag: &str) -> Failure {
    Failure::usage(format!(
        "{flag} applies to a single component; an app sets mounts and limits per function in its vessel.toml"
    ))
}

/// Loads the app at `path`, opening the data dir's stores only when the app
/// needs them (it mounts or grants storage, or a component imports it).
pub(crate) async fn load_app(
    home: &Home,
    path: &Path,
    inv: &Invocation,
    held: &mut Option<Owner>,
) -> Result<App, Failure> {
    let data_dir = &home.dir;
    let manifest = Manifest::from_path(path).map_err(Failure::usage)?;
    let engine = engine_for(home, manifest.uses_fuel())?;
    // A component that fails to load here is reported, with its key, by
    // the runtime's load below.
    let needs_stores = manifest.uses_storage()
        || manifest.functions.values().any(|f| {
            engine
                .load(&f.component)
                .is_ok_and(|(c, _)| call::uses_storage(&engine, &c))
        });
    let stores = if needs_stores {
        held.insert(Owner::open(home)?).service.stores.clone()
    } else {
        crate::storage::Stores::default()
    };
    let runtime = Runtime::new(engine, stores)
        .with_work_dir(data_dir.join("containers"))
        .with_stdio(inv.console.guest_stdio());
    let app = runtime.load(manifest).map_err(Failure::from)?;
    for w in app.warnings() {
        inv.console.err_line(&format!("warning: {w}")).await;
    }
    Ok(app)
}

/// `vessel run APP`: the entrypoint, as a command with argv or as a
/// function with `--NAME VALUE` parameters whose result is printed.
pub(crate) async fn run_app(
    home: &Home,
    cmd: RunRequest,
    inv: &Invocation,
    held: &mut Option<Owner>,
) -> Result<u8, Failure> {
    if let Some(flag) = cmd.limits.first_given() {
        return Err(app_flag(flag));
    }
    if !cmd.mounts.is_empty() {
        return Err(app_flag("--mount"));
    }
    let app = load_app(home, &inv.path(&cmd.component), inv, held).await?;
    let function = app
        .entrypoint(cmd.entrypoint.as_deref())
        .map_err(Failure::from)?;
    let outcome = if function.is_command() {
        function
            .run_command(cmd.args.clone(), true)
            .await
            .map(|status| (Some(status), None))
    } else {
        let flags = call::parse_param_flags_in(&cmd.args, inv.cwd.as_deref()).map_err(|e| {
            Failure::usage(format!(
                "{e} (`{}` takes {})",
                function.name(),
                function.signature().unwrap_or_default()
            ))
        })?;
        function
            .call_args(&CallArgs { args: None, flags })
            .await
            .map(|json| (None, json))
    };
    let shutdown = app.shutdown().await;
    let (status, json) = outcome.map_err(Failure::from)?;
    shutdown.map_err(Failure::from)?;
    if let Some(json) = json {
        inv.console.out_line(&json.to_string()).await;
    }
    Ok(status.map_or(0, |s| u8::try_from(s & 0xff).unwrap_or(1)))
}

/// Carries out a run, as [`call`] does a call: returns the command's exit
/// status (or 0 for an app function, whose result goes to the console).
pub async fn run(home: &Home, cmd: RunRequest, inv: &Invocation) -> Result<u8, Failure> {
    let owner = owner_to_forward(home);
    let sent = Request::Run(cmd.clone());
    forward_or_hold(home, owner, sent, true, async |held| {
        run_held(home, cmd, inv, held).await
    })
    .await
}

pub(crate) async fn run_held(
    home: &Home,
    cmd: RunRequest,
    inv: &Invocation,
    held: &mut Option<Owner>,
) -> Result<u8, Failure> {
    if is_app(&inv.path(&cmd.component)) {
        return run_app(home, cmd, inv, held).await;
    }
    if let Some(e) = &cmd.entrypoint {
        return Err(Failure::usage(format!(
            "--entrypoint {e}: {} is a component, not an app (vessel.toml)",
            cmd.component.display()
        )));
    }
    let mut config = container_config(&cmd.limits)?;
    for m in &cmd.mounts {
        let mut mount = parse_mount_in(m, inv.cwd.as_deref()).map_err(Failure::usage)?;
        mount.host = inv.path(&mount.host);
        config.dir_mounts.push(mount);
    }
    config.stdio = inv.console.guest_stdio();
    let engine = engine_for(home, false)?;
    let path = inv.path(&cmd.component);
    let (component, _) = engine
        .load(&path)
        .map_err(|e| Failure::from(CallError::from(e)))?;
    attach_stores(home, &engine, &component, &mut config, held)?;
    // A command component runs as an app of one function named as the
    // user wrote the component (its argv[0]).
    let name = cmd.component.display().to_string();
    let runtime = Runtime::new(engine, config.stores.clone());
    let app = runtime
        .app_of_component(component, &path, &name, COMMAND_EXPORT, config)
        .map_err(|e| Failure::from(as_call_error(e)))?;
    let status = match app.function(&name) {
        Ok(f) => f.run_command(cmd.args.clone(), true).await,
        Err(e) => Err(e),
    };
    let shutdown = app.shutdown().await;
    let status = status.map_err(|e| match e {
        AppError::Call(CallError::Container {
            source: source @ ContainerError::BadMount { .. },
            ..
        }) => Failure::usage(source),
        AppError::Call(CallError::Container { source, .. }) => {
            Failure::runtime(format!("{name}: {source}"))
        }
        AppError::Retire { source, .. } => Failure::runtime(source),
        e => Failure::from(e),
    })?;
    shutdown.map_err(Failure::from)?;
    // Exit statuses outside 0..=255 are truncated by the OS anyway; keep the
    // low byte as POSIX does.
    Ok(u8::try_from(status & 0xff).unwrap_or(1))
}
