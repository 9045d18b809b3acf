//! A container: one component instance with its store, limits, WASI context,
//! scratch directory and mounts.
//!
//! The container owns everything a running function can touch. Writes
//! outside every mount land in its scratch directory, which is deleted with
//! the container. Guests get no ambient network, environment or host files:
//! only the directories mounted for them.
//!
//! A container's directory holds a lock (`.lock`, flocked) while the
//! container lives. A process killed with kill -9 cannot remove its
//! containers' directories; the first container a process starts in a work
//! directory removes the ones whose lock nobody holds any more
//! ([`remove_stale_dirs`]), so crashes do not leak disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::cli::{StdinStream, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::dict::{DictCtx, DictCtxView, DictView};
use crate::engine::VesselEngine;
use crate::error::chain;
use crate::functions::{FunctionsCtx, FunctionsCtxView, FunctionsView};
use crate::keyvalue::{KeyValueCtx, KeyValueCtxView, KeyValueView};
use crate::volume::{
    DiskBudget, Mount, MountError, VolumeCtx, VolumeCtxView, VolumeMount, VolumeView,
};

mod limits;
use limits::{Caps, Limiter};
pub use limits::{
    DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORIES, DEFAULT_MAX_TABLES, TABLE_ELEMENT_BYTES,
};

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
}

impl std::fmt::Debug for GuestStdio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestStdio::Inherit => "Inherit",
            GuestStdio::Piped { .. } => "Piped",
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
    /// Whether the instance is unusable after this error: once a guest
    /// traps, times out or exits, wasmtime refuses to enter it again, so a
    /// warm container must be retired rather than reused.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            ContainerError::Timeout(_)
                | ContainerError::OutOfFuel(_)
                | ContainerError::Trap(_)
                | ContainerError::OutOfMemory { .. }
                | ContainerError::Exit(_)
        )
    }
}

/// The data of a container's store: WASI plus one context per vessel
/// capability, sharing one resource table.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limiter,
    volumes: VolumeCtx,
    dicts: DictCtx,
    keyvalue: KeyValueCtx,
    functions: FunctionsCtx,
    /// When mounts are committed in the background while the guest runs.
    background: BackgroundCommits,
}

/// The schedule of background commits. They run from the epoch callback
/// while the guest runs wasm, and from [`waits`] while it waits in
/// `wasi:io/poll` (a sleep, a read from a socket or stdin) or for another
/// function, so a guest that writes a checkpoint and then waits still has
/// it committed on time.
#[derive(Debug, Clone, Copy)]
struct BackgroundCommits {
    every: Option<Duration>,
    last: Instant,
}

impl BackgroundCommits {
    /// When the next background commit is due, if they are on.
    fn due(&self) -> Option<Instant> {
        self.every.map(|e| self.last + e)
    }
}

impl HostState {
    /// Runs a background commit if one is due.
    fn background_commit(&mut self, now: Instant) {
        if self.background.due().is_some_and(|due| now >= due) {
            self.background.last = now;
            for e in self.volumes.commit_all(&self.table, true) {
                tracing::warn!(error = %e, "background commit failed");
            }
        }
    }
}

/// `wasi:io/poll` and the waits of `vessel:storage/functions`, shadowed so
/// background commits keep their schedule while the guest waits: the wait
/// is cut at the next commit's due time, the commit runs, and the wait
/// starts again. wasmtime-wasi makes the pollables' futures afresh on each
/// poll, and a call's task runs on while its `get` is cut, so cutting a
/// wait loses nothing.
mod waits {
    use std::time::Instant;

