//! The dicts' write-ahead log: what makes a dict write durable with one
//! fdatasync instead of sled's transaction machinery plus a flush.
//!
//! sled 0.34.7 writes to disk inside every transaction (`pin_log` rolls its
//! I/O buffer and seals a batch manifest, each a `pwrite` plus a waiting
//! `sync_file_range`), and its `flush` is not an fsync either. A durable
//! dict put through sled alone therefore cost several disk writes. Instead
//! every dict change is a [`Batch`] of physical tree writes (set or remove
//! one key of one tree), and:
//!
//! 1. Under the writer lock the batch reads what it needs (its own writes,
//!    then the writes still pending, then sled), becomes a record with the
//!    next sequence number, and is appended to the log file (`wal/<gen>`,
//!    through the store's [`StorageIo`], so faults and the power-loss model
//!    see it). Its writes go into the pending overlay, so the next batch
//!    reads them.
//! 2. In the default (sync) mode the writer waits for a round: one
//!    fdatasync of the log covers every record appended before it (group
//!    commit), and then those records are applied to sled with plain
//!    inserts and removes. Readers that go to sled directly therefore
//!    never see a write before it is durable.
//! 3. When the log passes [`CHECKPOINT_BYTES`], the `applied` marker (the
//!    last record's sequence number, in the `wal` tree) is written, sled
//!    is flushed and fsynced (see `durable`), and a new, empty log file
//!    replaces the old one.
//!
//! On open every log file is replayed: the records after the marker, in
//! sequence order, are applied again, and a checkpoint follows. A record's
//! writes are absolute (the bytes to store, not a delta), so applying again
//! what sled already kept is harmless, and whatever part of its unsynced
//! writes sled kept through a crash (not necessarily a prefix of them:
//! unsynced pages reach the disk in any order), every key a record since
//! the checkpoint wrote ends as the last such record left it. Since sled
//! only ever receives a record after the record is durable in the log,
//! nothing sled kept is missing from the log.
//! Files are append-only and each starts after a checkpoint, so a record
//! whose number is not the next one ends the replay of its file (a torn or
//! unsynced tail; its writer was never answered).
//!
//! In relaxed mode a record is applied to sled at once, atomically (one
//! sled transaction), and the log is not fsynced: it lets writes survive
//! kill -9 without a flush per write, and the periodic sled fsync of
//! `durable` bounds what a power loss takes.
//!
//! A caller on an async worker can take the wait out of the write: inside
//! [`Wal::deferring`] a write returns once its record is appended, and the
//! caller awaits [`Wal::durable`] before it answers, so waiting for another
//! writer's round holds no thread (16 guests on 2 cores otherwise hand
//! their workers to fresh threads for every wait).
//!
//! Reads outside a batch may go through a small row cache
//! ([`Wal::cached_get`]) that every applied write keeps right.
//!
//! A failed append, fsync or apply poisons the log: the bytes on disk are
//! no longer known, so every later write fails until the store is
//! reopened (and replays what did reach the disk).

mod codec;
mod rounds;
mod rows;

pub use codec::check_log;
use codec::*;
use rounds::*;
use rows::*;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional, Tree};

use super::durable::{Durability, DurabilityMode};
use crate::storage::disk::{IoFile, IoSyncer, StorageIo};

/// The tree holding the `applied` marker and the dict id counter. Outside
/// the `dicts/` prefix, so the dict tree collector never sees it.
const STATE_TREE: &str = "wal";
const APPLIED: &[u8] = b"applied";
/// The last id handed out by [`Batch::new_id`].
const NEXT_ID: &[u8] = b"next-id";
/// A log file past this size is checkpointed and replaced.
pub const CHECKPOINT_BYTES: u64 = 64 << 20;
/// The log is zero-filled this far ahead of its end, so that appending a
/// record does not change the file's size or allocate blocks, and its
/// fdatasync writes the record's page alone (measured here: 43 µs instead
/// of 57 µs for write + fdatasync of a growing file).
const PREALLOCATE: u64 = 1 << 20;
/// The first zero-fill of a log file (see [`Writer::append`]).
const FIRST_PREALLOCATE: u64 = 64 << 10;
/// Record header: payload length (u64), sequence number (u64), CRC-32 of
/// the sequence number and payload (u32).
const HEADER: usize = 20;
const TAG_REMOVE: u8 = 0;
const TAG_SET: u8 = 1;

