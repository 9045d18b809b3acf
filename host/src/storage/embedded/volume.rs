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
//!   changed paths, removed paths).
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

mod visible;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, IVec, Transactional, Tree};

use self::visible::{Scope, UndoOp, UndoTree, Visibility};
use super::EmbeddedStore;
use crate::storage::blobs::{BlobError, BlobId};
use crate::storage::disk::is_disk_full;
use crate::storage::volume::{
    Change, CommitInfo, GcOptions, GcReport, Node, NodeKind, Snapshot, VolumeError, VolumeInfo,
    VolumeStore, ancestors, check_max_bytes, check_node_shape, check_quota, check_volume_name,
    normalize_changes, normalize_path,
};

/// Mode of directories a commit creates implicitly (missing parents).
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// How many keys a deleted volume's clean-up removes per sled batch, so a
/// huge volume does not build one huge batch in memory.
const CLEAR_BATCH: usize = 10_000;

/// Most nodes the snapshot cache holds over all volumes (about 100 bytes
/// each); the least recently used snapshots go first.
const SNAPSHOT_CACHE_NODES: usize = 1_000_000;

/// The latest snapshot read of each recently mounted volume, by volume id,
/// kept up to date by the commits of this process (the only writer: sled is
/// single-process). A container mounting a volume copies its snapshot from
/// here instead of scanning sled, which is most of a mount's cost.
///
/// A commit does not touch the snapshot (it would cost O(volume)): it
/// appends the paths it wrote, as they are in sled after it, and the next
/// read merges them in, O(volume + changes) in memory. Versions only grow
/// and ids are never reused, so an entry is exactly the head when its
/// version (after the pending commits) is the head's.
#[derive(Debug, Default)]
struct SnapshotCache {
    entries: HashMap<u64, CachedSnapshot>,
    /// Nodes and pending paths over all entries.
    nodes: usize,
    clock: u64,
}

/// Paths one commit wrote, and what they hold after it (`None`: removed).
type Delta = BTreeMap<String, Option<Node>>;

#[derive(Debug)]
struct CachedSnapshot {
    /// The version `nodes` is.
    head: u64,
    nodes: Arc<Vec<(String, Node)>>,
    /// Commits since `head`, oldest first, with their versions.
    pending: Vec<(u64, Delta)>,
    pending_paths: usize,
    used: u64,
}

impl CachedSnapshot {
    fn size(&self) -> usize {
        self.nodes.len() + self.pending_paths
    }

    /// The version after the pending commits.
    fn tip(&self) -> u64 {
        self.pending.last().map_or(self.head, |(v, _)| *v)
    }
}

/// `nodes` (sorted by path) with `delta` applied.
fn merge(nodes: &[(String, Node)], delta: Delta) -> Vec<(String, Node)> {
    let mut out = Vec::with_capacity(nodes.len() + delta.len());
    let mut old = nodes.iter().peekable();
    let mut new = delta.into_iter().peekable();
    loop {
        let take_old = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, _)), Some((b, _))) => {
                if a == b {
                    // Replaced or removed by the delta.
                    old.next();
                    false
                } else {
                    a < b
                }
            }
        };
        if take_old {
            if let Some(e) = old.next() {
                out.push(e.clone());
            }
        } else if let Some((path, Some(node))) = new.next() {
            out.push((path, node));
        }
    }
    out
}