    use wasmtime::StoreContextMut;
    use wasmtime::component::{Linker, Resource};
    use wasmtime_wasi::p2::DynPollable;
    use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};

    use super::HostState;
    use crate::bindings::vessel::storage::functions::HostCall as _;
    use crate::bindings::vessel::storage::types::Host as _;
    use crate::error::WitError;
    use crate::functions::{CallHandle, FunctionsView as _};

    const POLL: &str = "wasi:io/poll@0.2.12";
    const FUNCTIONS: &str = "vessel:storage/functions@0.1.0";

    type Wait<'a, R> = Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>;

    /// Waits for `wait` on the store's state, committing in the background
    /// whenever a commit falls due first. `wait` must be restartable: it is
    /// dropped at each commit and made again.
    async fn with_commits<R>(
        store: &mut StoreContextMut<'_, HostState>,
        wait: impl for<'s> Fn(&'s mut HostState) -> Wait<'s, R>,
    ) -> wasmtime::Result<R> {
        loop {
            let due = store.data().background.due();
            let waited = {
                let fut = std::pin::Pin::from(wait(store.data_mut()));
                match due {
                    None => Some(fut.await),
                    Some(due) => tokio::select! {
                        r = fut => Some(r),
                        () = tokio::time::sleep_until(due.into()) => None,
                    },
                }
            };
            match waited {
                Some(r) => return r,
                None => store.data_mut().background_commit(Instant::now()),
            }
        }
    }

    /// Waits for the call `rep` (a `call` handle) as `call.get` does, with
    /// background commits meanwhile; the error converted for the guest.
    async fn get_call(
        store: &mut StoreContextMut<'_, HostState>,
        rep: u32,
    ) -> wasmtime::Result<Result<String, WitError>> {
        let got = with_commits(store, |state| {
            Box::new(async move {
                let mut view = state.functions();
                Ok(view.get(Resource::<CallHandle>::new_borrow(rep)).await)
            })
        })
        .await?;
        match got {
            Ok(s) => Ok(Ok(s)),
            Err(e) => Ok(Err(store.data_mut().functions().convert_error(e)?)),
        }
    }

    pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        linker.allow_shadowing(true);
        let mut inst = linker.instance(POLL)?;
        inst.func_wrap_async(
            "poll",
            |mut store: StoreContextMut<'_, HostState>,
             (pollables,): (Vec<Resource<DynPollable>>,)| {
                Box::new(async move {
                    let reps: Vec<u32> = pollables.iter().map(Resource::rep).collect();
                    let ready = with_commits(&mut store, |state| {
                        let ps = reps.iter().map(|r| Resource::new_borrow(*r)).collect();
                        Box::new(state.table.poll(ps))
                    })
                    .await?;
                    Ok((ready,))
                }) as Wait<'_, (Vec<u32>,)>
            },
        )?;
        inst.func_wrap_async(
            "[method]pollable.block",
            |mut store: StoreContextMut<'_, HostState>, (pollable,): (Resource<DynPollable>,)| {
                Box::new(async move {
                    let rep = pollable.rep();
                    with_commits(&mut store, |state| {
                        Box::new(state.table.block(Resource::new_borrow(rep)))
                    })
                    .await?;
                    Ok(())
                }) as Wait<'_, ()>
            },
        )?;
        // A function waiting for another keeps committing too: `remote` is
        // `spawn` then `get`, and `get` waits as a poll does.
        let mut inst = linker.instance(FUNCTIONS)?;
        inst.func_wrap_async(
            "remote",
            |mut store: StoreContextMut<'_, HostState>, (function, args): (String, String)| {
                Box::new(async move {
                    let started = store.data_mut().functions().start_handle(&function, &args);
                    let rep = match started {
                        Ok(rep) => rep,
                        Err(e) => {
                            return Ok((Err(store.data_mut().functions().convert_error(e)?),));
                        }
                    };
                    let got = get_call(&mut store, rep).await;
                    store
                        .data_mut()
                        .table
                        .delete(Resource::<CallHandle>::new_own(rep))?;
                    Ok((got?,))
                }) as Wait<'_, (Result<String, WitError>,)>
            },
        )?;
        inst.func_wrap_async(
            "[method]call.get",
            |mut store: StoreContextMut<'_, HostState>, (call,): (Resource<CallHandle>,)| {
                Box::new(async move { Ok((get_call(&mut store, call.rep()).await?,)) })
                    as Wait<'_, (Result<String, WitError>,)>
            },
        )?;
        Ok(())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl VolumeView for HostState {
    fn volume(&mut self) -> VolumeCtxView<'_> {
        VolumeCtxView {
            ctx: &mut self.volumes,
            table: &mut self.table,
        }
    }
}

