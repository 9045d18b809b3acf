//! The embedded store's volume internals: opening the volume trees, reading
//! a volume's row and nodes, and the transactions commits run in.

use super::*;

impl EmbeddedStore {
    pub(super) fn vol(&self) -> &VolumeState {
        &self.volumes
    }

    /// Holds blob collection off while a blob is put and the record that
    /// names it lands (a dict write of a large value), as commits do.
    pub(crate) fn blob_guard(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.vol()
            .gc_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with every volume write and blob collection held off (a
    /// backup copies the volume trees and blobs meanwhile). Writes wait;
    /// none fails.
    pub(crate) fn volumes_frozen<R>(&self, f: impl FnOnce() -> R) -> R {
        let vol = self.vol();
        // The order commits take them in: collection, then writes.
        let _gc = vol.gc_lock.write().unwrap_or_else(PoisonError::into_inner);
        let _writes = vol.writes.write().unwrap_or_else(PoisonError::into_inner);
        f()
    }

    pub(super) fn meta(&self, name: &str) -> Result<Meta, VolumeError> {
        check_volume_name(name)?;
        match self.vol().volumes.get(name.as_bytes()).map_err(db_err)? {
            Some(v) => Meta::decode(&v),
            None => Err(VolumeError::NotFound(name.to_owned())),
        }
    }

    /// Runs `f` with `name`'s meta while holding its per-volume lock
    /// (exclusively when `exclusive`). The meta is re-read under the lock,
    /// so `f` sees the head no writer can move until it returns.
    pub(super) fn with_volume<R>(
        &self,
        name: &str,
        exclusive: bool,
        f: impl FnOnce(Meta) -> Result<R, VolumeError>,
    ) -> Result<R, VolumeError> {
        // A rename or delete between reading the id and taking its lock
        // changes the id behind the name; retry a few times with the new
        // one rather than act on a stale id.
        for _ in 0..8 {
            let id = self.meta(name)?.id;
            let lock = self.vol().lock_for(id);
            let (_shared, _excl);
            if exclusive {
                _excl = lock.write().unwrap_or_else(PoisonError::into_inner);
            } else {
                _shared = lock.read().unwrap_or_else(PoisonError::into_inner);
            }
            let meta = self.meta(name)?;
            if meta.id == id {
                return f(meta);
            }
        }
        Err(VolumeError::Unavailable(format!(
            "volume `{name}` keeps being renamed or replaced; try again"
        )))
    }

    /// Replaces `name`'s row with what `change` makes of it (a quota, a
    /// retention), published like every write; returns the volume as it
    /// is now.
    pub(super) fn rewrite_meta(
        &self,
        name: &str,
        change: impl Fn(Meta) -> Meta,
    ) -> Result<VolumeInfo, VolumeError> {
        let (meta, published) = self.with_volume(name, true, |meta| {
            let (old, id) = (meta.encode(), meta.id);
            let new = change(meta);
            let encoded = new.encode();
            let ((), published) = self.publish(id, false, || {
                self.vol()
                    .volumes
                    .insert(name.as_bytes(), encoded.clone())
                    .map_err(db_err)?;
                let undo = vec![UndoOp {
                    tree: UndoTree::Volumes,
                    key: name.as_bytes().into(),
                    old: Some(old.as_slice().into()),
                }];
                Ok(((), undo))
            })?;
            Ok((new, published))
        })?;
        self.confirm(published)?;
        Ok(info_of(name.to_owned(), &meta))
    }

    /// A read of volume `name` that answers only with durable state (see
    /// `visible`), under the volume's shared lock: `read` gets its row,
    /// re-read under the lock, and may run again if a write it saw is
    /// undone.
    pub(super) fn read_volume<R>(
        &self,
        name: &str,
        read: impl Fn(Meta) -> Result<R, VolumeError>,
    ) -> Result<R, VolumeError> {
        self.visible(|| {
            let mut id = None;
            let out = self.with_volume(name, false, |meta| {
                id = Some(meta.id);
                read(meta)
            });
            (scope_of(id, &out), out)
        })
    }

    /// Every node of the head `meta` describes, from the snapshot cache or
    /// (then cached) from sled. The caller holds the volume's lock.
    pub(super) fn head_nodes(&self, meta: &Meta) -> Result<Arc<Vec<(String, Node)>>, VolumeError> {
        let cache = &self.vol().snapshots;
        if let Some(nodes) = lock(cache).get(meta.id, meta.head) {
            return Ok(nodes);
        }
        let nodes = Arc::new(self.scan_nodes(meta)?);
        lock(cache).put(meta.id, meta.head, nodes.clone());
        Ok(nodes)
    }

    /// Every node of a volume's head, from sled, sorted by path.
    pub(super) fn scan_nodes(&self, meta: &Meta) -> Result<Vec<(String, Node)>, VolumeError> {
        if !meta.base.is_empty() {
            return self.vol().head_under(meta, "", true);
        }
        let mut nodes = Vec::with_capacity(usize::try_from(meta.inodes).unwrap_or(0));
        for item in self.vol().nodes.scan_prefix(meta.id.to_be_bytes()) {
            let (k, v) = item.map_err(db_err)?;
            nodes.push((key_path(&k)?, decode_node(&v)?));
        }
        Ok(nodes)
    }

    pub(super) fn sync(&self) -> Result<(), VolumeError> {
        self.durability.sync().map_err(|e| {
            let msg = format!("making the commit durable: {e}");
            if is_disk_full(&e) {
                VolumeError::DiskFull(msg)
            } else {
                VolumeError::Io(msg)
            }
        })
    }

    /// Checks a node a caller wants to commit at `path`: its shape, and
    /// that its blob exists in the blob folder (so it is durable: blobs are
    /// fsynced before they are installed) with the size the node claims.
    pub(super) fn check_node(&self, path: &str, node: &Node) -> Result<(), VolumeError> {
        check_node_shape(path, node)?;
        let Some(id) = node.blob.as_ref().filter(|_| node.kind == NodeKind::File) else {
            return Ok(());
        };
        let len = match std::fs::metadata(self.blobs.path(id)) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(*id).into());
            }
            Err(e) => return Err(BlobError::Io(e).into()),
        };
        if len != node.size {
            return Err(VolumeError::InvalidPath {
                path: path.to_owned(),
                reason: format!(
                    "the node says {} bytes but blob {id} holds {len}",
                    node.size
                ),
            });
        }
        Ok(())
    }

    /// Refreshes a blob's mtime so a collection treats it as young (a
    /// deduplicated put of an old, unreferenced blob that a commit is
    /// about to name).
    pub(super) fn touch_blob(&self, id: &BlobId) -> Result<(), VolumeError> {
        let f = std::fs::File::open(self.blobs.path(id)).map_err(BlobError::Io)?;
        f.set_modified(SystemTime::now()).map_err(BlobError::Io)?;
        Ok(())
    }

    /// [`VolumeStore::list_dir`] on sled as it is now; `id` gets the
    /// volume's id once found.
    pub(super) fn list_dir_now(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
        id: &mut Option<u64>,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        let path = path.to_owned();
        self.with_volume(name, false, |meta| {
            *id = Some(meta.id);
            if !meta.base.is_empty() {
                let kind = self.vol().head_node(&meta, &path)?.map(|n| n.kind);
                check_listable(name, &path, kind)?;
                return self.vol().head_under(&meta, &path, recursive);
            }
            let nodes = &self.vol().nodes;
            if !path.is_empty() {
                let stored = nodes.get(node_key(meta.id, &path)).map_err(db_err)?;
                let kind = stored
                    .map(|v| decode_node(&v).map(|n| n.kind))
                    .transpose()?;
                check_listable(name, &path, kind)?;
            }
            let prefix = subtree_prefix(meta.id, &path);
            let mut out = Vec::new();
            let mut iter = nodes.range(prefix.clone()..);
            while let Some(item) = iter.next() {
                let (k, v) = item.map_err(db_err)?;
                let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                    break;
                };
                match rest.iter().position(|b| *b == b'/') {
                    Some(slash) if !recursive => {
                        // A grandchild: skip the rest of that child's
                        // subtree with one seek past `child/`. (Its own
                        // entry came before: every directory is explicit.)
                        let mut skip = prefix.clone();
                        skip.extend_from_slice(rest.get(..slash).unwrap_or_default());
                        skip.push(b'/' + 1);
                        iter = nodes.range(skip..);
                    }
                    _ => out.push((key_path(&k)?, decode_node(&v)?)),
                }
            }
            Ok(out)
        })
    }

    pub(super) fn clear_prefix(&self, tree: &Tree, prefix: &[u8]) -> Result<(), VolumeError> {
        loop {
            let mut batch = Batch::default();
            let mut n = 0;
            for item in tree.scan_prefix(prefix).keys().take(CLEAR_BATCH) {
                batch.remove(item.map_err(db_err)?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            tree.apply_batch(batch).map_err(db_err)?;
        }
    }
}
