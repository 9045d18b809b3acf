//! Volumes in the embedded store: [`VolumeStore`] over sled and the blob
//! folder.
//!
//! Layout, three sled trees shared by all volumes:
//! - `volumes`: volume name → [`Meta`] (id, head version, created, inode
//!   count, bytes, byte quota). The name is only a pointer to the id, so a
//!   rename is one key move and never touches the volume's nodes.
//! - `volume_nodes`: `id (8 bytes BE) ++ path` → encoded [`Node`]. Keys of
//!   one volume are contiguous and sorted by path, so a directory's subtree
//!   is the key range `id ++ dir ++ "/"` and a snapshot is one prefix scan.
//! - `volume_log`: `id ++ version (8 bytes BE)` → the commit record (time,
//!   changed paths, removed paths, bytes added).
//! - `volume_history`: the history rows that keep older versions readable
//!   (see [`crate::storage::volume::history`]), each under two keys (by
//!   path, and by version for diffs and pruning), and each volume's floor.
//!
//! A commit works out its writes outside sled (reading the head through an
//! overlay of its own earlier changes), then applies them to all three
//! trees in ONE sled transaction and waits for the durability barrier
//! before returning. No reader answers with it before that wait succeeds,
//! and a commit whose wait failed is undone ([`visible`]). Commits of one volume are serialised by a per-volume
//! lock held in this process (sled is single-process, so that is every
//! writer); the same lock, taken shared, makes snapshots and listings
//! consistent while commits run. Nothing in a commit scans the volume: the
//! cost is the changed paths, their ancestors and removed subtrees.
//!
//! A deleted volume's name disappears in one transaction; its nodes and log
//! are then cleared in batches, and [`VolumeStore::gc`] clears what a crash
//! left behind (keys of ids no name points to). Volume ids come from sled's
//! id generator and are never reused, so such leftovers are unreachable.

mod codec;
mod fork;
mod head;
mod history;
mod state;
mod visible;

pub use codec::check_stored_record;
use codec::*;
use head::SledHead;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, IVec, Transactional, Tree};

use self::visible::{Scope, UndoOp, UndoTree, Visibility};
use super::EmbeddedStore;
use crate::storage::blobs::{BlobError, BlobId};
use crate::storage::disk::is_disk_full;
use crate::storage::volume::cache::SnapshotCache;
use crate::storage::volume::history::{DEFAULT_RETENTION_MS, MAX_RETENTION_MS};
use crate::storage::volume::pins::Mounts;
use crate::storage::volume::plan::{Base, IMPLICIT_DIR_MODE, plan};
use crate::storage::volume::{
    Change, CommitInfo, CommitOptions, GcOptions, GcReport, History, Node, NodeKind, PathDiff,
    Snapshot, VolumeError, VolumeInfo, VolumeStore, check_listable, check_max_bytes,
    check_node_shape, check_volume_name, normalize_changes, normalize_path,
};

/// How many keys a deleted volume's clean-up removes per sled batch, so a
/// huge volume does not build one huge batch in memory.
const CLEAR_BATCH: usize = 10_000;

/// The volume half of the embedded store's state, shared by its clones.
#[derive(Debug)]
pub(crate) struct VolumeState {
    volumes: Tree,
    nodes: Tree,
    log: Tree,
    history: Tree,
    inode_limit: u64,
    gc_grace: Duration,
    /// Per volume id: writers (commit, rename, delete) take it exclusively,
    /// readers that need a consistent view (snapshot, list_dir) shared.
    locks: Mutex<HashMap<u64, Arc<RwLock<()>>>>,
    /// Blobs whose hash was checked by this process.
    verified: Mutex<HashSet<BlobId>>,
    snapshots: Mutex<SnapshotCache<u64>>,
    /// `gc` holds it exclusively, blob puts and commits shared. A put
    /// either finishes (and refreshes the blob's mtime, so the grace period
    /// protects it) before a collection starts, or starts after it ended;
    /// a commit checks its blobs exist and lands with no collection in
    /// between, and a collection sees every landed commit's references.
    gc_lock: RwLock<()>,
    /// Every write to the volume trees holds it shared while it applies
    /// (see `publish`); a backup holds it exclusively, with `gc_lock`, so
    /// it copies the trees as one moment left them.
    pub(super) writes: RwLock<()>,
    /// Writes applied to sled but not yet durable (see [`visible`]).
    visible: Visibility,
    /// This process's live mounts: all of them, as one process owns the
    /// store.
    mounts: Mounts,
}

