//! The `vessel` command line: clap types and the code behind each command.
//! `main.rs` only parses and calls [`run`].
//!
//! Exit codes: 0 on success; 2 for usage errors (bad flags, a missing or
//! invalid component, an unknown export, arguments that do not fit the
//! export's types); 1 when the call fails while it runs (trap, timeout); a
//! command component's exit status for `vessel run` (WASI 0.2 `exit` carries
//! only success or failure, so that is 0 or 1).

pub mod completions;
pub mod dict;
pub mod forward;
pub mod serve;
pub mod size;
pub mod volume;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use serde_json::Value as Json;
use wasmtime::component::Component;

use crate::app::manifest::{DEFAULT_DISK_MIB, MAX_DISK_MIB};
use crate::app::{App, AppError, Manifest, Runtime};
use crate::call::{self, CallArgs, CallError};
use crate::container::{Container, ContainerConfig, DirMount};
use crate::engine::{EngineConfig, VesselEngine};
use crate::server::OwnerServer;
use crate::server::client::{ClientError, OwnerClient};
use crate::service::Service;
use crate::storage::disk::{FaultPlan, StorageIo};
use crate::storage::embedded::{DurabilityMode, EmbeddedOptions};
use crate::storage::remote::RemoteOptions;
use crate::volume::VolumeMount;
use forward::{ForwardedCommand, Invocation, NotForwarded};

/// Sandboxed WebAssembly functions with Modal-style volumes and dicts.
#[derive(Debug, Parser)]
#[command(name = "vessel", version = completions::VERSION, propagate_version = true)]
pub struct Cli {
    /// Where vessel keeps its state (compile cache, stores). Defaults to
    /// $VESSEL_HOME, else the user's data directory.
    #[arg(long, global = true, env = "VESSEL_HOME", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// When a write (dict put, volume commit) is acknowledged: `sync` once
    /// it is fsynced (survives kill -9 and power loss), `relaxed` once it is
    /// written to the OS, with an fsync every second in the background
    /// (survives kill -9 of vessel; an OS crash or power loss can lose the
    /// last second of writes).
    #[arg(
        long,
        global = true,
        env = "VESSEL_DURABILITY",
        value_enum,
        default_value_t = Durability::Sync
    )]
    pub durability: Durability,

    /// Testing only: fail chosen storage I/O calls of this process's store,
    /// e.g. `fsync:3:once` or `write:1:forever:enospc` (KIND:N counted from
    /// when the store has opened; see RELIABILITY.md). Hidden from --help.
    #[arg(
        long,
        global = true,
        env = "VESSEL_FAULTS",
        value_name = "PLAN",
        value_parser = FaultPlan::parse,
        hide = true
    )]
    pub inject_faults: Option<FaultPlan>,

    /// Where compiled components are cached. Defaults to `cache/components`
    /// in the data directory; point several data directories (fresh ones
    /// for tests, say) at one cache so each compiles a component once. The
    /// folder must be yours and not writable by others, or it is not used.
    #[arg(long, global = true, env = "VESSEL_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Keep volume and dict metadata in this PostgreSQL database
    /// (`postgres://user:password@host:port/db`) instead of the embedded
    /// store, so several hosts share them. Needs --blobs. Also
    /// `metadata = "..."` in DATA_DIR/config.toml.
    #[arg(long, global = true, env = "VESSEL_METADATA", value_name = "URL")]
    pub metadata: Option<String>,

    /// Keep file contents in this S3 bucket
    /// (`s3://bucket[/prefix]?endpoint=URL`; credentials from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or `access_key_id=` and
    /// `secret_access_key=` parameters). Needs --metadata. Also
    /// `blobs = "..."` in DATA_DIR/config.toml.
    #[arg(long, global = true, env = "VESSEL_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,

    /// Log more (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The `--durability` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    Sync,
    Relaxed,
}

/// How often relaxed durability fsyncs in the background.
pub const RELAXED_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

impl From<Durability> for DurabilityMode {
    fn from(d: Durability) -> Self {
        match d {
            Durability::Sync => DurabilityMode::Sync,
            Durability::Relaxed => DurabilityMode::Relaxed {
                interval: RELAXED_FSYNC_INTERVAL,
            },
        }
    }
}

