//! [`DictStore`] over sled: the embedded backend's dicts.
//!
//! # Layout
//!
//! - `dicts/meta`: one record per dict name ([`Meta`]): creation time, the
//!   dict's version counter, its live-entry count and the ids of its trees.
//!   A deleted dict leaves a tombstone so its counter (and with it every
//!   version and fencing token) keeps growing if the name is created again.
//! - `dicts/<data id>/e`: the entries, key bytes → [`Header`] + value.
//! - `dicts/<data id>/x`: the expiry index, one key per entry:
//!   `[0][last access][key]` for entries on the idle clock and
//!   `[1][deadline][key]` for entries with their own TTL. Both are ordered by
//!   time, so finding what is due is a range read, never a full scan. Storing
//!   the access time (not access + idle) keeps the index right when the idle
//!   period is reconfigured.
//! - `dicts/<lease id>/l`: leases, key → token and expiry.
//!
//! `clear` points the dict at a fresh data id in one write (O(1) for
//! the caller's atomicity), then empties the old trees. Leases live in their
//! own tree and survive `clear`: a lock is not an entry.
//!
//! # Atomicity and durability
//!
//! Every change is one record of the store's dict log ([`super::wal`]):
//! it runs under the log's writer lock, reads the dict's meta record and
//! entries as of every earlier write, and its tree writes are appended as
//! one record, made durable by one fdatasync shared with every concurrent
//! writer (group commit), and only then applied to sled. A change returns
//! once its record is durable and applied, so plain reads, which go to
//! sled outside the lock (finding the dict's entries tree in an in-memory
//! cache that create, clear and delete invalidate, [`ReadCache`]), never
//! see a write that a crash could still take away.
//!
//! # Expiry
//!
//! An entry without a TTL expires after the idle period without a read or a
//! write. To avoid a write per read, a read refreshes the stored access time
//! only when it is older than `idle / 32` ([`TOUCH_FRACTION`](crate::storage::dict::expiry::TOUCH_FRACTION)); so that no
//! entry expires early, the deadline is `access + idle + idle / 32`. An entry
//! therefore lives at least the idle period after its last read or write and
//! at most 1/32 of it longer (7 days + 5¼ hours by default). A read does
//! not wait for its refresh to be durable (the log's background round
//! applies it): a crash can lose one, and the entry then expires up to that
//! slack earlier. Scans do not refresh (they list, they do not read
//! a value for use).
//!
//! Expired entries are invisible at once (every read checks), are removed
//! lazily by the reads that find them and by [`DictStore::sweep_expired`]
//! (run in the background by [`spawn_sweeper`](crate::storage::dict::spawn_sweeper)), and `len` removes every due
//! entry before it answers, so the count is exact.
//!
//! [`Durability::sync`]: super::Durability::sync

mod codec;
mod store;

pub use codec::check_stored_record;
use codec::*;
use store::Loaded;

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use sled::{IVec, Tree};

use super::EmbeddedStore;
use super::wal::Batch;
use crate::storage::blobs::{BlobError, BlobId};
use crate::storage::dict::expiry::{self, slack};
pub use crate::storage::dict::{
    DEFAULT_IDLE_EXPIRY_MS, MAX_KEY_BYTES, MAX_SCAN_LIMIT, MAX_UPDATE_ENTRIES, MAX_VALUE_BYTES,
};
use crate::storage::dict::{
    DictBackend, DictEntry, DictError, DictInfo, DictLimits, DurableWait, LeaseInfo, PutOptions,
    PutOutcome, ScanItem, ScanPage, parse_counter,
};
use crate::storage::disk::is_disk_full;

/// Due entries removed per write, so one purge never holds the dict log's
/// writer lock for long.
const PURGE_BATCH: usize = 256;
const META_TREE: &str = "dicts/meta";
const TREE_PREFIX: &str = "dicts/";
const FORMAT: u8 = 1;
/// An entry whose value is in the blob folder (see `codec`).
const FORMAT_EXTERNAL: u8 = 2;
const ENTRY_HEADER: usize = 25;
const TAG_IDLE: u8 = 0;
const TAG_TTL: u8 = 1;

/// Mutable dict settings and bookkeeping of one open embedded store.
#[derive(Debug)]
pub struct DictState {
    idle_ms: AtomicU64,
    /// The meta tree, opened once (every operation reads it).
    meta: OnceLock<Tree>,
    /// The entries tree of each recently read dict (see
    /// [`EmbeddedStore::dict_read_tree`]).
    reads: RwLock<ReadCache>,
    /// Trees no dict referenced at the previous sweep; dropped at the next
    /// one if still unreferenced (see [`EmbeddedStore::gc_dict_trees`]).
    orphans: Mutex<BTreeSet<Vec<u8>>>,
}

