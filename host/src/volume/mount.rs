//! A volume mounted into one container: its private working tree, the
//! snapshot it is based on, and the paths the guest changed since.
//!
//! Mounting is lazy. It reads the snapshot (one prefix scan of the store)
//! and makes an empty working directory; no file or directory is created,
//! so a mount does not pay a filesystem operation per file. A snapshot entry
//! appears in the working tree when the guest first reaches it:
//! [`Mount::resolve`] walks a path as the kernel would, component by
//! component, following symlinks inside the mount, and *places* every
//! snapshot entry it passes (a directory is created, a file is hard-linked
//! to its immutable blob, a symlink is created). Listing, removing or
//! renaming a directory first places its children ([`Mount::complete_dir`],
//! [`Mount::complete_tree`]). The WASI layer (`super::wasi`) and the guest
//! volume API (`super`) call these before they act, so every guest
//! operation sees the whole snapshot.
//!
//! An entry is placed at most once; from then on the working tree is
//! authoritative for it (a file the guest removed does not come back). The
//! invariant that makes this sound: an entry that is not placed has nothing
//! at its path in the working tree, and each of its ancestors there is
//! either not placed either or the snapshot's own directory, never removed,
//! replaced or renamed. The WASI layer keeps it by placing a path before any
//! operation on it and by completing a directory before it may be removed,
//! replaced (one level: it must be empty) or renamed (its whole subtree).
//!
//! A hard-linked file shares its inode with the stored blob, so the WASI
//! layer copies a file up (replaces the link with a private copy) before
//! the guest may open it for writing or change its times; no guest
//! operation can modify a stored blob. Every blob a live mount may still
//! link is pinned against garbage collection (`super::live`). The mount
//! also keeps the set of inodes that still hold the snapshot's bytes as
//! placed, which the container's disk budget (`super::disk`) does not
//! charge.
//!
//! The WASI layer also records every path the guest creates, writes, renames
//! or removes. A commit looks only at those paths (and the subtrees of
//! directories that appeared), so it costs what changed, not the volume.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt as _, Permissions, PermissionsExt as _};

use super::disk::{Unwritten, lock};
use crate::storage::blobs::BlobId;
use crate::storage::volume::pins::Registration;
use crate::storage::volume::{
    Change, CommitInfo, CommitOptions, Node, NodeKind, Snapshot, VolumeError, VolumeStore,
};

/// Most symlinks one path walk follows (as Linux's ELOOP limit).
const MAX_SYMLINKS: usize = 40;

/// A volume to mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// Absolute guest path, e.g. `/data`.
    pub guest: String,
    /// The volume's name.
    pub volume: String,
    pub read_only: bool,
    /// Mount this kept version instead of the head: read-only, and a
    /// reload keeps it.
    pub version: Option<u64>,
    /// What a commit does when another commit changed a path it changes
    /// since this mount read it.
    pub conflicts: Conflicts,
}

/// A mount's conflict policy (`conflicts = "..."` in a manifest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Conflicts {
    /// The commit lands; for each path the last commit wins (Modal's
    /// behaviour).
    #[default]
    LastWriterWins,
    /// The commit applies nothing and fails, naming the paths, when
    /// another commit changed any of them since this mount read it.
    Fail,
}

impl Conflicts {
    /// Parses the manifest and CLI spelling.
    pub fn parse(text: &str) -> Result<Conflicts, String> {
        match text {
            "last-writer-wins" => Ok(Conflicts::LastWriterWins),
            "fail" => Ok(Conflicts::Fail),
            other => Err(format!(
                "unknown conflict policy {other:?}: `last-writer-wins` or `fail`"
            )),
        }
    }
}

