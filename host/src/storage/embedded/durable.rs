//! Making sled writes durable, with group commit.
//!
//! sled 0.34.7's `flush()` writes its log out with `sync_file_range`, which
//! neither flushes the disk's cache nor the file's metadata: it is not an
//! fsync. [`Durability::sync`] therefore flushes sled and then fsyncs its
//! files and directory. Writers that call `sync` while a sync is running wait
//! for the next one, which covers all of them: one fsync serves many writes.
//!
//! After a failed fsync the kernel may have dropped the dirty pages, so a
//! retry could "succeed" without the data. A failure therefore poisons the
//! barrier: every later `sync` fails until the store is reopened.
//!
//! The fsyncs go through the store's [`StorageIo`] (sled's flush counts as
//! one write there), so tests can fail them and the power-loss model knows
//! when sled's files were last made durable.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::storage::disk::StorageIo;

/// How durable an acknowledged write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityMode {
    /// Acknowledged writes survive kill -9 and power loss (fsync before the
    /// acknowledgement). The default.
    Sync,
    /// Acknowledged writes survive kill -9 of the host (they are in the OS
    /// page cache) but the last `interval` of writes may be lost on power
    /// loss or an OS crash.
    Relaxed { interval: Duration },
}

#[derive(Debug, Default)]
struct State {
    /// Sync requests handed out so far.
    requested: u64,
    /// Every request up to this one is durable.
    synced: u64,
    syncing: bool,
    /// The failure that poisoned the barrier; its kind is kept, so a full
    /// disk stays recognisable.
    poisoned: Option<(std::io::ErrorKind, String)>,
    /// How many fsync rounds ran (for tests and benchmarks).
    rounds: u64,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    dir: PathBuf,
    mode: DurabilityMode,
    io: StorageIo,
    state: Mutex<State>,
    done: Condvar,
}

/// The durability barrier of one sled database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Durability {
    inner: Arc<Inner>,
}

impl Durability {
    pub fn new(db: sled::Db, dir: PathBuf, mode: DurabilityMode) -> Self {
        Self::with_io(db, dir, mode, StorageIo::default())
    }

    /// Like [`new`](Self::new), with the fsyncs going through `io`.
    pub fn with_io(db: sled::Db, dir: PathBuf, mode: DurabilityMode, io: StorageIo) -> Self {
        let inner = Arc::new(Inner {
            db,
            dir,
            mode,
            io,
            state: Mutex::new(State::default()),
            done: Condvar::new(),
        });
        if let DurabilityMode::Relaxed { interval } = mode {
            let weak = Arc::downgrade(&inner);
            let _ = std::thread::Builder::new()
                .name("vessel-flush".into())
                .spawn(move || {
                    while let Some(inner) = weak.upgrade() {
                        let _ = Durability { inner }.round();
                        std::thread::sleep(interval);
                    }
                });
        }
        Durability { inner }
    }

    pub fn mode(&self) -> DurabilityMode {
        self.inner.mode
    }

    /// How many flush+fsync rounds have run.
    pub fn rounds(&self) -> u64 {
        self.inner.state.lock().map(|s| s.rounds).unwrap_or(0)
    }

    /// Returns once every write made before the call is durable under the
    /// configured mode.
    pub fn sync(&self) -> std::io::Result<()> {
        match self.inner.mode {
            // The write is in sled's memory; flushing to the OS makes it
            // survive the death of this process.
            DurabilityMode::Relaxed { .. } => {
                self.inner.io.external_write(&self.inner.dir)?;
                self.inner.db.flush().map(drop).map_err(to_io)
            }
            DurabilityMode::Sync => self.sync_group(),
        }
    }

