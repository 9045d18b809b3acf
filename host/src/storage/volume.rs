//! The volume storage trait: named, versioned file trees whose file contents
//! are content-addressed blobs. What every backend (embedded, PostgreSQL +
//! S3) offers, with domain errors.
//!
//! Semantics every backend must keep:
//! - Each volume has a head version; every commit makes a new, strictly
//!   greater version, atomically: a reader sees the old head or the new one,
//!   and a crash mid-commit leaves the old head intact.
//! - A commit applies a list of changes to the *current* head, whatever the
//!   committer's base was: concurrent commits of different paths all land,
//!   and for one path the last commit wins.
//! - Blobs named by a commit are durable before the commit is.
//! - A commit costs O(changes), not O(volume).
//! - The inode limit (files + directories + symlinks) is checked by the
//!   commit that would cross it, which then fails whole with `NoSpace`.
//! - A volume may have a byte quota ([`VolumeInfo::max_bytes`]): the sum of
//!   the sizes of the head's files, each file counted whole even when its
//!   contents are shared with another file (deduplication saves disk, not
//!   quota). A commit that would take the sum over it fails whole with
//!   `OverQuota`. As for inodes, a commit that does not grow the sum is
//!   allowed over a (lowered) quota, so a full volume can be cleaned up.
//! - A commit is visible to readers only once it is durable, and one that
//!   failed to become durable is never visible.
//!
//! Paths are relative, `/`-separated, without `.`/`..`/empty components and
//! without a leading `/`; `""` is the root. Use [`normalize_path`].

pub(crate) mod cache;
pub mod fork;
pub mod history;
pub mod pins;
pub(crate) mod plan;

use std::path::{Path, PathBuf};

use super::blobs::{BlobError, BlobId};
use crate::error_kind::ErrorKind;
pub use history::{CommitOptions, DiffKind, History, PathDiff, VersionInfo};

/// Default most inodes per volume, as Modal.
pub const DEFAULT_INODE_LIMIT: u64 = 500_000;

/// What kind of thing a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// One path of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// The contents of a file.
    pub blob: Option<BlobId>,
    pub size: u64,
    pub mtime_ms: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// The target of a symlink.
    pub target: Option<String>,
}

/// A consistent view of a volume's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    /// Every path with its node, sorted by path; directories (empty ones too)
    /// appear explicitly.
    pub nodes: Vec<(String, Node)>,
}

/// One change of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Creates or replaces `path` (missing parent directories are created).
    Put { path: String, node: Node },
    /// Removes `path` and, for a directory, everything under it. Removing a
    /// path that does not exist is not an error.
    Remove { path: String },
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CommitInfo {
    pub version: u64,
    pub changed: u64,
    pub removed: u64,
}

/// A volume in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    pub version: u64,
    pub created_ms: u64,
    pub inodes: u64,
    pub bytes: u64,
    /// The byte quota (see the module docs); `None`: none.
    pub max_bytes: Option<u64>,
    /// How long a replaced version stays readable (see [`history`]).
    pub retention_ms: u64,
}

/// The largest byte quota: what the shared backend's `bigint` holds.
pub const MAX_QUOTA: u64 = i64::MAX as u64;

