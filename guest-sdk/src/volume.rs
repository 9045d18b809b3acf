use crate::Error;
use crate::bindings::vessel::storage::volume as wit;

/// A volume: a named, versioned file tree.
///
/// Inside a mount, use `std::fs` as usual; `commit` publishes the changes and
/// `reload` brings in other containers' commits.
#[derive(Debug)]
pub struct Volume {
    inner: wit::Volume,
}

/// What kind of thing a listed path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
}

/// One entry of [`Volume::listdir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub mtime: u64,
}

/// What [`Volume::commit`] published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    pub version: u64,
    pub changed: u64,
    pub removed: u64,
}

/// One committed version, as [`Volume::history`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u64,
    /// When the commit landed, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Paths the commit put.
    pub changed: u64,
    /// Paths the commit removed.
    pub removed: u64,
    /// Bytes of the files it created or replaced.
    pub bytes_added: u64,
}

/// A volume's kept versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub head: u64,
    /// The oldest version that can still be read.
    pub oldest: u64,
    /// How long a replaced version stays readable, in milliseconds.
    pub retention_ms: u64,
    /// Newest first.
    pub versions: Vec<VersionInfo>,
}

/// How a path differs between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffChange {
    Added,
    Modified,
    Removed,
}

/// One path of [`Volume::diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    pub path: String,
    pub change: DiffChange,
    /// What it is in the newer version (the older one when removed).
    pub kind: EntryKind,
    pub size_before: Option<u64>,
    pub size_after: Option<u64>,
}

/// What [`Volume::commit_with`] does when other commits changed a path
/// it changes since this container read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Conflicts {
    /// It lands; the last commit of each path wins (as `commit`, unless
    /// the manifest says `conflicts = "fail"`).
    #[default]
    LastWriterWins,
    /// Nothing is committed: [`Error::Conflict`] with the paths.
    Fail,
}

fn kind_of(k: wit::EntryKind) -> EntryKind {
    match k {
        wit::EntryKind::File => EntryKind::File,
        wit::EntryKind::Directory => EntryKind::Directory,
        wit::EntryKind::Symlink => EntryKind::Symlink,
    }
}

fn commit_info(c: wit::CommitInfo) -> CommitInfo {
    CommitInfo {
        version: c.version,
        changed: c.changed,
        removed: c.removed,
    }
}

impl Volume {
    /// A read-only handle on kept version `version` of the volume called
    /// `name`: reads see it as that commit left it, writes fail with
    /// [`Error::AccessDenied`]. [`Error::NotFound`] names the head or the
    /// oldest version kept when `version` is not one.
    pub fn at_version(name: &str, version: u64) -> Result<Volume, Error> {
        Ok(Volume {
            inner: wit::Volume::at_version(name, version)?,
        })
    }

    /// The volume's kept versions, newest first, at most `limit`.
    pub fn history(&self, limit: u32) -> Result<History, Error> {
        let h = self.inner.history(limit)?;
        Ok(History {
            head: h.head,
            oldest: h.oldest,
            retention_ms: h.retention_ms,
            versions: h
                .versions
                .into_iter()
                .map(|v| VersionInfo {
                    version: v.version,
                    time_ms: v.time_ms,
                    changed: v.changed,
                    removed: v.removed,
                    bytes_added: v.bytes_added,
                })
                .collect(),
        })
    }

    /// The paths added, modified and removed from version `since` to
    /// `until` (`None`: this handle's version), in path order.
    pub fn diff(&self, since: u64, until: Option<u64>) -> Result<Vec<DiffEntry>, Error> {
        Ok(self
            .inner
            .diff(since, until)?
            .into_iter()
            .map(|d| DiffEntry {
                path: d.path,
                change: match d.change {
                    wit::DiffChange::Added => DiffChange::Added,
                    wit::DiffChange::Modified => DiffChange::Modified,
                    wit::DiffChange::Removed => DiffChange::Removed,
                },
                kind: kind_of(d.kind),
                size_before: d.size_before,
                size_after: d.size_after,
            })
            .collect())
    }

    /// Makes a new volume called `name` whose first version is this
    /// handle's committed version ([`version`](Self::version)), copying
    /// nothing; changes not committed yet are not in it. The function
    /// must be granted `name`.
    pub fn fork(&self, name: &str) -> Result<Volume, Error> {
        Ok(Volume {
            inner: self.inner.fork(name)?,
        })
    }

    /// [`commit`](Self::commit) under `conflicts`, whatever the manifest
    /// says. Under [`Conflicts::Fail`], a commit that would overwrite paths
    /// other commits changed since this container read them commits
    /// nothing and fails with [`Error::Conflict`].
    pub fn commit_with(&self, conflicts: Conflicts) -> Result<CommitInfo, Error> {
        let policy = match conflicts {
            Conflicts::LastWriterWins => wit::ConflictPolicy::LastWriterWins,
            Conflicts::Fail => wit::ConflictPolicy::Fail,
        };
        match self.inner.commit_with(policy)? {
            wit::CommitOutcome::Committed(c) => Ok(commit_info(c)),
            wit::CommitOutcome::Conflict(c) => Err(Error::Conflict {
                paths: c.paths,
                head: c.head,
            }),
        }
    }
}