    fn sync_group(&self) -> std::io::Result<()> {
        let mut st = self.lock()?;
        st.requested += 1;
        let mine = st.requested;
        loop {
            if let Some((kind, p)) = &st.poisoned {
                return Err(std::io::Error::new(
                    *kind,
                    format!("an earlier fsync failed ({p}); reopen the store"),
                ));
            }
            if st.synced >= mine {
                return Ok(());
            }
            if !st.syncing {
                st.syncing = true;
                let target = st.requested;
                drop(st);
                let result = self.flush_and_fsync();
                st = self.lock()?;
                st.syncing = false;
                st.rounds += 1;
                match result {
                    Ok(()) => st.synced = st.synced.max(target),
                    Err(e) => st.poisoned = Some((e.kind(), e.to_string())),
                }
                self.inner.done.notify_all();
                continue;
            }
            st = self
                .inner
                .done
                .wait(st)
                .map_err(|_| std::io::Error::other("durability lock poisoned"))?;
        }
    }

    /// One background round (relaxed mode).
    fn round(&self) -> std::io::Result<()> {
        let r = self.flush_and_fsync();
        if let Ok(mut st) = self.lock() {
            st.rounds += 1;
        }
        r
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, State>> {
        self.inner
            .state
            .lock()
            .map_err(|_| std::io::Error::other("durability lock poisoned"))
    }

    fn flush_and_fsync(&self) -> std::io::Result<()> {
        let (io, dir) = (&self.inner.io, &self.inner.dir);
        io.external_write(dir)?;
        self.inner.db.flush().map_err(to_io)?;
        fsync_tree(io, dir)?;
        io.external_synced(dir);
        Ok(())
    }
}

fn to_io(e: sled::Error) -> std::io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

/// fsyncs every regular file under `dir` (sled's log, config and blob files)
/// and the directories themselves, so new files' directory entries are
/// durable too.
///
/// sled renames and removes files while it runs: a snapshot is written as
/// `snap.N.generating`, fsynced by sled, renamed to `snap.N`, and older
/// snapshots and garbage blob files are removed. An entry listed here and
/// gone when opened is such a file; it holds nothing an acknowledged write
/// needs (a renamed one is covered by the directory's fsync at the end), so
/// it is skipped. Failing instead poisoned the barrier, and every later
/// write of the process failed.
fn fsync_tree(io: &StorageIo, dir: &std::path::Path) -> std::io::Result<()> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let synced = if ty.is_dir() {
            fsync_tree(io, &entry.path())
        } else if ty.is_file() {
            io.sync_file_at(&entry.path())
        } else {
            Ok(())
        };
        match synced {
            Err(e) if !gone(&e) => return Err(e),
            _ => {}
        }
    }
    io.sync_dir(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path, mode: DurabilityMode) -> (sled::Db, Durability) {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .open()
            .unwrap();
        let d = Durability::new(db.clone(), dir.to_owned(), mode);
        (db, d)
    }

    #[test]
    fn sync_mode_fsyncs_before_every_acknowledgement() {
        let dir = tempfile::tempdir().unwrap();
        let (db, d) = open(dir.path(), DurabilityMode::Sync);
        for i in 0..5u8 {
            db.insert([i], &[i][..]).unwrap();
            let before = d.rounds();
            d.sync().unwrap();
            assert!(d.rounds() > before, "write {i} was acknowledged unsynced");
        }
    }

    #[test]
    fn relaxed_mode_acknowledges_without_fsync_and_fsyncs_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        // A long interval: only the flusher's first round can run.
        let (db, d) = open(
            dir.path(),
            DurabilityMode::Relaxed {
                interval: Duration::from_secs(3600),
            },
        );
        // Wait for that first round, so that any later one is the writes'.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while d.rounds() == 0 {
            assert!(std::time::Instant::now() < deadline, "no first round");
            std::thread::sleep(Duration::from_millis(5));
        }
        let base = d.rounds();
        for i in 0..20u8 {
            db.insert([i], &[i][..]).unwrap();
            d.sync().unwrap();
        }
        assert_eq!(d.rounds(), base, "relaxed writes must not wait for fsync");
        drop((db, d));

        // A short interval: rounds keep coming without any write.
        let dir = tempfile::tempdir().unwrap();
        let (_db, d) = open(
            dir.path(),
            DurabilityMode::Relaxed {
                interval: Duration::from_millis(10),
            },
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while d.rounds() < 3 {
            assert!(std::time::Instant::now() < deadline, "no background fsync");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
