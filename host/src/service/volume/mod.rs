//! Volume operations of the service API: what `vessel volume ...` does, as
//! methods on [`Service`] with serialisable results, plus [`VolumeBatch`],
//! the library's `batch_upload()`.
//!
//! Overwrite rules (Modal's): without `force`, a put never replaces an
//! existing file and a get never replaces an existing local file; a
//! directory is never replaced by a file, force or not. Every check runs
//! before anything changes, so a refused operation leaves the volume (and
//! the local disk) as it was. File contents stream in both directions: no
//! operation holds a whole file in memory.

use crate::error_kind::ErrorKind;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Service;
use super::quota::UploadQuota;
use crate::storage::blobs::BlobId;
use crate::storage::embedded::backup::BackupError;
use crate::storage::volume::history::MAX_RETENTION_MS;
use crate::storage::volume::pins::{IfMounted, LiveError};
use crate::storage::volume::{
    Change, CommitInfo, GcOptions, GcReport, Node, NodeKind, VolumeError, VolumeInfo, VolumeStore,
    ancestors, normalize_path,
};

/// Chunk size of streamed reads out of a volume.
const READ_CHUNK: u64 = 8 << 20;

/// Mode of files put from bytes or stdin, and of directories put without a
/// local directory to copy it from.
const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;

/// Called with the number of bytes moved since the last call.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Failures of the volume operations.
#[derive(Debug, thiserror::Error)]
pub enum VolumeOpError {
    #[error(transparent)]
    Store(#[from] VolumeError),
    #[error(transparent)]
    Mounted(#[from] LiveError),
    #[error("this service has no volume store")]
    NoBackend,
    #[error("{path}: already exists in volume `{volume}` (use --force / force=true to overwrite)")]
    FileExists { volume: String, path: String },
    #[error("{path}: is a directory in volume `{volume}`; a directory is never replaced by a file")]
    IsADirectory { volume: String, path: String },
    #[error("{path}: is a directory in volume `{volume}` (use -r / recursive to {action} it)")]
    NeedsRecursive {
        volume: String,
        path: String,
        action: &'static str,
    },
    #[error("{path}: not a directory in volume `{volume}`")]
    NotADirectory { volume: String, path: String },
    #[error("{}: no such local file or directory", path.display())]
    LocalMissing { path: PathBuf },
    #[error("{}: already exists locally (use --force to overwrite)", path.display())]
    LocalExists { path: PathBuf },
    #[error("{}: a local directory is in the way of a file", path.display())]
    LocalIsADirectory { path: PathBuf },
    #[error("{}: {source}", path.display())]
    LocalIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: given twice in one upload batch")]
    Duplicate { path: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Backup(#[from] BackupError),
}

impl VolumeOpError {
    /// The kind of failure, which every surface maps with one table (see
    /// [`ErrorKind`]). A file or directory in the way is `already-exists`;
    /// a mounted volume is `busy`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeOpError::Store(e) => e.kind(),
            VolumeOpError::Mounted(_) => ErrorKind::Busy,
            VolumeOpError::NoBackend => ErrorKind::Unavailable,
            VolumeOpError::FileExists { .. }
            | VolumeOpError::IsADirectory { .. }
            | VolumeOpError::NotADirectory { .. }
            | VolumeOpError::LocalExists { .. }
            | VolumeOpError::LocalIsADirectory { .. } => ErrorKind::AlreadyExists,
            VolumeOpError::NeedsRecursive { .. }
            | VolumeOpError::LocalMissing { .. }
            | VolumeOpError::Duplicate { .. }
            | VolumeOpError::Invalid(_) => ErrorKind::InvalidArgument,
            VolumeOpError::LocalIo { .. } => ErrorKind::Io,
            VolumeOpError::Backup(e) => e.kind(),
        }
    }

    /// Whether the request itself was malformed (a bad name or path, a
    /// missing local file, a missing flag) rather than failing against the
    /// state of the store.
    pub fn is_usage(&self) -> bool {
        self.kind().is_usage()
    }
}

fn local_io(path: &Path) -> impl FnOnce(io::Error) -> VolumeOpError + '_ {
    move |source| VolumeOpError::LocalIo {
        path: path.to_owned(),
        source,
    }
}

/// A volume in [`Service::volume_list`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct VolumeSummary {
    pub name: String,
    pub version: u64,
    pub created_ms: u64,
    /// Files, directories and symlinks.
    pub inodes: u64,
    /// Bytes of all files.
    pub bytes: u64,
    /// The byte quota: most `bytes` a commit or upload may take the volume
    /// to; `null`: none.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// How long a replaced version stays readable, in milliseconds (0:
    /// only the head is kept).
    #[serde(default)]
    pub retention_ms: u64,
}

