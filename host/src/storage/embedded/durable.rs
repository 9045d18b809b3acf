//! Making sled writes durable, with group commit.
//!
//! sled 0.34.7's `flush()` writes its log out with `sync_file_range`, which
//! neither flushes the disk's cache nor the file's metadata: it is not an
//! fsync. [`Durability::sync`] therefore flushes sled and then makes its
//! files durable: an fdatasync of the log (`db`, where every write lands;
//! its bytes and size, not its times, which would cost a journal commit),
//! and an fsync of each file sled added or changed since the last round
//! (snapshots, blob files of large values; all of them on the first round)
//! and of each directory whose entries changed. Writers that call `sync`
//! while a sync is running wait for the next one, which covers all of them:
//! one round serves many writes.
//!
//! After a failed fsync the kernel may have dropped the dirty pages, so a
//! retry could "succeed" without the data. A failure therefore poisons the
//! barrier: every later `sync` fails until the store is reopened.
//!
//! `sync` is a [`Durability::ticket`] then a [`Durability::wait`] for it. A
//! writer that must not hold its locks through the fsync takes the ticket
//! right after its write, lets go, and waits; a reader that saw that write
//! waits on the same ticket (see `volume/visible.rs`).
//!
//! The fsyncs go through the store's [`StorageIo`] (sled's flush counts as
//! one write there), so tests can fail them and the power-loss model knows
//! when sled's files were last made durable.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
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
    /// What the last round saw durable (see [`Census`]).
    census: Mutex<Census>,
}

/// The files and directory entries under sled's directory as of the last
/// successful round, so a round fsyncs only what changed since.
#[derive(Debug, Default)]
struct Census {
    /// File → (length, modification time) when it was last fsynced.
    files: HashMap<PathBuf, (u64, Option<std::time::SystemTime>)>,
    /// Directory → the names in it when it was last fsynced.
    dirs: HashMap<PathBuf, BTreeSet<OsString>>,
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
            census: Mutex::new(Census::default()),
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
        let ticket = self.ticket()?;
        self.wait(ticket)
    }

    /// A ticket for the writes made so far: [`wait`](Self::wait) with it
    /// returns once they are durable. Taking the ticket right after a
    /// write and waiting later (after letting go of locks) is `sync`
    /// split in two; a reader that saw that write can wait on the same
    /// ticket instead of asking for a round of its own.
    pub fn ticket(&self) -> std::io::Result<u64> {
        let mut st = self.lock()?;
        st.requested += 1;
        Ok(st.requested)
    }

    /// Returns once every write made before `ticket` was taken is durable
    /// under the configured mode, leading a round if none is running.
    pub fn wait(&self, ticket: u64) -> std::io::Result<()> {
        match self.inner.mode {
            // The write is in sled's memory; flushing to the OS makes it
            // survive the death of this process.
            DurabilityMode::Relaxed { .. } => {
                self.inner.io.external_write(&self.inner.dir)?;
                self.inner.db.flush().map(drop).map_err(to_io)
            }
            DurabilityMode::Sync => self.sync_group(ticket),
        }
    }

    /// Whether the writes before `ticket` are known durable: a round that
    /// covered them succeeded (sync mode only; relaxed rounds are not
    /// counted).
    pub fn covered(&self, ticket: u64) -> bool {
        self.lock().is_ok_and(|st| st.synced >= ticket)
    }

    /// Whether a failed round poisoned the barrier (every later wait for a
    /// write it did not cover fails until the store is reopened).
    pub fn is_poisoned(&self) -> bool {
        self.lock().map_or(true, |st| st.poisoned.is_some())
    }

    /// The error every wait returns once the barrier is poisoned, so a
    /// writer can refuse before it changes anything.
    pub fn healthy(&self) -> std::io::Result<()> {
        match &self.lock()?.poisoned {
            Some((kind, p)) => Err(poisoned(*kind, p)),
            None => Ok(()),
        }
    }

    /// Flushes sled and fsyncs its files now, whatever the mode (the dict
    /// log calls it before it drops records sled holds).
    pub(crate) fn checkpoint(&self) -> std::io::Result<()> {
        let ticket = self.ticket()?;
        self.sync_group(ticket)
    }

    fn sync_group(&self, mine: u64) -> std::io::Result<()> {
        let mut st = self.lock()?;
        loop {
            // Covered before the barrier was poisoned: durable all the
            // same (a reader may wait on an older writer's ticket).
            if st.synced >= mine {
                return Ok(());
            }
            if let Some((kind, p)) = &st.poisoned {
                return Err(poisoned(*kind, p));
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
        let log = dir.join(SLED_LOG);
        io.sync_data_at(&log)?;
        let mut census = self
            .inner
            .census
            .lock()
            .map_err(|_| std::io::Error::other("durability census poisoned"))?;
        let synced = sync_changes(io, dir, &log, &mut census);
        if synced.is_err() {
            // Start over on the next round: fsync everything again.
            *census = Census::default();
        }
        synced?;
        io.external_synced(dir);
        Ok(())
    }
}

/// What a wait answers once a failed round poisoned the barrier.
fn poisoned(kind: std::io::ErrorKind, failure: &str) -> std::io::Error {
    std::io::Error::new(
        kind,
        format!("an earlier fsync failed ({failure}); reopen the store"),
    )
}

fn to_io(e: sled::Error) -> std::io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

/// The file sled 0.34 appends every write to, in its directory.
const SLED_LOG: &str = "db";

/// fsyncs every regular file under `dir` that is new or changed since the
/// census was taken (except `log`, which the caller syncs every round), and
/// every directory whose names changed, so new files' entries are durable
/// too; then records what it saw. sled writes its other files once (a
/// snapshot, a large value's blob file, its config), so a new name is new
/// data; the length and modification time catch anything else.
///
/// sled renames and removes files while it runs: a snapshot is written as
/// `snap.N.generating`, fsynced by sled, renamed to `snap.N`, and older
/// snapshots and garbage blob files are removed. An entry listed here and
/// gone when opened is such a file; it holds nothing an acknowledged write
/// needs (a renamed one is covered by the directory's fsync), so it is
/// skipped. Failing instead poisoned the barrier, and every later write of
/// the process failed.
fn sync_changes(
    io: &StorageIo,
    dir: &std::path::Path,
    log: &std::path::Path,
    census: &mut Census,
) -> std::io::Result<()> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            names.insert(entry.file_name());
            match sync_changes(io, &path, log, census) {
                Err(e) if !gone(&e) => return Err(e),
                _ => {}
            }
            continue;
        }
        if !ty.is_file() {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        names.insert(entry.file_name());
        let stamp = (meta.len(), meta.modified().ok());
        if path == log || census.files.get(&path) == Some(&stamp) {
            continue;
        }
        match io.sync_file_at(&path) {
            Err(e) if gone(&e) => {
                names.remove(&entry.file_name());
            }
            Err(e) => return Err(e),
            Ok(()) => {
                census.files.insert(path, stamp);
            }
        }
    }
    if census.dirs.get(dir) != Some(&names) {
        io.sync_dir(dir)?;
        census.files.retain(|p, _| {
            p.parent() != Some(dir) || p.file_name().is_some_and(|n| names.contains(n))
        });
        census.dirs.insert(dir.to_owned(), names);
    }
    Ok(())
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
