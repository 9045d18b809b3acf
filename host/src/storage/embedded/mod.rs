//! The embedded backend: one data directory holding a sled database (volume
//! heads, manifests, the commit log, dict entries) and a content-addressed
//! blob folder (file contents and large dict values).
//!
//! sled allows one process per database; the directory is locked by sled
//! itself while open.

pub mod backup;
pub mod dict;
pub mod durable;
pub mod volume;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blobs::BlobStore;
use super::clock::{Clock, SystemClock};
use super::disk::StorageIo;
pub use durable::{Durability, DurabilityMode};

/// Failures opening the embedded store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the store in {dir}: {reason}")]
    Open { dir: PathBuf, reason: String },
}

/// Options of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub durability: DurabilityMode,
    /// Idle period after which a dict entry expires (ms); see
    /// [`dict`] for the exact rule.
    pub dict_idle_expiry_ms: u64,
    /// Most inodes (files, directories, symlinks) per volume.
    pub volume_inode_limit: u64,
    /// How old an unreferenced blob must be before volume gc removes it,
    /// so the blobs of commits still in flight survive.
    pub blob_gc_grace: std::time::Duration,
    /// The file-system calls behind the blob folder and the fsyncs of
    /// sled's files: plain `std::fs` by default; tests pass a faulty or
    /// power-loss one (see [`crate::storage::disk`]).
    pub io: StorageIo,
    /// Bytes of sled's page cache. sled keeps every page it reads (and, at
    /// open, every page it recovers) up to this; its own default, 1 GiB,
    /// let a store holding a few 100 MiB dict values sit at 450 MB RSS
    /// before its first request.
    pub cache_bytes: u64,
}

/// The default of [`EmbeddedOptions::cache_bytes`]: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            durability: DurabilityMode::Sync,
            dict_idle_expiry_ms: dict::DEFAULT_IDLE_EXPIRY_MS,
            volume_inode_limit: super::volume::DEFAULT_INODE_LIMIT,
            blob_gc_grace: std::time::Duration::from_secs(3600),
            io: StorageIo::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// The open embedded store: the sled database, the blob folder, the
/// durability barrier and the clock. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    pub(crate) db: sled::Db,
    pub(crate) blobs: BlobStore,
    pub(crate) durability: Durability,
    /// The dicts' write-ahead log (see [`wal`]).
    pub(crate) wal: wal::Wal,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) dict_state: Arc<dict::DictState>,
    pub(crate) volumes: Arc<volume::VolumeState>,
    dir: PathBuf,
    /// `embedded:` and the canonical data directory (see
    /// [`VolumeStore::location`](super::volume::VolumeStore::location)).
    pub(crate) location: String,
}

