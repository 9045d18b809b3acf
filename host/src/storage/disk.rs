//! The storage layer's own file-system calls, behind one seam.
//!
//! Every call the embedded store makes to put data on disk durably goes
//! through a [`StorageIo`]: the blob folder's temporary files, their writes
//! and fsyncs, the renames that install blobs, the directories it creates
//! and fsyncs, and the fsyncs that make sled's files durable (see
//! `embedded::durable`; sled's own writes are sled's, so its flush counts
//! as one write here). Reads are not wrapped: they cannot lose data.
//!
//! [`StorageIo::default`] is plain `std::fs` calls (one branch on a `None`
//! per call, nothing else). Two test modes sit behind the same seam, chosen
//! when the store opens (`EmbeddedOptions::io`):
//! - [`StorageIo::faulty`] counts the calls of each [`OpKind`] and fails the
//!   ones a [`FaultPlan`] names (the Nth write, fsync, rename, create or
//!   remove, once or from then on, with EIO or ENOSPC). The CLI reads a plan
//!   from the hidden `--inject-faults` flag or `VESSEL_FAULTS` (see
//!   RELIABILITY.md); guests reach neither.
//! - [`StorageIo::power_sim`] also models what a disk would keep if power
//!   failed now (see [`power`]): which writes, creates and renames were
//!   synced. [`StorageIo::materialise`] writes one possible surviving state
//!   into a fresh directory, which the store then reopens.
//!
//! Errors carry the call and the path (`fsync /data/blobs/ab: ...`) and
//! keep the `io::ErrorKind`, so a full disk stays recognisable as
//! `StorageFull` however deep it comes from.

pub mod power;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use power::{PowerOptions, PowerReport, Sabotage, SledTear};

/// The kinds of call a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// A write to a file (a blob's bytes; sled's flush counts as one).
    Write,
    /// An fsync of a file or a directory.
    Fsync,
    /// A rename (installing a blob).
    Rename,
    /// Creating a file or a directory.
    Create,
    /// Removing a file.
    Remove,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::Write,
        OpKind::Fsync,
        OpKind::Rename,
        OpKind::Create,
        OpKind::Remove,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Write => "write",
            OpKind::Fsync => "fsync",
            OpKind::Rename => "rename",
            OpKind::Create => "create",
            OpKind::Remove => "remove",
        }
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether an injected fault fires once or keeps firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Only the Nth call fails; the next one succeeds.
    Once,
    /// The Nth call and every later one of its kind fail until
    /// [`StorageIo::clear_faults`].
    Forever,
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// An I/O error (EIO).
    Eio,
    /// No space left on the device (ENOSPC).
    Enospc,
}

/// One injected fault: the `nth` call (from 1) of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: OpKind,
    pub nth: u64,
    pub mode: FaultMode,
    pub error: FaultError,
}

/// The faults a [`StorageIo::faulty`] injects. Calls are counted per kind
/// from when the store has opened (so a plan names the calls of the
/// operations that follow, not the store's own start-up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub faults: Vec<Fault>,
}

/// A fault plan that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid fault plan {spec:?}: {reason} (expected KIND:N[:once|forever][:eio|enospc], \
     comma-separated; KIND is write, fsync, rename, create or remove; N counts from 1)"
)]
pub struct FaultSpecError {
    pub spec: String,
    pub reason: String,
}

impl FaultPlan {
    /// One fault.
    pub fn single(kind: OpKind, nth: u64, mode: FaultMode, error: FaultError) -> Self {
        FaultPlan {
            faults: vec![Fault {
                kind,
                nth,
                mode,
                error,
            }],
        }
    }

