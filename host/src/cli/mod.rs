//! The `vessel` command line: clap types and the code behind each command.
//! `main.rs` only parses and calls [`run`].
//!
//! Exit codes: 0 on success; 2 for usage errors (bad flags, a missing or
//! invalid component, an unknown export, arguments that do not fit the
//! export's types); 1 when the call fails while it runs (trap, timeout); a
//! command component's exit status for `vessel run` (WASI 0.2 `exit` carries
//! only success or failure, so that is 0 or 1).

pub mod admin;
pub mod build;
pub mod cache;
pub mod completions;
pub mod dict;
mod history;
mod reclaim;
pub mod serve;
pub mod size;
pub mod volume;
pub mod wit;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::storage::disk::{FaultPlan, StorageIo};
use crate::storage::embedded::{DurabilityMode, EmbeddedOptions};

pub use crate::owner::{
    CONFIG_FILE, Failure, Home, Invocation, Owner, data_dir, is_app, parse_mount, parse_mount_in,
    parse_volume_mount,
};
use crate::owner::{CallRequest, Limits, RunRequest, remote_options};
use reclaim::reclaim_options;

/// Sandboxed WebAssembly functions with Modal-style volumes and dicts.
#[derive(Debug, Parser)]
#[command(name = "vessel", version = completions::VERSION, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes (`global`: before or after the
/// subcommand's name).
#[derive(Debug, Args)]
pub struct GlobalArgs {
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

    /// Most bytes of compiled components the compile cache keeps (a size
    /// such as 512MiB or 10GiB); past it the least recently used are
    /// removed whenever a component is compiled [default: 4GiB]. See
    /// `vessel cache`.
    #[arg(
        long,
        global = true,
        env = "VESSEL_CACHE_SIZE",
        value_name = "SIZE",
        value_parser = size::parse_size
    )]
    pub cache_size: Option<u64>,

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

    /// Most bytes this host's local cache of the shared backend's blobs
    /// holds (a size such as 512MiB or 20GiB); past it the least recently
    /// used blobs are dropped and fetched again when read [default: 10GiB].
    /// Also `blob_cache_bytes = N` in DATA_DIR/config.toml.
    #[arg(
        long,
        global = true,
        env = "VESSEL_BLOB_CACHE_SIZE",
        value_name = "SIZE",
        value_parser = size::parse_size
    )]
    pub blob_cache_size: Option<u64>,

    /// Log more (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    /// `vessel serve` logs each request and each 5xx's cause by default.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// How log lines (on stderr) are written: `text` for people, `json`
    /// (one object per line) for a log pipeline.
    #[arg(
        long,
        global = true,
        env = "VESSEL_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

/// The `--log-format` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// Operator tasks: back up the data dir's store.
    Admin(admin::AdminCmd),
    /// Build a guest's component from its folder (Python, JavaScript or
    /// Rust), installing the toolchain on first use.
    #[command(after_help = BUILD_HELP)]
    Build(build::BuildCmd),
    /// Make a new app that builds and runs as it is.
    #[command(after_help = INIT_HELP)]
    Init(build::InitCmd),
    /// Write a guest SDK (python, js, rust) into a directory: to install
    /// for tests and IDEs, or to vendor.
    Sdk(build::SdkCmd),
    /// The compile cache: list compiled components, prune them.
    Cache(cache::CacheCmd),
    /// Print the WIT package guests build against, or write it into a
    /// directory for a guest toolchain.
    Wit(wit::WitCmd),
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
An app whose folder holds its sources (app.py, app.js, Cargo.toml) is built
first when a source is newer than its component (see `vessel build`).