impl SnapshotCache {
    /// The snapshot of volume `id` at version `head`, if cached.
    fn get(&mut self, id: u64, head: u64) -> Option<Arc<Vec<(String, Node)>>> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.entries.get_mut(&id)?;
        if e.tip() != head {
            return None;
        }
        e.used = clock;
        if !e.pending.is_empty() {
            let mut delta = Delta::new();
            for (_, d) in std::mem::take(&mut e.pending) {
                delta.extend(d);
            }
            self.nodes = self.nodes.saturating_sub(e.size());
            e.pending_paths = 0;
            e.nodes = Arc::new(merge(&e.nodes, delta));
            e.head = head;
            self.nodes += e.size();
        }
        let nodes = e.nodes.clone();
        self.shrink();
        Some(nodes)
    }

    fn put(&mut self, id: u64, head: u64, nodes: Arc<Vec<(String, Node)>>) {
        self.forget(id);
        if nodes.len() > SNAPSHOT_CACHE_NODES {
            return;
        }
        self.clock += 1;
        self.nodes += nodes.len();
        self.entries.insert(
            id,
            CachedSnapshot {
                head,
                nodes,
                pending: Vec::new(),
                pending_paths: 0,
                used: self.clock,
            },
        );
        self.shrink();
    }

    /// Records that a commit moved volume `id` from version `from` to `to`
    /// by writing `delta`.
    fn advance(&mut self, id: u64, from: u64, to: u64, delta: Delta) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        // Pending paths beyond the snapshot's size: a fresh scan is as
        // cheap as the merge, and memory stays bounded.
        if e.tip() != from || e.pending_paths + delta.len() > e.nodes.len().max(1024) {
            self.forget(id);
            return;
        }
        e.pending_paths += delta.len();
        self.nodes += delta.len();
        e.pending.push((to, delta));
        self.shrink();
    }

    fn shrink(&mut self) {
        while self.nodes > SNAPSHOT_CACHE_NODES {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.forget(oldest);
        }
    }

    fn forget(&mut self, id: u64) {
        if let Some(e) = self.entries.remove(&id) {
            self.nodes = self.nodes.saturating_sub(e.size());
        }
    }
}

/// The volume half of the embedded store's state, shared by its clones.
#[derive(Debug)]
pub(crate) struct VolumeState {
    volumes: Tree,
    nodes: Tree,
    log: Tree,
    inode_limit: u64,
    gc_grace: Duration,
    /// Per volume id: writers (commit, rename, delete) take it exclusively,
    /// readers that need a consistent view (snapshot, list_dir) shared.
    locks: Mutex<HashMap<u64, Arc<RwLock<()>>>>,
    /// Blobs whose hash was checked by this process.
    verified: Mutex<HashSet<BlobId>>,
    snapshots: Mutex<SnapshotCache>,
    /// `gc` holds it exclusively, blob puts and commits shared. A put
    /// either finishes (and refreshes the blob's mtime, so the grace period
    /// protects it) before a collection starts, or starts after it ended;
    /// a commit checks its blobs exist and lands with no collection in
    /// between, and a collection sees every landed commit's references.
    gc_lock: RwLock<()>,
    /// Writes applied to sled but not yet durable (see [`visible`]).
    visible: Visibility,
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
            inode_limit,
            gc_grace,
            locks: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashSet::new()),
            snapshots: Mutex::new(SnapshotCache::default()),
            gc_lock: RwLock::new(()),
            visible: Visibility::default(),
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

// ---------------------------------------------------------------------------
// Record encodings. Every record starts with a format byte so later formats
// can be told apart; decoding checks every length and never panics.

const FORMAT: u8 = 1;

/// A volume's row in the `volumes` tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    id: u64,
    head: u64,
    created_ms: u64,
    inodes: u64,
    bytes: u64,
    /// The byte quota, if any.
    max_bytes: Option<u64>,
}

/// The format of a volume row with a byte quota: the five counters of
/// [`FORMAT`], then the quota. A row without one keeps format 1, so rows
/// written before quotas existed read (and encode) as they were.
const FORMAT_QUOTA: u8 = 2;

