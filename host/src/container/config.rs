//! What a container is made from: [`ContainerConfig`] and its defaults, the
//! mounts it is given, and the errors of making one.

use super::*;

/// Default memory budget of one container: 512 MiB for all its memories
/// and tables together.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;

/// Default disk budget of one container: 1 GiB for its scratch `/` and the
/// files it writes in its mounts' working trees together. Finite, so an
/// untrusted guest cannot fill the host's disk out of the box; twice the
/// default memory, so a function that spools its input to a file before
/// working on it still fits.
pub const DEFAULT_DISK_LIMIT: u64 = 1 << 30;

/// Default wall-clock limit of one call: five minutes, as for a function
/// of an app (and Modal's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Default most files (and directory listings) one container holds open at
/// once: Linux's usual per-process soft limit, so one guest cannot use up
/// the host's descriptors and starve the others.
pub const DEFAULT_MAX_OPEN_FILES: u32 = 1024;

/// A host directory mounted into a guest (`vessel run --mount`).
#[derive(Debug, Clone)]
pub struct DirMount {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

/// How to set a container up.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// Most bytes the guest's memories and tables may hold together, over
    /// every core instance of the component (a table element counts
    /// [`TABLE_ELEMENT_BYTES`]).
    pub memory_limit: usize,
    /// Most core instances, linear memories and tables the component may
    /// make; past one, instantiation fails naming it.
    pub max_instances: usize,
    pub max_memories: usize,
    pub max_tables: usize,
    /// Wall-clock limit of one call, wherever the guest spends it (running,
    /// or waiting in a host call); `None` for none, which only the operator
    /// should choose ([`DEFAULT_TIMEOUT`] by default).
    pub timeout: Option<Duration>,
    pub dir_mounts: Vec<DirMount>,
    /// `argv` as the guest sees it, program name first.
    pub args: Vec<String>,
    /// Give the guest stdin (stdout and stderr are always given, so guests
    /// can log); where all three go is `stdio`.
    pub inherit_stdin: bool,
    /// The host process's stdio, or pipes to a `vessel` command that
    /// forwarded this call to the process owning the data dir.
    pub stdio: GuestStdio,
    /// The stores behind the dict and volume capabilities.
    pub stores: crate::storage::Stores,
    /// What the function may open by name.
    pub grants: Grants,
    /// Volumes to mount (need `stores.volumes`).
    pub volume_mounts: Vec<VolumeMount>,
    /// Commit mounted volumes this often while the guest runs; `None` turns
    /// background commits off.
    pub background_commit: Option<Duration>,
    /// Where container directories (scratch, mounts) are made. Mounts
    /// hard-link blobs, so this should be on the blob folder's filesystem;
    /// `None` uses the system's temporary directory.
    pub work_dir: Option<PathBuf>,
    /// Instructions one call may run (needs an engine that meters fuel);
    /// `None` for no budget.
    pub fuel: Option<u64>,
    /// Most files and directory listings the guest holds open at once; the
    /// open past it fails with `quota` (EDQUOT).
    pub max_open_files: u32,
    /// Most bytes the guest may hold on disk: what it writes to its scratch
    /// `/` and the files it writes (or copies up) in read-write volume
    /// mounts, plus 4 KiB per file or directory it makes in scratch. A
    /// write past it fails with `insufficient-space` (ENOSPC). Host
    /// directories in `dir_mounts` are not counted.
    pub disk_limit: u64,
}

/// Where a guest's stdin, stdout and stderr go.
#[derive(Clone, Default)]
pub enum GuestStdio {
    /// This process's own.
    #[default]
    Inherit,
    /// Streams of another party: the frames of a forwarded command.
    Piped {
        stdin: Arc<dyn StdinStream + Sync>,
        stdout: Arc<dyn StdoutStream + Sync>,
        stderr: Arc<dyn StdoutStream + Sync>,
    },
    /// Shared sinks (a server's stdout and stderr), each line tagged with
    /// the container's current call (see [`super::labelled`]); no stdin.
    Labelled {
        stdout: Arc<dyn super::OutputSink>,
        stderr: Arc<dyn super::OutputSink>,
    },
}

impl std::fmt::Debug for GuestStdio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestStdio::Inherit => "Inherit",
            GuestStdio::Piped { .. } => "Piped",
            GuestStdio::Labelled { .. } => "Labelled",
        })
    }
}

