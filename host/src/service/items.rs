//! Walking a dict's entries for listings (`items` pages and the NDJSON
//! stream): in key order, from keys-only scans that carry each value's
//! size, reading values in batches bounded by bytes. A listing therefore
//! holds one batch of values in memory whatever the dict holds, and a
//! value over [`INLINE_VALUE_MAX`] is never read by a JSON page: the page
//! gives its size and the client fetches it by key.

use std::collections::VecDeque;

use crate::storage::dict::{DictError, DictStore, ScanItem};

/// Values larger than this (1 MiB) are left out of JSON `items` pages:
/// the item has `size` and `omitted: true`, and `GET .../keys/{key}`
/// fetches the value.
pub const INLINE_VALUE_MAX: u64 = 1 << 20;

/// A JSON page stops early (with `next`) once its values hold this many
/// bytes (16 MiB), so no page is large however many entries it may list.
pub const PAGE_VALUE_BYTES: u64 = 16 << 20;

/// Values read per store round trip, at most (4 MiB): one batch is what a
/// listing holds in memory, besides one value read alone.
const BATCH_BYTES: u64 = 4 << 20;

/// One entry of a walk: its value unless it is over the walk's inline
/// limit (then the caller fetches it by key, if it wants it).
#[derive(Debug)]
pub struct Walked {
    pub key: String,
    pub version: u64,
    pub size: u64,
    pub value: Option<Vec<u8>>,
}

/// The entries of one dict whose keys start with a prefix, in key order,
/// strictly after a cursor key.
pub struct ItemWalk<'a> {
    store: &'a dyn DictStore,
    name: &'a str,
    prefix: &'a str,
    /// The last key scanned (the store's cursor).
    scanned_to: Option<String>,
    scan_done: bool,
    inline_max: u64,
    /// Scanned (keys, sizes), values not read yet.
    pending: VecDeque<ScanItem>,
    ready: VecDeque<Walked>,
}

impl<'a> ItemWalk<'a> {
    pub fn new(
        store: &'a dyn DictStore,
        name: &'a str,
        prefix: &'a str,
        after: Option<String>,
        inline_max: u64,
    ) -> Self {
        ItemWalk {
            store,
            name,
            prefix,
            scanned_to: after,
            scan_done: false,
            inline_max,
            pending: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }

    /// The store, for fetching an omitted value by key.
    pub fn store(&self) -> &'a dyn DictStore {
        self.store
    }

    /// The next entry; `None` at the end. An entry removed between the
    /// scan and the read of its value is skipped, as if the scan had come
    /// after the removal.
    pub fn next_item(&mut self) -> Result<Option<Walked>, DictError> {
        loop {
            if let Some(w) = self.ready.pop_front() {
                return Ok(Some(w));
            }
            if self.pending.is_empty() {
                if self.scan_done {
                    return Ok(None);
                }
                let limit = self.store.limits().max_scan_limit;
                let page = self.store.scan(
                    self.name,
                    self.prefix,
                    self.scanned_to.as_deref(),
                    limit,
                    false,
                )?;
                self.scan_done = page.cursor.is_none();
                self.scanned_to = page.cursor;
                self.pending = page.items.into();
                continue;
            }
            self.read_batch()?;
        }
    }

    /// Moves the next pending entries to `ready`: one large entry alone
    /// (without its value), or small ones up to [`BATCH_BYTES`] with theirs.
    fn read_batch(&mut self) -> Result<(), DictError> {
        let mut keys = Vec::new();
        let mut bytes = 0u64;
        while let Some(it) = self.pending.front() {
            if it.size > self.inline_max {
                if keys.is_empty()
                    && let Some(it) = self.pending.pop_front()
                {
                    self.ready.push_back(Walked {
                        key: it.key,
                        version: it.version,
                        size: it.size,
                        value: None,
                    });
                }
                break;
            }
            if !keys.is_empty() && bytes.saturating_add(it.size) > BATCH_BYTES {
                break;
            }
            bytes = bytes.saturating_add(it.size);
            if let Some(it) = self.pending.pop_front() {
                keys.push(it.key);
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let got = self.store.get_many(self.name, &keys)?;
        for (key, entry) in keys.into_iter().zip(got) {
            if let Some(e) = entry {
                self.ready.push_back(Walked {
                    key,
                    version: e.version,
                    size: e.value.len() as u64,
                    value: Some(e.value),
                });
            }
        }
        Ok(())
    }
}