/// Why a mount operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Store(#[from] VolumeError),
    #[error("mount {guest}: {source}")]
    Io { guest: String, source: io::Error },
    #[error("volume mounted at {guest} is read-only")]
    ReadOnly { guest: String },
    #[error("volume `{volume}` mounted at {guest} was deleted while mounted")]
    Deleted { volume: String, guest: String },
    /// Under [`Conflicts::Fail`]: other commits changed these paths since
    /// the mount read them; nothing was committed and the working tree
    /// keeps its changes. `head` is the volume's version when it was found.
    #[error(
        "volume `{volume}` mounted at {guest}: another commit changed {} since this container read {}: {}",
        if paths.len() == 1 { "a path" } else { "paths" },
        if paths.len() == 1 { "it" } else { "them" },
        paths.join(", ")
    )]
    Conflict {
        volume: String,
        guest: String,
        paths: Vec<String>,
        head: u64,
    },
}

/// One path of the snapshot a mount is based on.
#[derive(Debug, Clone)]
struct BaseEntry {
    node: Node,
    /// The working tree has this path (or had it, before the guest changed
    /// it): it is authoritative for it from now on.
    placed: bool,
    /// For a directory: every child it has in the snapshot is placed.
    complete: bool,
}

/// One mounted volume of a container.
#[derive(Debug)]
pub struct Mount {
    pub guest: String,
    pub volume: String,
    pub read_only: bool,
    /// The version the mount is pinned to (see [`VolumeMount::version`]).
    pub pinned: Option<u64>,
    /// The working tree in the container's directory.
    pub host_dir: PathBuf,
    /// The working tree as a capability: every host-side path operation on
    /// it goes through cap-std, so nothing can escape it.
    pub(crate) root: Dir,
    /// The version the working tree is based on (last mount, commit or
    /// reload).
    pub version: u64,
    /// The conflict policy of commits.
    pub conflicts: Conflicts,
    /// The version of the snapshot the paths this container did not commit
    /// come from (last mount or reload).
    pub(crate) seen: u64,
    /// Paths this container committed, with the version: their base is
    /// newer than `seen`. Cleared by a reload.
    pub(crate) read_at: HashMap<String, u64>,
    /// Paths a conflict was reported for, with the head of that report:
    /// the guest has been told of the commits up to it, so its own next
    /// commit checks from there (see `commit_by_guest`).
    pub(crate) told: HashMap<String, u64>,
    store: Arc<dyn VolumeStore>,
    /// The tree at `version` as this container sees it, and which of its
    /// paths the working tree has.
    base: BTreeMap<String, BaseEntry>,
    /// Every child of the root is placed.
    root_complete: bool,
    /// Inodes of files that are still hard links of stored blobs.
    blob_inodes: HashMap<(u64, u64), BlobId>,
    /// The blob folder's fan-out directories, opened once each.
    blob_dirs: HashMap<PathBuf, Dir>,
    /// Inodes of placed files the guest has not written: blob links and
    /// the private copies placed where a link is impossible.
    unwritten: Unwritten,
    /// Paths the guest created, wrote, renamed or removed since `version`.
    pub(crate) dirty: BTreeSet<String>,
    /// Paths a directory was renamed onto: a commit replaces the whole
    /// subtree there, even where the base had a directory too.
    pub(crate) renamed_in: BTreeSet<String>,
    /// Inodes in the working tree, as far as the guest's creates and
    /// removes tell (checked against the volume's limit on create).
    pub(crate) inodes: u64,
    pub(crate) inode_limit: u64,
    live: Registration,
}

fn io_err(guest: &str) -> impl Fn(io::Error) -> MountError + '_ {
    move |source| MountError::Io {
        guest: guest.to_owned(),
        source,
    }
}

fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(p, _)| p)
}

