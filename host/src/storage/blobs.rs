//! The content-addressed blob folder: immutable files named by the BLAKE3
//! hash of their bytes.
//!
//! A blob is written to a temporary file, fsynced, renamed into place and
//! its directory fsynced, all before any metadata names it; so a crash
//! leaves either no blob or a whole one (and at worst an orphan, which
//! [`BlobStore::gc`] removes). Blobs are made read-only and are never
//! modified in place. Reads can verify the hash; a mismatch is an error,
//! never silently wrong bytes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A BLAKE3 hash naming a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn of(bytes: &[u8]) -> Self {
        BlobId(*blake3::hash(bytes).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| BlobId(*h.as_bytes()))
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Failures of the blob folder.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} is missing")]
    Missing(BlobId),
    #[error("blob {id} is corrupt: its bytes hash to {actual}")]
    Corrupt { id: BlobId, actual: BlobId },
    #[error("blob store i/o: {0}")]
    Io(#[from] io::Error),
}

/// The blob folder. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlobStore {
    /// Opens (creating) the blob folder at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(BlobStore { root })
    }

    /// Where the blob `id` lives: `<root>/ab/cdef...`, two hex digits of
    /// fan-out.
    pub fn path(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        let (a, b) = hex.split_at(2);
        self.root.join(a).join(b)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.path(id).exists()
    }

    /// Stores `bytes` durably and returns their id.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobId, BlobError> {
        let id = BlobId::of(bytes);
        if self.contains(&id) {
            return Ok(id);
        }
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        tmp.write_all(bytes)?;
        self.install(id, tmp)?;
        Ok(id)
    }

    /// Streams `reader` into the store and returns the id and size.
    pub fn put_reader(&self, reader: &mut dyn Read) -> Result<(BlobId, u64), BlobError> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            let Some(chunk) = buf.get(..n) else { break };
            if n == 0 {
                break;
            }
            hasher.update(chunk);
            tmp.write_all(chunk)?;
            size += n as u64;
        }
        let id = BlobId(*hasher.finalize().as_bytes());
        if !self.contains(&id) {
            self.install(id, tmp)?;
        }
        Ok((id, size))
    }

    /// Stores the file at `path` (copied, then hashed as written).
    pub fn put_file(&self, path: &Path) -> Result<(BlobId, u64), BlobError> {
        let mut f = File::open(path)?;
        self.put_reader(&mut f)
    }

    fn install(&self, id: BlobId, tmp: tempfile::NamedTempFile) -> Result<(), BlobError> {
        tmp.as_file().sync_all()?;
        let mut perms = tmp.as_file().metadata()?.permissions();
        perms.set_readonly(true);
        tmp.as_file().set_permissions(perms)?;
        let dest = self.path(&id);
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&parent)?;
        tmp.persist(&dest).map_err(|e| e.error)?;
        fsync_dir(&parent)?;
        Ok(())
    }

    /// Reads a whole blob and checks its hash.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, BlobError> {
        let bytes = match std::fs::read(self.path(id)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::Missing(*id)),
            Err(e) => return Err(e.into()),
        };
        let actual = BlobId::of(&bytes);
        if actual != *id {
            return Err(BlobError::Corrupt { id: *id, actual });
        }
        Ok(bytes)
    }

    /// Checks the hash of the blob on disk without keeping its bytes.
    pub fn verify(&self, id: &BlobId) -> Result<(), BlobError> {
        let mut f = match File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::Missing(*id)),
            Err(e) => return Err(e.into()),
        };
        let mut hasher = blake3::Hasher::new();
        io::copy(&mut f, &mut hasher)?;
        let actual = BlobId(*hasher.finalize().as_bytes());
        if actual != *id {
            return Err(BlobError::Corrupt { id: *id, actual });
        }
        Ok(())
    }

    /// Every blob in the folder.
    pub fn list(&self) -> io::Result<Vec<BlobId>> {
        let mut out = Vec::new();
        for fan in std::fs::read_dir(&self.root)? {
            let fan = fan?;
            let prefix = fan.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !fan.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(fan.path())? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if let Some(id) = BlobId::from_hex(&format!("{prefix}{name}")) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Removes blobs that are neither `referenced` nor `pinned` and are
    /// older than `grace` (so a blob written by a commit still in flight,
    /// whose metadata is not yet stored, survives). Also clears stale
    /// temporary files. `pinned` is asked only about blobs that would
    /// otherwise go.
    pub fn gc(
        &self,
        referenced: &dyn Fn(&BlobId) -> bool,
        pinned: &dyn Fn(&BlobId) -> bool,
        grace: Duration,
    ) -> io::Result<BlobGc> {
        let now = SystemTime::now();
        let old_enough = |meta: &std::fs::Metadata| -> bool {
            meta.modified()
                .map(|t| now.duration_since(t).unwrap_or_default() >= grace)
                .unwrap_or(false)
        };
        let mut report = BlobGc::default();
        for id in self.list()? {
            if referenced(&id) {
                continue;
            }
            let p = self.path(&id);
            let meta = match std::fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !old_enough(&meta) {
                report.young += 1;
            } else if pinned(&id) {
                report.pinned += 1;
            } else {
                std::fs::remove_file(&p)?;
                report.removed += 1;
                report.bytes += meta.len();
            }
        }
        for entry in std::fs::read_dir(self.root.join("tmp"))? {
            let p = entry?.path();
            if std::fs::symlink_metadata(&p).is_ok_and(|m| old_enough(&m)) {
                let _ = std::fs::remove_file(&p);
            }
        }
        Ok(report)
    }
}

/// What [`BlobStore::gc`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobGc {
    /// Blobs removed.
    pub removed: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Unreferenced blobs kept because they are younger than the grace
    /// period.
    pub young: u64,
    /// Unreferenced blobs kept because `pinned` asked for them.
    pub pinned: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn put_get_verify_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let id = store.put(b"hello").unwrap();
        assert_eq!(store.get(&id).unwrap(), b"hello");
        assert_eq!(store.put(b"hello").unwrap(), id, "same bytes, same blob");
        let (id2, n) = store.put_reader(&mut &b"hello"[..]).unwrap();
        assert_eq!((id2, n), (id, 5));
        // Corrupt it behind the store's back (root may ignore read-only).
        let p = store.path(&id);
        let mut perms = std::fs::metadata(&p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&p, perms).unwrap();
        std::fs::write(&p, b"jello").unwrap();
        assert!(matches!(store.get(&id), Err(BlobError::Corrupt { .. })));
        assert!(matches!(store.verify(&id), Err(BlobError::Corrupt { .. })));
    }

    #[test]
    fn gc_keeps_referenced_and_young_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let keep = store.put(b"keep").unwrap();
        let drop = store.put(b"drop").unwrap();
        // Young blobs survive even when unreferenced.
        let pinned = store.put(b"pinned").unwrap();
        let referenced = |id: &BlobId| *id == keep;
        let is_pinned = |id: &BlobId| *id == pinned;
        let young = store
            .gc(&referenced, &is_pinned, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(
            young,
            BlobGc {
                removed: 0,
                bytes: 0,
                young: 2,
                pinned: 0
            }
        );
        let old = store.gc(&referenced, &is_pinned, Duration::ZERO).unwrap();
        assert_eq!(
            old,
            BlobGc {
                removed: 1,
                bytes: 4,
                young: 0,
                pinned: 1
            }
        );
        assert!(store.contains(&keep));
        assert!(store.contains(&pinned));
        assert!(!store.contains(&drop));
        let mut left = store.list().unwrap();
        left.sort();
        let mut want = vec![keep, pinned];
        want.sort();
        assert_eq!(left, want);
    }
}