impl From<VolumeInfo> for VolumeSummary {
    fn from(i: VolumeInfo) -> Self {
        VolumeSummary {
            name: i.name,
            version: i.version,
            created_ms: i.created_ms,
            inodes: i.inodes,
            bytes: i.bytes,
            max_bytes: i.max_bytes,
            retention_ms: i.retention_ms,
        }
    }
}

/// What kind of entry, as the CLI's JSON spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

impl From<NodeKind> for EntryKind {
    fn from(k: NodeKind) -> Self {
        match k {
            NodeKind::File => EntryKind::File,
            NodeKind::Dir => EntryKind::Dir,
            NodeKind::Symlink => EntryKind::Symlink,
        }
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct EntryInfo {
    /// Relative to the volume's root.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    pub size: u64,
    pub mtime_ms: u64,
    pub mode: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn entry(path: String, n: &Node) -> EntryInfo {
    EntryInfo {
        path,
        kind: n.kind.into(),
        size: n.size,
        mtime_ms: n.mtime_ms,
        mode: n.mode,
        target: n.target.clone(),
    }
}

/// What a get wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct GetReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Symlinks in the volume, not recreated locally (a link from a volume
    /// could point anywhere on this machine).
    pub skipped_symlinks: Vec<String>,
}

/// The last component of a volume path (`""` for the root).
fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_owned(),
        (_, true) => dir.to_owned(),
        _ => format!("{dir}/{name}"),
    }
}

fn now_ms() -> u64 {
    crate::storage::clock::Clock::now_ms(&crate::storage::clock::SystemClock)
}

#[cfg(unix)]
fn local_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn local_mode(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() {
        DEFAULT_DIR_MODE
    } else {
        DEFAULT_FILE_MODE
    }
}

/// A reader that reports how many bytes went through it.
struct Counting<'a, R> {
    inner: R,
    progress: Option<&'a Progress>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = self.progress {
            p(n as u64);
        }
        Ok(n)
    }
}

impl Service {
    fn volume_store(&self) -> Result<&Arc<dyn VolumeStore>, VolumeOpError> {
        self.stores.volumes.as_ref().ok_or(VolumeOpError::NoBackend)
    }

    /// Creates volume `name` without a byte quota; an error if it exists.
    pub fn volume_create(&self, name: &str) -> Result<(), VolumeOpError> {
        self.volume_create_with(name, None, None)
    }

    /// Creates volume `name` with byte quota `max_bytes` (see
    /// [`VolumeSummary::max_bytes`]) and a retention (`None`: the default,
    /// seven days); an error if it exists.
    pub fn volume_create_with(
        &self,
        name: &str,
        max_bytes: Option<u64>,
        retention_ms: Option<u64>,
    ) -> Result<(), VolumeOpError> {
        check_name(name)?;
        let store = self.volume_store()?;
        if let Some(r) = retention_ms.filter(|r| *r > MAX_RETENTION_MS) {
            return Err(VolumeError::InvalidRetention { retention_ms: r }.into());
        }
        if !store.create_with(name, max_bytes)? {
            return Err(VolumeError::AlreadyExists(name.to_owned()).into());
        }
        // A crash between the two leaves the default retention, which
        // keeps more, never less.
        if let Some(r) = retention_ms {
            store.set_retention(name, r)?;
        }
        Ok(())
    }

