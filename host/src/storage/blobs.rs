//! The content-addressed blob folder: immutable files named by the BLAKE3
//! hash of their bytes.
//!
//! A blob is written to a temporary file, fsynced, renamed into place and
//! its directory fsynced, all before any metadata names it; so a crash
//! leaves either no blob or a whole one (and at worst an orphan, which
//! [`BlobStore::gc`] removes). A fan-out directory (`ab/`) is created and
//! its parent fsynced before a blob goes in, so the directory survives too.
//! Blobs are made read-only and are never modified in place. Reads can
//! verify the hash; a mismatch is an error, never silently wrong bytes.
//!
//! A put of bytes that are already stored returns at once, but only once
//! the stored blob is known durable: its install finished (another thread's
//! rename is not enough until that thread's directory fsync returned) and
//! its directory has been fsynced by this process (a blob a killed process
//! renamed into place may not have been). After a failed directory fsync
//! the kernel may have dropped the change, so a later fsync could succeed
//! without it: the folder is then poisoned, like the durability barrier,
//! and every put fails until the store is reopened.
//!
//! All writes go through [`StorageIo`], where tests inject faults and model
//! power loss.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::disk::{IoFile, StorageIo};

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
    /// An fsync of the folder failed earlier in this process.
    #[error("blob store unusable: an earlier fsync failed ({0}); reopen the store")]
    Poisoned(String),
}

impl BlobError {
    /// Whether the disk is full (ENOSPC).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, BlobError::Io(e) if super::disk::is_disk_full(e))
    }
}

/// The blob folder. Cheap to clone; clones share the bookkeeping below.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    io: StorageIo,
    book: Arc<Mutex<Book>>,
}

/// What this process knows about the folder's durability.
#[derive(Debug, Default)]
struct Book {
    /// Fan-out directories whose entry in the root is durable (the root
    /// was fsynced after they existed), a bit per first hash byte.
    durable_entry: Fans,
    /// Fan-out directories fsynced by this process: every blob in them
    /// that is not being installed is durable.
    synced: Fans,
    /// Blobs renamed into place whose directory fsync has not returned.
    installing: HashMap<BlobId, usize>,
    poisoned: Option<String>,
}

/// A set of fan-out directories.
#[derive(Debug, Default, Clone, Copy)]
struct Fans([u64; 4]);

impl Fans {
    fn has(&self, fan: u8) -> bool {
        self.0
            .get(usize::from(fan / 64))
            .is_some_and(|w| w & (1 << (fan % 64)) != 0)
    }
    fn add(&mut self, fan: u8) {
        if let Some(w) = self.0.get_mut(usize::from(fan / 64)) {
            *w |= 1 << (fan % 64);
        }
    }
}

/// A temporary file in `tmp/`, removed on drop unless installed.
struct TempBlob {
    file: IoFile,
    io: StorageIo,
    installed: bool,
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.installed {
            // Best effort: a leftover is removed by gc.
            let _ = self.io.remove_file(self.file.path());
        }
    }
}