/// One physical change: `key` of `tree` set to `value`, or removed.
#[derive(Debug, Clone)]
struct Op {
    tree: Tree,
    key: IVec,
    value: Option<IVec>,
}

/// The write-ahead log of one open store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    dir: PathBuf,
    io: StorageIo,
    durability: Durability,
    state: Tree,
    relaxed: bool,
    /// [`CHECKPOINT_BYTES`], lower in tests.
    checkpoint_bytes: std::sync::atomic::AtomicU64,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    done: Condvar,
    kick: Arc<Kick>,
    cache: RowCache,
}

/// Wakes the background syncer for records nobody waits for. Apart from
/// [`Inner`], so the waiting thread does not keep the store open.
#[derive(Debug, Default)]
struct Kick {
    due: Mutex<bool>,
    cv: Condvar,
}

#[derive(Debug)]
struct Writer {
    file: IoFile,
    syncer: Arc<IoSyncer>,
    generation: u64,
    /// Bytes of records in the file.
    bytes: u64,
    /// Bytes of the file written (records, then zeros).
    allocated: u64,
    /// The sequence number of the last record appended.
    last: u64,
    /// Records appended and not yet applied to sled (sync mode).
    pending: VecDeque<(u64, Vec<Op>)>,
    /// (tree, key) → the newest pending write of it and its record.
    overlay: HashMap<(IVec, IVec), (u64, Option<IVec>)>,
    poisoned: Option<(io::ErrorKind, String)>,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Every record up to this one is durable and applied.
    synced: u64,
    syncing: bool,
    poisoned: Option<(io::ErrorKind, String)>,
    rounds: u64,
    /// Tasks awaiting [`Wal::durable`] while another round runs; woken
    /// (and emptied) when it ends, as the condvar's threads are.
    wakers: Vec<Waker>,
}

thread_local! {
    /// Inside [`Wal::deferring`]: the log (by address) and the newest
    /// record this thread's writes to it must wait for (0: none yet).
    static DEFERRED: Cell<Option<(*const Inner, u64)>> = const { Cell::new(None) };
}

/// Restores the thread's deferral state, even if the work unwinds.
struct Restore(Option<(*const Inner, u64)>);

impl Drop for Restore {
    fn drop(&mut self) {
        DEFERRED.with(|d| d.set(self.0));
    }
}

/// What a batch reads and writes, under the writer lock.
#[derive(Debug)]
pub struct Batch<'w> {
    writer: &'w Writer,
    state: &'w Tree,
    db: &'w sled::Db,
    ops: RefCell<Vec<Op>>,
    /// This batch's own writes, for its later reads.
    mine: RefCell<HashMap<(IVec, IVec), Option<IVec>>>,
    /// The newest pending record a read saw (0: none).
    seen: Cell<u64>,
}