impl DictView for HostState {
    fn dict(&mut self) -> DictCtxView<'_> {
        DictCtxView {
            ctx: &mut self.dicts,
            table: &mut self.table,
        }
    }
}

impl KeyValueView for HostState {
    fn keyvalue(&mut self) -> KeyValueCtxView<'_> {
        KeyValueCtxView {
            ctx: &mut self.keyvalue,
            table: &mut self.table,
        }
    }
}

impl FunctionsView for HostState {
    fn functions(&mut self) -> FunctionsCtxView<'_> {
        FunctionsCtxView {
            ctx: &mut self.functions,
            table: &mut self.table,
        }
    }
}

/// The linker every container uses: WASI 0.2, `vessel:storage` and
/// `wasi:keyvalue` (over the same dicts).
pub fn linker(engine: &VesselEngine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::volume::wasi::add_to_linker(&mut linker)?;
    crate::volume::add_to_linker(&mut linker)?;
    crate::dict::add_to_linker(&mut linker)?;
    crate::keyvalue::add_to_linker(&mut linker)?;
    crate::functions::add_to_linker(&mut linker)?;
    waits::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// A store ready to instantiate one component, with its scratch directory.
pub struct Container {
    store: Store<HostState>,
    timeout: Option<Duration>,
    /// The deadline an instantiation started, kept for the call that
    /// follows it: making the instance counts toward that call's time.
    carried: Option<Option<Instant>>,
    /// A call passed its deadline: the instance is dead, and what the guest
    /// had not committed is dropped rather than committed at shutdown.
    timed_out: bool,
    fuel: Option<u64>,
    metered: bool,
    // Dropped with the container: scratch writes and mount working trees
    // vanish with it. Declared before `_lock` so the directory goes before
    // its lock is released (a released lock marks the directory stale).
    _dir: tempfile::TempDir,
    _lock: std::fs::File,
}

/// The lock file inside a container directory.
const LOCK_FILE: &str = ".lock";
/// The lock file while it is being made (see [`lock_dir`]).
const LOCK_NEW: &str = ".lock.new";
/// Names of container directories in a work directory.
const DIR_PREFIX: &str = "vessel-container-";
/// A stale container directory, renamed before removal so that a removal
/// cut short is finished later (no lock to check: it is dead).
const TRASH_PREFIX: &str = ".trash-";

/// Locks a new container directory for the container's life. The lock file
/// is created under another name, locked, then renamed into place, so
/// [`remove_stale_dirs`] never sees an unlocked `.lock` of a live
/// container.
fn lock_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    let tmp = dir.join(LOCK_NEW);
    let f = crate::private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.lock()?;
    std::fs::rename(&tmp, dir.join(LOCK_FILE))?;
    Ok(f)
}

/// Removes the container directories in `parent` that no live container
/// holds: those a killed process left behind. A directory whose lock is
/// held, or that has no lock yet (being created), is kept. Returns how many
/// went.
pub fn remove_stale_dirs(parent: &std::path::Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(TRASH_PREFIX) {
            // Another cleaner may be removing it at the same time.
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        if !name.starts_with(DIR_PREFIX) {
            continue;
        }
        if !is_stale(&path) {
            continue;
        }
        let trash = parent.join(format!("{TRASH_PREFIX}{name}"));
        std::fs::rename(&path, &trash)?;
        std::fs::remove_dir_all(&trash)?;
        removed += 1;
    }
    Ok(removed)
}