    /// Parses `KIND:N[:once|forever][:eio|enospc]`, comma-separated, e.g.
    /// `fsync:3:once` or `write:1:forever:enospc`. The mode defaults to
    /// `once` and the error to `eio`.
    pub fn parse(spec: &str) -> Result<Self, FaultSpecError> {
        let bad = |reason: String| FaultSpecError {
            spec: spec.to_owned(),
            reason,
        };
        let mut faults = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let mut parts = item.split(':');
            let kind = match parts.next().unwrap_or_default() {
                "write" => OpKind::Write,
                "fsync" => OpKind::Fsync,
                "rename" => OpKind::Rename,
                "create" => OpKind::Create,
                "remove" => OpKind::Remove,
                other => return Err(bad(format!("unknown call kind {other:?}"))),
            };
            let nth = match parts.next().map(str::parse::<u64>) {
                Some(Ok(n)) if n >= 1 => n,
                _ => return Err(bad(format!("{item:?} needs a count N >= 1 after the kind"))),
            };
            let mut mode = FaultMode::Once;
            let mut error = FaultError::Eio;
            for p in parts {
                match p {
                    "once" => mode = FaultMode::Once,
                    "forever" => mode = FaultMode::Forever,
                    "eio" => error = FaultError::Eio,
                    "enospc" => error = FaultError::Enospc,
                    other => return Err(bad(format!("unknown option {other:?} in {item:?}"))),
                }
            }
            faults.push(Fault {
                kind,
                nth,
                mode,
                error,
            });
        }
        if faults.is_empty() {
            return Err(bad("it names no fault".into()));
        }
        Ok(FaultPlan { faults })
    }
}

impl std::str::FromStr for FaultPlan {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultPlan::parse(s)
    }
}

/// How many calls of each kind a [`StorageIo`] has seen since the store
/// opened (or the last [`StorageIo::reset_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub write: u64,
    pub fsync: u64,
    pub rename: u64,
    pub create: u64,
    pub remove: u64,
}

impl OpCounts {
    pub fn get(&self, kind: OpKind) -> u64 {
        match kind {
            OpKind::Write => self.write,
            OpKind::Fsync => self.fsync,
            OpKind::Rename => self.rename,
            OpKind::Create => self.create,
            OpKind::Remove => self.remove,
        }
    }

    fn bump(&mut self, kind: OpKind) -> u64 {
        let c = match kind {
            OpKind::Write => &mut self.write,
            OpKind::Fsync => &mut self.fsync,
            OpKind::Rename => &mut self.rename,
            OpKind::Create => &mut self.create,
            OpKind::Remove => &mut self.remove,
        };
        *c += 1;
        *c
    }
}

/// The storage layer's file-system calls: plain `std::fs` by default, or
/// counted, failed on plan and modelled for power loss (see the module
/// docs). Cheap to clone; clones share counts, plan and model.
#[derive(Clone, Default)]
pub struct StorageIo {
    hooks: Option<Arc<Hooks>>,
}

impl std::fmt::Debug for StorageIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.hooks {
            None => f.write_str("StorageIo(std::fs)"),
            Some(_) => f.write_str("StorageIo(hooked)"),
        }
    }
}

struct Hooks {
    state: Mutex<HookState>,
}

/// A test's callback, run before every call of a hooked [`StorageIo`]
/// (outside its lock), so a test can act at an exact point of an
/// operation: read from another thread while a commit's fsync is pending.
pub type CallHook = Arc<dyn Fn(OpKind, &Path) + Send + Sync>;

#[derive(Default)]
struct HookState {
    /// Every call, from the start (the store's own start-up included).
    calls: u64,
    /// Per kind, since the store opened.
    counts: OpCounts,
    /// Counting (and the plan) starts once the store has opened.
    opened: bool,
    faults: Vec<Fault>,
    /// How many calls an injected fault failed.
    fired: u64,
    sim: Option<power::Sim>,
    hook: Option<CallHook>,
}