impl Batch<'_> {
    /// The value of `key` in `tree` as of every write so far, durable or
    /// not (the caller waits for what it saw before it answers).
    pub fn get(&self, tree: &Tree, key: &[u8]) -> sled::Result<Option<IVec>> {
        let id = (tree.name(), IVec::from(key));
        if let Some(v) = self.mine.borrow().get(&id) {
            return Ok(v.clone());
        }
        if let Some((seq, v)) = self.writer.overlay.get(&id) {
            self.seen.set(self.seen.get().max(*seq));
            return Ok(v.clone());
        }
        tree.get(key)
    }

    pub fn insert(&self, tree: &Tree, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.push(tree, key.into(), Some(value.into()));
    }

    pub fn remove(&self, tree: &Tree, key: impl Into<IVec>) {
        self.push(tree, key.into(), None);
    }

    fn push(&self, tree: &Tree, key: IVec, value: Option<IVec>) {
        self.mine
            .borrow_mut()
            .insert((tree.name(), key.clone()), value.clone());
        self.ops.borrow_mut().push(Op {
            tree: tree.clone(),
            key,
            value,
        });
    }

    /// A new id, never handed out before in this store, even across a
    /// power loss: the counter is written by this batch, so it is as
    /// durable as the batch (sled's own id generator persists through its
    /// flush, which is not an fsync).
    pub fn new_id(&self) -> sled::Result<u64> {
        let stored = match self.get(self.state, NEXT_ID)? {
            Some(b) => u64_of(&b).unwrap_or(0),
            None => 0,
        };
        let id = stored.saturating_add(1).max(self.db.generate_id()?);
        self.insert(self.state, NEXT_ID, &id.to_be_bytes()[..]);
        Ok(id)
    }
}

fn u64_of(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

fn poisoned(p: &(io::ErrorKind, String)) -> io::Error {
    io::Error::new(
        p.0,
        format!(
            "an earlier write to the dict log failed ({}); reopen the store",
            p.1
        ),
    )
}

fn to_io(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => io::Error::other(other.to_string()),
    }
}

fn file_name(generation: u64) -> String {
    format!("{generation:016x}")
}