/// Domain failures of a volume store.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume `{0}` does not exist")]
    NotFound(String),
    #[error("volume `{0}` already exists")]
    AlreadyExists(String),
    #[error("invalid volume name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{path}: no such file or directory in volume `{volume}`")]
    NoSuchPath { volume: String, path: String },
    #[error("volume `{volume}` would exceed its limit of {limit} inodes")]
    NoSpace { volume: String, limit: u64 },
    /// A commit or upload would take the volume's files over its byte
    /// quota. `would_be` is the size the volume would reach; `at_least`:
    /// an upload was stopped once it passed the quota, so the size is a
    /// lower bound.
    #[error(
        "volume `{volume}` would reach {}{would_be} bytes, over its quota of {max_bytes} bytes",
        if *at_least { "at least " } else { "" }
    )]
    OverQuota {
        volume: String,
        max_bytes: u64,
        would_be: u64,
        at_least: bool,
    },
    /// A version that was never committed, or whose retention ran out.
    #[error(
        "volume `{volume}` has no version {version}: {}",
        if *version > *head {
            format!("its head is version {head}")
        } else {
            format!("the oldest version kept is {oldest} (head {head})")
        }
    )]
    VersionNotKept {
        volume: String,
        version: u64,
        oldest: u64,
        head: u64,
    },
    /// A commit that expected another head ([`CommitOptions::expect_head`]).
    #[error("volume `{volume}` moved to version {head} while a commit expected version {expected}")]
    HeadMoved {
        volume: String,
        expected: u64,
        head: u64,
    },
    /// Another commit changed these paths after the versions a commit
    /// expected them at ([`CommitOptions::unchanged_since`]).
    #[error(
        "volume `{volume}`: another commit changed {} since this writer read {}: {}",
        if paths.len() == 1 { "a path" } else { "paths" },
        if paths.len() == 1 { "it" } else { "them" },
        paths.join(", ")
    )]
    Conflict { volume: String, paths: Vec<String> },
    #[error(
        "invalid retention of {retention_ms} ms: at most {} ms",
        history::MAX_RETENTION_MS
    )]
    InvalidRetention { retention_ms: u64 },
    /// A volume other volumes were forked from, which they still read
    /// through.
    #[error(
        "volume `{volume}` has forks that read through it ({}); delete them first",
        forks.join(", ")
    )]
    HasForks { volume: String, forks: Vec<String> },
    #[error(
        "volume `{volume}` is a fork {limit} levels deep: fork a fork at most that deep (copy it instead)"
    )]
    ForkTooDeep { volume: String, limit: usize },
    #[error("invalid byte quota {max_bytes}: at most {MAX_QUOTA} bytes")]
    InvalidQuota { max_bytes: u64 },
    /// The disk holding the store is full (ENOSPC).
    #[error("out of disk space: {0}")]
    DiskFull(String),
    #[error(transparent)]
    Blob(BlobError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage i/o: {0}")]
    Io(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl VolumeError {
    /// The kind of failure, which every surface maps with one table (see
    /// [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::NotFound(_)
            | VolumeError::NoSuchPath { .. }
            | VolumeError::VersionNotKept { .. } => ErrorKind::NotFound,
            VolumeError::HeadMoved { .. } | VolumeError::Conflict { .. } => {
                ErrorKind::PreconditionFailed
            }
            VolumeError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            VolumeError::InvalidName { .. }
            | VolumeError::InvalidPath { .. }
            | VolumeError::InvalidQuota { .. }
            | VolumeError::InvalidRetention { .. } => ErrorKind::InvalidArgument,
            VolumeError::ForkTooDeep { .. } => ErrorKind::TooLarge,
            VolumeError::HasForks { .. } => ErrorKind::Busy,
            VolumeError::NoSpace { .. }
            | VolumeError::OverQuota { .. }
            | VolumeError::DiskFull(_) => ErrorKind::NoSpace,
            VolumeError::Unavailable(_) => ErrorKind::Unavailable,
            VolumeError::Blob(_) | VolumeError::Corrupt(_) | VolumeError::Io(_) => ErrorKind::Io,
        }
    }
}

impl From<BlobError> for VolumeError {
    fn from(e: BlobError) -> Self {
        if e.is_disk_full() {
            VolumeError::DiskFull(e.to_string())
        } else {
            VolumeError::Blob(e)
        }
    }
}

/// How a blob garbage collection runs.
pub struct GcOptions<'a> {
    /// Blobs to keep although no volume's head names them, besides those
    /// the store's live mounts pin (see [`pins`], which every backend's
    /// collection asks itself). Asked only about blobs that would
    /// otherwise go.
    pub pinned: &'a dyn Fn(&BlobId) -> bool,
    /// How old an unreferenced blob must be to go; `None` uses the store's
    /// own grace period. The grace period protects blobs written for a
    /// commit that has not landed yet, so lower it only while nothing
    /// writes to the store.
    pub min_age: Option<std::time::Duration>,
}

impl std::fmt::Debug for GcOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcOptions")
            .field("min_age", &self.min_age)
            .finish_non_exhaustive()
    }
}

/// What a blob garbage collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct GcReport {
    /// Unreferenced blobs removed.
    pub removed_blobs: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Unreferenced blobs kept because they are younger than the minimum
    /// age.
    pub kept_young: u64,
    /// Unreferenced blobs kept because a live mount may still need them.
    pub kept_pinned: u64,
    /// The minimum age that applied, in seconds.
    pub min_age_secs: u64,
    /// Unfinished uploads removed (temporary files of an upload killed
    /// midway), and their bytes; as old as the minimum age at least.
    #[serde(default)]
    pub removed_uploads: u64,
    #[serde(default)]
    pub removed_upload_bytes: u64,
}

