//! Uploads into a volume: [`VolumeBatch`] (the library's
//! `batch_upload()`: files stream into blobs as they are added, one commit
//! lands them all) and [`Service::volume_put_local`], which `vessel volume
//! put` of a local file or directory runs.

use super::*;
use crate::storage::volume::CommitOptions;

/// A batch upload (Modal's `batch_upload()`): files are streamed into blobs
/// as they are added, and [`commit`](Self::commit) lands them all as one
/// version. Dropping a batch without committing publishes nothing (its
/// blobs are collected later).
pub struct VolumeBatch {
    store: Arc<dyn VolumeStore>,
    volume: String,
    force: bool,
    /// Land only if no commit after this version changed the planned
    /// paths (see [`VolumeBatch::if_version`]).
    if_version: Option<u64>,
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
    /// Makes the commit conditional: it lands only if no commit after
    /// `version` changed any path the batch writes (or anything under
    /// one), and otherwise fails with a conflict naming them and changes
    /// nothing. Such a batch may replace existing files (it says which
    /// version it means to replace), as with `force`.
    pub fn if_version(mut self, version: Option<u64>) -> Self {
        self.if_version = version;
        self
    }

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
                (_, _) if !self.force && self.if_version.is_none() => {
                    return Err(VolumeOpError::FileExists {
                        volume: name.clone(),
                        path: path.clone(),
                    });
                }
                _ => {}
            }
        }
        let options = CommitOptions {
            unchanged_since: match self.if_version {
                Some(v) => self.planned.keys().map(|p| (p.clone(), v)).collect(),
                None => Vec::new(),
            },
            ..CommitOptions::default()
        };
        let changes: Vec<Change> = self
            .planned
            .into_iter()
            .map(|(path, node)| Change::Put { path, node })
            .collect();
        Ok(store.commit_with(name, &changes, &options)?)
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
    /// Starts a batch upload into volume `name` (which must exist). Nothing
    /// is visible until [`VolumeBatch::commit`], which lands every file as
    /// one version.
    pub fn volume_batch(&self, name: &str, force: bool) -> Result<VolumeBatch, VolumeOpError> {
        super::history::writable(name)?;
        let store = self.volume_store()?.clone();
        let info = store.info(name)?;
        Ok(VolumeBatch {
            store,
            volume: name.to_owned(),
            force,
            if_version: None,
            planned: BTreeMap::new(),
            progress: None,
            quota: UploadQuota::new(name, info.max_bytes),
        })
    }

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
        if_version: Option<u64>,
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
        let mut batch = self.volume_batch(name, force)?.if_version(if_version);
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
