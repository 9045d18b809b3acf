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
        let c = self.inner.commit()?;
        Ok(CommitInfo {
            version: c.version,
            changed: c.changed,
            removed: c.removed,
        })
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
                kind: match e.kind {
                    wit::EntryKind::File => EntryKind::File,
                    wit::EntryKind::Directory => EntryKind::Directory,
                    wit::EntryKind::Symlink => EntryKind::Symlink,
                },
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
