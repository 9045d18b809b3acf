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

mod config;
mod labelled;
mod limits;
mod waits;
mod workdir;
pub use crate::grant::{Grant, Grants};
pub use config::*;
pub use labelled::{OutputLabel, OutputSink};
use limits::{Caps, Limiter};
pub use limits::{
    DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORIES, DEFAULT_MAX_TABLES, TABLE_ELEMENT_BYTES,
};
pub use workdir::remove_stale_dirs;
use workdir::*;

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
    crate::volume::add_filesystem_to_linker(&mut linker)?;
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
    /// The label of labelled output (the current call).
    output_label: Arc<OutputLabel>,
    // Dropped with the container: scratch writes and mount working trees
    // vanish with it. Declared before `_lock` so the directory goes before
    // its lock is released (a released lock marks the directory stale).
    _dir: tempfile::TempDir,
    _lock: std::fs::File,
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
        // Guests' libraries expect a /tmp (Python's tempfile, Rust's
        // temp_dir); it is part of the scratch, under the disk budget.
        crate::private::create_dir(&scratch_dir.join(crate::volume::disk::SCRATCH_TMP))
            .map_err(ContainerError::Scratch)?;
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
        let output_label = Arc::new(OutputLabel::default());
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
            GuestStdio::Labelled { stdout, stderr } => {
                wasi.stdout(labelled::LabelledStream::new(
                    stdout.clone(),
                    output_label.clone(),
                    0,
                ))
                .stderr(labelled::LabelledStream::new(
                    stderr.clone(),
                    output_label.clone(),
                    1,
                ));
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
            output_label,
            _dir: dir,
            _lock: lock,
        })
    }

    /// Tags this container's output from now on, when its stdio is
    /// [`GuestStdio::Labelled`]: each line starts `[label] `.
    pub fn set_output_label(&self, label: &str) {
        self.output_label.set(label);
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

    /// Commits every writable mount, files open for writing included, as
    /// the final commit does, and keeps the container: the end of a call
    /// whose writes must be stored before it returns.
    pub fn commit_now(&mut self) -> Result<(), ContainerError> {
        let state = self.store.data_mut();
        let errors = state.volumes.commit_all(&state.table, false);
        if errors.is_empty() {
            return Ok(());
        }
        let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Err(ContainerError::FinalCommit(msgs.join("; ")))
    }

    /// Brings every mount with no file open to its volume's head, before a
    /// call that must see what a fresh container would.
    pub fn reload_mounts(&mut self) -> Result<(), ContainerError> {
        let state = self.store.data_mut();
        match state.volumes.reload_idle(&state.table).into_iter().next() {
            None => Ok(()),
            Some(e) => Err(ContainerError::Volume(e)),
        }
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
        self.commit_now()
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
        if let Some(raised) = e.downcast_ref::<crate::functions::Raised>() {
            return ContainerError::Raised(raised.clone());
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
        ContainerError::Trap(trap_message(&e))
    }
}

/// A guest trap as a caller reads it: what happened, without wasmtime's
/// backtrace of wasm function numbers, which says nothing to someone
/// without the guest's symbols (it is logged at `-v`, target
/// `vessel::trap`). An `unreachable` is how a guest's panic or abort ends:
/// the guest's own message, if it printed one, is on its stderr.
fn trap_message(e: &wasmtime::Error) -> String {
    let mut parts = Vec::new();
    let mut backtrace = None;
    for cause in e.chain() {
        let text = cause.to_string();
        if text.starts_with("error while executing at wasm backtrace") {
            backtrace = Some(text);
        } else {
            parts.push(text);
        }
    }
    if let Some(bt) = backtrace {
        tracing::info!(target: "vessel::trap", "guest trap: {bt}");
    }
    let mut msg = parts.join(": ");
    if msg.contains("`unreachable` instruction executed") {
        msg.push_str(" (the guest panicked or aborted; what it printed is on its stderr)");
    }
    msg
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
        // An entry the sweep cannot remove (in a shared temporary
        // directory, another user's) is passed over; the rest still go.
        std::fs::write(p.join("vessel-container-a-file"), b"").unwrap();

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