impl DictState {
    pub fn new(idle_expiry_ms: u64) -> Self {
        DictState {
            idle_ms: AtomicU64::new(idle_expiry_ms.max(1)),
            meta: OnceLock::new(),
            reads: RwLock::new(ReadCache::default()),
            orphans: Mutex::new(BTreeSet::new()),
        }
    }
}

impl Default for DictState {
    fn default() -> Self {
        DictState::new(DEFAULT_IDLE_EXPIRY_MS)
    }
}

/// Most dicts whose entries tree [`ReadCache`] keeps; past that it starts
/// afresh.
const READ_CACHE_DICTS: usize = 1024;

/// Dict name → the entries tree of its current data, so a plain read costs
/// one sled lookup instead of a meta lookup, a decode and a tree open. One
/// process owns the database, so every change of a dict's trees (create,
/// clear, delete) goes through this store, which removes the name and bumps
/// `generation`; a reader that looked the trees up before such a change
/// sees the generation moved and does not cache what it found.
#[derive(Debug, Default)]
struct ReadCache {
    generation: u64,
    /// Dict name → its entries tree and the tree's name.
    trees: HashMap<String, (Tree, IVec)>,
}

fn be(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

fn storage(e: sled::Error) -> DictError {
    match e {
        sled::Error::Corruption { .. } => DictError::Corrupt(e.to_string()),
        sled::Error::Io(io) if is_disk_full(&io) => DictError::DiskFull(io.to_string()),
        other => DictError::Io(other.to_string()),
    }
}

/// A write the log could not make durable.
fn durability_error(e: std::io::Error) -> DictError {
    let msg = format!("cannot make the write durable: {e}");
    if is_disk_full(&e) {
        DictError::DiskFull(msg)
    } else {
        DictError::Io(msg)
    }
}

fn tree_name(id: u64, kind: char) -> String {
    format!("{TREE_PREFIX}{id:016x}/{kind}")
}

impl DictBackend for EmbeddedStore {
    fn create(&self, name: &str) -> Result<bool, DictError> {
        // Its record must be in sled before it drops cached trees.
        self.wal.undeferred(|| {
            let now = self.clock.now_ms();
            let meta_tree = self.dict_meta_tree()?;
            let created = self.wal.transact(true, durability_error, |b| {
                let counter = match b.get(&meta_tree, name.as_bytes()).map_err(storage)? {
                    Some(bytes) => {
                        let cur = Meta::decode(name, &bytes)?;
                        if !cur.deleted {
                            return Ok(false);
                        }
                        // Recreated: keep the counter so versions and fencing
                        // tokens never repeat under this name.
                        cur.counter
                    }
                    None => 0,
                };
                let meta = Meta {
                    created_ms: now,
                    counter,
                    live: 0,
                    data_id: b.new_id().map_err(storage)?,
                    lease_id: b.new_id().map_err(storage)?,
                    deleted: false,
                };
                b.insert(&meta_tree, name.as_bytes(), meta.encode());
                Ok(true)
            })?;
            if created {
                self.dict_forget_trees(name);
            }
            Ok(created)
        })
    }

    fn delete(&self, name: &str) -> Result<(), DictError> {
        // Its record must be in sled before it drops cached trees.
        self.wal.undeferred(|| {
            let old = self.dict_tx(name, |_, meta| {
                let old = *meta;
                meta.deleted = true;
                meta.live = 0;
                Ok(old)
            })?;
            self.dict_forget_trees(name);
            self.dict_empty_old_trees(&[
                tree_name(old.data_id, 'e'),
                tree_name(old.data_id, 'x'),
                tree_name(old.lease_id, 'l'),
            ])
        })
    }

    fn exists(&self, name: &str) -> Result<bool, DictError> {
        match self.dict_meta_of(name) {
            Ok(_) => Ok(true),
            Err(DictError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn list(&self) -> Result<Vec<DictInfo>, DictError> {
        let mut out = Vec::new();
        for item in self.dict_meta_tree()?.iter() {
            let (k, v) = item.map_err(storage)?;
            let name = String::from_utf8(k.to_vec())
                .map_err(|_| DictError::Corrupt("a dict name is not UTF-8".into()))?;
            let m = Meta::decode(&name, &v)?;
            if m.deleted {
                continue;
            }
            let len = match self.len(&name) {
                Ok(n) => n,
                // Deleted between the listing and the count.
                Err(DictError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            out.push(DictInfo {
                name,
                len,
                created_ms: m.created_ms,
            });
        }
        Ok(out)
    }

    fn get(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError> {
        // The name is checked by `dict_with_read_tree` on a cache miss.
        // Fast path: a read with nothing to record needs no log record. It
        // copies the value out of the cached row in place.
        let idle = self.dict_idle_expiry_ms();
        let fast = |b: &[u8]| -> Result<Option<(u64, Loaded)>, DictError> {
            let h = Header::decode(key.as_bytes(), b)?;
            // Both checks only turn true as time passes (see
            // `Clock::now_ms_upper_bound`), so passing them at the cheap
            // upper bound settles it; only near a deadline is the precise
            // clock read.
            let fresh = |now| !h.expired(now, idle) && !h.needs_touch(now, idle);
            Ok(
                (fresh(self.clock.now_ms_upper_bound()) || fresh(self.clock.now_ms()))
                    .then(|| (h.version, Loaded::of(b))),
            )
        };
        let found = self.dict_with_read_tree(dict, |entries, name| {
            self.wal.cached_get(entries, name, key.as_bytes(), fast)
        })?;
        match found.map_err(storage)? {
            None => return Ok(None),
            Some(Ok(Some(found))) => return self.entry(found).map(Some),
            Some(Err(e)) => return Err(e),
            Some(Ok(None)) => {}
        }
        // Slow path: purge it or refresh its access time, without waiting
        // for the log (see the module docs).
        self.dict_write(dict, false, |tx, meta| {
            let Some((h, b)) = tx.read(key)? else {
                return Ok(None);
            };
            if tx.expired(&h) {
                tx.remove(key, &h);
                meta.live = meta.live.saturating_sub(1);
                return Ok(None);
            }
            if h.needs_touch(tx.now, tx.idle) {
                let touched = Header {
                    access: tx.now,
                    ..h
                };
                // The same payload: an external value is not read for it.
                tx.write(key, Some(&h), &touched, &payload_of(&b));
            }
            Ok(Some((h.version, Loaded::of(&b))))
        })?
        .map(|found| self.entry(found))
        .transpose()
    }

    fn put(
        &self,
        dict: &str,
        key: &str,
        value: &[u8],
        opts: &PutOptions,
    ) -> Result<PutOutcome, DictError> {
        let _gc = (value.len() >= EXTERNAL_VALUE_BYTES).then(|| self.blob_guard());
        let staged = self.stage(value)?;
        let outcome = self.dict_tx(dict, |tx, meta| {
            let old = tx.read(key)?;
            let live = old.as_ref().filter(|(h, _)| !tx.expired(h));
            if opts.if_absent && live.is_some() {
                return Ok(PutOutcome::Skipped);
            }
            if let Some(want) = opts.if_version
                && live.map(|(h, _)| h.version) != Some(want)
            {
                return Err(DictError::VersionMismatch { key: key.into() });
            }
            let version = meta.next_counter(dict)?;
            let h = Header {
                version,
                access: tx.now,
                deadline: opts
                    .ttl_ms
                    .map(|t| tx.now.saturating_add(t).max(1))
                    .unwrap_or(0),
            };
            if old.is_none() {
                meta.live += 1;
            }
            tx.write(key, old.as_ref().map(|(h, _)| h), &h, &staged);
            Ok(PutOutcome::Written { version })
        })?;
        // A skip reports state another writer may not have made durable yet;
        // syncing first means the answer never rests on a lost write.
        Ok(outcome)
    }

    fn pop(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError> {
        let popped = self.dict_tx(dict, |tx, meta| {
            let Some((h, b)) = tx.read(key)? else {
                return Ok(None);
            };
            tx.remove(key, &h);
            meta.live = meta.live.saturating_sub(1);
            if tx.expired(&h) {
                return Ok(None);
            }
            Ok(Some((h.version, Loaded::of(&b))))
        })?;
        // A removed entry's blob stays until gc, so it can still be read.
        popped.map(|found| self.entry(found)).transpose()
    }

    fn len(&self, dict: &str) -> Result<u64, DictError> {
        self.dict_purge_due(dict, usize::MAX)?;
        // The purge settled the log, and its own writes were waited for.
        Ok(self.dict_meta_of(dict)?.live)
    }

    fn update(&self, dict: &str, entries: &[(String, Vec<u8>)]) -> Result<(), DictError> {
        let _gc = entries
            .iter()
            .any(|(_, v)| v.len() >= EXTERNAL_VALUE_BYTES)
            .then(|| self.blob_guard());
        let staged = entries
            .iter()
            .map(|(_, v)| self.stage(v))
            .collect::<Result<Vec<_>, _>>()?;
        self.dict_tx(dict, |tx, meta| {
            for ((key, _), value) in entries.iter().zip(&staged) {
                let old = tx.read(key)?;
                let version = meta.next_counter(dict)?;
                let h = Header {
                    version,
                    access: tx.now,
                    deadline: 0,
                };
                if old.is_none() {
                    meta.live += 1;
                }
                tx.write(key, old.as_ref().map(|(h, _)| h), &h, value);
            }
            Ok(())
        })
    }

    fn remove_many(&self, dict: &str, keys: &[String]) -> Result<u64, DictError> {
        let removed = self.dict_tx(dict, |tx, meta| {
            let mut removed = 0u64;
            // A key listed twice is removed once.
            let mut seen = BTreeSet::new();
            for key in keys {
                if !seen.insert(key.as_str()) {
                    continue;
                }
                let Some((h, _)) = tx.read(key)? else {
                    continue;
                };
                tx.remove(key, &h);
                meta.live = meta.live.saturating_sub(1);
                if !tx.expired(&h) {
                    removed += 1;
                }
            }
            Ok(removed)
        })?;
        Ok(removed)
    }

    fn scan(
        &self,
        dict: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
        with_values: bool,
    ) -> Result<ScanPage, DictError> {
        let limit = limit as usize;
        let entries = self.dict_read_tree(dict)?;
        let idle = self.dict_idle_expiry_ms();
        // The cursor is the last key returned: continue strictly after it.
        // Keys are the order, so a key present throughout is returned exactly
        // once, whatever is written meanwhile.
        let start = match cursor {
            Some(c) if c.as_bytes() >= prefix.as_bytes() => Bound::Excluded(c.as_bytes().to_vec()),
            _ => Bound::Included(prefix.as_bytes().to_vec()),
        };
        let page = || -> Result<(Vec<ScanItem>, bool, bool), DictError> {
            let now = self.clock.now_ms();
            let (mut items, mut more, mut skipped) = (Vec::new(), false, false);
            for item in entries.range((start.clone(), Bound::Unbounded)) {
                let (k, v) = item.map_err(storage)?;
                if !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                let h = Header::decode(&k, &v)?;
                if h.expired(now, idle) {
                    skipped = true;
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break;
                }
                let key = String::from_utf8(k.to_vec())
                    .map_err(|_| DictError::Corrupt("a stored key is not UTF-8".into()))?;
                items.push(ScanItem {
                    key,
                    value: with_values.then(|| self.load(Loaded::of(&v))).transpose()?,
                    version: h.version,
                    size: payload_of(&v).size(),
                });
            }
            Ok((items, more, skipped))
        };
        let (mut items, mut more, skipped) = page()?;
        if skipped {
            // sled may lack a read's refresh of an entry that looks expired
            // here (refreshes are logged without waiting); once the log is
            // settled, sled has every refresh made before this scan.
            self.wal.settle().map_err(durability_error)?;
            (items, more, _) = page()?;
        }
        let cursor = if more {
            items.last().map(|i| i.key.clone())
        } else {
            None
        };
        Ok(ScanPage { items, cursor })
    }

    fn clear(&self, dict: &str) -> Result<(), DictError> {
        // Its record must be in sled before it drops cached trees.
        self.wal.undeferred(|| {
            let old = self.dict_tx(dict, |tx, meta| {
                let old = *meta;
                meta.data_id = tx.b.new_id().map_err(storage)?;
                meta.live = 0;
                Ok(old)
            })?;
            self.dict_forget_trees(dict);
            self.dict_empty_old_trees(&[tree_name(old.data_id, 'e'), tree_name(old.data_id, 'x')])
        })
    }

    fn increment(&self, dict: &str, key: &str, delta: i64) -> Result<i64, DictError> {
        let n = self.dict_tx(dict, |tx, meta| {
            let old = tx.read(key)?;
            let live = old.as_ref().filter(|(h, _)| !tx.expired(h));
            let base = match live {
                Some((_, b)) => match payload_of(b) {
                    Payload::Inline(v) => parse_counter(key, v)?,
                    // No counter's text is that long.
                    Payload::External { .. } => {
                        return Err(DictError::NotACounter { key: key.into() });
                    }
                },
                None => 0,
            };
            let n = base
                .checked_add(delta)
                .ok_or_else(|| DictError::Overflow { key: key.into() })?;
            let version = meta.next_counter(dict)?;
            let h = Header {
                version,
                access: tx.now,
                // An increment keeps the entry's own TTL, as Redis INCR does.
                deadline: live.map(|(h, _)| h.deadline).unwrap_or(0),
            };
            if old.is_none() {
                meta.live += 1;
            }
            tx.write(
                key,
                old.as_ref().map(|(h, _)| h),
                &h,
                &Payload::Inline(n.to_string().as_bytes()),
            );
            Ok(n)
        })?;
        Ok(n)
    }

    fn lock(&self, dict: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseInfo>, DictError> {
        let lease = self.dict_tx(dict, |tx, meta| {
            if let Some(b) = tx.lease(key)? {
                let (_, expires) = decode_lease(key, &b)?;
                if expires > tx.now {
                    return Ok(None);
                }
            }
            // Tokens come from the dict's counter, which only grows and
            // survives release, expiry, clear and delete: strictly growing
            // per key.
            let token = meta.next_counter(dict)?;
            let expires_at_ms = tx.now.saturating_add(ttl_ms);
            tx.b.insert(tx.l, key.as_bytes(), encode_lease(token, expires_at_ms));
            Ok(Some(LeaseInfo {
                token,
                expires_at_ms,
            }))
        })?;
        Ok(lease)
    }

    fn renew(
        &self,
        dict: &str,
        key: &str,
        token: u64,
        ttl_ms: u64,
    ) -> Result<LeaseInfo, DictError> {
        let lease = self.dict_tx(dict, |tx, _| {
            let lost = || DictError::LeaseLost { key: key.into() };
            let b = tx.lease(key)?.ok_or_else(lost)?;
            let (held, _) = decode_lease(key, &b)?;
            // An expired lease nobody took since is still ours to renew.
            if held != token {
                return Err(lost());
            }
            let expires_at_ms = tx.now.saturating_add(ttl_ms);
            tx.b.insert(tx.l, key.as_bytes(), encode_lease(token, expires_at_ms));
            Ok(LeaseInfo {
                token,
                expires_at_ms,
            })
        })?;
        Ok(lease)
    }

    fn release(&self, dict: &str, key: &str, token: u64) -> Result<(), DictError> {
        self.dict_tx(dict, |tx, _| {
            if let Some(b) = tx.lease(key)? {
                let (held, _) = decode_lease(key, &b)?;
                if held == token {
                    tx.b.remove(tx.l, key.as_bytes());
                }
            }
            Ok(())
        })
    }

    fn sweep_expired(&self, max: usize) -> Result<usize, DictError> {
        let mut names = Vec::new();
        for item in self.dict_meta_tree()?.iter() {
            let (k, v) = item.map_err(storage)?;
            let name = String::from_utf8_lossy(&k).into_owned();
            if !Meta::decode(&name, &v)?.deleted {
                names.push(name);
            }
        }
        let mut total = 0;
        for name in names {
            if total >= max {
                break;
            }
            match self.dict_purge_due(&name, max - total) {
                Ok(n) => total += n,
                Err(DictError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.gc_dict_trees()?;
        Ok(total)
    }

    /// sled serves reads from its cache or a local page read; the rare
    /// read that refreshes an access time or purges an expired entry logs
    /// a record without waiting for its fsync (it waits only if it read
    /// another writer's record still in flight; see the module docs).
    fn inline_reads(&self) -> bool {
        true
    }

    fn deferring(&self, f: &mut dyn FnMut()) -> Option<DurableWait> {
        let seq = self.wal.deferring(f)?;
        let durable = self.wal.durable(seq);
        Some(Box::pin(
            async move { durable.await.map_err(durability_error) },
        ))
    }

    fn limits(&self) -> DictLimits {
        DictLimits {
            max_key_bytes: MAX_KEY_BYTES,
            max_value_bytes: MAX_VALUE_BYTES,
            max_update_entries: MAX_UPDATE_ENTRIES,
            max_scan_limit: MAX_SCAN_LIMIT,
            idle_expiry_ms: self.dict_idle_expiry_ms(),
        }
    }
}

#[cfg(test)]
mod tests;