impl Hooks {
    fn lock(&self) -> MutexGuard<'_, HookState> {
        // The state is counters and a model; a panic elsewhere leaves it
        // usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a call and decides whether it may run: an injected fault or
    /// a simulated power cut fails it.
    fn before(&self, kind: OpKind, path: &Path) -> io::Result<()> {
        let hook = self.lock().hook.clone();
        if let Some(hook) = hook {
            hook(kind, path);
        }
        let mut st = self.lock();
        st.calls += 1;
        if let Some(sim) = &mut st.sim
            && let Err(e) = sim.tick()
        {
            return Err(context(e, kind.name(), path));
        }
        if !st.opened {
            return Ok(());
        }
        let n = st.counts.bump(kind);
        let hit = st.faults.iter().find(|f| {
            f.kind == kind
                && match f.mode {
                    FaultMode::Once => n == f.nth,
                    FaultMode::Forever => n >= f.nth,
                }
        });
        let Some(fault) = hit.copied() else {
            return Ok(());
        };
        st.fired += 1;
        drop(st);
        tracing::warn!(
            "injected fault: {kind} #{n} ({:?}, {:?}) on {}",
            fault.mode,
            fault.error,
            path.display()
        );
        let (ek, what) = match fault.error {
            FaultError::Eio => (io::ErrorKind::Other, "input/output error (EIO)"),
            FaultError::Enospc => (
                io::ErrorKind::StorageFull,
                "no space left on device (ENOSPC)",
            ),
        };
        Err(context(
            io::Error::new(ek, format!("injected fault, {kind} #{n}: {what}")),
            kind.name(),
            path,
        ))
    }

    fn model(&self, f: impl FnOnce(&mut power::Sim)) {
        if let Some(sim) = &mut self.lock().sim {
            f(sim);
        }
    }

    fn simulating(&self) -> bool {
        self.lock().sim.is_some()
    }
}

/// Whether `e` says the disk is full (ENOSPC, injected or real).
pub fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
}