/// Default interval of background commits.
pub const DEFAULT_BACKGROUND_COMMIT: Duration = Duration::from_secs(5);

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memories: DEFAULT_MAX_MEMORIES,
            max_tables: DEFAULT_MAX_TABLES,
            timeout: Some(DEFAULT_TIMEOUT),
            dir_mounts: Vec::new(),
            args: Vec::new(),
            inherit_stdin: false,
            stdio: GuestStdio::Inherit,
            stores: crate::storage::Stores::default(),
            grants: Grants::default(),
            volume_mounts: Vec::new(),
            background_commit: Some(DEFAULT_BACKGROUND_COMMIT),
            work_dir: None,
            fuel: None,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            disk_limit: DEFAULT_DISK_LIMIT,
        }
    }
}

/// Why a container could not start or a call in it failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("cannot create the container's scratch directory: {0}")]
    Scratch(std::io::Error),
    #[error("cannot mount {host} at {guest}: {reason}")]
    Mount {
        host: PathBuf,
        guest: String,
        reason: String,
    },
    #[error("cannot instantiate the component: {0}")]
    Instantiate(String),
    #[error("the call timed out after {0:?}")]
    Timeout(Duration),
    #[error(
        "the component needs more than {limit} {what} in one container, the limit per container"
    )]
    TooMany { what: &'static str, limit: usize },
    #[error("the call ran out of fuel (its budget is {0} units)")]
    OutOfFuel(u64),
    #[error("the guest trapped: {0}")]
    Trap(String),
    /// The guest ended the call with an error it raised and did not catch
    /// (`functions.fail`, which the SDKs call).
    #[error("{0}")]
    Raised(crate::functions::Raised),
    /// A trap after the guest was refused memory (a memory bomb, or a
    /// guest that needs more than its limit): the usual end of a guest
    /// whose allocator aborts when memory cannot grow. `wanted` is what all
    /// its memories and tables would have held together.
    #[error(
        "the guest ran out of memory: growing its memories and tables to {wanted} bytes in all \
         would exceed the memory limit of {limit} bytes; then it trapped: {trap}"
    )]
    OutOfMemory {
        limit: usize,
        wanted: usize,
        trap: String,
    },
    #[error("the guest exited with status {0}")]
    Exit(i32),
    #[error(transparent)]
    Volume(#[from] MountError),
    #[error("invalid mount at {guest}: {reason}")]
    BadMount { guest: String, reason: String },
    #[error("the final commit of the container's volumes failed: {0}")]
    FinalCommit(String),
    #[error("fuel needs an engine that meters it (EngineConfig::fuel)")]
    FuelOff,
}

impl ContainerError {
    /// What the guest raised, when it ended the call with `fail`.
    pub fn raised(&self) -> Option<&crate::functions::Raised> {
        match self {
            ContainerError::Raised(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the instance is unusable after this error: once a guest
    /// traps, times out or exits, wasmtime refuses to enter it again, so a
    /// warm container must be retired rather than reused.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            ContainerError::Timeout(_)
                | ContainerError::OutOfFuel(_)
                | ContainerError::Trap(_)
                | ContainerError::Raised(_)
                | ContainerError::OutOfMemory { .. }
                | ContainerError::Exit(_)
        )
    }
}

/// Checks that mount paths are absolute, clean and do not overlap.
pub(super) fn check_mounts(config: &ContainerConfig) -> Result<(), ContainerError> {
    let mut guests: Vec<&str> = config
        .volume_mounts
        .iter()
        .map(|m| m.guest.as_str())
        .chain(config.dir_mounts.iter().map(|m| m.guest.as_str()))
        .collect();
    for g in &guests {
        let bad = |reason: &str| ContainerError::BadMount {
            guest: (*g).to_owned(),
            reason: reason.to_owned(),
        };
        if !g.starts_with('/') {
            return Err(bad("mount paths must be absolute"));
        }
        if g.trim_end_matches('/').is_empty() {
            return Err(bad("`/` is the container's scratch directory"));
        }
        if g.split('/').any(|c| c == ".." || c == ".") {
            return Err(bad("mount paths must not contain `.` or `..`"));
        }
    }
    guests.sort();
    for pair in guests.windows(2) {
        if let [a, b] = pair {
            let a = a.trim_end_matches('/');
            if *b == a || b.starts_with(&format!("{a}/")) {
                return Err(ContainerError::BadMount {
                    guest: (*b).to_owned(),
                    reason: format!("overlaps the mount at {a}"),
                });
            }
        }
    }
    Ok(())
}