/// Where a command's state lives and how its store opens: the data
/// directory and the store options from the global flags.
#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
    /// Where compiled components are cached (`--cache-dir`).
    pub cache_dir: PathBuf,
    pub store: EmbeddedOptions,
    /// The shared backend (`--metadata` and `--blobs`), instead of the
    /// embedded store in the data directory.
    pub remote: Option<RemoteOptions>,
    /// The store this process already holds: set in the owner, for the
    /// commands other processes forward to it.
    pub held: Option<Service>,
}

impl Home {
    /// Opens the data directory's stores, or the shared backend.
    pub fn open_service(&self) -> Result<Service, Failure> {
        if let Some(remote) = &self.remote {
            return Service::open_remote(remote.clone()).map_err(Failure::runtime);
        }
        Service::open_embedded(&self.dir, self.store.clone()).map_err(Failure::runtime)
    }

    /// Where store operations go: the process that owns the data dir, when
    /// one runs (`vessel serve`, or a `vessel run`/`call` using the store),
    /// else the store, opened here.
    pub fn backend(&self) -> Result<Backend, Failure> {
        if let Some(service) = &self.held {
            return Ok(Backend::Direct(service.clone()));
        }
        // Every process opens a shared backend itself; only the embedded
        // store is single-process.
        if self.remote.is_some() {
            return Ok(Backend::Direct(self.open_service()?));
        }
        if let Some(owner) = OwnerClient::find(&self.dir) {
            tracing::debug!("forwarding to the owner of {}", self.dir.display());
            return Ok(Backend::Owner(owner));
        }
        Ok(Backend::Direct(self.open_service()?))
    }
}

