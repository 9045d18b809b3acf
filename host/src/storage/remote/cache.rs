//! The bound on a host's local blob cache: which cached blobs were used
//! least recently, and which to drop once the cache holds more than its
//! limit.
//!
//! The cache itself is a content-addressed folder (`BlobStore`) filled by
//! fetches; this index only counts. Dropping a cached file is always safe:
//! a mount that placed the blob holds a hard link (the inode lives on), and
//! the next read of a dropped blob fetches it again. The blob just fetched
//! is never the one dropped, so a cache smaller than one blob still
//! serves it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::storage::blobs::{BlobId, BlobStore};

/// The default bound: 10 GiB.
pub const DEFAULT_BLOB_CACHE_BYTES: u64 = 10 << 30;

#[derive(Debug, Default)]
struct State {
    /// Blob → (size, last use).
    entries: HashMap<BlobId, (u64, u64)>,
    /// Last use → blob, oldest first.
    by_use: BTreeMap<u64, BlobId>,
    total: u64,
    tick: u64,
}

/// The cache's size and recency, in memory.
#[derive(Debug)]
pub(crate) struct CacheIndex {
    limit: u64,
    state: Mutex<State>,
}

impl CacheIndex {
    /// Indexes what `cache` holds now, the least recently modified first
    /// (a cached blob is written once, so its mtime is when it came).
    pub(crate) fn load(cache: &BlobStore, limit: u64) -> std::io::Result<Self> {
        let mut found: Vec<(std::time::SystemTime, BlobId, u64)> = Vec::new();
        for id in cache.list()? {
            if let Ok(meta) = std::fs::metadata(cache.path(&id)) {
                let when = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                found.push((when, id, meta.len()));
            }
        }
        found.sort_unstable_by_key(|(when, _, _)| *when);
        let index = CacheIndex {
            limit,
            state: Mutex::new(State::default()),
        };
        {
            let mut s = index.lock();
            for (_, id, size) in found {
                s.use_now(id, size);
            }
        }
        Ok(index)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A cached blob was read.
    pub(crate) fn touch(&self, id: &BlobId) {
        let mut s = self.lock();
        if let Some(&(size, _)) = s.entries.get(id) {
            s.use_now(*id, size);
        }
    }

    /// Blob `id` of `size` bytes joined the cache. Returns the blobs to
    /// drop (least recently used first) so the cache is back within its
    /// limit; they are out of the index already.
    pub(crate) fn added(&self, id: BlobId, size: u64) -> Vec<BlobId> {
        let mut s = self.lock();
        s.use_now(id, size);
        let mut out = Vec::new();
        while s.total > self.limit {
            let Some((&tick, &oldest)) = s.by_use.iter().next() else {
                break;
            };
            if oldest == id {
                break;
            }
            s.by_use.remove(&tick);
            if let Some((size, _)) = s.entries.remove(&oldest) {
                s.total = s.total.saturating_sub(size);
            }
            out.push(oldest);
        }
        crate::metrics::global()
            .blob_cache_bytes
            .set(gauge(s.total));
        out
    }

    /// Blob `id` left the cache (gc removed it).
    pub(crate) fn removed(&self, id: &BlobId) {
        let mut s = self.lock();
        if let Some((size, tick)) = s.entries.remove(id) {
            s.by_use.remove(&tick);
            s.total = s.total.saturating_sub(size);
        }
        crate::metrics::global()
            .blob_cache_bytes
            .set(gauge(s.total));
    }

    /// The bytes the cache holds.
    pub(crate) fn bytes(&self) -> u64 {
        self.lock().total
    }

    /// The blobs the cache holds.
    pub(crate) fn blobs(&self) -> Vec<BlobId> {
        self.lock().entries.keys().copied().collect()
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl State {
    fn use_now(&mut self, id: BlobId, size: u64) {
        self.tick += 1;
        let tick = self.tick;
        match self.entries.insert(id, (size, tick)) {
            Some((old_size, old_tick)) => {
                self.by_use.remove(&old_tick);
                self.total = self.total.saturating_sub(old_size) + size;
            }
            None => self.total += size,
        }
        self.by_use.insert(tick, id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    #[test]
    fn the_least_recently_used_go_first_never_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let index = CacheIndex::load(&store, 100).unwrap();
        assert!(index.added(id(1), 40).is_empty());
        assert!(index.added(id(2), 40).is_empty());
        index.touch(&id(1));
        // 120 > 100: blob 2 is the least recently used.
        assert_eq!(index.added(id(3), 40), vec![id(2)]);
        assert_eq!(index.bytes(), 80);
        // A blob over the whole limit stays (it is being read), alone.
        let mut gone = index.added(id(4), 500);
        gone.sort_unstable();
        assert_eq!(gone, vec![id(1), id(3)]);
        assert_eq!(index.bytes(), 500);
        index.removed(&id(4));
        assert_eq!(index.bytes(), 0);
        assert!(index.blobs().is_empty());
    }
}