impl Wal {
    /// Opens the log in `dir` (creating it durably), replays what sled
    /// lacks, checkpoints, and starts a new log file.
    pub fn open(
        db: &sled::Db,
        dir: &Path,
        io: &StorageIo,
        durability: &Durability,
    ) -> io::Result<Wal> {
        io.create_dir_all(dir)?;
        let state = db.open_tree(STATE_TREE).map_err(to_io)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            match name.to_str().and_then(|n| u64::from_str_radix(n, 16).ok()) {
                Some(generation) if name.len() == 16 => files.push((generation, entry.path())),
                // A half-made file of a killed checkpoint, or not ours.
                _ => {}
            }
        }
        files.sort();
        let mut applied = match state.get(APPLIED).map_err(to_io)? {
            Some(b) => u64_of(&b).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the dict log marker is malformed",
                )
            })?,
            None => 0,
        };
        let mut any_record = false;
        for (_, path) in &files {
            let bytes = std::fs::read(path)?;
            let (last, seen) = replay(db, &state, &bytes, applied)?;
            applied = last;
            any_record |= seen;
        }
        // sled now holds every record: make it durable before the files
        // that hold them go. Files without a record (a process that only
        // read) hold nothing, and opening needs no fsync round for them.
        if any_record {
            durability.checkpoint()?;
        }
        let generation = files.last().map_or(1, |(g, _)| g.saturating_add(1));
        let file = io.create_new(&dir.join(file_name(generation)))?;
        io.sync_dir(dir)?;
        for (_, path) in &files {
            // An old file left behind holds only applied records.
            if let Err(e) = io.remove_file(path) {
                tracing::warn!("cannot remove the old dict log {}: {e}", path.display());
            }
        }
        let inner = Arc::new(Inner {
            db: db.clone(),
            dir: dir.to_owned(),
            io: io.clone(),
            durability: durability.clone(),
            state,
            relaxed: matches!(durability.mode(), DurabilityMode::Relaxed { .. }),
            checkpoint_bytes: CHECKPOINT_BYTES.into(),
            writer: Mutex::new(Writer {
                syncer: Arc::new(file.syncer()?),
                file,
                generation,
                bytes: 0,
                allocated: 0,
                last: applied,
                pending: VecDeque::new(),
                overlay: HashMap::new(),
                poisoned: None,
            }),
            sync: Mutex::new(SyncState {
                synced: applied,
                ..SyncState::default()
            }),
            done: Condvar::new(),
            kick: Arc::new(Kick::default()),
            cache: RowCache::default(),
        });
        if !inner.relaxed {
            let (weak, kick) = (Arc::downgrade(&inner), inner.kick.clone());
            let _ = std::thread::Builder::new()
                .name("vessel-dict-log".into())
                .spawn(move || background(&weak, &kick));
        }
        Ok(Wal { inner })
    }

    /// Runs `f` on `key`'s row of `tree` as sled holds it (`None` when
    /// there is none), from the read cache when it is there: a hot row
    /// costs a hash lookup instead of a walk down sled's tree (the dict
    /// bench: a host `DictStore::get` took 414 ns, 1.67x a raw sled get,
    /// without it and 264 ns, 1.08x, with it). Only reads outside a
    /// [`Batch`] (which sees writes sled does not have yet) may use it.
    /// See [`RowCache`]. `name` is the tree's (`Tree::name` clones a
    /// shared count; callers keep it).
    pub fn cached_get<R>(
        &self,
        tree: &Tree,
        name: &[u8],
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> sled::Result<Option<R>> {
        self.inner.cache.get(tree, name, key, f)
    }

    /// Drops the cached rows of a tree no dict uses any more.
    pub fn forget_tree(&self, name: &[u8]) {
        self.inner.cache.forget_tree(name);
    }

    /// Why the log refuses writes, when a failed append or fsync poisoned
    /// it (until the store is reopened).
    pub fn poisoned(&self) -> Option<String> {
        let w = self.inner.lock_writer().ok()?;
        if let Some((_, why)) = &w.poisoned {
            return Some(why.clone());
        }
        drop(w);
        let st = self.inner.lock_sync().ok()?;
        st.poisoned.as_ref().map(|(_, why)| why.clone())
    }

    /// How many fsync rounds of the log have run.
    pub fn rounds(&self) -> u64 {
        self.inner.sync.lock().map(|s| s.rounds).unwrap_or(0)
    }

    /// Runs `f` under the writer lock and logs what it wrote as one record.
    /// With `wait` (every write a caller is answered about), returns once
    /// the record is durable under the store's mode and applied to sled;
    /// without, a background round applies it soon (refreshes of access
    /// times, which may be lost). Either way it waits for any pending
    /// write `f` read, so an answer never rests on a write that could
    /// still be lost.
    pub fn transact<R, E>(
        &self,
        wait: bool,
        io_err: impl Fn(io::Error) -> E,
        f: impl FnOnce(&Batch<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let inner = &*self.inner;
        let mut w = inner.lock_writer().map_err(&io_err)?;
        if let Some(p) = &w.poisoned {
            return Err(io_err(poisoned(p)));
        }
        let batch = Batch {
            writer: &w,
            state: &inner.state,
            db: &inner.db,
            ops: RefCell::new(Vec::new()),
            mine: RefCell::new(HashMap::new()),
            seen: Cell::new(0),
        };
        let r = f(&batch);
        let seen = batch.seen.get();
        let r = match r {
            Ok(r) => r,
            // A refusal (a version mismatch, say) is an answer too: it waits
            // for what it read.
            Err(e) => {
                drop(w);
                if seen > 0 {
                    self.wait_synced(seen).map_err(&io_err)?;
                }
                return Err(e);
            }
        };
        let ops = batch.ops.into_inner();
        if ops.is_empty() {
            drop(w);
            if seen > 0 {
                self.wait_synced(seen).map_err(&io_err)?;
            }
            return Ok(r);
        }
        let seq = w.last.saturating_add(1);
        let record = encode(seq, &ops);
        if let Err(e) = w.append(&record) {
            w.poisoned = Some((e.kind(), e.to_string()));
            return Err(io_err(e));
        }
        w.last = seq;
        if inner.relaxed {
            if let Err(e) = inner
                .cache
                .apply(&ops, || apply_atomic(&inner.state, seq, &ops))
            {
                w.poisoned = Some((e.kind(), e.to_string()));
                return Err(io_err(e));
            }
            if w.bytes
                > inner
                    .checkpoint_bytes
                    .load(std::sync::atomic::Ordering::Relaxed)
            {
                inner.checkpoint(&mut w).map_err(&io_err)?;
            }
            return Ok(r);
        }
        for op in &ops {
            w.overlay
                .insert((op.tree.name(), op.key.clone()), (seq, op.value.clone()));
        }
        w.pending.push_back((seq, ops));
        drop(w);
        if wait {
            self.wait_synced(seq).map_err(&io_err)?;
        } else {
            if seen > 0 {
                self.wait_synced(seen).map_err(&io_err)?;
            }
            if let Ok(mut due) = inner.kick.due.lock() {
                *due = true;
                inner.kick.cv.notify_one();
            }
        }
        Ok(r)
    }

    /// Returns once record `seq` is durable and applied; runs the round
    /// itself if none is running (group commit: one round covers every
    /// record appended before it starts). Inside [`Wal::deferring`] it
    /// only notes `seq` for the caller to await.
    fn wait_synced(&self, seq: u64) -> io::Result<()> {
        let me = Arc::as_ptr(&self.inner);
        let deferred = DEFERRED.with(|d| match d.get() {
            Some((wal, upto)) if std::ptr::eq(wal, me) => {
                d.set(Some((wal, upto.max(seq))));
                true
            }
            _ => false,
        });
        if deferred {
            return Ok(());
        }
        wait_synced(&self.inner, seq)
    }

    /// Returns once every record appended so far is applied to sled, for
    /// readers that go to sled directly and must see every write answered
    /// or not (the expiry sweep reads sled's index and would otherwise
    /// meet an entry whose refresh is still pending, and skip it). Runs a
    /// round only if something is pending; never deferred.
    pub fn settle(&self) -> io::Result<()> {
        if self.inner.relaxed {
            // Records are applied as they are appended.
            return Ok(());
        }
        let last = self.inner.lock_writer()?.last;
        wait_synced(&self.inner, last)
    }

    /// Runs `f` with the log stopped: under the writer lock, once every
    /// record appended so far is durable and applied to sled, so sled
    /// alone holds every dict write and none lands until `f` returns (a
    /// backup copies sled meanwhile). `f` gets the last record's number,
    /// for the copy's marker ([`mark_copy`]).
    pub fn frozen<R>(&self, f: impl FnOnce(u64) -> io::Result<R>) -> io::Result<R> {
        let inner = &*self.inner;
        let mut w = inner.lock_writer()?;
        if let Some(p) = &w.poisoned {
            return Err(poisoned(p));
        }
        if let Err(e) = inner.drain_pending(&mut w) {
            w.poisoned = Some((e.kind(), e.to_string()));
            return Err(e);
        }
        f(w.last)
    }

    /// Runs `f` with this thread's waits on this log deferred: a write in
    /// it returns once its record is appended (its answer is then settled:
    /// the record is in the pending overlay every later write reads), and
    /// the newest record any of them must wait for is returned, for the
    /// caller to await with [`Wal::durable`] before it answers.
    pub fn deferring(&self, f: &mut dyn FnMut()) -> Option<u64> {
        let me = Arc::as_ptr(&self.inner);
        let outer = DEFERRED.with(|d| d.replace(Some((me, 0))));
        let restore = Restore(outer);
        f();
        let seq = DEFERRED.with(|d| d.get()).map_or(0, |(_, s)| s);
        drop(restore);
        (seq > 0).then_some(seq)
    }

    /// Runs `f` with its waits done in place even inside
    /// [`Wal::deferring`]: for changes that must be applied to sled before
    /// they return (a dict created or deleted drops cached trees after its
    /// record lands, which is only right once sled has it).
    pub fn undeferred<R>(&self, f: impl FnOnce() -> R) -> R {
        let outer = DEFERRED.with(|d| d.replace(None));
        let _restore = Restore(outer);
        f()
    }

    /// Resolves once record `seq` is durable and applied, as
    /// [`Wal::wait_synced`] returns, but without holding a thread while
    /// another writer's round runs. With no round running, the poll that
    /// finds it so runs one in place (one fdatasync, as a lone writer
    /// does).
    pub fn durable(&self, seq: u64) -> impl Future<Output = io::Result<()>> + Send + 'static {
        let inner = self.inner.clone();
        std::future::poll_fn(move |cx| match until_waiting(&inner, seq) {
            Err(e) => Poll::Ready(Err(e)),
            Ok(None) => Poll::Ready(Ok(())),
            Ok(Some(mut st)) => {
                if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    st.wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
    }
}

impl Writer {
    /// Appends a record, zero-filling ahead first when it would pass the
    /// zeros (a record larger than the step is appended as is: filling
    /// ahead of it would write it twice).
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        let len = record.len() as u64;
        let end = self.bytes.saturating_add(len);
        // The step grows with the file (64 KiB first), so a store opened
        // for one write (a CLI command) does not write a mebibyte of zeros.
        let step = self.allocated.clamp(FIRST_PREALLOCATE, PREALLOCATE);
        if end > self.allocated && len <= step {
            let zeros = vec![0u8; step as usize];
            let from = self.allocated.max(self.bytes);
            self.file.write_at(from, &zeros)?;
            self.allocated = from + step;
        }
        self.file.write_all(record)?;
        self.bytes = end;
        self.allocated = self.allocated.max(end);
        Ok(())
    }
}

impl Inner {
    fn lock_writer(&self) -> io::Result<MutexGuard<'_, Writer>> {
        self.writer
            .lock()
            .map_err(|_| io::Error::other("dict log lock poisoned"))
    }

    fn lock_sync(&self) -> io::Result<MutexGuard<'_, SyncState>> {
        self.sync
            .lock()
            .map_err(|_| io::Error::other("dict log lock poisoned"))
    }

    /// One round: fdatasync the log, apply what it covered; returns the
    /// last record now durable and applied.
    fn round(&self) -> io::Result<u64> {
        let (target, syncer) = {
            let w = self.lock_writer()?;
            if let Some(p) = &w.poisoned {
                return Err(poisoned(p));
            }
            (w.last, w.syncer.clone())
        };
        // Appends go on meanwhile; they wait for the next round.
        let synced = syncer.sync_data();
        let mut w = self.lock_writer()?;
        if let Err(e) = synced {
            w.poisoned = Some((e.kind(), e.to_string()));
            return Err(e);
        }
        if let Err(e) = apply_pending(&self.cache, &mut w, target) {
            w.poisoned = Some((e.kind(), e.to_string()));
            return Err(e);
        }
        if w.bytes
            > self
                .checkpoint_bytes
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            // sled's flush and fsyncs can take milliseconds.
            return crate::blocking::off_worker(|| self.checkpoint(&mut w));
        }
        Ok(target)
    }

    /// Makes every record appended so far durable and applies it to sled
    /// (the caller poisons the log if this fails).
    fn drain_pending(&self, w: &mut Writer) -> io::Result<()> {
        if !w.pending.is_empty() {
            w.syncer.sync_data()?;
            apply_pending(&self.cache, w, u64::MAX)?;
        }
        Ok(())
    }

    /// Makes sled hold every record durably and starts a new log file;
    /// returns the last record (all are durable and applied).
    fn checkpoint(&self, w: &mut Writer) -> io::Result<u64> {
        let result = (|| -> io::Result<u64> {
            self.drain_pending(w)?;
            mark(&self.state, w.last)?;
            self.durability.checkpoint()?;
            let generation = w.generation.saturating_add(1);
            let file = self.io.create_new(&self.dir.join(file_name(generation)))?;
            self.io.sync_dir(&self.dir)?;
            let old = self.dir.join(file_name(w.generation));
            w.syncer = Arc::new(file.syncer()?);
            w.file = file;
            w.generation = generation;
            w.bytes = 0;
            w.allocated = 0;
            if let Err(e) = self.io.remove_file(&old) {
                tracing::warn!("cannot remove the old dict log {}: {e}", old.display());
            }
            Ok(w.last)
        })();
        if let Err(e) = &result {
            w.poisoned = Some((e.kind(), e.to_string()));
        }
        result
    }
}