/// A volume backend. Methods block; async callers run them on a blocking
/// thread.
pub trait VolumeStore: Send + Sync + std::fmt::Debug {
    /// Where the data lives (e.g. `embedded:/path/to/data`): two handles on
    /// the same data give the same string, handles on different data
    /// different ones (for messages and logs).
    fn location(&self) -> String;
    /// Creates `name` without a byte quota; false if it existed already.
    fn create(&self, name: &str) -> Result<bool, VolumeError> {
        self.create_with(name, None)
    }
    /// Creates `name` with byte quota `max_bytes` (at most [`MAX_QUOTA`]);
    /// false if it existed already (its quota is then left as it is).
    fn create_with(&self, name: &str, max_bytes: Option<u64>) -> Result<bool, VolumeError>;
    /// Sets (or with `None` removes) the byte quota of `name`. A quota
    /// below what the volume holds is allowed: commits that grow it fail
    /// until it is under again. Returns the volume as it is now.
    fn set_max_bytes(&self, name: &str, max_bytes: Option<u64>) -> Result<VolumeInfo, VolumeError>;
    /// Sets how long `name`'s replaced versions stay readable (0: only
    /// the head; see [`history`]). Returns the volume as it is now.
    fn set_retention(&self, name: &str, retention_ms: u64) -> Result<VolumeInfo, VolumeError>;
    /// Deletes `name`; `HasForks` while a fork reads through it.
    fn delete(&self, name: &str) -> Result<(), VolumeError>;
    /// Makes `dst` a new volume whose version 1 is `src` at `version`
    /// (`None`: its head; it must be kept), with `src`'s quota and
    /// retention. It copies no blobs and no nodes (see [`fork`]): its cost
    /// does not grow with the volume. Later commits to either are
    /// independent. Returns `dst` as it is now.
    fn fork(&self, src: &str, version: Option<u64>, dst: &str) -> Result<VolumeInfo, VolumeError>;
    fn rename(&self, old: &str, new: &str) -> Result<(), VolumeError>;
    fn list(&self) -> Result<Vec<VolumeInfo>, VolumeError>;
    fn info(&self, name: &str) -> Result<VolumeInfo, VolumeError>;