impl VolumeState {
    pub(crate) fn open(
        db: &sled::Db,
        inode_limit: u64,
        gc_grace: Duration,
    ) -> Result<Self, sled::Error> {
        Ok(VolumeState {
            volumes: db.open_tree("volumes")?,
            nodes: db.open_tree("volume_nodes")?,
            log: db.open_tree("volume_log")?,
            history: db.open_tree("volume_history")?,
            inode_limit,
            gc_grace,
            locks: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashSet::new()),
            snapshots: Mutex::new(SnapshotCache::default()),
            gc_lock: RwLock::new(()),
            writes: RwLock::new(()),
            visible: Visibility::default(),
            mounts: Mounts::default(),
        })
    }

    fn lock_for(&self, id: u64) -> Arc<RwLock<()>> {
        lock(&self.locks).entry(id).or_default().clone()
    }
}

/// Locks a mutex, ignoring poisoning: the data behind these mutexes (lock
/// tables, the verified set) stays valid whatever a panicking holder did.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn db_err(e: sled::Error) -> VolumeError {
    match e {
        sled::Error::Io(io) if is_disk_full(&io) => VolumeError::DiskFull(io.to_string()),
        other => VolumeError::Io(other.to_string()),
    }
}

fn corrupt(what: impl std::fmt::Display) -> VolumeError {
    VolumeError::Corrupt(what.to_string())
}

/// What a read that failed with `e` depends on: a missing volume on the
/// names that exist.
fn scope_of_err(e: &VolumeError) -> Scope {
    match e {
        VolumeError::NotFound(_) => Scope::Names,
        _ => Scope::Nothing,
    }
}

/// What a read of the volume with id `id` (if it was found) depends on.
fn scope_of<R>(id: Option<u64>, out: &Result<R, VolumeError>) -> Scope {
    match (id, out) {
        (Some(id), _) => Scope::Volume(id),
        (None, Err(e)) => scope_of_err(e),
        (None, Ok(_)) => Scope::Nothing,
    }
}

fn tx_err(e: TransactionError<VolumeError>) -> VolumeError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => db_err(e),
    }
}