/// Whether the container directory at `path` belongs to no live process:
/// its lock is free, or it has no held lock at all (the lock being made,
/// `.lock.new`, is free or absent). The latter is a process killed while it
/// made the directory; such directories used to be kept for ever, and piled
/// up. A live process making a directory at that moment loses it to the
/// cleaner and makes another ([`make_dir`]).
fn is_stale(path: &std::path::Path) -> bool {
    let free = |name: &str| {
        std::fs::File::open(path.join(name))
            .ok()
            .map(|f| f.try_lock().is_ok())
    };
    free(LOCK_FILE).or_else(|| free(LOCK_NEW)).unwrap_or(true)
}

/// Makes and locks a container directory in `parent` (the system's
/// temporary directory when `None`), removing stale ones there first. A
/// directory another process's cleaner took before its lock was held is
/// made again.
fn make_dir(
    parent: Option<&std::path::Path>,
) -> std::io::Result<(tempfile::TempDir, std::fs::File)> {
    let mut builder = tempfile::Builder::new();
    // 0700: the files a guest makes in its scratch and mounts get the
    // umask's modes (wasmtime-wasi sets none), and no other user may reach
    // them.
    builder
        .prefix(DIR_PREFIX)
        .permissions(crate::private::dir_permissions());
    let mut attempt = 0;
    loop {
        let dir = match parent {
            Some(parent) => crate::private::create_dir_all(parent).and_then(|()| {
                clean_once(parent);
                builder.tempdir_in(parent)
            }),
            None => builder.tempdir(),
        }?;
        match lock_dir(dir.path()) {
            Ok(lock) => return Ok((dir, lock)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Runs [`remove_stale_dirs`] on `parent` the first time this process
/// starts a container there.
fn clean_once(parent: &std::path::Path) {
    static CLEANED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut done = CLEANED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if done.iter().any(|p| p == parent) {
        return;
    }
    done.push(parent.to_owned());
    match remove_stale_dirs(parent) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "removed {n} container director{} left by a process that died in {}",
            if n == 1 { "y" } else { "ies" },
            parent.display()
        ),
        Err(e) => tracing::warn!(
            "cannot remove stale container directories in {}: {e}",
            parent.display()
        ),
    }
}

/// Checks that mount paths are absolute, clean and do not overlap.
fn check_mounts(config: &ContainerConfig) -> Result<(), ContainerError> {
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

impl Container {
    /// Builds a fresh store for `config`.
    pub fn new(engine: &VesselEngine, config: &ContainerConfig) -> Result<Self, ContainerError> {
        check_mounts(config)?;
        if config.fuel.is_some() && !engine.fuel() {
            return Err(ContainerError::FuelOff);
        }
        let (dir, lock) = make_dir(config.work_dir.as_deref()).map_err(ContainerError::Scratch)?;
        let scratch_dir = dir.path().join("scratch");
        crate::private::create_dir(&scratch_dir).map_err(ContainerError::Scratch)?;
        let mut mounts = Vec::new();
        if !config.volume_mounts.is_empty() {
            let store = config
                .stores
                .volumes
                .as_ref()
                .ok_or_else(|| ContainerError::BadMount {
                    guest: config
                        .volume_mounts
                        .first()
                        .map(|m| m.guest.clone())
                        .unwrap_or_default(),
                    reason: "no volume store configured".into(),
                })?;
            for (i, spec) in config.volume_mounts.iter().enumerate() {
                let host_dir = dir.path().join("mounts").join(i.to_string());
                mounts.push(Mount::materialize(store, spec, &host_dir)?);
            }
        }
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&config.args);
        match &config.stdio {
            GuestStdio::Inherit => {
                wasi.inherit_stdout().inherit_stderr();
                if config.inherit_stdin {
                    wasi.inherit_stdin();
                }
            }
            GuestStdio::Piped {
                stdin,
                stdout,
                stderr,
            } => {
                wasi.stdout(stdout.clone()).stderr(stderr.clone());
                if config.inherit_stdin {
                    wasi.stdin(stdin.clone());
                }
            }
        }
        // The scratch dir is the guest's `/`; mounts are longer preopens and
        // win for paths under them.
        wasi.preopened_dir(&scratch_dir, "/", FsPerms::ReadWrite)
            .map_err(|e| ContainerError::Mount {
                host: scratch_dir.clone(),
                guest: "/".into(),
                reason: chain(&e),
            })?;
        for m in &config.dir_mounts {
            let perms = if m.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&m.host, &m.guest, perms)
                .map_err(|e| ContainerError::Mount {
                    host: m.host.clone(),
                    guest: m.guest.clone(),
                    reason: chain(&e),
                })?;
        }
        for m in &mounts {
            let perms = if m.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&m.host_dir, &m.guest, perms)
                .map_err(|e| ContainerError::Mount {
                    host: m.host_dir.clone(),
                    guest: m.guest.clone(),
                    reason: chain(&e),
                })?;
        }
        let disk = DiskBudget::for_container(config.disk_limit, &scratch_dir, &mounts)
            .map_err(ContainerError::Scratch)?;
        let limits = Limiter::new(Caps {
            bytes: config.memory_limit,
            instances: config.max_instances,
            memories: config.max_memories,
            tables: config.max_tables,
        });
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
            volumes: VolumeCtx::new(
                config.stores.volumes.clone(),
                config.grants.volumes.clone(),
                mounts,
            )
            .with_open_limit(usize::try_from(config.max_open_files).unwrap_or(usize::MAX))
            .with_disk(
                disk,
                config.dir_mounts.iter().map(|m| m.guest.clone()).collect(),
            ),
            dicts: DictCtx::new(config.stores.dicts.clone(), config.grants.dicts.clone()),
            // Buckets are dicts: the same store and the same grant.
            keyvalue: KeyValueCtx::new(config.stores.dicts.clone(), config.grants.dicts.clone()),
            functions: FunctionsCtx::default(),
            background: BackgroundCommits {
                every: config.background_commit,
                last: Instant::now(),
            },
        };
        let mut store = Store::new(engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        Ok(Container {
            store,
            timeout: config.timeout,
            carried: None,
            timed_out: false,
            fuel: config.fuel,
            metered: engine.fuel(),
            _dir: dir,
            _lock: lock,
        })
    }

    pub fn store_mut(&mut self) -> &mut Store<HostState> {
        &mut self.store
    }

    /// The guest's disk budget: its limit and what it has used.
    pub fn disk(&self) -> &DiskBudget {
        self.store.data().volumes.disk()
    }

    /// Arms the deadline of the next call, or of an instantiation and the
    /// call after it, and returns it. The call's future is cut there
    /// ([`until`]) wherever the guest is, running wasm or waiting in a host
    /// call; the epoch callback also traps once it has passed, which ends a
    /// guest in a CPU loop between two yields, and otherwise yields, so
    /// other tasks keep running.
    ///
    /// The same callback runs background commits: it fires only between
    /// wasm instructions, never inside a host call, so the mounts are in a
    /// consistent state then (and [`waits`] runs them while the guest
    /// waits in `wasi:io/poll`).
    fn arm_deadline(&mut self) -> Result<Option<Instant>, ContainerError> {
        if self.timed_out {
            // wasmtime must not enter a store whose call future was dropped.
            return Err(ContainerError::Trap(
                "the container timed out in an earlier call and cannot run again".into(),
            ));
        }
        let deadline = match self.carried.take() {
            Some(d) => d,
            None => self.timeout.map(|t| Instant::now() + t),
        };
        self.store.data_mut().limits.refused = None;
        if self.metered {
            // Without a budget a metering engine still needs fuel to run.
            self.store
                .set_fuel(self.fuel.unwrap_or(u64::MAX))
                .map_err(|e| ContainerError::Trap(chain(&e)))?;
        }
        // Each call starts a fresh interval.
        self.store.data_mut().background.last = Instant::now();
        self.store.set_epoch_deadline(1);
        self.store.epoch_deadline_callback(move |mut ctx| {
            let now = Instant::now();
            if let Some(d) = deadline
                && now >= d
            {
                return Err(wasmtime::Error::new(TimedOut));
            }
            ctx.data_mut().background_commit(now);
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(deadline)
    }

    /// Sets who this container's guest is, for its calls to other functions
    /// of its app.
    pub fn set_caller(&mut self, caller: crate::functions::CallerCtx) {
        self.store.data_mut().functions.caller = Some(caller);
    }

    /// Commits every writable mount's pending changes, as a background
    /// commit does; for warm containers that wait between calls.
    pub fn commit_pending(&mut self) -> Vec<MountError> {
        let state = self.store.data_mut();
        state.volumes.commit_all(&state.table, true)
    }

    /// Bytes the guest's memories and tables hold together, as counted
    /// against the memory limit.
    pub fn memory_used(&self) -> usize {
        self.store.data().limits.used()
    }

    /// Ends the container: a final commit of every writable mount. Call it
    /// after the last call, whether that call succeeded or not. A container
    /// whose call timed out commits nothing: it was cut wherever it was,
    /// perhaps in the middle of writing a file, so what it had not
    /// committed itself (or a background commit for it) is dropped.
    pub fn shutdown(&mut self) -> Result<(), ContainerError> {
        if self.timed_out {
            tracing::debug!("a timed-out container ends without a final commit");
            return Ok(());
        }
        let state = self.store.data_mut();
        let errors = state.volumes.commit_all(&state.table, false);
        if errors.is_empty() {
            Ok(())
        } else {
            let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Err(ContainerError::FinalCommit(msgs.join("; ")))
        }
    }

    /// Instantiates `component` in this container. The deadline it starts
    /// is the next call's too.
    pub async fn instantiate(
        &mut self,
        linker: &Linker<HostState>,
        component: &Component,
    ) -> Result<wasmtime::component::Instance, ContainerError> {
        let deadline = self.arm_deadline()?;
        let made = until(
            deadline,
            linker.instantiate_async(&mut self.store, component),
        )
        .await;
        match made {
            Ok(instance) => {
                self.carried = Some(deadline);
                Ok(instance)
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Calls `func` with `params`; returns its result, if it has one.
    pub async fn call(
        &mut self,
        func: wasmtime::component::Func,
        params: &[Val],
        result_count: usize,
    ) -> Result<Option<Val>, ContainerError> {
        let deadline = self.arm_deadline()?;
        let mut results = vec![Val::Bool(false); result_count];
        until(
            deadline,
            func.call_async(&mut self.store, params, &mut results),
        )
        .await
        .map_err(|e| self.classify(e))?;
        Ok(results.into_iter().next())
    }

    /// Runs a `wasi:cli/run` command component to completion and returns
    /// its exit status. One deadline covers instantiating and running it.
    pub async fn run_command(
        &mut self,
        linker: &Linker<HostState>,
        component: &Component,
    ) -> Result<i32, ContainerError> {
        let deadline = self.arm_deadline()?;
        let made = until(
            deadline,
            wasmtime_wasi::p2::bindings::Command::instantiate_async(
                &mut self.store,
                component,
                linker,
            ),
        )
        .await;
        let command = made.map_err(|e| match self.classify(e) {
            ContainerError::Trap(m) => ContainerError::Instantiate(m),
            other => other,
        })?;
        let ran = until(deadline, command.wasi_cli_run().call_run(&mut self.store)).await;
        match ran {
            Ok(Ok(())) => Ok(0),
            Ok(Err(())) => Ok(1),
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => Err(self.classify(e)),
            },
        }
    }

    /// Maps a wasmtime error out of guest code to what went wrong.
    fn classify(&mut self, e: wasmtime::Error) -> ContainerError {
        if e.is::<TimedOut>() {
            self.timed_out = true;
            return ContainerError::Timeout(self.timeout.unwrap_or_default());
        }
        if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return ContainerError::Exit(exit.0);
        }
        if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
            return ContainerError::OutOfFuel(self.fuel.unwrap_or(u64::MAX));
        }
        let limits = &self.store.data().limits;
        if let Some((what, limit)) = limits::count_exceeded(&e, limits.caps()) {
            return ContainerError::TooMany { what, limit };
        }
        if let Some(refused) = limits.refused {
            return ContainerError::OutOfMemory {
                limit: limits.caps().bytes,
                wanted: refused.wanted,
                trap: chain(&e),
            };
        }
        ContainerError::Trap(chain(&e))
    }
}

/// Runs `work`, guest code and the host calls it makes, until `deadline`.
/// Past it the future is dropped: wasmtime then resumes the guest's fiber
/// with an error that unwinds it from wherever it was suspended (a sleep, a
/// poll, a read from stdin, a wait for another function), so the guest
/// stops at once and its container can be retired. The store must not run
/// guest code again after that; the timeout error poisons the instance.
async fn until<T>(
    deadline: Option<Instant>,
    work: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    match deadline {
        None => work.await,
        Some(d) => tokio::time::timeout_at(d.into(), work)
            .await
            .unwrap_or_else(|_| Err(wasmtime::Error::new(TimedOut))),
    }
}

/// The error that ends a call whose deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("deadline passed")]
struct TimedOut;

/// Which names of one kind (dicts or volumes) a function may open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Grant {
    /// Everything: a component called directly by its owner (`vessel call
    /// COMPONENT`), with no manifest to narrow it.
    #[default]
    All,
    /// Only these names.
    Only(std::collections::BTreeSet<String>),
}

impl Grant {
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Only(names) => names.contains(name),
        }
    }
}

