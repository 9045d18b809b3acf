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

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Service;
use super::quota::UploadQuota;
use crate::storage::blobs::BlobId;
use crate::storage::volume::{
    Change, CommitInfo, GcOptions, GcReport, Node, NodeKind, VolumeError, VolumeInfo, VolumeStore,
    ancestors, check_volume_name, normalize_path,
};
use crate::volume::live::{self, IfMounted, LiveError};

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
}

impl VolumeOpError {
    /// Whether the request itself was malformed (a bad name or path, a
    /// missing local file, a missing flag) rather than failing against the
    /// state of the store.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            VolumeOpError::Store(
                VolumeError::InvalidName { .. }
                    | VolumeError::InvalidPath { .. }
                    | VolumeError::InvalidQuota { .. }
            ) | VolumeOpError::LocalMissing { .. }
                | VolumeOpError::NeedsRecursive { .. }
                | VolumeOpError::Duplicate { .. }
                | VolumeOpError::Invalid(_)
        )
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
        self.volume_create_with(name, None)
    }

    /// Creates volume `name` with byte quota `max_bytes` (see
    /// [`VolumeSummary::max_bytes`]); an error if it exists.
    pub fn volume_create_with(
        &self,
        name: &str,
        max_bytes: Option<u64>,
    ) -> Result<(), VolumeOpError> {
        if self.volume_store()?.create_with(name, max_bytes)? {
            Ok(())
        } else {
            Err(VolumeError::AlreadyExists(name.to_owned()).into())
        }
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
    /// A volume that running containers of this process have mounted is
    /// refused, unless `force`: then those containers keep reading the
    /// snapshot they mounted (its blobs stay until they end), but their
    /// commits and reloads fail, so a volume created later under the same
    /// name never receives their writes.
    pub fn volume_delete(&self, name: &str, force: bool) -> Result<(), VolumeOpError> {
        let store = self.volume_store()?;
        let if_mounted = if force {
            IfMounted::Delete
        } else {
            IfMounted::RefuseUnlessForced
        };
        live::guard_volume(&store.location(), name, if_mounted, || {
            store.delete(name).map_err(VolumeOpError::from)
        })
    }

    /// Renames volume `old` to `new`. A mounted volume is refused: its
    /// containers commit by name.
    pub fn volume_rename(&self, old: &str, new: &str) -> Result<(), VolumeOpError> {
        let store = self.volume_store()?;
        live::guard_volume(&store.location(), old, IfMounted::Refuse, || {
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
        match store.node(name, &path)? {
            None => Err(no_such(name, &path)),
            Some(n) if n.kind != NodeKind::Dir => Ok(vec![entry(path, &n)]),
            Some(_) => Ok(store
                .list_dir(name, &path, recursive)?
                .into_iter()
                .map(|(p, n)| entry(p, &n))
                .collect()),
        }
    }

    /// The entry at `path` of volume `name`, if any (the root is a
    /// directory).
    pub fn volume_stat(&self, name: &str, path: &str) -> Result<Option<EntryInfo>, VolumeOpError> {
        let path = normalize_path(path)?;
        Ok(self
            .volume_store()?
            .node(name, &path)?
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
        let store = self.volume_store()?;
        let pinned = live::Pinned::new(store.location());
        Ok(store.gc(&GcOptions {
            pinned: &|id| pinned.contains(id),
            min_age,
        })?)
    }

    /// Starts a batch upload into volume `name` (which must exist). Nothing
    /// is visible until [`VolumeBatch::commit`], which lands every file as
    /// one version.
    pub fn volume_batch(&self, name: &str, force: bool) -> Result<VolumeBatch, VolumeOpError> {
        let store = self.volume_store()?.clone();
        let info = store.info(name)?;
        Ok(VolumeBatch {
            store,
            volume: name.to_owned(),
            force,
            planned: BTreeMap::new(),
            progress: None,
            quota: UploadQuota::new(name, info.max_bytes),
        })
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
        let node = store
            .node(name, &path)?
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
        match store.node(name, &path)? {
            None => Err(no_such(name, &path)),
            Some(n) if n.kind == NodeKind::Dir => Ok(store
                .list_dir(name, &path, true)?
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
        let node = store
            .node(name, &path)?
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
                for (p, n) in store.list_dir(name, &path, true)? {
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

/// A batch upload (Modal's `batch_upload()`): files are streamed into blobs
/// as they are added, and [`commit`](Self::commit) lands them all as one
/// version. Dropping a batch without committing publishes nothing (its
/// blobs are collected later).
pub struct VolumeBatch {
    store: Arc<dyn VolumeStore>,
    volume: String,
    force: bool,
    /// Remote path → node, sorted so parents come first.
    planned: BTreeMap<String, Node>,
    progress: Option<Progress>,
    /// Stops an upload that cannot fit (the commit checks exactly).
    quota: UploadQuota,
}

impl std::fmt::Debug for VolumeBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeBatch")
            .field("volume", &self.volume)
            .field("force", &self.force)
            .field("planned", &self.planned.len())
            .finish()
    }
}

impl VolumeBatch {
    /// Reports uploaded bytes to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// How many entries (files and directories) the batch holds.
    pub fn len(&self) -> usize {
        self.planned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }

    fn plan(&mut self, remote: String, node: Node) -> Result<(), VolumeOpError> {
        if remote.is_empty() {
            if node.kind == NodeKind::Dir {
                return Ok(()); // the root always exists
            }
            return Err(VolumeOpError::IsADirectory {
                volume: self.volume.clone(),
                path: "/".into(),
            });
        }
        match self.planned.get(&remote) {
            Some(old) if old.kind == NodeKind::Dir && node.kind == NodeKind::Dir => {}
            Some(_) => return Err(VolumeOpError::Duplicate { path: remote }),
            None => {}
        }
        self.planned.insert(remote, node);
        Ok(())
    }

    /// Uploads local file `local` to `remote`.
    pub fn put_file(
        &mut self,
        local: impl AsRef<Path>,
        remote: &str,
    ) -> Result<&mut Self, VolumeOpError> {
        let local = local.as_ref();
        let remote = normalize_path(remote)?;
        let meta = local_metadata(local)?;
        if !meta.is_file() {
            return Err(VolumeOpError::Invalid(format!(
                "{}: not a regular file (use put_directory for a directory)",
                local.display()
            )));
        }
        let mut f = File::open(local).map_err(local_io(local))?;
        let (blob, size) = self.stream(&mut f)?;
        self.plan(
            remote,
            Node {
                kind: NodeKind::File,
                blob: Some(blob),
                size,
                mtime_ms: now_ms(),
                mode: local_mode(&meta),
                target: None,
            },
        )?;
        Ok(self)
    }

    /// Uploads everything read from `reader` to file `remote`.
    pub fn put_reader(
        &mut self,
        reader: &mut dyn Read,
        remote: &str,
    ) -> Result<&mut Self, VolumeOpError> {
        let remote = normalize_path(remote)?;
        let (blob, size) = self.stream(reader)?;
        self.plan(
            remote,
            Node {
                kind: NodeKind::File,
                blob: Some(blob),
                size,
                mtime_ms: now_ms(),
                mode: DEFAULT_FILE_MODE,
                target: None,
            },
        )?;
        Ok(self)
    }

    /// Stores what `reader` yields as a blob, reporting progress, and
    /// stops with `OverQuota` once the batch's files could no longer fit
    /// under the volume's quota.
    fn stream(&mut self, reader: &mut dyn Read) -> Result<(BlobId, u64), VolumeOpError> {
        let mut counting = Counting {
            inner: reader,
            progress: self.progress.as_ref(),
        };
        let stored = self
            .quota
            .stream(&mut counting, |r| self.store.put_blob_reader(r))?;
        Ok(stored)
    }

    /// Uploads `bytes` to file `remote`.
    pub fn put_bytes(&mut self, bytes: &[u8], remote: &str) -> Result<&mut Self, VolumeOpError> {
        self.put_reader(&mut &bytes[..], remote)
    }

    /// Uploads local directory `local_dir` (recursively, empty directories
    /// included) to `remote_dir`. Symlinks to files are uploaded as the
    /// files; symlinks to directories are not followed (a loop, or a
    /// directory outside the one named, would be).
    pub fn put_directory(
        &mut self,
        local_dir: impl AsRef<Path>,
        remote_dir: &str,
    ) -> Result<&mut Self, VolumeOpError> {
        let local_dir = local_dir.as_ref();
        let remote_dir = normalize_path(remote_dir)?;
        let meta = local_metadata(local_dir)?;
        if !meta.is_dir() {
            return Err(VolumeOpError::Invalid(format!(
                "{}: not a directory (use put_file for a file)",
                local_dir.display()
            )));
        }
        self.plan(remote_dir.clone(), dir_node(local_mode(&meta)))?;
        let mut stack = vec![(local_dir.to_owned(), remote_dir)];
        while let Some((dir, remote)) = stack.pop() {
            let mut entries = Vec::new();
            for e in std::fs::read_dir(&dir).map_err(local_io(&dir))? {
                entries.push(e.map_err(local_io(&dir))?);
            }
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let local = e.path();
                let Some(file_name) = e.file_name().to_str().map(str::to_owned) else {
                    return Err(VolumeOpError::Invalid(format!(
                        "{}: the name is not UTF-8; volume paths are",
                        local.display()
                    )));
                };
                let child = normalize_path(&join(&remote, &file_name))?;
                let ty = e.file_type().map_err(local_io(&local))?;
                if ty.is_dir() {
                    let m = e.metadata().map_err(local_io(&local))?;
                    self.plan(child.clone(), dir_node(local_mode(&m)))?;
                    stack.push((local, child));
                } else if ty.is_file() {
                    self.put_file(&local, &child)?;
                } else if ty.is_symlink() {
                    match std::fs::metadata(&local) {
                        Ok(m) if m.is_file() => {
                            self.put_file(&local, &child)?;
                        }
                        _ => tracing::warn!(
                            "{}: skipped (a symlink to a directory or to nothing)",
                            local.display()
                        ),
                    }
                } else {
                    tracing::warn!("{}: skipped (not a file or directory)", local.display());
                }
            }
        }
        Ok(self)
    }

    /// Checks the overwrite rules against the head, then commits every
    /// planned entry as one version.
    pub fn commit(self) -> Result<CommitInfo, VolumeOpError> {
        let store = &self.store;
        let name = &self.volume;
        let mut checked_dirs: HashSet<&str> = HashSet::new();
        for (path, node) in &self.planned {
            for dir in ancestors(path) {
                if self.planned.contains_key(dir) || !checked_dirs.insert(dir) {
                    continue;
                }
                if let Some(existing) = store.node(name, dir)?
                    && existing.kind != NodeKind::Dir
                    && !self.force
                {
                    return Err(VolumeOpError::FileExists {
                        volume: name.clone(),
                        path: dir.to_owned(),
                    });
                }
            }
            let Some(existing) = store.node(name, path)? else {
                continue;
            };
            match (existing.kind, node.kind) {
                (NodeKind::Dir, NodeKind::Dir) => {}
                (NodeKind::Dir, _) => {
                    return Err(VolumeOpError::IsADirectory {
                        volume: name.clone(),
                        path: path.clone(),
                    });
                }
                (_, _) if !self.force => {
                    return Err(VolumeOpError::FileExists {
                        volume: name.clone(),
                        path: path.clone(),
                    });
                }
                _ => {}
            }
        }
        let changes: Vec<Change> = self
            .planned
            .into_iter()
            .map(|(path, node)| Change::Put { path, node })
            .collect();
        Ok(store.commit(name, &changes)?)
    }
}

fn dir_node(mode: u32) -> Node {
    Node {
        kind: NodeKind::Dir,
        blob: None,
        size: 0,
        mtime_ms: now_ms(),
        mode: if mode == 0 { DEFAULT_DIR_MODE } else { mode },
        target: None,
    }
}

/// Checks a volume name for the CLI before it touches the store.
pub fn check_name(name: &str) -> Result<(), VolumeOpError> {
    Ok(check_volume_name(name)?)
}

/// The metadata of a local path to upload; a missing path is its own error.
fn local_metadata(path: &Path) -> Result<std::fs::Metadata, VolumeOpError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(VolumeOpError::LocalMissing {
            path: path.to_owned(),
        }),
        Err(e) => Err(local_io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::storage::embedded::EmbeddedOptions;

    fn service(dir: &Path) -> Service {
        Service::open_embedded(dir, EmbeddedOptions::default()).unwrap()
    }

    fn read(svc: &Service, vol: &str, path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        svc.volume_read(vol, path, &mut out, None).unwrap();
        out
    }

    #[test]
    fn batch_upload_lands_as_one_version() {
        let data = tempfile::tempdir().unwrap();
        let svc = service(&data.path().join("store"));
        svc.volume_create("v").unwrap();
        let local = data.path().join("local");
        std::fs::create_dir_all(local.join("sub/empty")).unwrap();
        std::fs::write(local.join("sub/x.txt"), b"x").unwrap();
        std::fs::write(local.join("top.txt"), b"top").unwrap();
        let file = data.path().join("one.txt");
        std::fs::write(&file, b"one").unwrap();

        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = seen.clone();
        let mut batch = svc
            .volume_batch("v", false)
            .unwrap()
            .with_progress(Arc::new(move |n| {
                counter.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            }));
        batch
            .put_file(&file, "/remote-path.txt")
            .unwrap()
            .put_directory(&local, "/remote/directory")
            .unwrap()
            .put_bytes(b"some data", "/foobar")
            .unwrap();
        // Nothing is visible before commit.
        assert_eq!(svc.volume_info("v").unwrap().version, 0);
        let info = batch.commit().unwrap();
        assert_eq!(info.version, 1, "one version for the whole batch");
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            3 + 1 + 3 + 9
        );
        assert_eq!(read(&svc, "v", "remote-path.txt"), b"one");
        assert_eq!(read(&svc, "v", "remote/directory/sub/x.txt"), b"x");
        assert_eq!(read(&svc, "v", "foobar"), b"some data");
        let empty = svc.volume_ls("v", "remote/directory/sub/empty", false);
        assert_eq!(empty.unwrap(), vec![], "empty directories come along");
    }

    #[test]
    fn batch_overwrite_rules() {
        let data = tempfile::tempdir().unwrap();
        let svc = service(data.path());
        svc.volume_create("v").unwrap();
        let mut b = svc.volume_batch("v", false).unwrap();
        b.put_bytes(b"1", "f")
            .unwrap()
            .put_bytes(b"d", "d/x")
            .unwrap();
        b.commit().unwrap();

        // force=false: an existing file is refused by name, whole batch.
        let mut b = svc.volume_batch("v", false).unwrap();
        b.put_bytes(b"new", "g")
            .unwrap()
            .put_bytes(b"2", "f")
            .unwrap();
        match b.commit() {
            Err(VolumeOpError::FileExists { path, .. }) => assert_eq!(path, "f"),
            other => panic!("expected FileExists, got {other:?}"),
        }
        // A file under an existing file too.
        let mut b = svc.volume_batch("v", false).unwrap();
        b.put_bytes(b"2", "f/under").unwrap();
        assert!(matches!(b.commit(), Err(VolumeOpError::FileExists { path, .. }) if path == "f"));
        assert_eq!(svc.volume_info("v").unwrap().version, 1);
        assert!(svc.volume_stat("v", "g").unwrap().is_none());

        // A directory is never replaced by a file, force or not.
        for force in [false, true] {
            let mut b = svc.volume_batch("v", force).unwrap();
            b.put_bytes(b"2", "d").unwrap();
            assert!(matches!(
                b.commit(),
                Err(VolumeOpError::IsADirectory { .. })
            ));
        }
        // force=true overwrites files.
        let mut b = svc.volume_batch("v", true).unwrap();
        b.put_bytes(b"2", "f").unwrap();
        b.commit().unwrap();
        assert_eq!(read(&svc, "v", "f"), b"2");

        // The same file twice in one batch is refused as it is added.
        let mut b = svc.volume_batch("v", true).unwrap();
        b.put_bytes(b"a", "twice").unwrap();
        assert!(matches!(
            b.put_bytes(b"b", "twice"),
            Err(VolumeOpError::Duplicate { .. })
        ));
        // Bad inputs.
        assert!(matches!(
            svc.volume_batch("v", false)
                .unwrap()
                .put_file(data.path().join("nope"), "x"),
            Err(VolumeOpError::LocalMissing { .. })
        ));
        assert!(
            svc.volume_batch("v", false)
                .unwrap()
                .put_bytes(b"x", "../x")
                .unwrap_err()
                .is_usage()
        );
        assert!(svc.volume_batch("nope", false).is_err());
        assert!(svc.volume_create("a\0b").unwrap_err().is_usage());
    }
}

/// What [`Service::volume_put_local`] uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct PutReport {
    /// Where it landed, relative to the volume's root.
    pub target: String,
    /// Files and directories written.
    pub entries: u64,
    /// Bytes of the files.
    pub bytes: u64,
    pub version: u64,
}

/// The bytes of the regular files under `dir` (errors surface in the
/// upload itself).
pub fn local_tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += std::fs::metadata(e.path()).map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

impl Service {
    /// `vessel volume put LOCAL [REMOTE]` for a local file or directory:
    /// a file goes to REMOTE (into it when REMOTE is a directory or ends in
    /// `/`), a directory's tree under REMOTE; everything lands as one
    /// version.
    pub fn volume_put_local(
        &self,
        name: &str,
        local: &Path,
        remote: Option<&str>,
        force: bool,
        progress: Option<Progress>,
    ) -> Result<PutReport, VolumeOpError> {
        if let Some(r) = remote {
            normalize_path(r)?;
        }
        let meta = local_metadata(local)?;
        let remote = remote.unwrap_or("/");
        let (bytes, target) = if meta.is_dir() {
            (local_tree_size(local), remote.to_owned())
        } else {
            let into_dir = remote.ends_with('/')
                || self
                    .volume_stat(name, remote)?
                    .is_some_and(|e| e.kind == EntryKind::Dir);
            let target = if into_dir {
                let base = local.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                    VolumeOpError::Invalid(format!(
                        "{}: cannot take a UTF-8 file name from it",
                        local.display()
                    ))
                })?;
                format!("{}/{base}", remote.trim_end_matches('/'))
            } else {
                remote.to_owned()
            };
            (meta.len(), target)
        };
        let mut batch = self.volume_batch(name, force)?;
        if let Some(p) = progress {
            batch = batch.with_progress(p);
        }
        if meta.is_dir() {
            batch.put_directory(local, &target)?;
        } else {
            batch.put_file(local, &target)?;
        }
        let entries = batch.len() as u64;
        let info = batch.commit()?;
        Ok(PutReport {
            target: normalize_path(&target).unwrap_or_default(),
            entries,
            bytes,
            version: info.version,
        })
    }
}