    /// Sets the byte quota of volume `name` (`None`: removes it). A quota
    /// below what the volume holds is allowed; until the volume is under
    /// it again, only commits that do not grow it land.
    pub fn volume_set_quota(
        &self,
        name: &str,
        max_bytes: Option<u64>,
    ) -> Result<VolumeSummary, VolumeOpError> {
        Ok(self.volume_store()?.set_max_bytes(name, max_bytes)?.into())
    }

    /// Deletes volume `name` and everything in it. (Its blobs become garbage
    /// for [`Service::volume_gc`].)
    ///
    /// Containers kept warm with no call running let go of their mounts
    /// first. A volume that running containers of this process have
    /// mounted is refused, unless `force`: then those containers keep
    /// reading the snapshot they mounted (its blobs stay until they end),
    /// but their commits and reloads fail, so a volume created later under
    /// the same name never receives their writes.
    pub fn volume_delete(&self, name: &str, force: bool) -> Result<(), VolumeOpError> {
        let store = self.volume_store()?;
        let if_mounted = if force {
            IfMounted::Delete
        } else {
            IfMounted::RefuseUnlessForced
        };
        store.mounts().release_idle(name);
        let elsewhere = store.mounts_elsewhere(name)?;
        store.mounts().guard(name, elsewhere, if_mounted, || {
            store.delete(name).map_err(VolumeOpError::from)
        })
    }

    /// Renames volume `old` to `new`. A mounted volume is refused: its
    /// containers commit by name.
    pub fn volume_rename(&self, old: &str, new: &str) -> Result<(), VolumeOpError> {
        let store = self.volume_store()?;
        store.mounts().release_idle(old);
        let elsewhere = store.mounts_elsewhere(old)?;
        store.mounts().guard(old, elsewhere, IfMounted::Refuse, || {
            store.rename(old, new).map_err(VolumeOpError::from)
        })
    }