/// The dicts and volumes a function may open by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub dicts: Grant,
    pub volumes: Grant,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stale_dirs_go_live_and_unlocked_ones_stay() {
        let parent = tempfile::tempdir().unwrap();
        let p = parent.path();
        let make = |name: &str| {
            let d = p.join(format!("{DIR_PREFIX}{name}"));
            std::fs::create_dir_all(d.join("scratch/deep")).unwrap();
            std::fs::write(d.join("scratch/deep/f"), b"x").unwrap();
            d
        };
        let live = make("live");
        let _held = lock_dir(&live).unwrap();
        let dead = make("dead");
        drop(lock_dir(&dead).unwrap());
        // No lock at all: its creator was killed right after making it.
        let bare = make("bare");
        // Its lock being made and held: being created by another process.
        let locking = make("locking");
        let held_new = std::fs::File::create(locking.join(".lock.new")).unwrap();
        held_new.lock().unwrap();
        // Its lock made but free, never renamed: its creator was killed.
        let killed = make("killed");
        drop(std::fs::File::create(killed.join(".lock.new")).unwrap());
        // A removal cut short.
        std::fs::create_dir_all(p.join(".trash-x/y")).unwrap();
        let other = p.join("not-ours");
        std::fs::create_dir(&other).unwrap();

        assert_eq!(remove_stale_dirs(p).unwrap(), 3);
        assert!(live.join("scratch/deep/f").exists());
        assert!(!dead.exists());
        assert!(!killed.exists());
        assert!(!bare.exists());
        assert!(locking.exists());
        assert!(other.exists());
        assert!(!p.join(".trash-x").exists());
        assert_eq!(remove_stale_dirs(&p.join("missing")).unwrap(), 0);
    }
}