impl Meta {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(49);
        out.push(if self.max_bytes.is_some() {
            FORMAT_QUOTA
        } else {
            FORMAT
        });
        for v in [self.id, self.head, self.created_ms, self.inodes, self.bytes] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        if let Some(max) = self.max_bytes {
            out.extend_from_slice(&max.to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, VolumeError> {
        let mut r = Reader::new(bytes, "volume record");
        let format = r.u8()?;
        if format != FORMAT && format != FORMAT_QUOTA {
            return Err(corrupt(format!("volume record: unknown format {format}")));
        }
        let mut meta = Meta {
            id: r.u64()?,
            head: r.u64()?,
            created_ms: r.u64()?,
            inodes: r.u64()?,
            bytes: r.u64()?,
            max_bytes: None,
        };
        if format == FORMAT_QUOTA {
            meta.max_bytes = Some(r.u64()?);
        }
        r.end()?;
        Ok(meta)
    }
}

fn kind_code(kind: NodeKind) -> u8 {
    match kind {
        NodeKind::File => 0,
        NodeKind::Dir => 1,
        NodeKind::Symlink => 2,
    }
}

fn encode_node(node: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT);
    out.push(kind_code(node.kind));
    let flags = u8::from(node.blob.is_some()) | (u8::from(node.target.is_some()) << 1);
    out.push(flags);
    out.extend_from_slice(&node.size.to_be_bytes());
    out.extend_from_slice(&node.mtime_ms.to_be_bytes());
    out.extend_from_slice(&node.mode.to_be_bytes());
    if let Some(b) = &node.blob {
        out.extend_from_slice(&b.0);
    }
    if let Some(t) = &node.target {
        put_str(&mut out, t);
    }
    out
}

fn decode_node(bytes: &[u8]) -> Result<Node, VolumeError> {
    let mut r = Reader::new(bytes, "node record");
    r.format()?;
    let kind = match r.u8()? {
        0 => NodeKind::File,
        1 => NodeKind::Dir,
        2 => NodeKind::Symlink,
        k => return Err(corrupt(format!("node record: unknown kind {k}"))),
    };
    let flags = r.u8()?;
    if flags & !0b11 != 0 {
        return Err(corrupt(format!("node record: unknown flags {flags:#x}")));
    }
    let size = r.u64()?;
    let mtime_ms = r.u64()?;
    let mode = r.u32()?;
    let blob = if flags & 1 != 0 {
        let mut id = [0u8; 32];
        id.copy_from_slice(r.take(32)?);
        Some(BlobId(id))
    } else {
        None
    };
    let target = if flags & 2 != 0 {
        Some(r.string()?)
    } else {
        None
    };
    r.end()?;
    Ok(Node {
        kind,
        blob,
        size,
        mtime_ms,
        mode,
        target,
    })
}

/// One entry of the commit log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogRecord {
    time_ms: u64,
    changed: Vec<String>,
    removed: Vec<String>,
}

impl LogRecord {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(FORMAT);
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        for list in [&self.changed, &self.removed] {
            out.extend_from_slice(&u64::try_from(list.len()).unwrap_or(u64::MAX).to_be_bytes());
            for p in list {
                put_str(&mut out, p);
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, VolumeError> {
        let mut r = Reader::new(bytes, "log record");
        r.format()?;
        let time_ms = r.u64()?;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = r.u64()?;
            for _ in 0..n {
                list.push(r.string()?);
            }
        }
        r.end()?;
        let [changed, removed] = lists;
        Ok(LogRecord {
            time_ms,
            changed,
            removed,
        })
    }
}

/// Decodes `bytes` as the stored volume record of kind `kind` (0: a
/// volume's row, 1: a node, 2: a commit log entry, 3: a node key) and, when
/// it decodes, checks that encoding it again gives the same bytes. `Ok`
/// says whether it decoded (a refusal is a clean `Corrupt` error); `Err`
/// is a broken round trip. For the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn check_stored_record(kind: u8, bytes: &[u8]) -> Result<bool, String> {
    let round = |what: &str, again: Vec<u8>| {
        if again == bytes {
            Ok(true)
        } else {
            Err(format!("a {what} does not encode back to its bytes"))
        }
    };
    let refused = |e: VolumeError| match e {
        VolumeError::Corrupt(m) if !m.is_empty() => Ok(false),
        other => Err(format!("a bad record is not `Corrupt`: {other}")),
    };
    match kind {
        0 => Meta::decode(bytes).map_or_else(refused, |m| round("volume row", m.encode())),
        1 => decode_node(bytes).map_or_else(refused, |n| round("node", encode_node(&n))),
        2 => LogRecord::decode(bytes).map_or_else(refused, |r| round("log entry", r.encode())),
        _ => match (split_key(bytes), key_path(bytes)) {
            (Ok((id, _)), Ok(path)) => round("node key", node_key(id, &path)),
            (Err(e), _) | (_, Err(e)) => refused(e),
        },
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Paths are at most 4096 bytes (normalize_path), symlink targets are
    // bounded by the same check upstream; u32 is plenty.
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked cursor over a stored record.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], VolumeError> {
        if self.bytes.len() < n {
            return Err(corrupt(format!("{} is truncated", self.what)));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, VolumeError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    fn u32(&mut self) -> Result<u32, VolumeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, VolumeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    fn string(&mut self) -> Result<String, VolumeError> {
        let n = usize::try_from(self.u32()?).map_err(corrupt)?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt(format!("{}: bad UTF-8", self.what)))
    }
    fn format(&mut self) -> Result<(), VolumeError> {
        match self.u8()? {
            FORMAT => Ok(()),
            f => Err(corrupt(format!("{}: unknown format {f}", self.what))),
        }
    }
    fn end(&self) -> Result<(), VolumeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(corrupt(format!("{} has trailing bytes", self.what)))
        }
    }
}