    /// Every volume, sorted by name.
    pub fn volume_list(&self) -> Result<Vec<VolumeSummary>, VolumeOpError> {
        let mut out: Vec<VolumeSummary> = self
            .volume_store()?
            .list()?
            .into_iter()
            .map(VolumeSummary::from)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn volume_info(&self, name: &str) -> Result<VolumeSummary, VolumeOpError> {
        Ok(self.volume_store()?.info(name)?.into())
    }

    /// Lists `path` of volume `name`: a directory's entries (all descendants
    /// when `recursive`), or the file itself.
    pub fn volume_ls(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<EntryInfo>, VolumeOpError> {
        let store = self.volume_store()?;
        let path = normalize_path(path)?;
        let at = VolumeRef::parse(name)?;
        match at.node(store.as_ref(), &path)? {
            None => Err(no_such(name, &path)),
            Some(n) if n.kind != NodeKind::Dir => Ok(vec![entry(path, &n)]),
            Some(_) => Ok(at
                .list_dir(store.as_ref(), &path, recursive)?
                .into_iter()
                .map(|(p, n)| entry(p, &n))
                .collect()),
        }
    }

    /// A page of [`Service::volume_ls`]: the entries after path `after`
    /// (a page's cursor, decoded), at most `limit` of them, and the cursor
    /// that continues when more remain. Paths are in byte order, so a path
    /// present throughout is listed exactly once across pages.
    pub fn volume_ls_page(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<(Vec<EntryInfo>, Option<String>), VolumeOpError> {
        let mut all = self.volume_ls(name, path, recursive)?;
        if let Some(a) = after {
            let start = all.partition_point(|e| e.path.as_str() <= a);
            all.drain(..start);
        }
        let next = match limit {
            Some(l) if all.len() > l => {
                all.truncate(l);
                all.last()
                    .map(|e| crate::service::dict::cursor_after(&e.path))
            }
            _ => None,
        };
        Ok((all, next))
    }

    /// The entry at `path` of volume `name`, if any (the root is a
    /// directory).
    pub fn volume_stat(&self, name: &str, path: &str) -> Result<Option<EntryInfo>, VolumeOpError> {
        let path = normalize_path(path)?;
        let store = self.volume_store()?;
        Ok(VolumeRef::parse(name)?
            .node(store.as_ref(), &path)?
            .map(|n| entry(path, &n)))
    }

    /// Removes blobs no volume references any more and no live mount of
    /// this process may still link, if they are older than `min_age`
    /// (default: the store's grace period, which protects the blobs of
    /// commits in flight; lower it only while nothing writes).
    pub fn volume_gc(
        &self,
        min_age: Option<std::time::Duration>,
    ) -> Result<GcReport, VolumeOpError> {
        Ok(self.volume_store()?.gc(&GcOptions {
            pinned: &|_| false,
            min_age,
        })?)
    }

    /// Streams file `path` of volume `name` into `out`, hash-checked.
    /// Returns the bytes written.
    pub fn volume_read(
        &self,
        name: &str,
        path: &str,
        out: &mut dyn Write,
        progress: Option<&Progress>,
    ) -> Result<u64, VolumeOpError> {
        let store = self.volume_store()?;
        let path = normalize_path(path)?;
        let node = VolumeRef::parse(name)?
            .node(store.as_ref(), &path)?
            .ok_or_else(|| no_such(name, &path))?;
        match node.kind {
            NodeKind::File => {}
            NodeKind::Dir => {
                return Err(VolumeOpError::Invalid(format!(
                    "{path}: is a directory in volume `{name}`; only a file can be read"
                )));
            }
            NodeKind::Symlink => {
                return Err(VolumeOpError::Invalid(format!(
                    "{path}: is a symlink in volume `{name}`; only a file can be read"
                )));
            }
        }
        let Some(blob) = node.blob else {
            return Ok(0);
        };
        let mut offset = 0;
        while offset < node.size {
            let chunk = store.read_blob(&blob, offset, READ_CHUNK)?;
            if chunk.is_empty() {
                return Err(VolumeError::Corrupt(format!(
                    "blob {blob} of {path} ends at {offset} bytes, its node says {}",
                    node.size
                ))
                .into());
            }
            out.write_all(&chunk).map_err(local_io(Path::new("-")))?;
            offset += chunk.len() as u64;
            if let Some(p) = progress {
                p(chunk.len() as u64);
            }
        }
        out.flush().map_err(local_io(Path::new("-")))?;
        Ok(offset)
    }

    /// The bytes a get of `remote` would move (for a progress bar's length).
    pub fn volume_size(&self, name: &str, remote: &str) -> Result<u64, VolumeOpError> {
        let store = self.volume_store()?;
        let path = normalize_path(remote)?;
        let at = VolumeRef::parse(name)?;
        match at.node(store.as_ref(), &path)? {
            None => Err(no_such(name, &path)),
            Some(n) if n.kind == NodeKind::Dir => Ok(at
                .list_dir(store.as_ref(), &path, true)?
                .iter()
                .filter(|(_, n)| n.kind == NodeKind::File)
                .map(|(_, n)| n.size)
                .sum()),
            Some(n) => Ok(n.size),
        }
    }

    /// Downloads `remote` (a file or a directory) to `local`, like `cp -r`:
    /// onto `local` itself, or into it when it is an existing directory.
    /// Without `force` no existing local file is replaced; every target is
    /// checked before anything is written, and each file is written to a
    /// temporary file, hash-checked and renamed into place.
    pub fn volume_get(
        &self,
        name: &str,
        remote: &str,
        local: &Path,
        force: bool,
        progress: Option<&Progress>,
    ) -> Result<GetReport, VolumeOpError> {
        let store = self.volume_store()?;
        let path = normalize_path(remote)?;
        let at = VolumeRef::parse(name)?;
        let node = at
            .node(store.as_ref(), &path)?
            .ok_or_else(|| no_such(name, &path))?;
        let into_dir = local.is_dir();
        let root = if into_dir && !path.is_empty() {
            local.join(basename(&path))
        } else {
            local.to_owned()
        };
        // Plan every target (relative path, node), then check them all.
        let mut plan: Vec<(PathBuf, Node)> = Vec::new();
        let mut report = GetReport::default();
        match node.kind {
            NodeKind::File => plan.push((root.clone(), node)),
            NodeKind::Symlink => report.skipped_symlinks.push(path.clone()),
            NodeKind::Dir => {
                plan.push((root.clone(), node));
                let prefix_len = if path.is_empty() { 0 } else { path.len() + 1 };
                for (p, n) in at.list_dir(store.as_ref(), &path, true)? {
                    let rel = p.get(prefix_len..).unwrap_or_default();
                    if n.kind == NodeKind::Symlink {
                        report.skipped_symlinks.push(p);
                        continue;
                    }
                    plan.push((root.join(rel), n));
                }
            }
        }
        for (target, n) in &plan {
            let existing = std::fs::symlink_metadata(target);
            match (n.kind, existing) {
                (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => {}
                (_, Err(e)) => return Err(local_io(target)(e)),
                (NodeKind::Dir, Ok(m)) if m.is_dir() => {}
                (NodeKind::Dir, Ok(_)) => {
                    return Err(VolumeOpError::LocalExists {
                        path: target.clone(),
                    });
                }
                (_, Ok(m)) if m.is_dir() => {
                    return Err(VolumeOpError::LocalIsADirectory {
                        path: target.clone(),
                    });
                }
                (_, Ok(_)) if !force => {
                    return Err(VolumeOpError::LocalExists {
                        path: target.clone(),
                    });
                }
                (_, Ok(_)) => {}
            }
        }
        for (target, n) in &plan {
            if n.kind == NodeKind::Dir {
                std::fs::create_dir_all(target).map_err(local_io(target))?;
                report.dirs += 1;
            } else {
                report.bytes += write_local(store.as_ref(), target, n, progress)?;
                report.files += 1;
            }
        }
        Ok(report)
    }

    /// Copies within volume `name`: one source onto `dst` (or into it when
    /// it is a directory), or several sources into directory `dst`. File
    /// contents are shared, not copied. One commit.
    pub fn volume_cp(
        &self,
        name: &str,
        srcs: &[&str],
        dst: &str,
        recursive: bool,
    ) -> Result<CommitInfo, VolumeOpError> {
        writable(name)?;
        let store = self.volume_store()?;
        if srcs.is_empty() {
            return Err(VolumeOpError::Invalid(
                "cp needs at least one source".into(),
            ));
        }
        let dst = normalize_path(dst)?;
        let dst_node = store.node(name, &dst)?;
        let dst_is_dir = dst_node.as_ref().is_some_and(|n| n.kind == NodeKind::Dir);
        if srcs.len() > 1 && !dst_is_dir {
            return Err(match dst_node {
                None => no_such(name, &dst),
                Some(_) => VolumeOpError::NotADirectory {
                    volume: name.to_owned(),
                    path: dst,
                },
            });
        }
        let now = now_ms();
        let mut changes = Vec::new();
        for src in srcs {
            let src = normalize_path(src)?;
            if src.is_empty() {
                return Err(VolumeOpError::Invalid(
                    "cannot copy the root of a volume; copy its entries".into(),
                ));
            }
            let node = store.node(name, &src)?.ok_or_else(|| no_such(name, &src))?;
            let target = if dst_is_dir {
                join(&dst, basename(&src))
            } else {
                dst.clone()
            };
            if target == src {
                return Err(VolumeOpError::Invalid(format!(
                    "{src}: source and destination are the same"
                )));
            }
            let target_node = store.node(name, &target)?;
            if node.kind != NodeKind::Dir {
                if target_node.is_some_and(|n| n.kind == NodeKind::Dir) {
                    return Err(VolumeOpError::IsADirectory {
                        volume: name.to_owned(),
                        path: target,
                    });
                }
                changes.push(Change::Put {
                    path: target,
                    node: Node {
                        mtime_ms: now,
                        ..node
                    },
                });
                continue;
            }
            if !recursive {
                return Err(VolumeOpError::NeedsRecursive {
                    volume: name.to_owned(),
                    path: src,
                    action: "copy",
                });
            }
            if target.starts_with(&format!("{src}/")) {
                return Err(VolumeOpError::Invalid(format!(
                    "cannot copy directory {src} into itself ({target})"
                )));
            }
            changes.push(Change::Put {
                path: target.clone(),
                node: Node {
                    mtime_ms: now,
                    ..node
                },
            });
            for (p, n) in store.list_dir(name, &src, true)? {
                let rel = p.get(src.len() + 1..).unwrap_or_default();
                changes.push(Change::Put {
                    path: join(&target, rel),
                    node: Node { mtime_ms: now, ..n },
                });
            }
        }
        Ok(store.commit(name, &changes)?)
    }

    /// Removes `path` from volume `name` (a directory only when
    /// `recursive`; the root's entries with `recursive`). One commit.
    pub fn volume_rm(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<CommitInfo, VolumeOpError> {
        writable(name)?;
        let store = self.volume_store()?;
        let path = normalize_path(path)?;
        let node = store
            .node(name, &path)?
            .ok_or_else(|| no_such(name, &path))?;
        if node.kind == NodeKind::Dir && !recursive {
            return Err(VolumeOpError::NeedsRecursive {
                volume: name.to_owned(),
                path,
                action: "remove",
            });
        }
        let changes: Vec<Change> = if path.is_empty() {
            store
                .list_dir(name, "", false)?
                .into_iter()
                .map(|(p, _)| Change::Remove { path: p })
                .collect()
        } else {
            vec![Change::Remove { path }]
        };
        Ok(store.commit(name, &changes)?)
    }
}

fn no_such(volume: &str, path: &str) -> VolumeOpError {
    VolumeError::NoSuchPath {
        volume: volume.to_owned(),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.to_owned()
        },
    }
    .into()
}

/// Writes one file of a get: streamed from the blob into a temporary file
/// beside `target`, hash-checked, then renamed over `target`, so a failure
/// leaves no partial file and an existing one untouched.
fn write_local(
    store: &dyn VolumeStore,
    target: &Path,
    node: &Node,
    progress: Option<&Progress>,
) -> Result<u64, VolumeOpError> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(local_io(&dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(local_io(&dir))?;
    let mut written = 0;
    if let Some(blob) = node.blob {
        let src = store.local_blob(&blob)?;
        let mut f = File::open(&src).map_err(local_io(&src))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(local_io(&src))?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            hasher.update(chunk);
            tmp.write_all(chunk).map_err(local_io(target))?;
            written += n as u64;
            if let Some(p) = progress {
                p(n as u64);
            }
        }
        let actual = BlobId(*hasher.finalize().as_bytes());
        if actual != blob {
            return Err(
                VolumeError::Blob(crate::storage::blobs::BlobError::Corrupt { id: blob, actual })
                    .into(),
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if node.mode == 0 {
            DEFAULT_FILE_MODE
        } else {
            node.mode & 0o777
        };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(local_io(target))?;
    }
    tmp.as_file().sync_all().map_err(local_io(target))?;
    tmp.persist(target).map_err(|e| local_io(target)(e.error))?;
    Ok(written)
}

/// Checks a volume name for the CLI before it touches the store. A name
/// ending in `@` and digits would read as a version ([`VolumeRef`]), so
/// it is refused.
pub fn check_name(name: &str) -> Result<(), VolumeOpError> {
    Ok(crate::storage::volume::check_new_volume_name(name)?)
}

mod batch;
mod history;
pub use batch::{PutReport, VolumeBatch, local_tree_size};
pub(crate) use history::writable;
pub use history::{DiffEntry, VolumeRef};

#[cfg(test)]
mod tests;