/// Joins a mount-relative directory and a relative path lexically. `None`
/// when the result would leave the mount or the path is absolute.
pub(crate) fn join_lexically(base: &str, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// `Some(path)` or `"."` for the root, as cap-std wants it.
fn dot(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

/// Whether two snapshot nodes put the same thing in a working tree.
fn same_entry(a: &Node, b: &Node) -> bool {
    a.kind == b.kind && a.blob == b.blob && a.target == b.target
}

impl Mount {
    /// Mounts the head of `spec.volume` at `host_dir` (which need not exist
    /// yet): reads its snapshot and makes the empty working directory.
    pub fn materialize(
        store: &Arc<dyn VolumeStore>,
        spec: &VolumeMount,
        host_dir: &Path,
    ) -> Result<Mount, MountError> {
        let err = io_err(&spec.guest);
        crate::private::create_dir_all(host_dir).map_err(&err)?;
        let root = Dir::open_ambient_dir(host_dir, ambient_authority()).map_err(&err)?;
        // Registered before the snapshot is read: a garbage collection that
        // starts meanwhile keeps every blob until the pins are in.
        let live = store.register_mount_at(&spec.volume, spec.version)?;
        let snapshot = match spec.version {
            Some(v) => store.snapshot_at(&spec.volume, v)?,
            None => store.snapshot(&spec.volume)?,
        };
        live.pin(snapshot.nodes.iter().filter_map(|(_, n)| n.blob));
        let inodes = snapshot.nodes.len() as u64;
        let base = snapshot
            .nodes
            .into_iter()
            .map(|(path, node)| {
                (
                    path,
                    BaseEntry {
                        node,
                        placed: false,
                        complete: false,
                    },
                )
            })
            .collect();
        Ok(Mount {
            guest: spec.guest.clone(),
            volume: spec.volume.clone(),
            // An older version is never written.
            read_only: spec.read_only || spec.version.is_some(),
            pinned: spec.version,
            host_dir: host_dir.to_owned(),
            root,
            version: snapshot.version,
            conflicts: spec.conflicts,
            seen: snapshot.version,
            read_at: HashMap::new(),
            told: HashMap::new(),
            store: store.clone(),
            base,
            root_complete: false,
            blob_inodes: HashMap::new(),
            blob_dirs: HashMap::new(),
            unwritten: Unwritten::default(),
            dirty: BTreeSet::new(),
            renamed_in: BTreeSet::new(),
            inodes,
            inode_limit: store.inode_limit(),
            live,
        })
    }

    /// How many snapshot entries the working tree has placed (for tests and
    /// benchmarks of the lazy paths).
    pub fn placed(&self) -> usize {
        self.base.values().filter(|e| e.placed).count()
    }

    /// Places the whole snapshot now, as an eager mount would have (what
    /// the lazy paths add up to when a guest touches every file).
    pub fn place_all(&mut self) -> Result<(), MountError> {
        let guest = self.guest.clone();
        self.complete_tree("").map_err(io_err(&guest))
    }

    /// Places the snapshot entry at `path` unless it is placed already.
    /// Its parent must be in the working tree: callers walk down to it.
    fn place(&mut self, path: &str) -> io::Result<()> {
        let Some(entry) = self.base.get_mut(path) else {
            return Ok(());
        };
        if entry.placed {
            return Ok(());
        }
        let placed = match entry.node.kind {
            NodeKind::Dir => self.root.create_dir(path),
            NodeKind::Symlink => self
                .root
                .symlink_contents(entry.node.target.as_deref().unwrap_or_default(), path),
            NodeKind::File => {
                let blob = entry
                    .node
                    .blob
                    .ok_or_else(|| io::Error::other(format!("file {path} has no blob")))?;
                let src = self
                    .store
                    .local_blob(&blob)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let (Some(fan), Some(name)) = (src.parent(), src.file_name()) else {
                    return Err(io::Error::other(format!(
                        "blob path {} has no parent",
                        src.display()
                    )));
                };
                if !self.blob_dirs.contains_key(fan) {
                    let d = Dir::open_ambient_dir(fan, ambient_authority())?;
                    self.blob_dirs.insert(fan.to_owned(), d);
                }
                let fan_dir = self
                    .blob_dirs
                    .get(fan)
                    .ok_or_else(|| io::Error::other("blob directory cache"))?;
                match fan_dir.hard_link(name, &self.root, path) {
                    Ok(()) => {
                        let meta = self.root.symlink_metadata(path)?;
                        self.blob_inodes.insert((meta.dev(), meta.ino()), blob);
                        lock(&self.unwritten).insert((meta.dev(), meta.ino()));
                        Ok(())
                    }
                    // Another filesystem (EXDEV), or a blob linked as often
                    // as the filesystem allows (EMLINK: all empty files
                    // share one blob): a private copy is correct, just
                    // slower.
                    Err(e) if matches!(e.raw_os_error(), Some(18 | 31)) => {
                        fan_dir.copy(name, &self.root, path)?;
                        self.root
                            .set_permissions(path, Permissions::from_mode(0o600))?;
                        let meta = self.root.symlink_metadata(path)?;
                        lock(&self.unwritten).insert((meta.dev(), meta.ino()));
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match placed {
            Ok(()) => {}
            // The working tree has something there already: it wins.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        entry.placed = true;
        Ok(())
    }

    /// Where `path`, relative to directory `from` of the working tree (a
    /// physical path, `""` for the root), leads, with every snapshot entry
    /// on the way placed. Walks as the kernel would: `..` goes to the
    /// physical parent, symlinks inside the mount are followed (the last
    /// component only when `follow_last`). Returns the physical path (no
    /// symlink in it but maybe the last component), or `None` when the path
    /// is absolute or climbs out of the mount. Where the walk cannot go on
    /// (a missing or non-directory component, a symlink loop, a symlink out
    /// of the mount), the rest is joined lexically: the operation that
    /// follows then fails and says why.
    pub(crate) fn resolve(
        &mut self,
        from: &str,
        path: &str,
        follow_last: bool,
    ) -> io::Result<Option<String>> {
        if path.starts_with('/') {
            return Ok(None);
        }
        let mut at: Vec<String> = from
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        let mut todo: VecDeque<String> = path.split('/').map(str::to_owned).collect();
        let rest = |at: &[String], todo: &VecDeque<String>| {
            let todo: Vec<&str> = todo.iter().map(String::as_str).collect();
            join_lexically(&at.join("/"), &todo.join("/"))
        };
        let mut links = 0;
        while let Some(comp) = todo.pop_front() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    if at.pop().is_none() {
                        return Ok(None);
                    }
                    continue;
                }
                _ => {}
            }
            let last = todo.iter().all(|c| c.is_empty() || c == ".");
            at.push(comp);
            let cur = at.join("/");
            self.place(&cur)?;
            if last && !follow_last {
                break;
            }
            let meta = match self.root.symlink_metadata(&cur) {
                Ok(m) => m,
                Err(_) if last => break,
                Err(_) => return Ok(rest(&at, &todo)),
            };
            if meta.is_symlink() {
                links += 1;
                let target = self.root.read_link_contents(&cur)?;
                let target = target.to_str().filter(|t| !t.starts_with('/'));
                match target {
                    Some(t) if links <= MAX_SYMLINKS => {
                        at.pop();
                        for c in t.split('/').rev() {
                            todo.push_front(c.to_owned());
                        }
                    }
                    _ => return Ok(rest(&at, &todo)),
                }
            } else if !last && !meta.is_dir() {
                return Ok(rest(&at, &todo));
            }
        }
        Ok(Some(at.join("/")))
    }

    /// [`resolve`](Self::resolve) from the mount's root, for paths the
    /// caller has normalised (no `..`, not absolute); falls back to `path`.
    pub(crate) fn resolve_rel(&mut self, path: &str, follow_last: bool) -> io::Result<String> {
        Ok(self
            .resolve("", path, follow_last)?
            .unwrap_or_else(|| path.to_owned()))
    }

    /// The children of snapshot directory `dir` that are not placed yet.
    fn unplaced_children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out = Vec::new();
        let mut from = prefix.clone();
        loop {
            let mut skip_to = None;
            for (p, e) in self
                .base
                .range::<str, _>((Bound::Included(from.as_str()), Bound::Unbounded))
            {
                let Some(rest) = p.strip_prefix(&prefix) else {
                    return out;
                };
                match rest.split_once('/') {
                    None => {
                        if !e.placed {
                            out.push(p.clone());
                        }
                    }
                    // A grandchild: jump past that child's subtree (`/` + 1
                    // is `0`). Its own entry came first: every directory is
                    // explicit in a snapshot.
                    Some((child, _)) => {
                        skip_to = Some(format!("{prefix}{child}0"));
                        break;
                    }
                }
            }
            match skip_to {
                Some(s) => from = s,
                None => return out,
            }
        }
    }

    /// Places every child of directory `dir` (a physical path) that the
    /// snapshot has, so listing it or removing it sees them.
    pub(crate) fn complete_dir(&mut self, dir: &str) -> io::Result<()> {
        if dir.is_empty() {
            if self.root_complete {
                return Ok(());
            }
        } else {
            match self.base.get(dir) {
                Some(e) if e.node.kind == NodeKind::Dir && e.placed && !e.complete => {}
                _ => return Ok(()),
            }
        }
        for child in self.unplaced_children(dir) {
            self.place(&child)?;
        }
        if dir.is_empty() {
            self.root_complete = true;
        } else if let Some(e) = self.base.get_mut(dir) {
            e.complete = true;
        }
        Ok(())
    }

    /// Places everything the snapshot has under directory `dir` (before it
    /// is renamed, removed recursively or listed recursively).
    pub(crate) fn complete_tree(&mut self, dir: &str) -> io::Result<()> {
        self.complete_dir(dir)?;
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let todo: Vec<String> = self
            .base
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(_, e)| !e.placed || (e.node.kind == NodeKind::Dir && !e.complete))
            .map(|(p, _)| p.clone())
            .collect();
        // Sorted: a directory comes before its children.
        for path in todo {
            self.place(&path)?;
            if let Some(e) = self.base.get_mut(&path)
                && e.node.kind == NodeKind::Dir
            {
                e.complete = true;
            }
        }
        Ok(())
    }

    /// Whether `file` is a stored blob linked into this mount (so its bytes
    /// never change: the guest can only write private copies).
    pub(crate) fn is_linked_blob(&self, file: &std::fs::File) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        file.metadata()
            .is_ok_and(|m| self.blob_inodes.contains_key(&(m.dev(), m.ino())))
    }

    /// The inodes of placed files the guest has not written, for the disk
    /// budget.
    pub(crate) fn unwritten(&self) -> Unwritten {
        self.unwritten.clone()
    }

    /// The bytes [`copy_up`](Self::copy_up) with `keep` would add: the
    /// file's size when it is a hard link (a copy is made) or a placed copy
    /// (it becomes the guest's own), else nothing.
    pub(crate) fn copy_up_cost(&self, rel: &str, keep: bool) -> io::Result<u64> {
        let meta = match self.root.symlink_metadata(dot(rel)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let private =
            meta.nlink() >= 2 || lock(&self.unwritten).contains(&(meta.dev(), meta.ino()));
        Ok(if keep && meta.is_file() && private {
            meta.len()
        } else {
            0
        })
    }

    /// Replaces a hard link of a stored blob at `rel` (a physical path, the
    /// last component followed if it was a symlink) with a private copy,
    /// so the guest can write it: of its bytes when `keep`, else empty (it
    /// is about to be truncated). A placed copy becomes the guest's own. A
    /// path that does not exist (a create) needs nothing.
    pub(crate) fn copy_up(&mut self, rel: &str, keep: bool) -> io::Result<()> {
        let meta = match self.root.symlink_metadata(dot(rel)) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            return Ok(());
        }
        if meta.nlink() < 2 {
            lock(&self.unwritten).remove(&(meta.dev(), meta.ino()));
            return Ok(());
        }
        let tmp = match rel.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.vessel-copy-up-{name}"),
            None => format!(".vessel-copy-up-{rel}"),
        };
        if keep {
            self.root.copy(rel, &self.root, &tmp)?;
        } else {
            self.root.create(&tmp)?;
        }
        // Blobs are read-only; the private copy is the guest's to write.
        let mode = meta.mode() & 0o7777 | 0o200;
        self.root
            .set_permissions(&tmp, Permissions::from_mode(mode))?;
        self.root.rename(&tmp, &self.root, rel)?;
        self.blob_inodes.remove(&(meta.dev(), meta.ino()));
        Ok(())
    }
}

mod commit;

#[cfg(test)]
mod tests;