impl Volume {
    /// The volume mounted at `path` (for example `"/data"`).
    pub fn mounted(path: &str) -> Result<Volume, Error> {
        Ok(Volume {
            inner: wit::Volume::mounted(path)?,
        })
    }

    /// The volume called `name`, created first if `create_if_missing`.
    pub fn from_name(name: &str, create_if_missing: bool) -> Result<Volume, Error> {
        Ok(Volume {
            inner: wit::Volume::from_name(name, create_if_missing)?,
        })
    }

    pub fn name(&self) -> String {
        self.inner.name()
    }

    /// The committed version this container sees.
    pub fn version(&self) -> u64 {
        self.inner.version()
    }

    /// Publishes this container's changes as a new version.
    pub fn commit(&self) -> Result<CommitInfo, Error> {
        Ok(commit_info(self.inner.commit()?))
    }

    /// Commits, then moves to the latest version. Fails with
    /// [`Error::Busy`] while files under the mount are open.
    pub fn reload(&self) -> Result<u64, Error> {
        Ok(self.inner.reload()?)
    }

    /// Lists a directory of the volume (`""` for the root).
    pub fn listdir(&self, path: &str, recursive: bool) -> Result<Vec<Entry>, Error> {
        Ok(self
            .inner
            .listdir(path, recursive)?
            .into_iter()
            .map(|e| Entry {
                path: e.path,
                kind: kind_of(e.kind),
                size: e.size,
                mtime: e.mtime,
            })
            .collect())
    }

    /// Reads up to `length` bytes from `offset`.
    pub fn read_range(&self, path: &str, offset: u64, length: u64) -> Result<Vec<u8>, Error> {
        Ok(self.inner.read_file(path, offset, length)?)
    }

    /// Reads a whole file, in 8 MiB ranges.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        const CHUNK: u64 = 8 << 20;
        let mut out = Vec::new();
        loop {
            let offset = u64::try_from(out.len()).unwrap_or(u64::MAX);
            let chunk = self.inner.read_file(path, offset, CHUNK)?;
            let done = (chunk.len() as u64) < CHUNK;
            out.extend_from_slice(&chunk);
            if done {
                return Ok(out);
            }
        }
    }

    /// Writes a whole file.
    pub fn write_file(&self, path: &str, data: &[u8], overwrite: bool) -> Result<(), Error> {
        Ok(self.inner.write_file(path, data, overwrite)?)
    }

    /// Removes a file or directory.
    pub fn remove(&self, path: &str, recursive: bool) -> Result<(), Error> {
        Ok(self.inner.remove(path, recursive)?)
    }

    /// Copies files within the volume.
    pub fn copy(&self, srcs: &[&str], dst: &str) -> Result<(), Error> {
        let srcs: Vec<String> = srcs.iter().map(|s| (*s).to_owned()).collect();
        Ok(self.inner.copy(&srcs, dst)?)
    }
}

impl Volume {
    /// A reader of the file at `path` through the object API (no mount
    /// needed), fetching it in ranges as it is read.
    pub fn reader(&self, path: &str) -> FileReader<'_> {
        FileReader {
            volume: self,
            path: path.to_owned(),
            offset: 0,
            done: false,
        }
    }

    /// A writer of the file at `path` through the object API. The volume
    /// stores whole files, so the bytes are kept until
    /// [`FileWriter::finish`] (or `flush`, or drop) writes the file.
    pub fn writer(&self, path: &str, overwrite: bool) -> FileWriter<'_> {
        FileWriter {
            volume: self,
            path: path.to_owned(),
            overwrite,
            buf: Vec::new(),
            dirty: true,
        }
    }
}

/// Reads a volume file in ranges: [`std::io::Read`] over
/// [`Volume::read_range`].
#[derive(Debug)]
pub struct FileReader<'a> {
    volume: &'a Volume,
    path: String,
    offset: u64,
    done: bool,
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let want = u64::try_from(buf.len()).unwrap_or(u64::MAX).min(8 << 20);
        let chunk = self
            .volume
            .read_range(&self.path, self.offset, want)
            .map_err(std::io::Error::other)?;
        let n = chunk.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), chunk.get(..n)) {
            dst.copy_from_slice(src);
        }
        if n == 0 {
            self.done = true;
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Collects bytes and writes them as one volume file: [`std::io::Write`]
/// over [`Volume::write_file`].
#[derive(Debug)]
pub struct FileWriter<'a> {
    volume: &'a Volume,
    path: String,
    overwrite: bool,
    buf: Vec<u8>,
    dirty: bool,
}

impl FileWriter<'_> {
    /// Writes the file and reports the outcome.
    pub fn finish(mut self) -> Result<(), Error> {
        self.write_out()
    }

    fn write_out(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        self.volume
            .write_file(&self.path, &self.buf, self.overwrite)?;
        // Later flushes replace what this one wrote.
        self.overwrite = true;
        self.dirty = false;
        Ok(())
    }
}

impl std::io::Write for FileWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.dirty = true;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write_out().map_err(std::io::Error::other)
    }
}

impl Drop for FileWriter<'_> {
    fn drop(&mut self) {
        // Like std's BufWriter: a last write, whose error has nowhere to go;
        // call `finish` to see it.
        let _ = self.write_out();
    }
}