impl BlobStore {
    /// Opens (creating) the blob folder at `root` with plain file I/O.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        Self::open_with(root, StorageIo::default())
    }

    /// Opens (creating) the blob folder at `root`, doing its writes through
    /// `io`. Creating the folder fsyncs its parent.
    pub fn open_with(root: impl Into<PathBuf>, io: StorageIo) -> io::Result<Self> {
        let root = root.into();
        io.create_dir_all(&root.join("tmp"))?;
        Ok(BlobStore {
            root,
            io,
            book: Arc::new(Mutex::new(Book::default())),
        })
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // The book is flags and counters, consistent after any panic.
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the blob `id` lives: `<root>/ab/cdef...`, two hex digits of
    /// fan-out.
    pub fn path(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        let (a, b) = hex.split_at(2);
        self.root.join(a).join(b)
    }

    fn fan(id: &BlobId) -> u8 {
        id.0.first().copied().unwrap_or(0)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.path(id).exists()
    }

    /// Why the folder refuses writes, once a failed fsync poisoned it.
    pub fn poisoned(&self) -> Option<String> {
        self.book().poisoned.clone()
    }

    fn check_poison(&self) -> Result<(), BlobError> {
        match &self.book().poisoned {
            Some(p) => Err(BlobError::Poisoned(p.clone())),
            None => Ok(()),
        }
    }

    /// An fsync of the folder failed: no later put may succeed in this
    /// process (see the module docs).
    fn poison(&self, e: io::Error) -> BlobError {
        let mut book = self.book();
        if book.poisoned.is_none() {
            book.poisoned = Some(e.to_string());
        }
        BlobError::Io(e)
    }

    /// Makes sure the fan-out directory of `id` exists and its entry in
    /// the root is durable (the root fsynced once per directory and
    /// process: whoever created it, maybe a process killed before its
    /// fsync, it is durable after that); returns the directory.
    fn fan_dir(&self, id: &BlobId) -> Result<PathBuf, BlobError> {
        let dest = self.path(id);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        let fan = Self::fan(id);
        if self.book().durable_entry.has(fan) {
            return Ok(dir);
        }
        match self.io.create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        self.io.sync_dir(&self.root).map_err(|e| self.poison(e))?;
        self.book().durable_entry.add(fan);
        Ok(dir)
    }

    /// Whether `id` is stored durably (see the module docs), so a put of
    /// its bytes can return at once.
    fn stored_durably(&self, id: &BlobId) -> Result<bool, BlobError> {
        if !self.contains(id) || self.book().installing.contains_key(id) {
            return Ok(false);
        }
        let dir = self.fan_dir(id)?;
        let fan = Self::fan(id);
        if !self.book().synced.has(fan) {
            // Stored by an earlier process, which may have died before its
            // directory fsync.
            self.io.sync_dir(&dir).map_err(|e| self.poison(e))?;
            self.book().synced.add(fan);
        }
        Ok(true)
    }

    fn temp(&self) -> Result<TempBlob, BlobError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = self.root.join("tmp");
        let mut tries = 0;
        loop {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!(
                "{}-{}-{nanos:08x}.tmp",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            match self.io.create_new(&dir.join(name)) {
                Ok(file) => {
                    return Ok(TempBlob {
                        file,
                        io: self.io.clone(),
                        installed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Stores `bytes` durably and returns their id.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobId, BlobError> {
        self.check_poison()?;
        let id = BlobId::of(bytes);
        if self.stored_durably(&id)? {
            return Ok(id);
        }
        let mut tmp = self.temp()?;
        tmp.file.write_all(bytes)?;
        self.install(id, tmp)?;
        Ok(id)
    }

    /// Streams `reader` into the store and returns the id and size.
    pub fn put_reader(&self, reader: &mut dyn Read) -> Result<(BlobId, u64), BlobError> {
        self.check_poison()?;
        let mut tmp = self.temp()?;
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
            tmp.file.write_all(chunk)?;
            size += n as u64;
        }
        let id = BlobId(*hasher.finalize().as_bytes());
        if !self.stored_durably(&id)? {
            self.install(id, tmp)?;
        }
        Ok((id, size))
    }

    /// Stores the file at `path` (copied, then hashed as written).
    pub fn put_file(&self, path: &Path) -> Result<(BlobId, u64), BlobError> {
        let mut f = File::open(path)?;
        self.put_reader(&mut f)
    }

    fn install(&self, id: BlobId, mut tmp: TempBlob) -> Result<(), BlobError> {
        // A failed fsync here loses only the temporary file, which goes:
        // a retry writes the bytes again and fsyncs them anew.
        tmp.file.sync_all()?;
        let mut perms = tmp.file.file().metadata()?.permissions();
        perms.set_readonly(true);
        tmp.file.file().set_permissions(perms)?;
        let dir = self.fan_dir(&id)?;
        let dest = self.path(&id);
        *self.book().installing.entry(id).or_insert(0) += 1;
        let result = match self.io.rename(tmp.file.path(), &dest) {
            Err(e) => Err(BlobError::Io(e)),
            Ok(()) => {
                tmp.installed = true;
                self.io.sync_dir(&dir).map_err(|e| self.poison(e))
            }
        };
        let mut book = self.book();
        if let Some(n) = book.installing.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                book.installing.remove(&id);
            }
        }
        if result.is_ok() {
            book.synced.add(Self::fan(&id));
        }
        drop(book);
        result
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
                self.io.remove_file(&p)?;
                report.removed += 1;
                report.bytes += meta.len();
            }
        }
        // What an upload killed midway left: counted, since it can be large.
        for entry in std::fs::read_dir(self.root.join("tmp"))? {
            let p = entry?.path();
            if let Ok(meta) = std::fs::symlink_metadata(&p)
                && old_enough(&meta)
                && self.io.remove_file(&p).is_ok()
            {
                report.temp_files += 1;
                report.temp_bytes += meta.len();
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
    /// Unfinished uploads' temporary files removed, and their bytes.
    pub temp_files: u64,
    pub temp_bytes: u64,
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
                pinned: 0,
                temp_files: 0,
                temp_bytes: 0,
            }
        );
        // What an upload killed midway left behind is removed and counted.
        std::fs::write(dir.path().join("tmp").join("dead-upload.tmp"), [0u8; 1000]).unwrap();
        let old = store.gc(&referenced, &is_pinned, Duration::ZERO).unwrap();
        assert_eq!(
            old,
            BlobGc {
                removed: 1,
                bytes: 4,
                young: 0,
                pinned: 1,
                temp_files: 1,
                temp_bytes: 1000,
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
