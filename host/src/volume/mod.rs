//! Volumes as guests see them: the `vessel:storage/volume` interface, the
//! per-container mount state ([`VolumeCtx`]) and its lifecycle (commit,
//! reload, background and final commits).
//!
//! A handle from `mounted(path)` works on the container's working tree
//! (private until `commit`); a handle from `from-name` of a volume that is
//! not mounted works on the stored head directly, so each of its writes is
//! a commit of its own.

pub mod disk;
mod errors;
mod listing;
pub mod mount;
mod objects;
mod stream;
mod versions;
pub mod wasi;
mod write;

use std::collections::{BTreeSet, HashMap, HashSet};

use std::sync::Arc;

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::bindings::vessel::storage::volume::{self as wit, CommitInfo, Entry, EntryKind};
use crate::blocking::off_worker;
use crate::error::{StorageError, WitError};
use crate::grant::Grant;
use crate::storage::clock::{Clock as _, SystemClock};
use crate::storage::volume::{
    Change, Node, NodeKind, VolumeStore, ancestors, check_volume_name, normalize_path,
};
pub use disk::DiskBudget;
use errors::{invalid, io_to_wit, no_space};
use listing::walk;
pub use mount::{Conflicts, Mount, MountError, VolumeMount};
use objects::{entry_of, join_rel, refuse_existing};

/// Shadows the mount-relevant `wasi:filesystem` functions in `linker`: the
/// path and listing calls ([`wasi`]), the descriptor-level writes
/// (`write.rs`) and the fast reads (`stream.rs`). Call after
/// wasmtime-wasi's own `add_to_linker`.
pub fn add_filesystem_to_linker<T: wasmtime_wasi::WasiView + VolumeView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = stream::add_to_linker(linker)
        .and_then(|()| write::add_to_linker(linker))
        .and_then(|()| wasi::add_to_linker(linker));
    linker.allow_shadowing(false);
    added
}

/// Most bytes one `read-file` call returns.
pub const MAX_READ_BYTES: u64 = 64 << 20;

/// Longest path under a mount, in bytes: what the host's file system calls
/// take (Linux's `PATH_MAX` less the NUL), so every path a guest creates
/// can be committed, reloaded and removed. A create past it is
/// `name-too-long`.
pub const MAX_MOUNT_PATH: usize = 4095;

/// The host state behind one guest `volume` handle.
#[derive(Debug)]
pub struct VolumeHandle {
    pub name: String,
    /// The mount this handle works on, if the volume is mounted.
    mount: Option<usize>,
    /// For unmounted handles: the version last seen.
    version: u64,
    /// For a handle from `at-version`: the kept version it reads (and
    /// never writes).
    at: Option<u64>,
}

/// A descriptor the guest holds under a mount.
#[derive(Debug, Clone)]
pub(crate) struct OpenFd {
    pub mount: usize,
    /// Path inside the mount (`""` for its root).
    pub rel: String,
    pub write: bool,
    pub dir: bool,
}

/// Per-container volume state.
#[derive(Debug, Default)]
pub struct VolumeCtx {
    pub(crate) store: Option<Arc<dyn VolumeStore>>,
    pub(crate) grant: Grant,
    pub(crate) mounts: Vec<Mount>,
    /// Descriptor reps under mounts (see `wasi`).
    pub(crate) fds: HashMap<u32, OpenFd>,
    /// Input-stream reps of mounted files (see `stream`); an entry whose
    /// stream was dropped no longer upgrades.
    pub(crate) streams: HashMap<u32, std::sync::Weak<stream::StreamState>>,
    /// Host file handles the guest may hold open at once (descriptors from
    /// `open-at` and directory listings, under mounts or not); see
    /// `wasi`.
    pub(crate) open_limit: usize,
    /// The reps of those handles, and what they are; entries whose handle
    /// was dropped are pruned when the limit is reached.
    pub(crate) open_handles: HashMap<u32, wasi::HandleKind>,
    /// The container's disk budget (scratch and read-write mounts).
    pub(crate) disk: DiskBudget,
    /// Guest paths of host-directory mounts, and the reps of descriptors
    /// under them: their writes are the operator's, not the budget's.
    pub(crate) dir_mounts: Vec<String>,
    pub(crate) outside: HashSet<u32>,
}

