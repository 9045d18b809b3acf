//! A volume mounted into one container: its private working tree, what it
//! was based on, and the paths the guest changed since.
//!
//! At mount time the head snapshot is materialised in a directory of the
//! container by hard-linking the immutable blobs (no file bytes are copied),
//! so mounting costs one link per file whatever the file sizes. A hard-linked
//! file shares its inode with the stored blob, so the WASI layer
//! (`super::wasi`) copies a file up (replaces the link with a private copy)
//! before the guest may open it for writing; no guest operation can modify a
//! stored blob.
//!
//! The WASI layer also records every path the guest creates, writes, renames
//! or removes. A commit looks only at those paths (and the subtrees of
//! directories that appeared), so it costs what changed, not the volume.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt as _};

use crate::storage::blobs::BlobId;
use crate::storage::volume::{
    Change, CommitInfo, Node, NodeKind, Snapshot, VolumeError, VolumeStore,
};

/// A volume to mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// Absolute guest path, e.g. `/data`.
    pub guest: String,
    /// The volume's name.
    pub volume: String,
    pub read_only: bool,
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
}

/// One mounted volume of a container.
#[derive(Debug)]
pub struct Mount {
    pub guest: String,
    pub volume: String,
    pub read_only: bool,
    /// The working tree in the container's directory.
    pub host_dir: PathBuf,
    /// The working tree as a capability: every host-side path operation on
    /// it goes through cap-std, so nothing can escape it.
    pub(crate) root: Dir,
    /// The version the working tree is based on (last mount, commit or
    /// reload).
    pub version: u64,
    /// The tree at `version` as this container sees it.
    base: BTreeMap<String, Node>,
    /// Inodes of files that are still hard links of stored blobs.
    blob_inodes: HashMap<(u64, u64), BlobId>,
    /// Paths the guest created, wrote, renamed or removed since `version`.
    pub(crate) dirty: BTreeSet<String>,
    /// Inodes in the working tree, as far as the guest's creates and
    /// removes tell (checked against the volume's limit on create).
    pub(crate) inodes: u64,
    pub(crate) inode_limit: u64,
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

impl Mount {
    /// Materialises the head of `spec.volume` into `host_dir` (which must
    /// not exist yet).
    pub fn materialize(
        store: &Arc<dyn VolumeStore>,
        spec: &VolumeMount,
        host_dir: &Path,
    ) -> Result<Mount, MountError> {
        let err = io_err(&spec.guest);
        std::fs::create_dir_all(host_dir).map_err(&err)?;
        let root = Dir::open_ambient_dir(host_dir, ambient_authority()).map_err(&err)?;
        let snapshot = store.snapshot(&spec.volume)?;
        let mut mount = Mount {
            guest: spec.guest.clone(),
            volume: spec.volume.clone(),
            read_only: spec.read_only,
            host_dir: host_dir.to_owned(),
            root,
            version: snapshot.version,
            base: BTreeMap::new(),
            blob_inodes: HashMap::new(),
            dirty: BTreeSet::new(),
            inodes: 0,
            inode_limit: store.inode_limit(),
        };
        for (path, node) in &snapshot.nodes {
            mount.place(store, path, node).map_err(&err)?;
        }
        mount.inodes = snapshot.nodes.len() as u64;
        mount.base = snapshot.nodes.into_iter().collect();
        Ok(mount)
    }

    /// Puts `node` at `path` of the working tree (parents exist: snapshots
    /// are sorted, so a directory comes before its children).
    fn place(&mut self, store: &Arc<dyn VolumeStore>, path: &str, node: &Node) -> io::Result<()> {
        let dest = self.host_dir.join(path);
        match node.kind {
            NodeKind::Dir => match std::fs::create_dir(&dest) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dest.is_dir() => Ok(()),
                other => other,
            },
            NodeKind::File => {
                let blob = node
                    .blob
                    .ok_or_else(|| io::Error::other(format!("file {path} has no blob")))?;
                let src = store
                    .local_blob(&blob)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                match std::fs::hard_link(&src, &dest) {
                    Ok(()) => {
                        let meta = std::fs::symlink_metadata(&dest)?;
                        self.blob_inodes.insert((meta.dev(), meta.ino()), blob);
                        Ok(())
                    }
                    // Another filesystem: a private copy is correct, just
                    // slower.
                    Err(e) if e.raw_os_error() == Some(18) => std::fs::copy(&src, &dest).map(drop),
                    Err(e) => Err(e),
                }
            }
            NodeKind::Symlink => {
                let target = node.target.as_deref().unwrap_or_default();
                std::os::unix::fs::symlink(target, &dest)
            }
        }
    }