/// Applies the pending records up to `upto` to sled, each followed by the
/// marker, and drops their writes from the overlay.
/// The marker is not written here but at checkpoints, just before sled is
/// made durable: sled's unsynced writes need not survive a power cut as a
/// prefix of what it was given, so a newer marker could outlive the writes
/// it vouches for. Replaying every record since the checkpoint instead is
/// harmless, since applying a record again is.
fn apply_pending(cache: &RowCache, w: &mut Writer, upto: u64) -> io::Result<()> {
    while w.pending.front().is_some_and(|(seq, _)| *seq <= upto) {
        let Some((seq, ops)) = w.pending.pop_front() else {
            break;
        };
        cache.apply(&ops, || apply_ops(&ops))?;
        for op in ops {
            let id = (op.tree.name(), op.key);
            if w.overlay.get(&id).is_some_and(|(s, _)| *s == seq) {
                w.overlay.remove(&id);
            }
        }
    }
    Ok(())
}

fn apply_ops(ops: &[Op]) -> io::Result<()> {
    for op in ops {
        match &op.value {
            Some(v) => op.tree.insert(&op.key, v.clone()).map_err(to_io)?,
            None => op.tree.remove(&op.key).map_err(to_io)?,
        };
    }
    Ok(())
}

/// Marks every record up to `last` applied in a copy of a store's sled
/// database (a backup made under [`Wal::frozen`]), so opening the copy
/// replays nothing and numbers its records on from `last`.
pub fn mark_copy(db: &sled::Db, last: u64) -> io::Result<()> {
    mark(&db.open_tree(STATE_TREE).map_err(to_io)?, last)
}