impl VolumeCtx {
    pub fn new(store: Option<Arc<dyn VolumeStore>>, grant: Grant, mounts: Vec<Mount>) -> Self {
        VolumeCtx {
            store,
            grant,
            mounts,
            fds: HashMap::new(),
            streams: HashMap::new(),
            open_limit: usize::MAX,
            open_handles: HashMap::new(),
            disk: DiskBudget::default(),
            dir_mounts: Vec::new(),
            outside: HashSet::new(),
        }
    }

    /// Charges the guest's writes to `disk`, except under the host
    /// directories mounted at `dir_mounts` (guest paths).
    pub fn with_disk(mut self, disk: DiskBudget, dir_mounts: Vec<String>) -> Self {
        self.disk = disk;
        self.dir_mounts = dir_mounts;
        self
    }

    /// Caps the host file handles (open files and directory listings) the
    /// guest may hold at once.
    pub fn with_open_limit(mut self, limit: usize) -> Self {
        self.open_limit = limit;
        self
    }

    /// The container's disk budget.
    pub fn disk(&self) -> &DiskBudget {
        &self.disk
    }

    /// The mount at guest path `guest`.
    pub(crate) fn mount_index(&self, guest: &str) -> Option<usize> {
        let guest = guest.trim_end_matches('/');
        self.mounts
            .iter()
            .position(|m| m.guest.trim_end_matches('/') == guest)
    }

    fn store(&self) -> Result<&Arc<dyn VolumeStore>, StorageError> {
        self.store.as_ref().ok_or_else(|| {
            StorageError::Guest(WitError::Unavailable("no volume store configured".into()))
        })
    }

    /// Paths of files open under mount `i`, live ones only.
    fn open_files(&self, table: &ResourceTable, i: usize, writers_only: bool) -> BTreeSet<String> {
        self.fds
            .iter()
            .filter(|(rep, fd)| {
                fd.mount == i
                    && !fd.dir
                    && (!writers_only || fd.write)
                    && table
                        .get(&Resource::<
                            wasmtime_wasi::p2::bindings::filesystem::types::Descriptor,
                        >::new_borrow(**rep))
                        .is_ok()
            })
            .map(|(_, fd)| fd.rel.clone())
            .collect()
    }

    /// Commits every writable mount (at shutdown, or in the background while
    /// the guest runs). A background commit leaves out files open for
    /// writing, so it never publishes a half-written file.
    pub fn commit_all(&mut self, table: &ResourceTable, background: bool) -> Vec<MountError> {
        let mut errors = Vec::new();
        for i in 0..self.mounts.len() {
            let skip = if background {
                self.open_files(table, i, true)
            } else {
                BTreeSet::new()
            };
            if let Some(m) = self.mounts.get_mut(i)
                && !m.read_only
                && !m.dirty.is_empty()
                && let Err(e) = off_worker(|| m.commit(&skip))
            {
                errors.push(e);
            }
        }
        errors
    }

    /// Brings every mount with no file open to its volume's head, as a
    /// fresh mount would see it (a warm container whose calls each start
    /// at the heads). Pending changes were committed by the caller.
    pub fn reload_idle(&mut self, table: &ResourceTable) -> Vec<MountError> {
        self.disk.freed();
        let mut errors = Vec::new();
        for i in 0..self.mounts.len() {
            let idle = self.open_files(table, i, false).is_empty();
            if let Some(m) = self.mounts.get_mut(i).filter(|_| idle)
                && let Err(e) = off_worker(|| m.reload())
            {
                errors.push(e);
            }
        }
        errors
    }
}