/// Adds the call and the path to an error, keeping its kind.
fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl StorageIo {
    /// Plain `std::fs` calls (the default).
    pub fn real() -> Self {
        StorageIo::default()
    }

    /// Counts calls and injects the faults of `plan` (see [`FaultPlan`]).
    pub fn faulty(plan: FaultPlan) -> Self {
        StorageIo {
            hooks: Some(Arc::new(Hooks {
                state: Mutex::new(HookState {
                    faults: plan.faults,
                    ..HookState::default()
                }),
            })),
        }
    }

    /// Models power loss for the store whose data directory is `root` (see
    /// [`power`]); `root` itself must exist and be durable. Counts and
    /// injects faults too (no plan at first). fsyncs are modelled, not
    /// issued: the model decides what survives.
    pub fn power_sim(root: &Path, options: PowerOptions) -> Self {
        StorageIo {
            hooks: Some(Arc::new(Hooks {
                state: Mutex::new(HookState {
                    sim: Some(power::Sim::new(root, options)),
                    ..HookState::default()
                }),
            })),
        }
    }

    /// Whether this is the plain `std::fs` implementation.
    pub fn is_real(&self) -> bool {
        self.hooks.is_none()
    }

    /// Replaces the fault plan (a no-op on the plain implementation).
    pub fn set_faults(&self, plan: FaultPlan) {
        if let Some(h) = &self.hooks {
            h.lock().faults = plan.faults;
        }
    }

    /// Runs `hook` before every later call (`None` removes it; a no-op on
    /// the plain implementation).
    pub fn set_call_hook(&self, hook: Option<CallHook>) {
        if let Some(h) = &self.hooks {
            h.lock().hook = hook;
        }
    }

    /// Removes every fault: the next calls succeed.
    pub fn clear_faults(&self) {
        self.set_faults(FaultPlan::default());
    }

    /// Calls of each kind since the store opened or the last reset.
    pub fn counts(&self) -> OpCounts {
        self.hooks
            .as_ref()
            .map(|h| h.lock().counts)
            .unwrap_or_default()
    }

    /// Every call so far, the store's start-up included (what
    /// [`PowerOptions::cut_after`] counts).
    pub fn calls(&self) -> u64 {
        self.hooks.as_ref().map(|h| h.lock().calls).unwrap_or(0)
    }

    pub fn reset_counts(&self) {
        if let Some(h) = &self.hooks {
            h.lock().counts = OpCounts::default();
        }
    }

    /// How many calls injected faults have failed.
    pub fn faults_fired(&self) -> u64 {
        self.hooks.as_ref().map(|h| h.lock().fired).unwrap_or(0)
    }

    /// Cuts the power now (power simulation): every later call fails.
    pub fn cut_power(&self) {
        if let Some(h) = &self.hooks {
            h.model(power::Sim::cut);
        }
    }

    /// Writes what the disk holds after the power cut into `into` (a new
    /// directory): one state a real disk could be left in, picked with
    /// `seed` (see [`power`]). Only for [`power_sim`](Self::power_sim).
    pub fn materialise(&self, into: &Path, seed: u64) -> io::Result<PowerReport> {
        let Some(h) = &self.hooks else {
            return Err(io::Error::other("not a power simulation"));
        };
        let st = h.lock();
        match &st.sim {
            Some(sim) => sim.materialise(into, seed),
            None => Err(io::Error::other("not a power simulation")),
        }
    }

    // ---- the calls the storage layer makes ----

    /// Marks the store open: from now on calls are counted for the plan.
    pub(crate) fn opened(&self) {
        if let Some(h) = &self.hooks {
            let mut st = h.lock();
            st.opened = true;
            st.counts = OpCounts::default();
        }
    }

    /// Declares `dir` as written by someone else (sled): the power model
    /// keeps its files as they were at the last
    /// [`external_synced`](Self::external_synced).
    pub(crate) fn external_dir(&self, dir: &Path) {
        if let Some(h) = &self.hooks {
            h.model(|sim| sim.set_external(dir));
        }
    }

    /// Counts a write done by someone else (sled's flush), which a fault
    /// can fail before it runs.
    pub(crate) fn external_write(&self, path: &Path) -> io::Result<()> {
        match &self.hooks {
            None => Ok(()),
            Some(h) => h.before(OpKind::Write, path),
        }
    }

    /// Everything under the external directory was just fsynced.
    pub(crate) fn external_synced(&self, dir: &Path) {
        if let Some(h) = &self.hooks {
            h.model(|sim| sim.external_synced(dir));
        }
    }

    /// Creates `path` and its missing parents, each durably: every
    /// directory created has its parent fsynced, so it survives power
    /// loss.
    pub(crate) fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if path.is_dir() {
            return Ok(());
        }
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            self.create_dir_all(parent)?;
        }
        match self.create_dir(path) {
            Ok(()) => {}
            // Someone else made it meanwhile; they sync its parent.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => return Ok(()),
            Err(e) => return Err(e),
        }
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.sync_dir(parent),
            _ => self.sync_dir(Path::new(".")),
        }
    }

    /// Creates one directory, mode 0700 (not durable until its parent is
    /// fsynced).
    pub(crate) fn create_dir(&self, path: &Path) -> io::Result<()> {
        if let Some(h) = &self.hooks {
            h.before(OpKind::Create, path)?;
        }
        crate::private::create_dir(path).map_err(|e| context(e, "create directory", path))?;
        if let Some(h) = &self.hooks {
            h.model(|sim| sim.mkdir(path));
        }
        Ok(())
    }

    /// Creates a new file for writing, mode 0600; fails if `path` exists.
    pub(crate) fn create_new(&self, path: &Path) -> io::Result<IoFile> {
        if let Some(h) = &self.hooks {
            h.before(OpKind::Create, path)?;
        }
        let file = crate::private::file_options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| context(e, "create", path))?;
        let track = match &self.hooks {
            None => None,
            Some(h) => {
                let mut ino = None;
                h.model(|sim| ino = sim.create_file(path));
                Some(Tracked {
                    hooks: h.clone(),
                    ino,
                    offset: 0,
                })
            }
        };
        Ok(IoFile {
            file,
            path: path.to_owned(),
            track,
        })
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if let Some(h) = &self.hooks {
            h.before(OpKind::Rename, to)?;
        }
        std::fs::rename(from, to).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("rename {} to {}: {e}", from.display(), to.display()),
            )
        })?;
        if let Some(h) = &self.hooks {
            h.model(|sim| sim.rename(from, to));
        }
        Ok(())
    }

    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        if let Some(h) = &self.hooks {
            h.before(OpKind::Remove, path)?;
        }
        std::fs::remove_file(path).map_err(|e| context(e, "remove", path))?;
        if let Some(h) = &self.hooks {
            h.model(|sim| sim.unlink(path));
        }
        Ok(())
    }

    /// fsyncs a directory, making the entries created, renamed and removed
    /// in it durable.
    pub(crate) fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.sync_path(path, true, false)
    }

    /// Opens the file at `path` (sled's) and fsyncs it.
    pub(crate) fn sync_file_at(&self, path: &Path) -> io::Result<()> {
        self.sync_path(path, false, false)
    }

    /// Opens the file at `path` (sled's log) and fdatasyncs it: its bytes
    /// and what reading them back needs (its size), not its times.
    pub(crate) fn sync_data_at(&self, path: &Path) -> io::Result<()> {
        self.sync_path(path, false, true)
    }

    fn sync_path(&self, path: &Path, dir: bool, data_only: bool) -> io::Result<()> {
        if let Some(h) = &self.hooks {
            h.before(OpKind::Fsync, path)?;
            if h.simulating() {
                if dir {
                    h.model(|sim| sim.sync_dir(path));
                }
                return Ok(());
            }
        }
        File::open(path)
            .and_then(|f| {
                if data_only {
                    f.sync_data()
                } else {
                    f.sync_all()
                }
            })
            .map_err(|e| context(e, "fsync", path))
    }
}