    /// The head, consistent even while commits run.
    fn snapshot(&self, name: &str) -> Result<Snapshot, VolumeError>;
    /// One path of the head.
    fn node(&self, name: &str, path: &str) -> Result<Option<Node>, VolumeError>;
    /// The entries under directory `path` of the head (all descendants when
    /// `recursive`), sorted by path.
    fn list_dir(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<(String, Node)>, VolumeError>;
    /// Applies `changes` to the head as one new version, durably.
    fn commit(&self, name: &str, changes: &[Change]) -> Result<CommitInfo, VolumeError> {
        self.commit_with(name, changes, &CommitOptions::default())
    }
    /// [`commit`](Self::commit), if the head meets `options`' conditions;
    /// otherwise nothing applies.
    fn commit_with(
        &self,
        name: &str,
        changes: &[Change],
        options: &CommitOptions,
    ) -> Result<CommitInfo, VolumeError>;

    /// The kept versions of `name`, newest first, at most `limit` of them.
    fn history(&self, name: &str, limit: usize) -> Result<History, VolumeError>;
    /// Version `version` of `name` whole, if it is kept.
    fn snapshot_at(&self, name: &str, version: u64) -> Result<Snapshot, VolumeError> {
        let nodes = self.list_dir_at(name, "", true, version)?;
        Ok(Snapshot { version, nodes })
    }
    /// One path of version `version`.
    fn node_at(&self, name: &str, path: &str, version: u64) -> Result<Option<Node>, VolumeError>;
    /// [`list_dir`](Self::list_dir) of version `version`.
    fn list_dir_at(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
        version: u64,
    ) -> Result<Vec<(String, Node)>, VolumeError>;
    /// The paths that differ between versions `from` and `to` (`None`: the
    /// head), both kept; `from` may be the newer one.
    fn diff(&self, name: &str, from: u64, to: Option<u64>) -> Result<Vec<PathDiff>, VolumeError>;
    fn inode_limit(&self) -> u64;

    /// Stores bytes as a blob, durably.
    fn put_blob(&self, bytes: &[u8]) -> Result<BlobId, VolumeError>;
    /// Stores a local file as a blob, durably; returns its id and size.
    fn put_blob_file(&self, path: &Path) -> Result<(BlobId, u64), VolumeError>;
    /// Streams `reader` (stdin, a file read with progress) into a blob,
    /// durably; returns its id and size. The default spools to a temporary
    /// file and calls [`put_blob_file`](Self::put_blob_file); backends that
    /// can stream directly override it.
    fn put_blob_reader(
        &self,
        reader: &mut dyn std::io::Read,
    ) -> Result<(BlobId, u64), VolumeError> {
        let io = |e: std::io::Error| VolumeError::Io(format!("spooling a blob: {e}"));
        let mut tmp = tempfile::NamedTempFile::new().map_err(io)?;
        std::io::copy(reader, &mut tmp).map_err(io)?;
        self.put_blob_file(tmp.path())
    }
    /// A local, read-only file holding the blob (fetched into a cache for
    /// remote backends), for hard-linking into mounts.
    fn local_blob(&self, id: &BlobId) -> Result<PathBuf, VolumeError>;
    /// Up to `len` bytes of a blob from `offset`, hash-checked.
    fn read_blob(&self, id: &BlobId, offset: u64, len: u64) -> Result<Vec<u8>, VolumeError>;

    /// Removes blobs no volume references, except young and pinned ones
    /// (see [`GcOptions`] and [`pins`]), and what a crash left of deleted
    /// volumes.
    fn gc(&self, options: &GcOptions<'_>) -> Result<GcReport, VolumeError>;

    /// Whether the store answers now: a cheap round trip where it is
    /// remote; always for a store this process holds.
    fn ping(&self) -> Result<(), VolumeError> {
        Ok(())
    }

    /// Whether each part of the store can serve now, by name (`metadata`,
    /// `blobs`, `embedded store`): what `/v1/ready` reports.
    fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        vec![("store", self.ping().map_err(|e| e.to_string()))]
    }

    /// This process's live mounts of the store's volumes.
    fn mounts(&self) -> &pins::Mounts;
    /// Registers a live mount of `volume` before its snapshot is read (see
    /// [`pins`]); the registration ends when it drops. The shared backend
    /// records it for the other hosts too.
    fn register_mount(&self, volume: &str) -> Result<pins::Registration, VolumeError> {
        Ok(self.mounts().register(volume))
    }
    /// [`register_mount`](Self::register_mount) for a mount of `version`
    /// (`None`: the head). The shared backend records the version, so the
    /// other hosts' collections keep the blobs commits after it dropped
    /// even once its history is pruned; a store one process owns pins the
    /// mount's blobs exactly, whatever the version.
    fn register_mount_at(
        &self,
        volume: &str,
        version: Option<u64>,
    ) -> Result<pins::Registration, VolumeError> {
        let _ = version;
        self.register_mount(volume)
    }
    /// Live mounts of `volume` on other hosts: 0 for a store one process
    /// owns.
    fn mounts_elsewhere(&self, volume: &str) -> Result<usize, VolumeError> {
        let _ = volume;
        Ok(0)
    }
}

/// What listing directory `path` of `volume` needs of the node there,
/// given its kind (`None`: nothing is there): that it is a directory.
pub(crate) fn check_listable(
    volume: &str,
    path: &str,
    kind: Option<NodeKind>,
) -> Result<(), VolumeError> {
    match kind {
        None => Err(VolumeError::NoSuchPath {
            volume: volume.to_owned(),
            path: path.to_owned(),
        }),
        Some(NodeKind::Dir) => Ok(()),
        Some(_) => Err(VolumeError::InvalidPath {
            path: path.to_owned(),
            reason: "not a directory".into(),
        }),
    }
}

/// Refuses a byte quota the stores cannot hold.
pub fn check_max_bytes(max_bytes: Option<u64>) -> Result<(), VolumeError> {
    match max_bytes {
        Some(n) if n > MAX_QUOTA => Err(VolumeError::InvalidQuota { max_bytes: n }),
        _ => Ok(()),
    }
}

/// The quota rule of a commit, as every backend applies it: `OverQuota`
/// when the planned bytes pass the quota and grow the volume.
pub fn check_quota(
    volume: &str,
    max_bytes: Option<u64>,
    before: u64,
    after: u64,
) -> Result<(), VolumeError> {
    match max_bytes {
        Some(max) if after > max && after > before => Err(VolumeError::OverQuota {
            volume: volume.to_owned(),
            max_bytes: max,
            would_be: after,
            at_least: false,
        }),
        _ => Ok(()),
    }
}

/// Checks and normalises a volume path: strips leading and trailing `/`,
/// drops `.` components, and refuses `..`, NUL, empty components in the
/// middle and paths over 4096 bytes.
pub fn normalize_path(path: &str) -> Result<String, VolumeError> {
    let bad = |reason: &str| VolumeError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if path.len() > 4096 {
        return Err(bad("longer than 4096 bytes"));
    }
    if path.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let mut parts = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => continue,
            ".." => return Err(bad("`..` is not allowed")),
            c if c.len() > 255 => return Err(bad("a component is longer than 255 bytes")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// The ancestors of a normalised `path`, outermost first: `a/b/c` gives
/// `a`, `a/b`.
pub fn ancestors(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.match_indices('/').filter_map(|(i, _)| path.get(..i))
}

/// Checks a volume name: 1 to 255 bytes, no `/`, no NUL, not `.` or `..`.
pub fn check_volume_name(name: &str) -> Result<(), VolumeError> {
    let bad = |reason: &str| VolumeError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 255 {
        return Err(bad("longer than 255 bytes"));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(bad("contains `/` or NUL"));
    }
    if name == "." || name == ".." {
        return Err(bad("`.` and `..` are reserved"));
    }
    Ok(())
}

/// Checks the name of a volume about to be made (created or forked): a
/// valid name ([`check_volume_name`]) that does not end in `@` and digits,
/// which every surface reads as `NAME@VERSION`.
pub fn check_new_volume_name(name: &str) -> Result<(), VolumeError> {
    check_volume_name(name)?;
    if let Some((_, v)) = name.rsplit_once('@')
        && !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(VolumeError::InvalidName {
            name: name.to_owned(),
            reason: "a name ending in `@` and digits reads as a version (NAME@VERSION)".into(),
        });
    }
    Ok(())
}

/// A commit's changes with their paths normalised, in order, each checked
/// as every backend must: the root can be neither replaced nor removed, and
/// a put node has the shape of its kind ([`check_node_shape`]). Whether a
/// file's blob exists is the backend's to check.
pub fn normalize_changes(changes: &[Change]) -> Result<Vec<(String, Option<&Node>)>, VolumeError> {
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        match c {
            Change::Put { path, node } => {
                let p = normalize_path(path)?;
                if p.is_empty() {
                    return Err(VolumeError::InvalidPath {
                        path: path.clone(),
                        reason: "the root cannot be replaced".into(),
                    });
                }
                check_node_shape(&p, node)?;
                out.push((p, Some(node)));
            }
            Change::Remove { path } => {
                let p = normalize_path(path)?;
                if p.is_empty() {
                    return Err(VolumeError::InvalidPath {
                        path: path.clone(),
                        reason: "the root cannot be removed (remove its entries)".into(),
                    });
                }
                out.push((p, None));
            }
        }
    }
    Ok(out)
}

/// Checks that a node a caller wants to commit at `path` has the shape of
/// its kind: a non-empty file has a blob, a directory has neither blob nor
/// target, a symlink has a target of at most 4096 bytes without NUL.
pub fn check_node_shape(path: &str, node: &Node) -> Result<(), VolumeError> {
    let bad = |reason: &str| VolumeError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    match node.kind {
        NodeKind::File if node.blob.is_none() && node.size != 0 => {
            Err(bad("a non-empty file needs a blob"))
        }
        NodeKind::File => Ok(()),
        NodeKind::Dir if node.blob.is_some() || node.target.is_some() => {
            Err(bad("a directory has no blob or target"))
        }
        NodeKind::Dir => Ok(()),
        NodeKind::Symlink => match &node.target {
            None => Err(bad("a symlink needs a target")),
            Some(t) if t.len() > 4096 || t.contains('\0') => Err(bad(
                "a symlink target must be at most 4096 bytes, without NUL",
            )),
            Some(_) => Ok(()),
        },
    }
}

/// Runs a backend's commit of `changes`, counting a commit that published
/// a version in the process's metrics: its latency and the bytes of the
/// files it created or replaced.
pub(crate) fn counted_commit(
    changes: &[Change],
    commit: impl FnOnce() -> Result<CommitInfo, VolumeError>,
) -> Result<CommitInfo, VolumeError> {
    let start = std::time::Instant::now();
    let done = commit()?;
    let m = crate::metrics::global();
    m.volume_commits.inc();
    m.volume_commit_duration
        .observe(start.elapsed().as_secs_f64());
    let bytes: u64 = changes
        .iter()
        .filter_map(|c| match c {
            Change::Put { node, .. } if node.kind == NodeKind::File => Some(node.size),
            _ => None,
        })
        .sum();
    m.volume_commit_bytes.inc_by(bytes);
    Ok(done)
}