/// A [`VolumeCtx`] together with the resource table, the `self` of the
/// generated host traits.
pub struct VolumeCtxView<'a> {
    pub ctx: &'a mut VolumeCtx,
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend a [`VolumeCtxView`]; the store's data implements it.
pub trait VolumeView: Send {
    fn volume(&mut self) -> VolumeCtxView<'_>;
}

struct HasVolume;

impl HasData for HasVolume {
    type Data<'a> = VolumeCtxView<'a>;
}

/// Adds `vessel:storage/volume` to `linker`.
pub fn add_to_linker<T: VolumeView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasVolume>(linker, |t| t.volume())
}

impl crate::bindings::vessel::storage::types::Host for VolumeCtxView<'_> {
    fn convert_error(&mut self, err: StorageError) -> wasmtime::Result<crate::error::WitError> {
        err.into_wit()
    }
}

impl wit::Host for VolumeCtxView<'_> {}

impl VolumeCtxView<'_> {
    /// The mount index and store of a handle.
    fn handle(
        &self,
        h: &Resource<VolumeHandle>,
    ) -> Result<(String, Option<usize>, u64), StorageError> {
        let v = self.table.get(h)?;
        Ok((v.name.clone(), v.mount, v.version))
    }

    /// `access-denied` for a handle on a version (from `at-version`).
    fn refuse_version(&self, h: &Resource<VolumeHandle>) -> Result<(), StorageError> {
        let v = self.table.get(h)?;
        match v.at {
            Some(at) => Err(StorageError::Guest(WitError::AccessDenied(format!(
                "volume `{}` at version {at} is read-only",
                v.name
            )))),
            None => Ok(()),
        }
    }

    fn mount_mut(&mut self, i: usize) -> Result<&mut Mount, StorageError> {
        self.ctx
            .mounts
            .get_mut(i)
            .ok_or_else(|| StorageError::trap("volume handle names a mount that does not exist"))
    }

    fn writable_mount(&mut self, i: usize) -> Result<&mut Mount, StorageError> {
        let m = self.mount_mut(i)?;
        if m.read_only {
            return Err(StorageError::Guest(WitError::AccessDenied(format!(
                "volume `{}` is mounted read-only at {}",
                m.volume, m.guest
            ))));
        }
        Ok(m)
    }
}