/// The store behind a `vessel dict`/`vessel volume` command: direct, or
/// through the owning process's socket. Both run the same service code;
/// only the transport differs, so output and exit codes are the same.
pub enum Backend {
    Direct(Service),
    Owner(OwnerClient),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        if e.is_usage() {
            Failure::usage(e)
        } else {
            Failure::runtime(e)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call an exported function of a component with JSON arguments and print
    /// its result as one line of JSON.
    #[command(after_help = CALL_HELP)]
    Call(CallCmd),
    /// Run a command component (`wasi:cli/run`) with its stdio, its exit
    /// status becoming vessel's; or run an app's entrypoint function.
    #[command(after_help = RUN_HELP)]
    Run(RunCmd),
    /// Manage dicts: create, delete, list, clear, get, put, items.
    Dict(dict::DictCmd),
    /// Manage volumes: create, delete, list, ls, put, get, cp, rm, rename.
    Volume(volume::VolumeCmd),
    /// Run the host as a server: the HTTP API (volumes, dicts, function
    /// calls) on a loopback port with tokens, and on a socket in the data
    /// dir for other vessel commands.
    Serve(serve::ServeCmd),
    /// Manage the API's bearer tokens: create, list, revoke.
    Token(serve::TokenCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) on stdout.
    Completions(completions::CompletionsCmd),
    /// Print the man page on stdout, or write one page per command into a
    /// directory.
    Man(completions::ManCmd),
}

const CALL_HELP: &str = "\
Parameters can also be given one by one after FUNCTION:
  --NAME VALUE   VALUE is read as JSON when it parses, else as a string
  --NAME @FILE   the value is the JSON document in FILE
  --NAME / --no-NAME   true / false for a bool parameter

Examples:
  vessel call add.wasm add --args '[2, 3]'
  vessel call add.wasm add --a 2 --b 3
  vessel call sum.wasm foo --a @blob.json
  vessel call apps/demo/vessel.toml f --x 1   (a function of an app)";

const RUN_HELP: &str = "\
Examples:
  vessel run prog.wasm -- echo hi          (a command component)
  vessel run apps/kv --key cloud --put     (an app's entrypoint, with parameters)
  vessel run apps/kv/vessel.toml --entrypoint main -- --key x";

/// Limits and mounts shared by `call` and `run`.
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
pub struct LimitArgs {
    /// Mount a volume: VOLUME:GUEST_PATH, with `:ro` appended for read-only.
    /// Repeatable. The volume must exist (`vessel volume create`).
    #[arg(long = "volume", value_name = "VOLUME:GUEST_PATH[:ro]")]
    pub volumes: Vec<String>,
    /// Commit mounted volumes in the background every SECONDS while the
    /// guest runs (0 turns it off) [default: 5].
    #[arg(long, value_name = "SECONDS")]
    pub commit_every: Option<f64>,
    /// Stop the guest after this many seconds, wherever it is (running, or
    /// waiting for a sleep, stdin or another call); 0 for no limit
    /// [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Most memory the guest may use, in MiB: all its linear memories and
    /// tables together [default: 512].
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u64>,
    /// Most disk the guest may fill, in MiB: its scratch `/` and what it
    /// writes in mounted volumes; past it writes fail with ENOSPC
    /// [default: 1024].
    #[arg(long, value_name = "MIB")]
    pub disk: Option<u64>,
}

impl LimitArgs {
    /// The first of these flags that was given: an app takes its limits
    /// from its manifest, so they are refused there.
    fn first_given(&self) -> Option<&'static str> {
        if !self.volumes.is_empty() {
            Some("--volume")
        } else if self.commit_every.is_some() {
            Some("--commit-every")
        } else if self.timeout.is_some() {
            Some("--timeout")
        } else if self.memory.is_some() {
            Some("--memory")
        } else if self.disk.is_some() {
            Some("--disk")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
pub struct CallCmd {
    /// The component (.wasm) to load, or an app: its vessel.toml (or the
    /// directory holding it).
    #[arg(value_name = "COMPONENT|APP")]
    pub component: PathBuf,
    /// The export to call: `name`, or `interface#name` for a function of an
    /// exported interface; for an app, the function's name.
    pub function: String,
    /// All arguments as JSON: an array (positional) or an object (by name).
    #[arg(long, value_name = "JSON", conflicts_with = "args_file")]
    pub args: Option<String>,
    /// Read the --args JSON document from FILE (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub args_file: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Parameters as --NAME VALUE (see below).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--NAME VALUE"
    )]
    pub params: Vec<String>,
}

#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
pub struct RunCmd {
    /// The command component (.wasm) to run, or an app: its vessel.toml (or
    /// the directory holding it).
    #[arg(value_name = "COMPONENT|APP")]
    pub component: PathBuf,
    /// For an app: the function to run (default: the manifest's
    /// `entrypoint`, or its only function).
    #[arg(long, value_name = "NAME")]
    pub entrypoint: Option<String>,
    /// Mount a host directory into the guest: HOST_DIR:GUEST_PATH, with
    /// `:ro` appended for read-only. Repeatable.
    #[arg(long = "mount", value_name = "HOST_DIR:GUEST_PATH[:ro]")]
    pub mounts: Vec<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Arguments: a command's argv, or an app function's parameters as
    /// --NAME VALUE. vessel's own options go before them.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// A command's failure: the message and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    fn usage(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 2,
            message: message.to_string(),
        }
    }
    fn runtime(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl Failure {
    /// The message with `abs` written as the user wrote it (`local`), so an
    /// error names the path the way it was given.
    fn renamed(mut self, abs: &Path, local: &str) -> Self {
        self.message = self.message.replace(&abs.display().to_string(), local);
        self
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        if e.is_usage() {
            Failure::usage(e)
        } else {
            Failure::runtime(e)
        }
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    init_tracing(cli.verbose);
    // Generated text needs neither a data dir nor the async runtime.
    let generated = match &cli.command {
        Command::Completions(cmd) => Some(completions::completions(cmd)),
        Command::Man(cmd) => Some(completions::man(cmd)),
        _ => None,
    };
    if let Some(result) = generated {
        return match result {
            Ok(code) => ExitCode::from(code),
            Err(f) => {
                eprintln!("error: {}", f.message);
                ExitCode::from(f.code)
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The data directory: `--data-dir`, `$VESSEL_HOME`, else the user's data
/// directory, else `./.vessel`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(p) => p.to_owned(),
        None => dirs::data_dir()
            .map(|d| d.join("vessel"))
            .unwrap_or_else(|| PathBuf::from(".vessel")),
    }
}

fn engine_for(cache_dir: &Path, fuel: bool) -> Result<VesselEngine, Failure> {
    VesselEngine::new(EngineConfig {
        cache_dir: Some(cache_dir.to_owned()),
        fuel,
    })
    .map_err(Failure::runtime)
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let data_dir = data_dir(cli.data_dir.as_deref());
    // vessel makes its data dir 0700; one made otherwise (by an older
    // vessel, or by hand) is the user's to fix.
    if let Some(warning) = crate::private::exposure(&data_dir) {
        eprintln!("warning: {warning}");
    }
    let cache_dir = cli
        .cache_dir
        .unwrap_or_else(|| data_dir.join("cache").join("components"));
    let remote = remote_options(&data_dir, cli.metadata, cli.blobs)?;
    let home = Home {
        dir: data_dir.clone(),
        cache_dir,
        store: EmbeddedOptions {
            durability: cli.durability.into(),
            io: cli.inject_faults.map(StorageIo::faulty).unwrap_or_default(),
            ..EmbeddedOptions::default()
        },
        remote,
        held: None,
    };
    match cli.command {
        Command::Call(cmd) => call_cmd(&home, cmd, &Invocation::local()).await,
        Command::Run(cmd) => run_cmd(&home, cmd, &Invocation::local()).await,
        Command::Dict(cmd) => dict::run(&home, cmd).await,
        Command::Volume(cmd) => volume::run(&home, cmd).await,
        Command::Serve(cmd) => serve::serve(&home, cmd).await,
        Command::Token(cmd) => serve::token(&home.dir, cmd),
        Command::Completions(cmd) => completions::completions(&cmd),
        Command::Man(cmd) => completions::man(&cmd),
    }
}

/// The name of the optional configuration file in the data directory.
pub const CONFIG_FILE: &str = "config.toml";

/// `DATA_DIR/config.toml`: settings that would otherwise be flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    metadata: Option<String>,
    blobs: Option<String>,
}

/// The shared backend's options from the flags (or their environment
/// variables), else from `DATA_DIR/config.toml`; `None` for the embedded
/// store. The local blob cache lives in the data directory.
fn remote_options(
    data_dir: &Path,
    metadata: Option<String>,
    blobs: Option<String>,
) -> Result<Option<RemoteOptions>, Failure> {
    let path = data_dir.join(CONFIG_FILE);
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<ConfigFile>(&text)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
        Err(e) => return Err(Failure::usage(format!("{}: {e}", path.display()))),
    };
    let metadata = metadata.filter(|s| !s.is_empty()).or(file.metadata);
    let blobs = blobs.filter(|s| !s.is_empty()).or(file.blobs);
    match (metadata, blobs) {
        (None, None) => Ok(None),
        (Some(m), Some(b)) => {
            if !m.starts_with("postgres://") && !m.starts_with("postgresql://") {
                return Err(Failure::usage(format!(
                    "--metadata {}: expected postgres://user:password@host:port/database",
                    crate::storage::remote::redact(&m)
                )));
            }
            Ok(Some(RemoteOptions::new(
                &m,
                &b,
                data_dir.join("blob-cache"),
            )))
        }
        (Some(_), None) => Err(Failure::usage(
            "--metadata needs --blobs too (s3://bucket?endpoint=URL): the shared backend keeps file contents in S3",
        )),
        (None, Some(_)) => Err(Failure::usage(
            "--blobs needs --metadata too (postgres://...): the shared backend keeps metadata in PostgreSQL",
        )),
    }
}

fn container_config(limits: &LimitArgs) -> Result<ContainerConfig, Failure> {
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

/// Parses `VOLUME:GUEST_PATH[:ro]`.
pub fn parse_volume_mount(spec: &str) -> Result<VolumeMount, String> {
    let (rest, read_only) = match spec.strip_suffix(":ro") {
        Some(s) => (s, true),
        None => (spec, false),
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
    Ok(VolumeMount {
        guest: guest.to_owned(),
        volume: volume.to_owned(),
        read_only,
    })
}

/// Opens the data dir's stores and points the container at them, when the
/// container needs them: it mounts volumes or the component imports dicts or
/// volumes. Only one process can hold a data dir's store, so components that
/// use no storage must not take it (parallel `vessel call`s of those work).
fn attach_stores(
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

/// A command holding the data dir's store, serving it on the socket so
/// other `vessel` commands reach it while this one runs.
pub struct Owner {
    pub service: Service,
    _server: Option<OwnerServer>,
}

impl Owner {
    fn open(home: &Home) -> Result<Owner, Failure> {
        if let Some(service) = &home.held {
            return Ok(Owner {
                service: service.clone(),
                _server: None,
            });
        }
        if home.remote.is_some() {
            // A shared backend has no owner: every process opens it.
            return Ok(Owner {
                service: home.open_service()?,
                _server: None,
            });
        }
        let service = home.open_service()?;
        let exec = forward::CliExec {
            home: Home {
                held: Some(service.clone()),
                ..home.clone()
            },
        };
        let server = OwnerServer::start(&home.dir, service.clone(), Some(Arc::new(exec)))
            .map_err(Failure::runtime)?;
        Ok(Owner {
            service,
            _server: Some(server),
        })
    }

    /// Stops serving the socket once the requests other processes sent
    /// have finished (their forwarded commands included).
    async fn close(self) {
        if let Some(server) = self._server {
            server.stop().await;
        }
    }
}

/// Closes the store this command held, if it opened one, after its work.
async fn release(held: Option<Owner>) {
    if let Some(owner) = held {
        owner.close().await;
    }
}

/// Runs a `call`/`run`: in `owner` when another process holds the data
/// dir (falling back to here if it has just gone), else here with `here`,
/// which may open the store into its argument; the store is closed after.
async fn forward_or_hold(
    home: &Home,
    owner: Option<OwnerClient>,
    sent: ForwardedCommand,
    stdin: bool,
    here: impl AsyncFnOnce(&mut Option<Owner>) -> Result<u8, Failure>,
) -> Result<u8, Failure> {
    if let Some(owner) = owner {
        tracing::debug!("forwarding to the owner of {}", home.dir.display());
        match forward::forward(owner, sent, stdin).await {
            Ok(code) => return Ok(code),
            Err(NotForwarded::Failed(f)) => return Err(f),
            // The owner exited since it was found: the store is free.
            Err(NotForwarded::Unreachable) => {}
        }
    }
    let mut held = None;
    let result = here(&mut held).await;
    release(held).await;
    result
}

/// The owner to forward a `call`/`run` to: another process that holds this
/// data dir's embedded store.
fn owner_to_forward(home: &Home) -> Option<OwnerClient> {
    // A forwarded command runs in the owner, whose home holds the store.
    if home.held.is_some() || home.remote.is_some() {
        return None;
    }
    OwnerClient::find(&home.dir)
}

/// Moves vessel's own options that came after a `--NAME` parameter flag (clap
/// hands everything from the first unknown flag on to `params`) back into
/// their fields. A WIT parameter called `args`, `args-file`, `timeout`,
/// `memory`, `disk`, `volume` or `commit-every` must therefore be passed
/// inside `--args`.
fn reclaim_options(cmd: &mut CallCmd) -> Result<(), Failure> {
    let tokens = std::mem::take(&mut cmd.params);
    let mut it = tokens.into_iter();
    while let Some(tok) = it.next() {
        let (flag, inline) = match tok.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (tok.clone(), None),
        };
        if !matches!(
            flag.as_str(),
            "--args"
                | "--args-file"
                | "--timeout"
                | "--memory"
                | "--disk"
                | "--volume"
                | "--commit-every"
        ) {
            cmd.params.push(tok);
            continue;
        }
        let value = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(Failure::usage(format!("{flag} needs a value"))),
        };
        let dup = || Failure::usage(format!("{flag} is given twice"));
        match flag.as_str() {
            "--args" if cmd.args.is_none() && cmd.args_file.is_none() => cmd.args = Some(value),
            "--args-file" if cmd.args.is_none() && cmd.args_file.is_none() => {
                cmd.args_file = Some(PathBuf::from(value));
            }
            "--timeout" if cmd.limits.timeout.is_none() => {
                cmd.limits.timeout = Some(value.parse().map_err(|_| {
                    Failure::usage(format!(
                        "--timeout must be a number of seconds, got {value}"
                    ))
                })?);
            }
            "--volume" => cmd.limits.volumes.push(value),
            "--commit-every" if cmd.limits.commit_every.is_none() => {
                cmd.limits.commit_every = Some(value.parse().map_err(|_| {
                    Failure::usage(format!(
                        "--commit-every must be a number of seconds, got {value}"
                    ))
                })?);
            }
            "--memory" if cmd.limits.memory.is_none() => {
                cmd.limits.memory = Some(value.parse().map_err(|_| {
                    Failure::usage(format!(
                        "--memory must be a whole number of MiB, got {value}"
                    ))
                })?);
            }
            "--disk" if cmd.limits.disk.is_none() => {
                cmd.limits.disk = Some(value.parse().map_err(|_| {
                    Failure::usage(format!(
                        "--disk must be a whole number of MiB between 1 and {MAX_DISK_MIB}, got {value}"
                    ))
                })?);
            }
            _ => return Err(dup()),
        }
    }
    Ok(())
}

async fn call_cmd(home: &Home, mut cmd: CallCmd, inv: &Invocation) -> Result<u8, Failure> {
    reclaim_options(&mut cmd)?;
    let owner = owner_to_forward(home);
    // Only this process can read its stdin.
    if owner.is_some() && cmd.args_file.as_deref() == Some(Path::new("-")) {
        cmd.args = Some(
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| Failure::usage(format!("--args-file -: cannot read stdin: {e}")))?,
        );
        cmd.args_file = None;
    }
    let sent = ForwardedCommand::Call(cmd.clone());
    forward_or_hold(home, owner, sent, false, async |held| {
        call_held(home, cmd, inv, held).await
    })
    .await
}

async fn call_held(
    home: &Home,
    cmd: CallCmd,
    inv: &Invocation,
    held: &mut Option<Owner>,
) -> Result<u8, Failure> {
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
    let path = inv.path(&cmd.component);
    if is_app(&path) {
        if let Some(flag) = cmd.limits.first_given() {
            return Err(app_flag(flag));
        }
        let app = load_app(home, &path, inv, held).await?;
        let function = app.function(&cmd.function).map_err(Failure::from)?;
        let result = function.call_args(&CallArgs { args, flags }).await;
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
    let engine = engine_for(&home.cache_dir, false)?;
    let (component, outcome) = engine.load(&path).map_err(CallError::from)?;
    tracing::debug!(?outcome, path = %cmd.component.display(), "component loaded");
    attach_stores(home, &engine, &component, &mut config, held)?;
    let result = call::call_loaded(
        &engine,
        &component,
        &cmd.component.display().to_string(),
        &cmd.function,
        &CallArgs { args, flags },
        &config,
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

fn app_flag(flag: &str) -> Failure {
    Failure::usage(format!(
        "{flag} applies to a single component; an app sets mounts and limits per function in its vessel.toml"
    ))
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        if e.is_usage() {
            Failure::usage(e)
        } else {
            Failure::runtime(e)
        }
    }
}

/// Loads the app at `path`, opening the data dir's stores only when the app
/// needs them (it mounts or grants storage, or a component imports it).
async fn load_app(
    home: &Home,
    path: &Path,
    inv: &Invocation,
    held: &mut Option<Owner>,
) -> Result<App, Failure> {
    let data_dir = &home.dir;
    let manifest = Manifest::from_path(path).map_err(Failure::usage)?;
    let engine = engine_for(&home.cache_dir, manifest.uses_fuel())?;
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
async fn run_app(
    home: &Home,
    cmd: RunCmd,
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

async fn run_cmd(home: &Home, cmd: RunCmd, inv: &Invocation) -> Result<u8, Failure> {
    let owner = owner_to_forward(home);
    let sent = ForwardedCommand::Run(cmd.clone());
    forward_or_hold(home, owner, sent, true, async |held| {
        run_held(home, cmd, inv, held).await
    })
    .await
}

async fn run_held(
    home: &Home,
    cmd: RunCmd,
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
    config.inherit_stdin = true;
    config.stdio = inv.console.guest_stdio();
    config.args = std::iter::once(cmd.component.display().to_string())
        .chain(cmd.args.iter().cloned())
        .collect();
    let engine = engine_for(&home.cache_dir, false)?;
    let (component, _) = engine
        .load(&inv.path(&cmd.component))
        .map_err(|e| Failure::from(CallError::from(e)))?;
    attach_stores(home, &engine, &component, &mut config, held)?;
    let linker =
        crate::container::linker(&engine).map_err(|e| Failure::runtime(crate::error::chain(&e)))?;
    let mut container = Container::new(&engine, &config).map_err(|e| match e {
        crate::container::ContainerError::BadMount { .. } => Failure::usage(e),
        e => Failure::runtime(e),
    })?;
    let status = container.run_command(&linker, &component).await;
    let shutdown = container.shutdown();
    let status =
        status.map_err(|e| Failure::runtime(format!("{}: {e}", cmd.component.display())))?;
    shutdown.map_err(Failure::runtime)?;
    // Exit statuses outside 0..=255 are truncated by the OS anyway; keep the
    // low byte as POSIX does.
    Ok(u8::try_from(status & 0xff).unwrap_or(1))
}