fn node_key(id: u64, path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + path.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(path.as_bytes());
    k
}

/// The key prefix of everything strictly under directory `dir`.
fn subtree_prefix(id: u64, dir: &str) -> Vec<u8> {
    let mut k = node_key(id, dir);
    if !dir.is_empty() {
        k.push(b'/');
    }
    k
}

fn log_key(id: u64, version: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    let (a, b) = k.split_at_mut(8);
    a.copy_from_slice(&id.to_be_bytes());
    b.copy_from_slice(&version.to_be_bytes());
    k
}

/// Splits a `volume_nodes`/`volume_log` key into its volume id and the rest.
fn split_key(key: &[u8]) -> Result<(u64, &[u8]), VolumeError> {
    if key.len() < 8 {
        return Err(corrupt("a volume key is shorter than its id"));
    }
    let (id, rest) = key.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(id);
    Ok((u64::from_be_bytes(b), rest))
}

fn key_path(key: &[u8]) -> Result<String, VolumeError> {
    let (_, rest) = split_key(key)?;
    String::from_utf8(rest.to_vec()).map_err(|_| corrupt("a stored path is not UTF-8"))
}

// ---------------------------------------------------------------------------
// Commit planning.

/// The writes a commit is building, over the head it started from.
struct Plan<'a> {
    state: &'a VolumeState,
    id: u64,
    /// Path → its state after the changes so far (`None`: removed).
    overlay: BTreeMap<String, Option<Node>>,
    /// Paths known to be directories in the planned state (saves re-reading
    /// common ancestors of many changed paths).
    known_dirs: HashSet<String>,
    inodes: u64,
    bytes: u64,
    now_ms: u64,
    /// Path → its stored bytes before the commit, for every path read from
    /// sled: what undoes the commit if it never becomes durable.
    originals: HashMap<String, Option<IVec>>,
}