/// Removes the snapshots a killed process left half-written in sled's
/// directory. sled 0.34.7 writes a snapshot to `snap.N.generating` and
/// renames it to `snap.N` when complete, but when it opens it counts the
/// `.generating` file as a snapshot too; being the newest, it is the one
/// read, and its missing bytes fail the open ("Read corrupted data"), for
/// good. (The crash tests met it: a `vessel dict put` killed while sled
/// wrote a snapshot left a store that no process could open again.) The
/// files are removed under sled's own lock (an exclusive `flock` of its
/// `db` file), so a snapshot that a live owner is writing is left alone;
/// if the lock is held, nothing is removed and the open reports the owner.
fn remove_half_written_snapshots(db_dir: &Path) -> std::io::Result<()> {
    let half_written = |entry: &std::fs::DirEntry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with("snap.") && name.ends_with(".generating")
    };
    let found: Vec<PathBuf> = std::fs::read_dir(db_dir)?
        .filter_map(Result::ok)
        .filter(half_written)
        .map(|e| e.path())
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    let lock = match std::fs::File::open(db_dir.join("db")) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(f) = &lock {
        // std's lock is the same `flock` sled (fs2) takes.
        match f.try_lock() {
            Ok(()) => {}
            // Held: the owner may be writing that snapshot right now.
            Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    for path in found {
        tracing::warn!(
            "removing {}, a snapshot a killed process left half-written",
            path.display()
        );
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    // Dropping the file releases the lock.
    drop(lock);
    Ok(())
}

/// How long opening waits for a store lock held by someone else.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

impl EmbeddedStore {
    /// Opens (creating) the store under `data_dir`: `data_dir/db` for sled,
    /// `data_dir/blobs` for blobs.
    pub fn open(data_dir: &Path, options: EmbeddedOptions) -> Result<Self, OpenError> {
        Self::open_with_clock(data_dir, options, Arc::new(SystemClock))
    }

    /// Like [`open`](Self::open) with a given clock (tests).
    pub fn open_with_clock(
        data_dir: &Path,
        options: EmbeddedOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OpenError> {
        let fail = |reason: String| OpenError::Open {
            dir: data_dir.to_owned(),
            reason,
        };
        let io = options.io.clone();
        // Directories are created durably (their parents fsynced), so a
        // power cut cannot take the store's layout away under acknowledged
        // data.
        io.create_dir_all(data_dir)
            .map_err(|e| fail(e.to_string()))?;
        let db_dir = data_dir.join("db");
        io.external_dir(&db_dir);
        io.create_dir_all(&db_dir)
            .map_err(|e| fail(e.to_string()))?;
        // sled finishes in-flight log writes on its I/O threads after the
        // last handle is dropped, holding the lock a moment longer; and an
        // owner that just started may be about to serve its socket. So a
        // held lock is retried briefly before it is reported.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            remove_half_written_snapshots(&db_dir).map_err(|e| fail(e.to_string()))?;
            let opened = sled::Config::new()
                .path(&db_dir)
                // We make writes durable ourselves (see `durable`); sled's
                // periodic flusher would only add background I/O.
                .flush_every_ms(None)
                .cache_capacity(options.cache_bytes)
                .open();
            match opened {
                Ok(db) => break db,
                // sled 0.34 wraps the failed flock in an error of its own
                // kind, with this text.
                Err(sled::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("could not acquire lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(fail(
                            "another process has it open (one process owns a data dir at a time)"
                                .into(),
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(other) => return Err(fail(other.to_string())),
            }
        };
        // sled makes its files with the umask's modes; they are narrowed
        // here, each time the store opens (see `private`). A file that
        // cannot be narrowed (another user's) is no reason to refuse the
        // store: the data dir's own mode is what keeps others out.
        if let Err(e) = crate::private::restrict_tree(&db_dir) {
            tracing::warn!(
                "cannot take group and other rights from the files in {}: {e}",
                db_dir.display()
            );
        }
        let blobs = BlobStore::open_with(data_dir.join("blobs"), io.clone())
            .map_err(|e| fail(e.to_string()))?;
        // `db` and `blobs` may have been created by a process killed before
        // it fsynced the data directory: their entries become durable here.
        io.sync_dir(data_dir).map_err(|e| fail(e.to_string()))?;
        let durability = Durability::with_io(db.clone(), db_dir, options.durability, io.clone());
        let wal = wal::Wal::open(&db, &data_dir.join("wal"), &io, &durability)
            .map_err(|e| fail(format!("dict log: {e}")))?;
        let volumes =
            volume::VolumeState::open(&db, options.volume_inode_limit, options.blob_gc_grace)
                .map_err(|e| fail(e.to_string()))?;
        io.opened();
        Ok(EmbeddedStore {
            db,
            blobs,
            durability,
            wal,
            clock,
            dict_state: Arc::new(dict::DictState::new(options.dict_idle_expiry_ms)),
            volumes: Arc::new(volumes),
            dir: data_dir.to_owned(),
            location: format!(
                "embedded:{}",
                std::fs::canonicalize(data_dir)
                    .unwrap_or_else(|_| data_dir.to_owned())
                    .display()
            ),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn durability(&self) -> &Durability {
        &self.durability
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::dict::{DictStore, PutOptions};

    #[test]
    fn a_half_written_snapshot_does_not_stop_the_store_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
            s.create("d").unwrap();
            s.put("d", "k", b"v", &PutOptions::default()).unwrap();
        }
        // What a process killed while sled wrote a snapshot leaves: newer
        // than any snapshot, and empty.
        let half = dir.path().join("db/snap.FFFFFFFFFFFFFFF0.generating");
        std::fs::write(&half, b"").unwrap();
        let s = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        assert!(!half.exists());
        assert_eq!(s.get("d", "k").unwrap().unwrap().value, b"v");
        // While the store is open its owner's files are left alone.
        std::fs::write(&half, b"").unwrap();
        remove_half_written_snapshots(&dir.path().join("db")).unwrap();
        assert!(half.exists(), "removed a file under a live owner");
    }
}