fn mark(state: &Tree, seq: u64) -> io::Result<()> {
    state
        .insert(APPLIED, &seq.to_be_bytes()[..])
        .map_err(to_io)?;
    Ok(())
}

/// Applies one record and its marker in one sled transaction.
fn apply_atomic(state: &Tree, seq: u64, ops: &[Op]) -> io::Result<()> {
    let mut trees: Vec<&Tree> = vec![state];
    let mut slot = Vec::with_capacity(ops.len());
    for op in ops {
        let name = op.tree.name();
        let i = match trees.iter().position(|t| t.name() == name) {
            Some(i) => i,
            None => {
                trees.push(&op.tree);
                trees.len() - 1
            }
        };
        slot.push(i);
    }
    trees
        .as_slice()
        .transaction(|txs| {
            for (op, i) in ops.iter().zip(&slot) {
                let Some(t) = txs.get(*i) else {
                    return Err(ConflictableTransactionError::Abort(()));
                };
                match &op.value {
                    Some(v) => t.insert(&op.key, v.clone())?,
                    None => t.remove(&op.key)?,
                };
            }
            if let Some(t) = txs.first() {
                t.insert(APPLIED, &seq.to_be_bytes()[..])?;
            }
            Ok(())
        })
        .map_err(|e| match e {
            TransactionError::Storage(e) => to_io(e),
            TransactionError::Abort(()) => io::Error::other("dict log apply lost a tree"),
        })
}

#[cfg(test)]
mod tests;