impl Plan<'_> {
    fn current(&mut self, path: &str) -> Result<Option<Node>, VolumeError> {
        if let Some(n) = self.overlay.get(path) {
            return Ok(n.clone());
        }
        let stored = self
            .state
            .nodes
            .get(node_key(self.id, path))
            .map_err(db_err)?;
        let node = stored.as_deref().map(decode_node).transpose()?;
        self.originals.entry(path.to_owned()).or_insert(stored);
        Ok(node)
    }

    /// What undoes the planned node writes: every overlay path as it was
    /// stored (read now for any path the plan never read from sled).
    fn undo(&self) -> Result<Vec<UndoOp>, VolumeError> {
        let mut undo = Vec::with_capacity(self.overlay.len());
        for path in self.overlay.keys() {
            let key = node_key(self.id, path);
            let old = match self.originals.get(path) {
                Some(old) => old.clone(),
                None => self.state.nodes.get(&key).map_err(db_err)?,
            };
            undo.push(UndoOp {
                tree: UndoTree::Nodes,
                key: key.into(),
                old,
            });
        }
        Ok(undo)
    }

    fn forget(&mut self, node: &Node) {
        self.inodes = self.inodes.saturating_sub(1);
        if node.kind == NodeKind::File {
            self.bytes = self.bytes.saturating_sub(node.size);
        }
    }

    fn add(&mut self, node: &Node) {
        self.inodes = self.inodes.saturating_add(1);
        if node.kind == NodeKind::File {
            self.bytes = self.bytes.saturating_add(node.size);
        }
    }

    /// Removes everything strictly under `dir` from the planned state.
    fn remove_subtree(&mut self, dir: &str) -> Result<(), VolumeError> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        // Paths this commit already touched under `dir`: the overlay wins
        // over the stored head for them.
        let touched: Vec<(String, Option<Node>)> = self
            .overlay
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let touched_paths: HashSet<&str> = touched.iter().map(|(k, _)| k.as_str()).collect();
        let mut stored = Vec::new();
        for item in self.state.nodes.scan_prefix(subtree_prefix(self.id, dir)) {
            let (k, v) = item.map_err(db_err)?;
            let path = key_path(&k)?;
            if !touched_paths.contains(path.as_str()) {
                stored.push((path, decode_node(&v)?, v));
            }
        }
        for (path, node) in touched {
            if let Some(node) = node {
                self.forget(&node);
                self.known_dirs.remove(&path);
                self.overlay.insert(path, None);
            }
        }
        for (path, node, bytes) in stored {
            self.forget(&node);
            self.known_dirs.remove(&path);
            self.originals.entry(path.clone()).or_insert(Some(bytes));
            self.overlay.insert(path, None);
        }
        Ok(())
    }

    /// Makes sure `dir` is a directory, replacing a file or symlink there.
    fn ensure_dir(&mut self, dir: &str) -> Result<(), VolumeError> {
        if self.known_dirs.contains(dir) {
            return Ok(());
        }
        match self.current(dir)? {
            Some(n) if n.kind == NodeKind::Dir => {}
            other => {
                if let Some(old) = &other {
                    self.forget(old);
                }
                let node = Node {
                    kind: NodeKind::Dir,
                    blob: None,
                    size: 0,
                    mtime_ms: self.now_ms,
                    mode: IMPLICIT_DIR_MODE,
                    target: None,
                };
                self.add(&node);
                self.overlay.insert(dir.to_owned(), Some(node));
            }
        }
        self.known_dirs.insert(dir.to_owned());
        Ok(())
    }

    fn put(&mut self, path: &str, node: &Node) -> Result<(), VolumeError> {
        // Every ancestor of a known directory is known too, so only the
        // ancestors below the deepest known one need a look: a deep path
        // under a parent put just before costs one lookup, not one per
        // level (which made a 2,000-level tree quadratic in its bytes).
        let unknown: Vec<&str> = ancestors(path)
            .rev()
            .take_while(|d| !self.known_dirs.contains(*d))
            .collect();
        for dir in unknown.into_iter().rev() {
            self.ensure_dir(dir)?;
        }
        if let Some(old) = self.current(path)? {
            // A directory replaced by a file or symlink takes its subtree
            // with it; replacing a directory by a directory keeps the
            // children (it only updates its attributes).
            if old.kind == NodeKind::Dir && node.kind != NodeKind::Dir {
                self.remove_subtree(path)?;
            }
            self.forget(&old);
        }
        self.add(node);
        if node.kind == NodeKind::Dir {
            self.known_dirs.insert(path.to_owned());
        } else {
            self.known_dirs.remove(path);
        }
        self.overlay.insert(path.to_owned(), Some(node.clone()));
        Ok(())
    }

    /// Returns whether something was removed.
    fn remove(&mut self, path: &str) -> Result<bool, VolumeError> {
        let Some(old) = self.current(path)? else {
            return Ok(false);
        };
        if old.kind == NodeKind::Dir {
            self.remove_subtree(path)?;
        }
        self.forget(&old);
        self.known_dirs.remove(path);
        self.overlay.insert(path.to_owned(), None);
        Ok(true)
    }
}

// ---------------------------------------------------------------------------

impl EmbeddedStore {
    fn vol(&self) -> &VolumeState {
        &self.volumes
    }

    fn meta(&self, name: &str) -> Result<Meta, VolumeError> {
        check_volume_name(name)?;
        match self.vol().volumes.get(name.as_bytes()).map_err(db_err)? {
            Some(v) => Meta::decode(&v),
            None => Err(VolumeError::NotFound(name.to_owned())),
        }
    }

    /// Runs `f` with `name`'s meta while holding its per-volume lock
    /// (exclusively when `exclusive`). The meta is re-read under the lock,
    /// so `f` sees the head no writer can move until it returns.
    fn with_volume<R>(
        &self,
        name: &str,
        exclusive: bool,
        f: impl FnOnce(Meta) -> Result<R, VolumeError>,
    ) -> Result<R, VolumeError> {
        // A rename or delete between reading the id and taking its lock
        // changes the id behind the name; retry a few times with the new
        // one rather than act on a stale id.
        for _ in 0..8 {
            let id = self.meta(name)?.id;
            let lock = self.vol().lock_for(id);
            let (_shared, _excl);
            if exclusive {
                _excl = lock.write().unwrap_or_else(PoisonError::into_inner);
            } else {
                _shared = lock.read().unwrap_or_else(PoisonError::into_inner);
            }
            let meta = self.meta(name)?;
            if meta.id == id {
                return f(meta);
            }
        }
        Err(VolumeError::Unavailable(format!(
            "volume `{name}` keeps being renamed or replaced; try again"
        )))
    }