impl wit::HostVolume for VolumeCtxView<'_> {
    async fn mounted(&mut self, path: String) -> Result<Resource<VolumeHandle>, StorageError> {
        let i = self.ctx.mount_index(&path).ok_or_else(|| {
            StorageError::Guest(WitError::NotFound(format!(
                "no volume is mounted at {path}"
            )))
        })?;
        let name = self.mount_mut(i)?.volume.clone();
        Ok(self.table.push(VolumeHandle {
            name,
            mount: Some(i),
            version: 0,
            at: None,
        })?)
    }

    async fn from_name(
        &mut self,
        name: String,
        create_if_missing: bool,
    ) -> Result<Resource<VolumeHandle>, StorageError> {
        check_volume_name(&name)?;
        if !self.ctx.grant.allows(&name) {
            return Err(StorageError::Guest(WitError::AccessDenied(format!(
                "this function is not granted volume `{name}`"
            ))));
        }
        // A mounted volume opened by name works on the mount, as in Modal
        // (`Volume.from_name(...)` then `.commit()`).
        if let Some(i) = self.ctx.mounts.iter().position(|m| m.volume == name) {
            return Ok(self.table.push(VolumeHandle {
                name,
                mount: Some(i),
                version: 0,
                at: None,
            })?);
        }
        let store = self.ctx.store()?.clone();
        if create_if_missing && store.info(&name).is_err() {
            crate::storage::volume::check_new_volume_name(&name)?;
            store.create(&name)?;
        }
        let version = store.info(&name)?.version;
        Ok(self.table.push(VolumeHandle {
            name,
            mount: None,
            version,
            at: None,
        })?)
    }

    async fn name(&mut self, self_: Resource<VolumeHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&self_)?.name.clone())
    }

    async fn version(&mut self, self_: Resource<VolumeHandle>) -> wasmtime::Result<u64> {
        let v = self.table.get(&self_)?;
        if let Some(at) = v.at {
            return Ok(at);
        }
        Ok(match v.mount {
            Some(i) => self.ctx.mounts.get(i).map_or(0, |m| m.version),
            None => v.version,
        })
    }

    async fn commit(&mut self, self_: Resource<VolumeHandle>) -> Result<CommitInfo, StorageError> {
        self.refuse_version(&self_)?;
        let (name, mount, _) = self.handle(&self_)?;
        let store = self.ctx.store()?.clone();
        let info = match mount {
            Some(i) => {
                let m = self.writable_mount(i)?;
                let policy = m.conflicts;
                off_worker(|| m.commit_by_guest(policy, false))?
            }
            None => {
                let version = store.info(&name)?.version;
                self.table.get_mut(&self_)?.version = version;
                crate::storage::volume::CommitInfo {
                    version,
                    changed: 0,
                    removed: 0,
                }
            }
        };
        Ok(CommitInfo {
            version: info.version,
            changed: info.changed,
            removed: info.removed,
        })
    }

    async fn reload(&mut self, self_: Resource<VolumeHandle>) -> Result<u64, StorageError> {
        if let Some(at) = self.table.get(&self_)?.at {
            return Ok(at);
        }
        let (name, mount, _) = self.handle(&self_)?;
        let store = self.ctx.store()?.clone();
        match mount {
            Some(i) => {
                let open = self.ctx.open_files(self.table, i, false);
                if !open.is_empty() {
                    return Err(StorageError::Guest(WitError::Busy(
                        open.into_iter().collect(),
                    )));
                }
                self.ctx.disk.freed();
                let m = self.mount_mut(i)?;
                off_worker(|| {
                    if !m.read_only {
                        let policy = m.conflicts;
                        m.commit_by_guest(policy, false)?;
                    }
                    Ok(m.reload()?)
                })
            }
            None => {
                let version = store.info(&name)?.version;
                self.table.get_mut(&self_)?.version = version;
                Ok(version)
            }
        }
    }

    async fn listdir(
        &mut self,
        self_: Resource<VolumeHandle>,
        path: String,
        recursive: bool,
    ) -> Result<Vec<Entry>, StorageError> {
        let (name, mount, _) = self.handle(&self_)?;
        let rel = normalize_path(&path)?;
        match mount {
            Some(i) => {
                let m = self.mount_mut(i)?;
                // Lazy mount: place what the listing will show first.
                let io = |e| io_to_wit(&path, e);
                let dir = m.resolve_rel(&rel, true).map_err(io)?;
                if recursive {
                    m.complete_tree(&dir).map_err(io)?;
                } else {
                    m.complete_dir(&dir).map_err(io)?;
                }
                let mut out = Vec::new();
                walk(&m.root, &rel, recursive, &mut out).map_err(io)?;
                Ok(out)
            }
            None => {
                let store = self.ctx.store()?.clone();
                let at = self.table.get(&self_)?.at;
                Ok(versions::list_dir(&*store, &name, at, &rel, recursive)?
                    .into_iter()
                    .map(|(p, n)| entry_of(p, &n))
                    .collect())
            }
        }
    }

    async fn read_file(
        &mut self,
        self_: Resource<VolumeHandle>,
        path: String,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, StorageError> {
        if length > MAX_READ_BYTES {
            return Err(StorageError::Guest(WitError::TooLarge(format!(
                "read-file length {length} is over the per-call limit of {MAX_READ_BYTES} bytes; read in ranges"
            ))));
        }
        let (name, mount, _) = self.handle(&self_)?;
        let rel = normalize_path(&path)?;
        match mount {
            Some(i) => {
                use std::io::{Read, Seek, SeekFrom};
                let m = self.mount_mut(i)?;
                let rel = m.resolve_rel(&rel, true).map_err(|e| io_to_wit(&path, e))?;
                let meta = m.root.metadata(&rel).map_err(|e| io_to_wit(&path, e))?;
                if meta.is_dir() {
                    return Err(invalid(format!("{path} is a directory")));
                }
                let mut f = m.root.open(&rel).map_err(|e| io_to_wit(&path, e))?;
                let available = meta.len().saturating_sub(offset).min(length);
                // `available` is at most MAX_READ_BYTES, checked above.
                let mut buf = Vec::with_capacity(usize::try_from(available).unwrap_or(0));
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| io_to_wit(&path, e))?;
                f.take(available)
                    .read_to_end(&mut buf)
                    .map_err(|e| io_to_wit(&path, e))?;
                Ok(buf)
            }
            None => {
                let store = self.ctx.store()?.clone();
                let at = self.table.get(&self_)?.at;
                let node = versions::node(&*store, &name, at, &rel)?.ok_or_else(|| {
                    StorageError::Guest(WitError::NotFound(format!("{path} in volume `{name}`")))
                })?;
                match (node.kind, node.blob) {
                    (NodeKind::File, Some(blob)) => Ok(store.read_blob(&blob, offset, length)?),
                    _ => Err(invalid(format!("{path} is not a file"))),
                }
            }
        }
    }

    async fn write_file(
        &mut self,
        self_: Resource<VolumeHandle>,
        path: String,
        data: Vec<u8>,
        overwrite: bool,
    ) -> Result<(), StorageError> {
        self.refuse_version(&self_)?;
        let (name, mount, _) = self.handle(&self_)?;
        let rel = normalize_path(&path)?;
        if rel.is_empty() {
            return Err(invalid("write-file needs a file path, not the volume root"));
        }
        match mount {
            Some(i) => {
                let m = self.writable_mount(i)?;
                // The physical path, with what the snapshot has on the way
                // placed (missing parents stay lexical, to be created).
                let rel = m
                    .resolve_rel(&rel, false)
                    .map_err(|e| io_to_wit(&path, e))?;
                let existing = m.root.symlink_metadata(&rel).ok();
                refuse_existing(&path, existing.as_ref().map(|e| e.is_dir()), overwrite)?;
                let new_parents: Vec<String> = ancestors(&rel)
                    .filter(|p| m.root.symlink_metadata(p).is_err())
                    .map(str::to_owned)
                    .collect();
                let creates = new_parents.len() as u64 + u64::from(existing.is_none());
                m.check_room(creates)?;
                let disk = self.ctx.disk.clone();
                disk.charge(data.len() as u64).map_err(no_space)?;
                if existing.is_some() {
                    disk.freed();
                }
                let m = self.writable_mount(i)?;
                for p in &new_parents {
                    m.root.create_dir(p).map_err(|e| io_to_wit(&path, e))?;
                    m.dirty.insert(p.clone());
                }
                // A fresh file renamed over the old one: a blob link at
                // `rel` is replaced, never written through.
                let tmp = format!("{rel}.vessel-tmp");
                m.root.write(&tmp, &data).map_err(|e| io_to_wit(&path, e))?;
                m.root
                    .rename(&tmp, &m.root, &rel)
                    .map_err(|e| io_to_wit(&path, e))?;
                m.inodes += creates;
                m.dirty.insert(rel);
                Ok(())
            }
            None => {
                let store = self.ctx.store()?.clone();
                let existing = store.node(&name, &rel)?;
                refuse_existing(&path, existing.map(|n| n.kind == NodeKind::Dir), overwrite)?;
                let blob = off_worker(|| store.put_blob(&data))?;
                let node = Node {
                    kind: NodeKind::File,
                    blob: Some(blob),
                    size: data.len() as u64,
                    mtime_ms: SystemClock.now_ms(),
                    mode: 0o644,
                    target: None,
                };
                let info = off_worker(|| store.commit(&name, &[Change::Put { path: rel, node }]))?;
                self.table.get_mut(&self_)?.version = info.version;
                Ok(())
            }
        }
    }

    async fn remove(
        &mut self,
        self_: Resource<VolumeHandle>,
        path: String,
        recursive: bool,
    ) -> Result<(), StorageError> {
        self.refuse_version(&self_)?;
        let (name, mount, _) = self.handle(&self_)?;
        let rel = normalize_path(&path)?;
        if rel.is_empty() {
            return Err(invalid("cannot remove the volume root"));
        }
        match mount {
            Some(i) => {
                let m = self.writable_mount(i)?;
                let rel = m
                    .resolve_rel(&rel, false)
                    .map_err(|e| io_to_wit(&path, e))?;
                let meta = m
                    .root
                    .symlink_metadata(&rel)
                    .map_err(|e| io_to_wit(&path, e))?;
                let mut gone = 1u64;
                if meta.is_dir() {
                    m.complete_tree(&rel).map_err(|e| io_to_wit(&path, e))?;
                    let mut inner = Vec::new();
                    walk(&m.root, &rel, true, &mut inner).map_err(|e| io_to_wit(&path, e))?;
                    if !inner.is_empty() && !recursive {
                        return Err(invalid(format!(
                            "{path} is a non-empty directory (remove it recursively)"
                        )));
                    }
                    gone += inner.len() as u64;
                    m.root
                        .remove_dir_all(&rel)
                        .map_err(|e| io_to_wit(&path, e))?;
                } else {
                    m.root.remove_file(&rel).map_err(|e| io_to_wit(&path, e))?;
                }
                m.inodes = m.inodes.saturating_sub(gone);
                m.dirty.insert(rel);
                self.ctx.disk.freed();
                Ok(())
            }
            None => {
                let store = self.ctx.store()?.clone();
                let node = store.node(&name, &rel)?.ok_or_else(|| {
                    StorageError::Guest(WitError::NotFound(format!("{path} in volume `{name}`")))
                })?;
                if node.kind == NodeKind::Dir
                    && !recursive
                    && !store.list_dir(&name, &rel, false)?.is_empty()
                {
                    return Err(invalid(format!(
                        "{path} is a non-empty directory (remove it recursively)"
                    )));
                }
                let info = off_worker(|| store.commit(&name, &[Change::Remove { path: rel }]))?;
                self.table.get_mut(&self_)?.version = info.version;
                Ok(())
            }
        }
    }

    async fn copy(
        &mut self,
        self_: Resource<VolumeHandle>,
        srcs: Vec<String>,
        dst: String,
    ) -> Result<(), StorageError> {
        self.refuse_version(&self_)?;
        let (name, mount, _) = self.handle(&self_)?;
        if srcs.is_empty() {
            return Err(invalid("copy needs at least one source"));
        }
        let dst_rel = normalize_path(&dst)?;
        let mut pairs = Vec::new();
        match mount {
            Some(i) => {
                let m = self.writable_mount(i)?;
                let dst_rel = m
                    .resolve_rel(&dst_rel, true)
                    .map_err(|e| io_to_wit(&dst, e))?;
                let dst_is_dir = m.root.metadata(&dst_rel).is_ok_and(|x| x.is_dir());
                if srcs.len() > 1 && !dst_is_dir {
                    return Err(invalid(format!(
                        "copying several files needs an existing directory as destination; {dst} is not one"
                    )));
                }
                for src in &srcs {
                    let src_rel = normalize_path(src)?;
                    let base = src_rel.rsplit('/').next().unwrap_or(&src_rel).to_owned();
                    let src_rel = m
                        .resolve_rel(&src_rel, true)
                        .map_err(|e| io_to_wit(src, e))?;
                    let to = if dst_is_dir {
                        join_rel(&dst_rel, &base)
                    } else {
                        dst_rel.clone()
                    };
                    // A snapshot file at the destination is overwritten,
                    // not created: place it so the count below sees it.
                    let to = m.resolve_rel(&to, false).map_err(|e| io_to_wit(&dst, e))?;
                    pairs.push((src_rel, to));
                }
                let new = pairs
                    .iter()
                    .filter(|(_, to)| m.root.symlink_metadata(to).is_err())
                    .count() as u64;
                m.check_room(new)?;
                // Each copy is a private file: its bytes count.
                let bytes = pairs
                    .iter()
                    .filter_map(|(from, _)| m.root.metadata(from).ok())
                    .fold(0u64, |n, meta| n.saturating_add(meta.len()));
                let disk = self.ctx.disk.clone();
                disk.charge(bytes).map_err(no_space)?;
                if new < pairs.len() as u64 {
                    disk.freed();
                }
                let m = self.writable_mount(i)?;
                for (from, to) in pairs {
                    if m.root
                        .metadata(&from)
                        .map_err(|e| io_to_wit(&from, e))?
                        .is_dir()
                    {
                        return Err(invalid(format!("{from} is a directory; copy copies files")));
                    }
                    let tmp = format!("{to}.vessel-tmp");
                    m.root
                        .copy(&from, &m.root, &tmp)
                        .map_err(|e| io_to_wit(&from, e))?;
                    m.root
                        .rename(&tmp, &m.root, &to)
                        .map_err(|e| io_to_wit(&to, e))?;
                    m.dirty.insert(to);
                }
                m.inodes += new;
                Ok(())
            }
            None => {
                let store = self.ctx.store()?.clone();
                let dst_is_dir = store
                    .node(&name, &dst_rel)?
                    .is_some_and(|n| n.kind == NodeKind::Dir);
                if srcs.len() > 1 && !dst_is_dir {
                    return Err(invalid(format!(
                        "copying several files needs an existing directory as destination; {dst} is not one"
                    )));
                }
                let mut changes = Vec::new();
                for src in &srcs {
                    let src_rel = normalize_path(src)?;
                    let node = store.node(&name, &src_rel)?.ok_or_else(|| {
                        StorageError::Guest(WitError::NotFound(format!("{src} in volume `{name}`")))
                    })?;
                    if node.kind == NodeKind::Dir {
                        return Err(invalid(format!("{src} is a directory; copy copies files")));
                    }
                    let base = src_rel.rsplit('/').next().unwrap_or(&src_rel).to_owned();
                    let to = if dst_is_dir {
                        join_rel(&dst_rel, &base)
                    } else {
                        dst_rel.clone()
                    };
                    // Same content, same blob: a copy costs no bytes.
                    changes.push(Change::Put { path: to, node });
                }
                let info = off_worker(|| store.commit(&name, &changes))?;
                self.table.get_mut(&self_)?.version = info.version;
                Ok(())
            }
        }
    }

    async fn at_version(
        &mut self,
        name: String,
        version: u64,
    ) -> Result<Resource<VolumeHandle>, StorageError> {
        versions::at_version(self, name, version)
    }

    async fn history(
        &mut self,
        self_: Resource<VolumeHandle>,
        limit: u32,
    ) -> Result<wit::VersionHistory, StorageError> {
        versions::history(self, &self_, limit)
    }

    async fn diff(
        &mut self,
        self_: Resource<VolumeHandle>,
        since: u64,
        until: Option<u64>,
    ) -> Result<Vec<wit::DiffEntry>, StorageError> {
        versions::diff(self, &self_, since, until)
    }

    async fn fork(
        &mut self,
        self_: Resource<VolumeHandle>,
        name: String,
    ) -> Result<Resource<VolumeHandle>, StorageError> {
        versions::fork(self, &self_, name)
    }

    async fn commit_with(
        &mut self,
        self_: Resource<VolumeHandle>,
        conflicts: wit::ConflictPolicy,
    ) -> Result<wit::CommitOutcome, StorageError> {
        versions::commit_with(self, &self_, conflicts)
    }

    async fn drop(&mut self, rep: Resource<VolumeHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
