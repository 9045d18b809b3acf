//! The embedded dicts' internals: a write's view of a dict's trees, finding
//! and caching those trees, and the expiry sweep.

use super::*;

/// The dict's trees as one write sees them (see [`super::wal`]).
pub(super) struct Tx<'a> {
    pub(super) b: &'a Batch<'a>,
    pub(super) e: &'a Tree,
    pub(super) x: &'a Tree,
    pub(super) l: &'a Tree,
    pub(super) now: u64,
    pub(super) idle: u64,
}

impl Tx<'_> {
    /// The stored entry at `key`, expired or not.
    pub(super) fn read(&self, key: &str) -> Result<Option<(Header, IVec)>, DictError> {
        match self.b.get(self.e, key.as_bytes()).map_err(storage)? {
            None => Ok(None),
            Some(b) => {
                let h = Header::decode(key.as_bytes(), &b)?;
                Ok(Some((h, b)))
            }
        }
    }

    /// Writes `key`, replacing `old`'s index key.
    pub(super) fn write(&self, key: &str, old: Option<&Header>, h: &Header, value: &Payload<'_>) {
        if let Some(o) = old {
            self.b.remove(self.x, o.index_key(key.as_bytes()));
        }
        self.b
            .insert(self.e, key.as_bytes(), h.encode_payload(value));
        self.b.insert(self.x, h.index_key(key.as_bytes()), &[][..]);
    }

    pub(super) fn remove(&self, key: &str, old: &Header) {
        self.b.remove(self.x, old.index_key(key.as_bytes()));
        self.b.remove(self.e, key.as_bytes());
    }

    pub(super) fn lease(&self, key: &str) -> Result<Option<IVec>, DictError> {
        self.b.get(self.l, key.as_bytes()).map_err(storage)
    }

    pub(super) fn expired(&self, h: &Header) -> bool {
        h.expired(self.now, self.idle)
    }
}

pub(super) struct Trees {
    pub(super) entries: Tree,
    pub(super) index: Tree,
    pub(super) leases: Tree,
}

/// An entry's value as read under a dict's lock, loaded after it (a large
/// value is a file read, which no lock should wait on).
pub(super) enum Loaded {
    Value(Vec<u8>),
    Blob(BlobId),
}

impl Loaded {
    pub(super) fn of(entry: &[u8]) -> Loaded {
        match payload_of(entry) {
            Payload::Inline(v) => Loaded::Value(v.to_vec()),
            Payload::External { id, .. } => Loaded::Blob(id),
        }
    }
}

/// A dict value's blob failure as the dict reports it.
fn blob_error(e: BlobError) -> DictError {
    match e {
        BlobError::Missing(_) | BlobError::Corrupt { .. } => {
            DictError::Corrupt(format!("a dict value's blob: {e}"))
        }
        other if other.is_disk_full() => DictError::DiskFull(other.to_string()),
        other => DictError::Io(other.to_string()),
    }
}

impl EmbeddedStore {
    /// The bytes of a value read as `loaded` (a blob is hash-checked).
    pub(super) fn load(&self, loaded: Loaded) -> Result<Vec<u8>, DictError> {
        match loaded {
            Loaded::Value(v) => Ok(v),
            Loaded::Blob(id) => self.blobs.get(&id).map_err(blob_error),
        }
    }

    /// The entry of a read that found `version` and `loaded`.
    pub(super) fn entry(&self, (version, loaded): (u64, Loaded)) -> Result<DictEntry, DictError> {
        Ok(DictEntry {
            value: self.load(loaded)?,
            version,
        })
    }