    /// Every node of a volume, from sled, sorted by path.
    fn scan_nodes(&self, meta: &Meta) -> Result<Vec<(String, Node)>, VolumeError> {
        let mut nodes = Vec::with_capacity(usize::try_from(meta.inodes).unwrap_or(0));
        for item in self.vol().nodes.scan_prefix(meta.id.to_be_bytes()) {
            let (k, v) = item.map_err(db_err)?;
            nodes.push((key_path(&k)?, decode_node(&v)?));
        }
        Ok(nodes)
    }

    fn sync(&self) -> Result<(), VolumeError> {
        self.durability.sync().map_err(|e| {
            let msg = format!("making the commit durable: {e}");
            if is_disk_full(&e) {
                VolumeError::DiskFull(msg)
            } else {
                VolumeError::Io(msg)
            }
        })
    }

    /// Checks a node a caller wants to commit at `path`: its shape, and
    /// that its blob exists in the blob folder (so it is durable: blobs are
    /// fsynced before they are installed) with the size the node claims.
    fn check_node(&self, path: &str, node: &Node) -> Result<(), VolumeError> {
        check_node_shape(path, node)?;
        let Some(id) = node.blob.as_ref().filter(|_| node.kind == NodeKind::File) else {
            return Ok(());
        };
        let len = match std::fs::metadata(self.blobs.path(id)) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(*id).into());
            }
            Err(e) => return Err(BlobError::Io(e).into()),
        };
        if len != node.size {
            return Err(VolumeError::InvalidPath {
                path: path.to_owned(),
                reason: format!(
                    "the node says {} bytes but blob {id} holds {len}",
                    node.size
                ),
            });
        }
        Ok(())
    }

    /// Refreshes a blob's mtime so a collection treats it as young (a
    /// deduplicated put of an old, unreferenced blob that a commit is
    /// about to name).
    fn touch_blob(&self, id: &BlobId) -> Result<(), VolumeError> {
        let f = std::fs::File::open(self.blobs.path(id)).map_err(BlobError::Io)?;
        f.set_modified(SystemTime::now()).map_err(BlobError::Io)?;
        Ok(())
    }

    /// [`VolumeStore::list_dir`] on sled as it is now; `id` gets the
    /// volume's id once found.
    fn list_dir_now(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
        id: &mut Option<u64>,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        let path = path.to_owned();
        self.with_volume(name, false, |meta| {
            *id = Some(meta.id);
            let nodes = &self.vol().nodes;
            if !path.is_empty() {
                match nodes.get(node_key(meta.id, &path)).map_err(db_err)? {
                    None => {
                        return Err(VolumeError::NoSuchPath {
                            volume: name.to_owned(),
                            path: path.clone(),
                        });
                    }
                    Some(v) if decode_node(&v)?.kind != NodeKind::Dir => {
                        return Err(VolumeError::InvalidPath {
                            path: path.clone(),
                            reason: "not a directory".into(),
                        });
                    }
                    Some(_) => {}
                }
            }
            let prefix = subtree_prefix(meta.id, &path);
            let mut out = Vec::new();
            let mut iter = nodes.range(prefix.clone()..);
            while let Some(item) = iter.next() {
                let (k, v) = item.map_err(db_err)?;
                let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                    break;
                };
                match rest.iter().position(|b| *b == b'/') {
                    Some(slash) if !recursive => {
                        // A grandchild: skip the rest of that child's
                        // subtree with one seek past `child/`. (Its own
                        // entry came before: every directory is explicit.)
                        let mut skip = prefix.clone();
                        skip.extend_from_slice(rest.get(..slash).unwrap_or_default());
                        skip.push(b'/' + 1);
                        iter = nodes.range(skip..);
                    }
                    _ => out.push((key_path(&k)?, decode_node(&v)?)),
                }
            }
            Ok(out)
        })
    }

    fn clear_prefix(&self, tree: &Tree, prefix: &[u8]) -> Result<(), VolumeError> {
        loop {
            let mut batch = Batch::default();
            let mut n = 0;
            for item in tree.scan_prefix(prefix).keys().take(CLEAR_BATCH) {
                batch.remove(item.map_err(db_err)?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            tree.apply_batch(batch).map_err(db_err)?;
        }
    }
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
        let (meta, published) = self.with_volume(name, true, |meta| {
            let old = meta.encode();
            let new = Meta { max_bytes, ..meta };
            let encoded = new.encode();
            let ((), published) = self.publish(meta.id, false, || {
                self.vol()
                    .volumes
                    .insert(name.as_bytes(), encoded.clone())
                    .map_err(db_err)?;
                let undo = vec![UndoOp {
                    tree: UndoTree::Volumes,
                    key: name.as_bytes().into(),
                    old: Some(old.as_slice().into()),
                }];
                Ok(((), undo))
            })?;
            Ok((new, published))
        })?;
        self.confirm(published)?;
        Ok(info_of(name.to_owned(), &meta))
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
        lock(&vol.locks).remove(&meta.id);
        lock(&vol.snapshots).forget(meta.id);
        Ok(())
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
        self.visible(|| {
            let mut id = None;
            let out = self.with_volume(name, false, |meta| {
                id = Some(meta.id);
                let cache = &self.vol().snapshots;
                if let Some(nodes) = lock(cache).get(meta.id, meta.head) {
                    return Ok(Snapshot {
                        version: meta.head,
                        nodes: nodes.as_ref().clone(),
                    });
                }
                let nodes = Arc::new(self.scan_nodes(&meta)?);
                lock(cache).put(meta.id, meta.head, nodes.clone());
                Ok(Snapshot {
                    version: meta.head,
                    nodes: Arc::unwrap_or_clone(nodes),
                })
            });
            (scope_of(id, &out), out)
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
            if path.is_empty() {
                return (scope, Ok(Some(root_node(&meta))));
            }
            let out = match self
                .vol()
                .nodes
                .get(node_key(meta.id, &path))
                .map_err(db_err)
            {
                Ok(Some(v)) => decode_node(&v).map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            (scope, out)
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

    fn commit(&self, name: &str, changes: &[Change]) -> Result<CommitInfo, VolumeError> {
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
            let vol = self.vol();
            let now_ms = self.now_ms();
            let mut plan = Plan {
                state: vol,
                id: meta.id,
                overlay: BTreeMap::new(),
                known_dirs: HashSet::new(),
                inodes: meta.inodes,
                bytes: meta.bytes,
                now_ms,
                originals: HashMap::new(),
            };
            let mut record = LogRecord {
                time_ms: now_ms,
                changed: Vec::new(),
                removed: Vec::new(),
            };
            let mut removed = 0u64;
            for (path, node) in &normalized {
                match node {
                    Some(node) => {
                        plan.put(path, node)?;
                        record.changed.push(path.clone());
                    }
                    None => {
                        if plan.remove(path)? {
                            removed += 1;
                            record.removed.push(path.clone());
                        }
                    }
                }
            }
            // A commit that does not grow the count is allowed even over a
            // (lowered) limit, so a full volume can always be cleaned up.
            if plan.inodes > limit && plan.inodes > meta.inodes {
                return Err(VolumeError::NoSpace {
                    volume: name.to_owned(),
                    limit,
                });
            }
            check_quota(name, meta.max_bytes, meta.bytes, plan.bytes)?;
            let version = meta.head.checked_add(1).ok_or_else(|| {
                VolumeError::Corrupt(format!("volume `{name}`: version counter overflow"))
            })?;
            let old_meta = meta.encode();
            let new_meta = Meta {
                head: version,
                inodes: plan.inodes,
                bytes: plan.bytes,
                ..meta
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
            let mut undo = plan.undo()?;
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
                (&vol.volumes, &vol.nodes, &vol.log)
                    .transaction(|(tv, tn, tl)| {
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
                removed,
            };
            Ok((info, published))
        })?;
        // Outside the volume lock: group commit lets concurrent committers
        // of this and other volumes share one fsync. No reader answers with
        // the commit before this wait succeeds, and if it fails the commit
        // is undone (see `visible`).
        self.confirm(info.1)?;
        Ok(info.0)
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
        let mut live = HashSet::new();
        for item in vol.volumes.iter() {
            let (_, v) = item.map_err(db_err)?;
            live.insert(Meta::decode(&v)?.id);
        }
        // One pass over every node: the referenced set, plus the ids of
        // volumes whose deletion a crash interrupted.
        let mut referenced = HashSet::new();
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
        for item in vol.log.iter().keys() {
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
        }
        let blobs = self
            .blobs
            .gc(&|id| referenced.contains(id), options.pinned, grace)
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