Examples:
  vessel run prog.wasm -- echo hi          (a command component)
  vessel run apps/kv --key cloud --put     (an app's entrypoint, with parameters)
  vessel run app.py::main --name ada       (function `main` of the app beside app.py)
  vessel run apps/kv/vessel.toml --entrypoint main -- --key x";

const BUILD_HELP: &str = "\
Python and JavaScript guests are built with componentize-py and
componentize-js, installed on first use (pip, npm) into the data dir's
cache/build/; Rust guests with cargo for wasm32-wasip2 (rustup adds the
target if it is missing). The same sources give the same bytes.

Examples:
  vessel build                      (the guest in this folder)
  vessel build apps/hello -o hello.wasm
  vessel build app.py --world hello";

const INIT_HELP: &str = "\
Examples:
  vessel init hello                 (Python)
  vessel init --lang js hello
  vessel init --lang rust hello     (writes the Rust SDK into hello/vessel-sdk)";

/// Limits and mounts shared by `call` and `run`.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Mount a volume: VOLUME:GUEST_PATH, with `:ro` appended for
    /// read-only, or `:fail` to refuse commits that would overwrite other
    /// containers' changes (see `conflicts` in the README). VOLUME@N mounts
    /// kept version N read-only. Repeatable. The volume must exist
    /// (`vessel volume create`).
    #[arg(long = "volume", value_name = "VOLUME:GUEST_PATH[:ro|:fail]")]
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

impl From<LimitArgs> for Limits {
    fn from(l: LimitArgs) -> Self {
        Limits {
            volumes: l.volumes,
            commit_every: l.commit_every,
            timeout: l.timeout,
            memory: l.memory,
            disk: l.disk,
        }
    }
}

impl From<CallCmd> for CallRequest {
    fn from(c: CallCmd) -> Self {
        CallRequest {
            component: c.component,
            function: c.function,
            args: c.args,
            args_file: c.args_file,
            limits: c.limits.into(),
            params: c.params,
        }
    }
}

impl From<RunCmd> for RunRequest {
    fn from(r: RunCmd) -> Self {
        RunRequest {
            component: r.component,
            entrypoint: r.entrypoint,
            mounts: r.mounts,
            limits: r.limits.into(),
            args: r.args,
        }
    }
}

#[derive(Debug, Clone, Args)]
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
    /// For an app: do not build its component first, even when its
    /// sources are newer.
    #[arg(long)]
    pub no_build: bool,
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

#[derive(Debug, Clone, Args)]
pub struct RunCmd {
    /// The command component (.wasm) to run, or an app: its vessel.toml (or
    /// the directory holding it), or FILE::FUNCTION for function FUNCTION
    /// of the app beside FILE.
    #[arg(value_name = "COMPONENT|APP")]
    pub component: PathBuf,
    /// For an app: the function to run (default: the manifest's
    /// `entrypoint`, or its only function).
    #[arg(long, value_name = "NAME")]
    pub entrypoint: Option<String>,
    /// For an app: do not build its component first, even when its
    /// sources are newer.
    #[arg(long)]
    pub no_build: bool,
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

/// Parses the process's command line. The global options (data dir,
/// durability, backend, logging) are listed once, in `vessel --help`; each
/// subcommand's help names them in one line instead of repeating them.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    if let Some(cli) = parse_against_one(std::env::args_os().collect()) {
        return cli;
    }
    let command = Cli::command();
    // Listed by hand at the top: hidden, they reach every subcommand
    // hidden (clap copies global options down when it builds).
    let shown: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| a.is_global_set() && !a.is_hide_set())
        .collect();
    let flag = |a: &clap::Arg| {
        let long = a.get_long().map(|l| format!("--{l}")).unwrap_or_default();
        let short = a.get_short().map(|c| format!("-{c}, ")).unwrap_or_default();
        let value = match a.get_value_names() {
            Some(names) if a.get_action().takes_values() => {
                names.iter().map(|n| format!(" <{n}>")).collect::<String>()
            }
            _ => String::new(),
        };
        format!("{short}{long}{value}")
    };
    let width = shown.iter().map(|a| flag(a).len()).max().unwrap_or(0);
    let mut listing = String::from("Global options (any command takes them):");
    for a in &shown {
        let help = a.get_help().map(ToString::to_string).unwrap_or_default();
        let mut notes = String::new();
        if let Some(e) = a.get_env() {
            notes.push_str(&format!(" [env: {}]", e.to_string_lossy()));
        }
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        if !defaults.is_empty() && !help.contains("[default:") {
            notes.push_str(&format!(" [default: {}]", defaults.join(", ")));
        }
        let possible: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| p.get_name().to_owned())
            .collect();
        if !possible.is_empty() {
            notes.push_str(&format!(" [possible values: {}]", possible.join(", ")));
        }
        listing.push_str(&format!("\n  {:width$}  {help}{notes}", flag(a)));
    }
    let names: Vec<String> = shown
        .iter()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let pointer = format!(
        "Global options ({}): see `vessel --help`.",
        names.join(", ")
    );
    let command = command
        .mut_args(|a| if a.is_global_set() { a.hide(true) } else { a })
        .after_help(listing)
        .mut_subcommands(|sc| point_to_globals(sc, &pointer));
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `args` parsed against the global options and one subcommand alone,
/// for the commands whose start-up time matters (`call`, `run`, `dict`,
/// `volume`): building clap's whole tree, every subcommand with its
/// arguments and help, is about 0.8 ms of a forwarded call's 3.
///
/// That grammar is the whole one less the other subcommands, so a line it
/// accepts means the same under the whole one. Anything it does not
/// accept (help, `--version`, a mistake, another command) gives `None`,
/// and the whole tree parses it as before, with its errors and help.
fn parse_against_one(args: Vec<std::ffi::OsString>) -> Option<Cli> {
    use clap::FromArgMatches;
    type Augment = fn(clap::Command) -> clap::Command;
    // The subcommand is the first argument that names one of these; one
    // that is really an option's value (`--data-dir run`) fails below.
    let (name, augment): (&'static str, Augment) =
        args.iter().skip(1).find_map(|a| match a.to_str()? {
            "call" => Some(("call", CallCmd::augment_args as Augment)),
            "run" => Some(("run", RunCmd::augment_args as Augment)),
            "dict" => Some(("dict", dict::DictCmd::augment_args as Augment)),
            "volume" => Some(("volume", volume::VolumeCmd::augment_args as Augment)),
            _ => None,
        })?;
    let sub = augment(clap::Command::new(name));
    // As `Cli`'s own attributes have it: with `--version` known to every
    // subcommand, a `--version` among a call's parameters is the flag
    // under both grammars (and so left to the whole tree), not a parameter
    // under this one alone.
    let command = GlobalArgs::augment_args(clap::Command::new("vessel"))
        .version(completions::VERSION)
        .propagate_version(true)
        .subcommand_required(true)
        .subcommand(sub);
    let matches = command.try_get_matches_from(args).ok()?;
    Cli::from_arg_matches(&matches).ok()
}

/// Ends `sc`'s help (and its subcommands') with `pointer`.
fn point_to_globals(sc: clap::Command, pointer: &str) -> clap::Command {
    let sc = sc.mut_subcommands(|inner| point_to_globals(inner, pointer));
    match sc.get_after_help().map(ToString::to_string) {
        Some(after) => sc.after_help(format!("{after}\n\n{pointer}")),
        None => sc.after_help(pointer.to_owned()),
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    init_tracing(
        cli.global.verbose,
        cli.global.log_format,
        matches!(cli.command, Command::Serve(_)),
    );
    // Generated text needs neither a data dir nor the async runtime.
    let generated = match &cli.command {
        Command::Completions(cmd) => Some(completions::completions(cmd)),
        Command::Man(cmd) => Some(completions::man(cmd)),
        Command::Wit(cmd) => Some(wit::run(cmd)),
        Command::Init(cmd) => Some(build::init(cmd)),
        Command::Sdk(cmd) => Some(build::sdk(cmd)),
        _ => None,
    };
    if let Some(result) = generated {
        return match result {
            Ok(code) => ExitCode::from(code),
            Err(f) => {
                f.print();
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
            f.print();
            ExitCode::from(f.code)
        }
    }
}

fn init_tracing(verbose: u8, format: LogFormat, serving: bool) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // A server logs its requests, and its 5xx with their causes, unless
    // told otherwise (RUST_LOG).
    let default = if serving && verbose == 0 {
        "warn,vessel::access=info,vessel::errors=info,vessel::calls=info".to_owned()
    } else {
        level.to_owned()
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a terminal: a log piped to a file or a test reads
    // as plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let data_dir = data_dir(cli.global.data_dir.as_deref());
    // vessel makes its data dir 0700; one made otherwise (by an older
    // vessel, or by hand) is the user's to fix.
    if let Some(warning) = crate::private::exposure(&data_dir) {
        eprintln!("warning: {warning}");
    }
    let cache_dir = cli
        .global
        .cache_dir
        .unwrap_or_else(|| data_dir.join("cache").join("components"));
    let remote = remote_options(
        &data_dir,
        cli.global.metadata,
        cli.global.blobs,
        cli.global.blob_cache_size,
    )?;
    let home = Home {
        dir: data_dir.clone(),
        cache_dir,
        cache_max_bytes: cli
            .global
            .cache_size
            .unwrap_or(crate::engine::DEFAULT_CACHE_MAX_BYTES),
        store: EmbeddedOptions {
            durability: cli.global.durability.into(),
            io: cli
                .global
                .inject_faults
                .map(StorageIo::faulty)
                .unwrap_or_default(),
            ..EmbeddedOptions::default()
        },
        remote,
        held: None,
    };
    let tools = crate::build::Toolchain::new(&data_dir);
    match cli.command {
        Command::Call(mut cmd) => {
            reclaim_options(&mut cmd)?;
            cmd.component = build::prepare(&tools, &cmd.component, cmd.no_build)?;
            crate::owner::call(&home, cmd.into(), &Invocation::local()).await
        }
        Command::Run(mut cmd) => {
            if let Some((dir, function)) = build::split_target(&cmd.component) {
                if let Some(e) = &cmd.entrypoint {
                    return Err(Failure::usage(format!(
                        "{} names the function already; drop --entrypoint {e}",
                        cmd.component.display()
                    )));
                }
                cmd.component = dir;
                cmd.entrypoint = Some(function);
            }
            cmd.component = build::prepare(&tools, &cmd.component, cmd.no_build)?;
            crate::owner::run(&home, cmd.into(), &Invocation::local()).await
        }
        Command::Build(cmd) => build::build(&tools, &cmd),
        Command::Dict(cmd) => dict::run(&home, cmd).await,
        Command::Volume(cmd) => volume::run(&home, cmd).await,
        Command::Serve(cmd) => serve::serve(&home, cmd).await,
        Command::Token(cmd) => serve::token(&home, cmd),
        Command::Admin(cmd) => admin::run(&home, cmd).await,
        Command::Cache(cmd) => cache::run(&home, cmd),
        Command::Wit(_) | Command::Init(_) | Command::Sdk(_) => Err(Failure::runtime(
            "`vessel wit`, `init` and `sdk` run before the data dir opens",
        )),
        Command::Completions(cmd) => completions::completions(&cmd),
        Command::Man(cmd) => completions::man(&cmd),
    }
}

/// Prints `value` as pretty JSON on stdout (every `--json`).
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(Failure::runtime)?;
    println!("{text}");
    Ok(())
}

/// A UTC time for tables: `2026-12-04 12:00:00`.
pub(crate) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod help_tests {
    use super::{Cli, parse_against_one};
    use clap::{CommandFactory, Parser};

    /// A line parsed against its subcommand alone means what the whole
    /// tree makes of it, and what that cannot parse is left to the tree.
    #[test]
    fn one_subcommand_parses_a_line_as_the_whole_tree_does() {
        let args =
            |line: &str| -> Vec<std::ffi::OsString> { line.split(' ').map(Into::into).collect() };
        let fast = [
            "vessel call add.wasm add --args [1,2]",
            "vessel --data-dir /d call add.wasm add --a 2 --b 3",
            "vessel call add.wasm add --volume v:/data -v --durability relaxed",
            "vessel run app.py::main --no-build",
            "vessel --log-format json dict put d k v",
            "vessel -vv volume put v ./x /x",
            "vessel volume ls v / --data-dir /d",
        ];
        for line in fast {
            let whole = Cli::try_parse_from(args(line)).unwrap();
            let one = parse_against_one(args(line)).unwrap_or_else(|| panic!("{line}: fell back"));
            assert_eq!(format!("{one:?}"), format!("{whole:?}"), "{line}");
        }
        let left_to_the_tree = [
            "vessel call --help",
            "vessel help call",
            "vessel --version",
            "vessel call",
            "vessel volume",
            "vessel cache ls",
            "vessel --durability never call add.wasm add",
            "vessel call add.wasm add --version",
            "vessel run cmd.wasm -h",
            // `run` is the data dir here, not the subcommand.
            "vessel --data-dir run call add.wasm add",
        ];
        for line in left_to_the_tree {
            assert!(parse_against_one(args(line)).is_none(), "{line}");
        }
        // Flags among a call's parameters: whichever way one goes, it means
        // what the whole tree makes of it.
        for line in [
            "vessel call add.wasm add --a 1 -V",
            "vessel call add.wasm add --a 1 --version",
            "vessel call add.wasm add --a 1 --help",
        ] {
            if let Some(one) = parse_against_one(args(line)) {
                let whole = Cli::try_parse_from(args(line)).unwrap();
                assert_eq!(format!("{one:?}"), format!("{whole:?}"), "{line}");
            }
        }
    }

    /// Every positional argument of every command says what it is.
    #[test]
    fn every_positional_argument_is_described() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_positionals() {
                if a.get_help().is_none() && !a.is_hide_set() {
                    missing.push(format!("{path} <{}>", a.get_id()));
                }
            }
            for sc in c.get_subcommands() {
                walk(sc, &format!("{path} {}", sc.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "vessel", &mut missing);
        assert!(
            missing.is_empty(),
            "positionals without a description: {missing:?}"
        );
    }
}