    /// `value` as an entry will hold it: from [`EXTERNAL_VALUE_BYTES`] up it
    /// is written (and fsynced) to the blob folder first, outside any
    /// dict's lock, and the entry names it. A write that then fails leaves
    /// an unreferenced blob, which gc removes.
    pub(super) fn stage<'a>(&self, value: &'a [u8]) -> Result<Payload<'a>, DictError> {
        if value.len() < EXTERNAL_VALUE_BYTES {
            return Ok(Payload::Inline(value));
        }
        let id = self.blobs.put(value).map_err(blob_error)?;
        Ok(Payload::External {
            id,
            size: value.len() as u64,
        })
    }

    /// Every blob a dict entry names, for gc to keep. One pass over every
    /// entry (gc is rare; a reference count would cost every write).
    pub(crate) fn dict_blob_refs(&self) -> Result<std::collections::HashSet<BlobId>, DictError> {
        let mut out = std::collections::HashSet::new();
        for name in self.db.tree_names() {
            // Entry trees are `dicts/<id>e`; old ones a crash left count
            // too (keeping a blob longer is safe).
            if !(name.starts_with(TREE_PREFIX.as_bytes()) && name.ends_with(b"/e")) {
                continue;
            }
            let tree = self.db.open_tree(&name).map_err(storage)?;
            for item in tree.iter().values() {
                let v = item.map_err(storage)?;
                if let Payload::External { id, .. } = payload_of(&v) {
                    out.insert(id);
                }
            }
        }
        Ok(out)
    }

    /// The idle period after which dict entries expire.
    pub fn dict_idle_expiry_ms(&self) -> u64 {
        self.dict_state.idle_ms.load(Ordering::Relaxed)
    }

    /// How many fsync rounds the dict log has run (one serves every write
    /// made while the previous one ran).
    pub fn dict_log_rounds(&self) -> u64 {
        self.wal.rounds()
    }

    /// Changes the idle period (at least 1 ms). It applies at once to every
    /// entry on the idle clock, because the store keeps access times, not
    /// deadlines.
    pub fn set_dict_idle_expiry_ms(&self, ms: u64) {
        self.dict_state.idle_ms.store(ms.max(1), Ordering::Relaxed);
    }

    pub(super) fn dict_meta_tree(&self) -> Result<Tree, DictError> {
        if let Some(t) = self.dict_state.meta.get() {
            return Ok(t.clone());
        }
        let t = self.db.open_tree(META_TREE).map_err(storage)?;
        Ok(self.dict_state.meta.get_or_init(|| t).clone())
    }

    /// The entries tree of a dict's current data, which is all a plain
    /// read needs; `NotFound` for a missing dict. Served from the
    /// [`ReadCache`] when it can be (a poisoned cache lock only turns the
    /// cache off).
    pub(super) fn dict_read_tree(&self, dict: &str) -> Result<Tree, DictError> {
        self.dict_with_read_tree(dict, |t, _| t.clone())
    }

    /// Runs `f` on the entries tree of a dict's current data and its name,
    /// borrowed from the [`ReadCache`] when they are there: a plain get
    /// then bumps no reference count that every reader shares.
    pub(super) fn dict_with_read_tree<R>(
        &self,
        dict: &str,
        f: impl FnOnce(&Tree, &[u8]) -> R,
    ) -> Result<R, DictError> {
        let generation = match self.dict_state.reads.read() {
            Ok(c) => match c.trees.get(dict) {
                Some((t, name)) => return Ok(f(t, name)),
                None => Some(c.generation),
            },
            Err(_) => None,
        };
        let meta = self.dict_meta_of(dict)?;
        let tree = self
            .db
            .open_tree(tree_name(meta.data_id, 'e'))
            .map_err(storage)?;
        let name = tree.name();
        let r = f(&tree, &name);
        if let (Some(seen), Ok(mut c)) = (generation, self.dict_state.reads.write())
            && c.generation == seen
        {
            if c.trees.len() >= READ_CACHE_DICTS {
                c.trees.clear();
            }
            c.trees.insert(dict.to_owned(), (tree, name));
        }
        Ok(r)
    }

    /// Forgets the cached trees of `dict`; called once a change of its
    /// trees or existence has committed, before the change returns.
    pub(super) fn dict_forget_trees(&self, dict: &str) {
        // A poisoned lock disables the cache for readers too (they see the
        // poison and go to the meta tree), so nothing stale is served.
        if let Ok(mut c) = self.dict_state.reads.write() {
            c.generation = c.generation.wrapping_add(1);
            c.trees.remove(dict);
        }
    }

    pub(super) fn dict_meta_of(&self, name: &str) -> Result<Meta, DictError> {
        match self
            .dict_meta_tree()?
            .get(name.as_bytes())
            .map_err(storage)?
        {
            Some(b) => {
                let m = Meta::decode(name, &b)?;
                if m.deleted {
                    Err(DictError::NotFound(name.into()))
                } else {
                    Ok(m)
                }
            }
            None => Err(DictError::NotFound(name.into())),
        }
    }

    pub(super) fn dict_trees(&self, m: &Meta) -> Result<Trees, DictError> {
        let open = |n: String| self.db.open_tree(n).map_err(storage);
        Ok(Trees {
            entries: open(tree_name(m.data_id, 'e'))?,
            index: open(tree_name(m.data_id, 'x'))?,
            leases: open(tree_name(m.lease_id, 'l'))?,
        })
    }

    /// Runs `f` as one logged write over the dict's meta record and trees
    /// and returns once it is durable (see [`super::wal`]).
    pub(super) fn dict_tx<R>(
        &self,
        dict: &str,
        f: impl FnOnce(&Tx<'_>, &mut Meta) -> Result<R, DictError>,
    ) -> Result<R, DictError> {
        self.dict_write(dict, true, f)
    }

    /// [`Self::dict_tx`], optionally without waiting for durability.
    pub(super) fn dict_write<R>(
        &self,
        dict: &str,
        wait: bool,
        f: impl FnOnce(&Tx<'_>, &mut Meta) -> Result<R, DictError>,
    ) -> Result<R, DictError> {
        let now = self.clock.now_ms();
        let idle = self.dict_idle_expiry_ms();
        let meta_tree = self.dict_meta_tree()?;
        self.wal.transact(wait, durability_error, |b| {
            // Every dict write runs under the log's writer lock, so what is
            // read here stays true until the record is appended.
            let cur = match b.get(&meta_tree, dict.as_bytes()).map_err(storage)? {
                Some(bytes) => Meta::decode(dict, &bytes)?,
                None => return Err(DictError::NotFound(dict.into())),
            };
            if cur.deleted {
                return Err(DictError::NotFound(dict.into()));
            }
            let t = self.dict_trees(&cur)?;
            let mut next = cur;
            let tx = Tx {
                b,
                e: &t.entries,
                x: &t.index,
                l: &t.leases,
                now,
                idle,
            };
            let r = f(&tx, &mut next)?;
            if next != cur {
                b.insert(&meta_tree, dict.as_bytes(), next.encode());
            }
            Ok(r)
        })
    }

    /// Removes up to `max` due entries of `dict`; returns how many.
    pub(super) fn dict_purge_due(&self, dict: &str, max: usize) -> Result<usize, DictError> {
        let mut total = 0;
        while total < max {
            // The index and the meta row are read from sled below, so
            // pending writes (a read's refresh, which nobody waits for)
            // must be there first: an entry refreshed in the log but not
            // yet in sled would look stale here and never be purged.
            self.wal.settle().map_err(durability_error)?;
            let meta = self.dict_meta_of(dict)?;
            let t = self.dict_trees(&meta)?;
            let now = self.clock.now_ms();
            let idle = self.dict_idle_expiry_ms();
            let want = PURGE_BATCH.min(max - total);
            let mut due: Vec<IVec> = Vec::new();
            // Idle clock: due when access + idle + slack <= now.
            if let Some(cutoff) = now.checked_sub(idle.saturating_add(slack(idle))) {
                collect_due(&t.index, TAG_IDLE, cutoff, want, &mut due)?;
            }
            // Own TTL: due when deadline <= now.
            if due.len() < want {
                collect_due(&t.index, TAG_TTL, now, want - due.len(), &mut due)?;
            }
            if due.is_empty() {
                break;
            }
            let removed = self.dict_tx(dict, |tx, meta| {
                let mut n = 0;
                for ik in &due {
                    let Some(key) = ik.get(9..).and_then(|k| std::str::from_utf8(k).ok()) else {
                        // Not a key we wrote: drop the index entry only.
                        tx.b.remove(tx.x, ik.clone());
                        continue;
                    };
                    match tx.read(key)? {
                        Some((h, _)) if h.index_key(key.as_bytes()) == ik.as_ref() => {
                            if tx.expired(&h) {
                                tx.remove(key, &h);
                                meta.live = meta.live.saturating_sub(1);
                                n += 1;
                            }
                        }
                        // Stale index entry (cannot happen with atomic
                        // upkeep and sled settled above; repaired anyway
                        // so sweeps cannot spin).
                        _ => {
                            tx.b.remove(tx.x, ik.clone());
                        }
                    }
                }
                Ok(n)
            })?;
            total += removed;
            // Nothing removable (the clock stepped back between the read and
            // the write): stop rather than spin.
            if removed == 0 || due.len() < want {
                break;
            }
        }
        Ok(total)
    }

    /// Drops trees no dict references, two sweeps after they became
    /// unreferenced: a reader that looked up the dict just before a `clear`
    /// may still hold the old trees for a moment, and sled must not free
    /// pages under it. Leftovers of a crash between a clear and its cleanup
    /// are collected the same way.
    pub(super) fn gc_dict_trees(&self) -> Result<(), DictError> {
        let mut referenced = BTreeSet::new();
        for item in self.dict_meta_tree()?.iter() {
            let (k, v) = item.map_err(storage)?;
            let name = String::from_utf8_lossy(&k);
            let m = Meta::decode(&name, &v)?;
            if !m.deleted {
                for (id, kind) in [(m.data_id, 'e'), (m.data_id, 'x'), (m.lease_id, 'l')] {
                    referenced.insert(tree_name(id, kind).into_bytes());
                }
            }
        }
        let unreferenced: BTreeSet<Vec<u8>> = self
            .db
            .tree_names()
            .into_iter()
            .map(|n| n.to_vec())
            .filter(|n| {
                n.starts_with(TREE_PREFIX.as_bytes())
                    && n.as_slice() != META_TREE.as_bytes()
                    && !referenced.contains(n)
            })
            .collect();
        let mut orphans = self
            .dict_state
            .orphans
            .lock()
            .map_err(|_| DictError::Unavailable("dict bookkeeping lock poisoned".into()))?;
        for name in unreferenced.intersection(&orphans) {
            self.db.drop_tree(name).map_err(storage)?;
        }
        *orphans = unreferenced;
        Ok(())
    }

    /// Empties the trees of an old data (and lease) id after a clear or
    /// delete, and notes them for [`Self::gc_dict_trees`].
    pub(super) fn dict_empty_old_trees(&self, names: &[String]) -> Result<(), DictError> {
        for n in names {
            self.wal.forget_tree(n.as_bytes());
            self.db
                .open_tree(n)
                .map_err(storage)?
                .clear()
                .map_err(storage)?;
        }
        Ok(())
    }
}

pub(super) fn collect_due(
    index: &Tree,
    tag: u8,
    upto: u64,
    want: usize,
    out: &mut Vec<IVec>,
) -> Result<(), DictError> {
    let start = vec![tag];
    let end = match upto.checked_add(1) {
        Some(n) => {
            let mut e = vec![tag];
            e.extend_from_slice(&n.to_be_bytes());
            Bound::Excluded(e)
        }
        None => Bound::Excluded(vec![tag + 1]),
    };
    for item in index.range((Bound::Included(start), end)).take(want) {
        let (k, _) = item.map_err(storage)?;
        out.push(k);
    }
    Ok(())
}