    /// Replaces a hard link of a stored blob at `rel` with a private copy,
    /// so the guest can write it. Symlinks are followed inside the mount;
    /// a path that does not exist (a create) needs nothing.
    pub(crate) fn copy_up(&mut self, rel: &str) -> io::Result<()> {
        let target = match self
            .root
            .canonicalize(if rel.is_empty() { "." } else { rel })
        {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let meta = match self.root.symlink_metadata(&target) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !meta.is_file() || meta.nlink() < 2 {
            return Ok(());
        }
        let tmp = target.with_file_name(format!(
            ".vessel-copy-up-{}",
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        self.root.copy(&target, &self.root, &tmp)?;
        self.root.rename(&tmp, &self.root, &target)?;
        let key = (meta.dev(), meta.ino());
        self.blob_inodes.remove(&key);
        Ok(())
    }

    /// Publishes the dirty paths, except those in `skip` (files open for
    /// writing during a background commit: publishing them could tear).
    pub fn commit(
        &mut self,
        store: &Arc<dyn VolumeStore>,
        skip: &BTreeSet<String>,
    ) -> Result<CommitInfo, MountError> {
        if self.read_only {
            return Err(MountError::ReadOnly {
                guest: self.guest.clone(),
            });
        }
        let guest = self.guest.clone();
        let err = io_err(&guest);
        let dirty: Vec<String> = self
            .dirty
            .iter()
            .filter(|p| !skip.contains(*p))
            .cloned()
            .collect();
        if dirty.is_empty() {
            return Ok(CommitInfo {
                version: self.version,
                changed: 0,
                removed: 0,
            });
        }
        let mut changes: Vec<Change> = Vec::new();
        let mut seen = BTreeSet::new();
        for path in &dirty {
            self.collect(store, path, &mut changes, &mut seen)
                .map_err(&err)?;
        }
        let info = store.commit(&self.volume, &changes)?;
        for change in &changes {
            match change {
                Change::Put { path, node } => {
                    self.base.insert(path.clone(), node.clone());
                }
                Change::Remove { path } => {
                    let prefix = format!("{path}/");
                    self.base
                        .retain(|p, _| p != path && !p.starts_with(&prefix));
                }
            }
        }
        for path in dirty {
            self.dirty.remove(&path);
        }
        self.version = info.version;
        Ok(info)
    }

    /// Adds the changes for one dirty path (and, for a directory that is not
    /// in the base, its whole subtree).
    fn collect(
        &self,
        store: &Arc<dyn VolumeStore>,
        path: &str,
        changes: &mut Vec<Change>,
        seen: &mut BTreeSet<String>,
    ) -> io::Result<()> {
        if path.is_empty() || !seen.insert(path.to_owned()) {
            return Ok(());
        }
        let meta = match self.root.symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                changes.push(Change::Remove {
                    path: path.to_owned(),
                });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mtime_ms = u64::try_from(meta.mtime())
            .unwrap_or(0)
            .saturating_mul(1000)
            .saturating_add(u64::try_from(meta.mtime_nsec() / 1_000_000).unwrap_or(0));
        let mode = meta.mode() & 0o7777;
        let node = if meta.is_dir() {
            Node {
                kind: NodeKind::Dir,
                blob: None,
                size: 0,
                mtime_ms,
                mode,
                target: None,
            }
        } else if meta.file_type().is_symlink() {
            let target = self.root.read_link_contents(path)?;
            Node {
                kind: NodeKind::Symlink,
                blob: None,
                size: 0,
                mtime_ms,
                mode,
                target: Some(target.to_string_lossy().into_owned()),
            }
        } else {
            let blob = match self.blob_inodes.get(&(meta.dev(), meta.ino())) {
                Some(b) => *b,
                None => {
                    store
                        .put_blob_file(&self.host_dir.join(path))
                        .map_err(|e| io::Error::other(e.to_string()))?
                        .0
                }
            };
            Node {
                kind: NodeKind::File,
                blob: Some(blob),
                size: meta.len(),
                mtime_ms,
                mode,
                target: None,
            }
        };
        // A directory the base already had keeps its children as they are;
        // a new one (created, or renamed in) brings its whole subtree.
        let walk = node.kind == NodeKind::Dir
            && self.base.get(path).map(|n| n.kind) != Some(NodeKind::Dir);
        if let Some(parent) = parent_of(path)
            && !self.base.contains_key(parent)
        {
            self.collect(store, parent, changes, seen)?;
        }
        changes.push(Change::Put {
            path: path.to_owned(),
            node,
        });
        if walk {
            let mut children: Vec<String> = Vec::new();
            for entry in self.root.read_dir(path)? {
                let name = entry?.file_name();
                children.push(format!("{path}/{}", name.to_string_lossy()));
            }
            children.sort();
            for child in children {
                self.collect(store, &child, changes, seen)?;
            }
        }
        Ok(())
    }

    /// Brings the working tree to the volume's head. The caller has checked
    /// that no files are open and has committed the dirty paths; this
    /// changes only the paths that differ.
    pub fn reload(&mut self, store: &Arc<dyn VolumeStore>) -> Result<u64, MountError> {
        let snapshot: Snapshot = store.snapshot(&self.volume)?;
        let guest = self.guest.clone();
        let err = io_err(&guest);
        let head: BTreeMap<String, Node> = snapshot.nodes.into_iter().collect();
        // Removals first, deepest paths first, so directories are empty when
        // removed.
        let gone: Vec<&String> = self
            .base
            .iter()
            .filter(|(p, n)| head.get(*p).map(|h| h.kind) != Some(n.kind))
            .map(|(p, _)| p)
            .rev()
            .collect();
        for path in gone {
            match self.root.symlink_metadata(path) {
                Ok(m) if m.is_dir() => self.root.remove_dir_all(path),
                Ok(_) => self.root.remove_file(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
            .map_err(&err)?;
        }
        for (path, node) in &head {
            let unchanged = self.base.get(path).is_some_and(|b| {
                b.kind == node.kind && b.blob == node.blob && b.target == node.target
            });
            if unchanged {
                continue;
            }
            if node.kind != NodeKind::Dir {
                // Replace atomically-enough: the guest is blocked in
                // `reload` and cannot look meanwhile.
                match self.root.symlink_metadata(path) {
                    Ok(m) if m.is_dir() => self.root.remove_dir_all(path).map_err(&err)?,
                    Ok(_) => self.root.remove_file(path).map_err(&err)?,
                    Err(_) => {}
                }
            }
            self.place(store, path, node).map_err(&err)?;
        }
        self.inodes = head.len() as u64;
        self.base = head;
        self.version = snapshot.version;
        self.dirty.clear();
        Ok(self.version)
    }
}
