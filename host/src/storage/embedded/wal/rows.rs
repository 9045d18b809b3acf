//! The log's row cache: hot dict rows in front of sled, dropped by every
//! write the log applies.

use super::*;

/// Values (with their key) at most this long are cached.
pub(super) const CACHE_ROW_BYTES: usize = 4096;
/// What the cache holds at most, keys and values; past it, it starts
/// afresh (as the dict read cache does), so hot rows come back at once.
pub(super) const CACHE_BYTES: usize = 16 << 20;

/// Hot rows in front of sled. Every write applied to sled (the only way a
/// row changes, since the log applies every dict write) removes its rows
/// after sled has it, and bumps `generation` first; a read that misses
/// notes the generation before it reads sled and caches what it found only
/// if no write was applied meanwhile. A stale row therefore either never
/// enters (the write came before the check) or is removed by the write
/// (the check came before the write's removal).
#[derive(Debug, Default)]
pub(super) struct RowCache {
    pub(super) generation: AtomicU64,
    pub(super) rows: RwLock<Rows>,
}

#[derive(Debug, Default)]
pub(super) struct Rows {
    pub(super) bytes: usize,
    /// Tree name → key → value. Keys are chosen by guests, so their maps
    /// keep SipHash (std's default): a weaker hash would let one craft
    /// collisions. Tree names are made by the store, so they take FNV.
    pub(super) trees: HashMap<IVec, HashMap<IVec, IVec>, BuildHasherDefault<TreeNameHasher>>,
}

/// FNV-1a, for tree names: the host makes them, so nobody can choose
/// colliding ones, and a get hashes one per call.
#[derive(Debug)]
pub(super) struct TreeNameHasher(u64);

impl Default for TreeNameHasher {
    fn default() -> Self {
        TreeNameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for TreeNameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl RowCache {
    /// Runs `f` on the row of `key`, from the cache when it is there. A
    /// hit runs `f` under the read lock rather than cloning the row out,
    /// which would cost a shared reference count's two atomic updates.
    pub(super) fn get<R>(
        &self,
        tree: &Tree,
        name: &[u8],
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> sled::Result<Option<R>> {
        use std::sync::atomic::Ordering;
        // A poisoned lock only turns the cache off.
        if let Ok(rows) = self.rows.read()
            && let Some(v) = rows.trees.get(name).and_then(|t| t.get(key))
        {
            return Ok(Some(f(v)));
        }
        let seen = self.generation.load(Ordering::Acquire);
        let found = tree.get(key)?;
        if let Some(v) = &found
            && key.len() + v.len() <= CACHE_ROW_BYTES
            && let Ok(mut rows) = self.rows.write()
            && self.generation.load(Ordering::Acquire) == seen
        {
            if rows.bytes + key.len() + v.len() > CACHE_BYTES {
                *rows = Rows::default();
            }
            let previous = rows
                .trees
                .entry(IVec::from(name))
                .or_default()
                .insert(IVec::from(key), v.clone());
            rows.bytes += key.len() + v.len();
            if let Some(p) = previous {
                rows.bytes = rows.bytes.saturating_sub(key.len() + p.len());
            }
        }
        Ok(found.map(|v| f(&v)))
    }

    /// Writes `ops` to sled with `write`, holding the cache's write lock
    /// throughout, then bumps the generation and drops their rows. Holding
    /// the lock is what makes it right: a reader that hits the cache waits
    /// for the write, and a reader that read sled before the write (and so
    /// the old row) checks the generation only after the bump, so it
    /// caches nothing. (Removing rows after the write without the lock let
    /// one reader see the new row from sled and then an old row another
    /// reader had cached meanwhile; `cached_reads_never_go_back_or_stay_stale`
    /// caught it.)
    pub(super) fn apply(
        &self,
        ops: &[Op],
        write: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        // A poisoned lock has turned the cache off for readers already.
        let Ok(mut rows) = self.rows.write() else {
            return write();
        };
        let written = write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let rows = &mut *rows;
        for op in ops {
            if let Some(t) = rows.trees.get_mut(&op.tree.name())
                && let Some(p) = t.remove(&op.key)
            {
                rows.bytes = rows.bytes.saturating_sub(op.key.len() + p.len());
            }
        }
        written
    }

    pub(super) fn forget_tree(&self, name: &[u8]) {
        if let Ok(mut rows) = self.rows.write()
            && let Some(t) = rows.trees.remove(name)
        {
            let freed: usize = t.iter().map(|(k, v)| k.len() + v.len()).sum();
            rows.bytes = rows.bytes.saturating_sub(freed);
        }
    }
}