/// A file the storage layer writes, made by [`StorageIo::create_new`].
pub struct IoFile {
    file: File,
    path: PathBuf,
    track: Option<Tracked>,
}

struct Tracked {
    hooks: Arc<Hooks>,
    /// The file in the power model (when modelled).
    ino: Option<usize>,
    offset: u64,
}

impl std::fmt::Debug for IoFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoFile").field("path", &self.path).finish()
    }
}

impl IoFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Appends `buf`.
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(t) = &self.track {
            t.hooks.before(OpKind::Write, &self.path)?;
        }
        self.file
            .write_all(buf)
            .map_err(|e| context(e, "write", &self.path))?;
        if let Some(t) = &mut self.track {
            let (ino, offset) = (t.ino, t.offset);
            t.hooks.model(|sim| sim.write(ino, offset, buf));
            t.offset += buf.len() as u64;
        }
        Ok(())
    }

    /// Writes `buf` at `offset`, leaving the append position alone (the
    /// dict log zero-fills ahead of it, so its fdatasyncs need not update
    /// the file's size).
    pub fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if let Some(t) = &self.track {
            t.hooks.before(OpKind::Write, &self.path)?;
        }
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| context(e, "write", &self.path))?;
        if let Some(t) = &self.track {
            let ino = t.ino;
            t.hooks.model(|sim| sim.write(ino, offset, buf));
        }
        Ok(())
    }

    /// A second handle on this file that fdatasyncs it, so one thread can
    /// wait for the disk while others keep appending through this one.
    /// The model counts the writes made before each sync as covered.
    pub fn syncer(&self) -> io::Result<IoSyncer> {
        Ok(IoSyncer {
            file: self
                .file
                .try_clone()
                .map_err(|e| context(e, "dup", &self.path))?,
            path: self.path.clone(),
            track: self.track.as_ref().map(|t| (t.hooks.clone(), t.ino)),
        })
    }

    /// fsyncs the file's data and metadata.
    pub fn sync_all(&self) -> io::Result<()> {
        if let Some(t) = &self.track {
            t.hooks.before(OpKind::Fsync, &self.path)?;
            if t.hooks.simulating() {
                let ino = t.ino;
                t.hooks.model(|sim| sim.sync_file(ino));
                return Ok(());
            }
        }
        self.file
            .sync_all()
            .map_err(|e| context(e, "fsync", &self.path))
    }
}

/// See [`IoFile::syncer`].
pub struct IoSyncer {
    file: File,
    path: PathBuf,
    track: Option<(Arc<Hooks>, Option<usize>)>,
}

impl std::fmt::Debug for IoSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoSyncer")
            .field("path", &self.path)
            .finish()
    }
}

impl IoSyncer {
    /// fdatasyncs the file: its bytes and its size, not its times.
    pub fn sync_data(&self) -> io::Result<()> {
        if let Some((hooks, ino)) = &self.track {
            hooks.before(OpKind::Fsync, &self.path)?;
            if hooks.simulating() {
                let ino = *ino;
                hooks.model(|sim| sim.sync_file(ino));
                return Ok(());
            }
        }
        self.file
            .sync_data()
            .map_err(|e| context(e, "fsync", &self.path))
    }
}

#[cfg(test)]
mod tests;