impl VolumeStore for EmbeddedStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    /// The store answers while this process holds it; it cannot serve
    /// writes once a failed fsync poisoned its durability barrier, its
    /// dict log or its blob folder (until it is reopened).
    fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let state = if let Err(e) = self.durability.healthy() {
            Err(format!("a failed fsync stopped its writes: {e}"))
        } else if let Some(why) = self.wal.poisoned() {
            Err(format!("a failed write stopped its dict log: {why}"))
        } else if let Some(why) = self.blobs.poisoned() {
            Err(format!("a failed fsync stopped its blob folder: {why}"))
        } else {
            Ok(())
        };
        vec![("embedded store", state)]
    }

    fn create_with(&self, name: &str, max_bytes: Option<u64>) -> Result<bool, VolumeError> {
        check_volume_name(name)?;
        check_max_bytes(max_bytes)?;
        // Ids come from sled's generator, never reused even across crashes;
        // +1 keeps 0 free as "no volume".
        let id = self.db.generate_id().map_err(db_err)?.saturating_add(1);
        let meta = Meta {
            id,
            head: 0,
            created_ms: self.now_ms(),
            inodes: 0,
            bytes: 0,
            max_bytes,
            retention_ms: None,
            history_from: 0,
            base: Vec::new(),
        }
        .encode();
        let l = self.vol().lock_for(id);
        let excl = l.write().unwrap_or_else(PoisonError::into_inner);
        let (created, published) = self.publish(id, true, || {
            let created = self
                .vol()
                .volumes
                .transaction(|tv| {
                    if tv.get(name.as_bytes())?.is_some() {
                        return Ok(false);
                    }
                    tv.insert(name.as_bytes(), meta.clone())?;
                    Ok(true)
                })
                .map_err(tx_err)?;
            let undo = vec![UndoOp {
                tree: UndoTree::Volumes,
                key: name.as_bytes().into(),
                old: None,
            }];
            Ok((created, if created { undo } else { Vec::new() }))
        })?;
        drop(excl);
        self.confirm(published)?;
        if !created {
            // Nothing was written: only what the refusal rests on (the
            // existing name) must be durable.
            self.visible(|| (Scope::Names, Ok(())))?;
        }
        Ok(created)
    }

    fn set_max_bytes(&self, name: &str, max_bytes: Option<u64>) -> Result<VolumeInfo, VolumeError> {
        check_max_bytes(max_bytes)?;
        self.rewrite_meta(name, |meta| Meta { max_bytes, ..meta })
    }

    fn set_retention(&self, name: &str, retention_ms: u64) -> Result<VolumeInfo, VolumeError> {
        self.set_retention_of(name, retention_ms)
    }

    fn delete(&self, name: &str) -> Result<(), VolumeError> {
        // gc would take the nodes of a name it cannot find for garbage:
        // keep it out until the deletion is durable (an undone deletion
        // needs them back).
        let _gc = self
            .vol()
            .gc_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let (meta, published) = self.with_volume(name, true, |meta| {
            self.check_no_forks(name, meta.id)?;
            let vol = self.vol();
            let current = meta.encode();
            let ((), published) = self.publish(meta.id, true, || {
                vol.volumes
                    .transaction(|tv| {
                        if tv.get(name.as_bytes())?.as_deref() != Some(&current[..]) {
                            return Err(ConflictableTransactionError::Abort(
                                VolumeError::NotFound(name.to_owned()),
                            ));
                        }
                        tv.remove(name.as_bytes())?;
                        Ok(())
                    })
                    .map_err(tx_err)?;
                let undo = vec![UndoOp {
                    tree: UndoTree::Volumes,
                    key: name.as_bytes().into(),
                    old: Some(current.as_slice().into()),
                }];
                Ok(((), undo))
            })?;
            Ok((meta, published))
        })?;
        self.confirm(published)?;
        // The name is gone, durably; the rest is clean-up that gc redoes
        // if we crash before it ends.
        let vol = self.vol();
        self.clear_prefix(&vol.nodes, &meta.id.to_be_bytes())?;
        self.clear_prefix(&vol.log, &meta.id.to_be_bytes())?;
        self.clear_prefix(&vol.history, &meta.id.to_be_bytes())?;
        lock(&vol.locks).remove(&meta.id);
        lock(&vol.snapshots).forget(meta.id);
        Ok(())
    }

    fn fork(&self, src: &str, version: Option<u64>, dst: &str) -> Result<VolumeInfo, VolumeError> {
        self.fork_volume(src, version, dst)
    }

    fn rename(&self, old: &str, new: &str) -> Result<(), VolumeError> {
        check_volume_name(new)?;
        let published = self.with_volume(old, true, |meta| {
            if old == new {
                return Ok(None);
            }
            let current = meta.encode();
            let ((), published) = self.publish(meta.id, true, || {
                self.vol()
                    .volumes
                    .transaction(|tv| {
                        if tv.get(old.as_bytes())?.as_deref() != Some(&current[..]) {
                            return Err(ConflictableTransactionError::Abort(
                                VolumeError::NotFound(old.to_owned()),
                            ));
                        }
                        if tv.get(new.as_bytes())?.is_some() {
                            return Err(ConflictableTransactionError::Abort(
                                VolumeError::AlreadyExists(new.to_owned()),
                            ));
                        }
                        tv.remove(old.as_bytes())?;
                        tv.insert(new.as_bytes(), current.clone())?;
                        Ok(())
                    })
                    .map_err(tx_err)?;
                let undo = vec![
                    UndoOp {
                        tree: UndoTree::Volumes,
                        key: old.as_bytes().into(),
                        old: Some(current.as_slice().into()),
                    },
                    UndoOp {
                        tree: UndoTree::Volumes,
                        key: new.as_bytes().into(),
                        old: None,
                    },
                ];
                Ok(((), undo))
            })?;
            Ok(Some(published))
        })?;
        match published {
            Some(p) => self.confirm(p),
            None => Ok(()),
        }
    }

    fn list(&self) -> Result<Vec<VolumeInfo>, VolumeError> {
        self.visible(|| {
            let mut out = Vec::new();
            for item in self.vol().volumes.iter() {
                let (k, v) = match item {
                    Ok(kv) => kv,
                    Err(e) => return (Scope::All, Err(db_err(e))),
                };
                let Ok(name) = String::from_utf8(k.to_vec()) else {
                    return (Scope::All, Err(corrupt("a volume name")));
                };
                match Meta::decode(&v) {
                    Ok(meta) => out.push(info_of(name, &meta)),
                    Err(e) => return (Scope::All, Err(e)),
                }
            }
            (Scope::All, Ok(out))
        })
    }

    fn info(&self, name: &str) -> Result<VolumeInfo, VolumeError> {
        self.visible(|| match self.meta(name) {
            Ok(meta) => (Scope::Volume(meta.id), Ok(info_of(name.to_owned(), &meta))),
            Err(e) => (scope_of_err(&e), Err(e)),
        })
    }

    fn snapshot(&self, name: &str) -> Result<Snapshot, VolumeError> {
        self.read_volume(name, |meta| {
            Ok(Snapshot {
                version: meta.head,
                nodes: Arc::unwrap_or_clone(self.head_nodes(&meta)?),
            })
        })
    }

    fn node(&self, name: &str, path: &str) -> Result<Option<Node>, VolumeError> {
        let path = normalize_path(path)?;
        self.visible(|| {
            let meta = match self.meta(name) {
                Ok(m) => m,
                Err(e) => return (scope_of_err(&e), Err(e)),
            };
            let scope = Scope::Volume(meta.id);
            (scope, self.vol().head_node(&meta, &path))
        })
    }

    fn list_dir(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        let path = normalize_path(path)?;
        self.visible(|| {
            let mut id = None;
            let out = self.list_dir_now(name, &path, recursive, &mut id);
            (scope_of(id, &out), out)
        })
    }

    fn history(&self, name: &str, limit: usize) -> Result<History, VolumeError> {
        self.history_of(name, limit)
    }

    fn node_at(&self, name: &str, path: &str, version: u64) -> Result<Option<Node>, VolumeError> {
        self.node_at_version(name, path, version)
    }

    fn list_dir_at(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
        version: u64,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        self.list_dir_at_version(name, path, recursive, version)
    }

    fn diff(&self, name: &str, from: u64, to: Option<u64>) -> Result<Vec<PathDiff>, VolumeError> {
        self.diff_versions(name, from, to)
    }

    fn commit_with(
        &self,
        name: &str,
        changes: &[Change],
        options: &CommitOptions,
    ) -> Result<CommitInfo, VolumeError> {
        crate::storage::volume::counted_commit(changes, || {
            // Normalise and check everything before taking the lock.
            let normalized = normalize_changes(changes)?;
            let limit = self.inode_limit();
            // Shut out gc for the whole commit: the blobs checked below cannot
            // be collected before the commit that names them lands.
            let _gc = self
                .vol()
                .gc_lock
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            for (path, node) in &normalized {
                if let Some(node) = node {
                    self.check_node(path, node)?;
                }
            }
            let info = self.with_volume(name, true, |meta| {
                if let Some(expected) = options.expect_head.filter(|e| *e != meta.head) {
                    return Err(VolumeError::HeadMoved {
                        volume: name.to_owned(),
                        expected,
                        head: meta.head,
                    });
                }
                let conflicts = self.conflicting(&meta, &options.unchanged_since)?;
                if !conflicts.is_empty() {
                    return Err(VolumeError::Conflict {
                        volume: name.to_owned(),
                        paths: conflicts,
                    });
                }
                let vol = self.vol();
                let now_ms = self.now_ms();
                let base = Base {
                    volume: name,
                    inodes: meta.inodes,
                    bytes: meta.bytes,
                    max_bytes: meta.max_bytes,
                    inode_limit: limit,
                    now_ms,
                };
                let changes = normalized.iter().map(|(p, n)| (p.as_str(), *n));
                let plan = plan(SledHead::new(vol, &meta), base, changes)?;
                let record = LogRecord {
                    time_ms: now_ms,
                    changed: plan.changed,
                    removed: plan.removed,
                    bytes_added: Some(plan.bytes_added),
                };
                let version = meta.head.checked_add(1).ok_or_else(|| {
                    VolumeError::Corrupt(format!("volume `{name}`: version counter overflow"))
                })?;
                let old_meta = meta.encode();
                let new_meta = Meta {
                    head: version,
                    inodes: plan.inodes,
                    bytes: plan.bytes,
                    ..meta.clone()
                }
                .encode();
                let mut batch = Batch::default();
                for (path, node) in &plan.overlay {
                    let key = node_key(meta.id, path);
                    match node {
                        Some(n) => batch.insert(key, encode_node(n)),
                        None => batch.remove(key),
                    }
                }
                let log = record.encode();
                let mut undo = plan.head.undo(&plan.overlay)?;
                // The nodes this commit replaces stay readable as version
                // `meta.head` (see `history`).
                let mut rows = Batch::default();
                for (path, old) in crate::storage::volume::history::rows(&plan.before) {
                    let (by_path, by_version) = (
                        history_key(meta.id, path, version),
                        history_version_key(meta.id, version, path),
                    );
                    rows.insert(by_path.as_slice(), encode_history(old));
                    rows.insert(by_version.as_slice(), Vec::new());
                    for key in [by_path, by_version] {
                        undo.push(UndoOp {
                            tree: UndoTree::History,
                            key: key.into(),
                            old: None,
                        });
                    }
                }
                if !meta.base.is_empty() {
                    // A fork hides what it removed from the levels below
                    // (see `fork`); an own row wins over a hidden one, so
                    // puts leave them.
                    for path in plan
                        .overlay
                        .iter()
                        .filter(|(_, n)| n.is_none())
                        .map(|(p, _)| p)
                    {
                        let key = hidden_key(meta.id, path);
                        let old = vol.history.get(&key).map_err(db_err)?;
                        if old.is_none() {
                            rows.insert(key.as_slice(), Vec::new());
                            undo.push(UndoOp {
                                tree: UndoTree::History,
                                key: key.into(),
                                old: None,
                            });
                        }
                    }
                }
                undo.push(UndoOp {
                    tree: UndoTree::Volumes,
                    key: name.as_bytes().into(),
                    old: Some(old_meta.as_slice().into()),
                });
                undo.push(UndoOp {
                    tree: UndoTree::Log,
                    key: log_key(meta.id, version)[..].into(),
                    old: None,
                });
                let ((), published) = self.publish(meta.id, false, || {
                    (&vol.volumes, &vol.nodes, &vol.log, &vol.history)
                        .transaction(|(tv, tn, tl, th)| {
                            // Under the per-volume lock nothing else moves the
                            // head; this guards against a bug elsewhere rather
                            // than races.
                            if tv.get(name.as_bytes())?.as_deref() != Some(&old_meta[..]) {
                                return Err(ConflictableTransactionError::Abort(
                                    VolumeError::Unavailable(format!(
                                        "volume `{name}` changed under a commit"
                                    )),
                                ));
                            }
                            tv.insert(name.as_bytes(), new_meta.clone())?;
                            tn.apply_batch(&batch)?;
                            tl.insert(&log_key(meta.id, version)[..], log.clone())?;
                            th.apply_batch(&rows)?;
                            Ok(())
                        })
                        .map_err(tx_err)?;
                    Ok(((), undo))
                })?;
                // The cache follows sled; its readers settle like any other
                // (see `visible`), and an undone commit drops the entry.
                lock(&vol.snapshots).advance(meta.id, meta.head, version, plan.overlay);
                let info = CommitInfo {
                    version,
                    changed: u64::try_from(record.changed.len()).unwrap_or(u64::MAX),
                    removed: u64::try_from(record.removed.len()).unwrap_or(u64::MAX),
                };
                Ok((info, published))
            })?;
            // Outside the volume lock: group commit lets concurrent committers
            // of this and other volumes share one fsync. No reader answers with
            // the commit before this wait succeeds, and if it fails the commit
            // is undone (see `visible`).
            self.confirm(info.1)?;
            Ok(info.0)
        })
    }

    fn mounts(&self) -> &Mounts {
        &self.vol().mounts
    }

    fn inode_limit(&self) -> u64 {
        self.vol().inode_limit
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<BlobId, VolumeError> {
        let _gc = self
            .vol()
            .gc_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let id = self.blobs.put(bytes)?;
        self.touch_blob(&id)?;
        Ok(id)
    }

    fn put_blob_file(&self, path: &Path) -> Result<(BlobId, u64), VolumeError> {
        let _gc = self
            .vol()
            .gc_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let (id, size) = self.blobs.put_file(path)?;
        self.touch_blob(&id)?;
        Ok((id, size))
    }

    fn put_blob_reader(&self, reader: &mut dyn Read) -> Result<(BlobId, u64), VolumeError> {
        let _gc = self
            .vol()
            .gc_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let (id, size) = self.blobs.put_reader(reader)?;
        self.touch_blob(&id)?;
        Ok((id, size))
    }

    fn local_blob(&self, id: &BlobId) -> Result<PathBuf, VolumeError> {
        let p = self.blobs.path(id);
        if p.is_file() {
            Ok(p)
        } else {
            Err(BlobError::Missing(*id).into())
        }
    }

    fn read_blob(&self, id: &BlobId, offset: u64, len: u64) -> Result<Vec<u8>, VolumeError> {
        let vol = self.vol();
        if !lock(&vol.verified).contains(id) {
            // Hashing reads the whole blob; once per blob per process is
            // enough for bit rot and tampering between runs, and keeps
            // ranged reads of large files cheap.
            self.blobs.verify(id)?;
            lock(&vol.verified).insert(*id);
        }
        let mut f = match std::fs::File::open(self.blobs.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(*id).into());
            }
            Err(e) => return Err(BlobError::Io(e).into()),
        };
        let size = f.metadata().map_err(BlobError::Io)?.len();
        let want = len.min(size.saturating_sub(offset));
        let mut out = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        if want > 0 {
            f.seek(SeekFrom::Start(offset)).map_err(BlobError::Io)?;
            f.take(want).read_to_end(&mut out).map_err(BlobError::Io)?;
        }
        Ok(out)
    }

    fn gc(&self, options: &GcOptions<'_>) -> Result<GcReport, VolumeError> {
        let vol = self.vol();
        let grace = options.min_age.unwrap_or(vol.gc_grace);
        let _gc = vol.gc_lock.write().unwrap_or_else(PoisonError::into_inner);
        let mut metas = Vec::new();
        for item in vol.volumes.iter() {
            let (_, v) = item.map_err(db_err)?;
            metas.push(Meta::decode(&v)?);
        }
        let live: HashSet<u64> = metas.iter().map(|m| m.id).collect();
        // Versions past retention go first; what the rest name stays. A
        // version a fork reads through stays (see `fork`).
        let mut read_through: HashMap<u64, u64> = HashMap::new();
        for level in metas.iter().flat_map(|m| &m.base) {
            let oldest = read_through.entry(level.id).or_insert(level.version);
            *oldest = (*oldest).min(level.version);
        }
        // Dict values in the blob folder stay too. Every write that named
        // one held this lock while it landed, and settling the dict log
        // applies any a deferred writer left pending, so the scan sees all.
        self.wal
            .settle()
            .map_err(|e| VolumeError::Io(format!("the dict log: {e}")))?;
        let mut referenced = self
            .dict_blob_refs()
            .map_err(|e| VolumeError::Io(format!("listing dict values: {e}")))?;
        for meta in &metas {
            referenced.extend(self.prune_history(meta, read_through.get(&meta.id).copied())?);
        }
        // One pass over every node: the referenced set, plus the ids of
        // volumes whose deletion a crash interrupted.
        let mut orphans = HashSet::new();
        for item in vol.nodes.iter() {
            let (k, v) = item.map_err(db_err)?;
            let (id, _) = split_key(&k)?;
            if live.contains(&id) {
                if let Some(b) = decode_node(&v)?.blob {
                    referenced.insert(b);
                }
            } else {
                orphans.insert(id);
            }
        }
        for item in vol.log.iter().keys().chain(vol.history.iter().keys()) {
            let k = item.map_err(db_err)?;
            let (id, _) = split_key(&k)?;
            if !live.contains(&id) {
                orphans.insert(id);
            }
        }
        for id in &orphans {
            // No name points to `id` and ids are never reused, so these
            // keys are unreachable. (Commits are excluded while gc runs, so
            // no volume created after the name scan has nodes yet.)
            self.clear_prefix(&vol.nodes, &id.to_be_bytes())?;
            self.clear_prefix(&vol.log, &id.to_be_bytes())?;
            self.clear_prefix(&vol.history, &id.to_be_bytes())?;
        }
        let mounted = vol.mounts.pinned();
        let pinned = |id: &BlobId| mounted.contains(id) || (options.pinned)(id);
        let blobs = self
            .blobs
            .gc(&|id| referenced.contains(id), &pinned, grace)
            .map_err(BlobError::Io)?;
        if !orphans.is_empty() {
            self.sync()?;
        }
        lock(&vol.verified).retain(|id| referenced.contains(id));
        Ok(GcReport {
            removed_blobs: blobs.removed,
            removed_bytes: blobs.bytes,
            kept_young: blobs.young,
            kept_pinned: blobs.pinned,
            min_age_secs: grace.as_secs(),
            removed_uploads: blobs.temp_files,
            removed_upload_bytes: blobs.temp_bytes,
        })
    }
}

fn info_of(name: String, meta: &Meta) -> VolumeInfo {
    VolumeInfo {
        name,
        version: meta.head,
        created_ms: meta.created_ms,
        inodes: meta.inodes,
        bytes: meta.bytes,
        max_bytes: meta.max_bytes,
        retention_ms: meta.retention(),
    }
}

/// The root is implicit (never stored); it is a directory that always
/// exists.
fn root_node(meta: &Meta) -> Node {
    Node {
        kind: NodeKind::Dir,
        blob: None,
        size: 0,
        mtime_ms: meta.created_ms,
        mode: IMPLICIT_DIR_MODE,
        target: None,
    }
}

#[cfg(test)]
mod tests;
