//! Forks in the embedded store: making one, and reading the head of a
//! volume whose reads fall through a chain of levels. The rules are
//! [`crate::storage::volume::fork`]'s; this file only finds the rows in
//! sled. A fork's hidden rows live in the `volume_history` tree (their
//! own key family), so commits write them in the transaction they already
//! run, and deleting the volume clears them with its history.
//!
//! Ordinary volumes (no chain) take the paths they always took: one
//! lookup or one prefix scan, no hidden rows asked.

use super::*;
use crate::storage::volume::fork::{self as f, Found, LevelRows};
use crate::storage::volume::history as h;

impl VolumeState {
    /// What volume `id`'s own rows say of `path`: its node, hidden (only
    /// asked when `chained`: a volume without a chain has no hidden rows),
    /// or nothing.
    fn own_found(&self, id: u64, path: &str, chained: bool) -> Result<Found, VolumeError> {
        if let Some(v) = self.nodes.get(node_key(id, path)).map_err(db_err)? {
            return decode_node(&v).map(Found::Node);
        }
        if chained && self.is_hidden(id, path)? {
            return Ok(Found::Gone);
        }
        Ok(Found::Below)
    }

    fn is_hidden(&self, id: u64, path: &str) -> Result<bool, VolumeError> {
        Ok(self
            .history
            .get(hidden_key(id, path))
            .map_err(db_err)?
            .is_some())
    }

    /// `path`'s history row of volume `id` that describes version
    /// `version`: the first with `until > version` (`None`: there is none,
    /// the path has not changed since).
    pub(super) fn row_after(
        &self,
        id: u64,
        path: &str,
        version: u64,
    ) -> Result<Option<Option<Node>>, VolumeError> {
        let prefix = history_path_prefix(id, path);
        let from = history_key(id, path, version.saturating_add(1));
        match self.history.range(from..).next() {
            Some(item) => {
                let (k, v) = item.map_err(db_err)?;
                if k.starts_with(&prefix) {
                    decode_history(&v).map(Some)
                } else {
                    Ok(None)
                }
            }
            None => Ok(None),
        }
    }

    /// What level `level` of a chain says of `path`.
    fn level_found(&self, level: &Level, path: &str) -> Result<Found, VolumeError> {
        if let Some(row) = self.row_after(level.id, path, level.version)? {
            return Ok(Found::from_row(row));
        }
        self.own_found(level.id, path, true)
    }

    /// `path`'s node in the head of the volume `meta` describes.
    pub(super) fn head_node(&self, meta: &Meta, path: &str) -> Result<Option<Node>, VolumeError> {
        if path.is_empty() {
            return Ok(Some(root_node(meta)));
        }
        match self.own_found(meta.id, path, !meta.base.is_empty())? {
            Found::Node(n) => Ok(Some(n)),
            Found::Gone => Ok(None),
            Found::Below => f::chain_node(&meta.base, |l| self.level_found(l, path)),
        }
    }

    /// Volume `id`'s own rows under `dir` (all descendants when
    /// `recursive`), sorted by path, without checking that `dir` exists.
    pub(super) fn own_under(
        &self,
        id: u64,
        dir: &str,
        recursive: bool,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        let prefix = subtree_prefix(id, dir);
        let mut out = Vec::new();
        for item in self.nodes.scan_prefix(&prefix) {
            let (k, v) = item.map_err(db_err)?;
            let path = key_path(&k)?;
            let deeper = path
                .get(dir.len()..)
                .is_some_and(|rest| rest.trim_start_matches('/').contains('/'));
            if recursive || !deeper {
                out.push((path, decode_node(&v)?));
            }
        }
        Ok(out)
    }

    /// Volume `id`'s own and hidden rows under `dir`, as a level lays
    /// them over the levels below it.
    fn overrides_under(
        &self,
        id: u64,
        dir: &str,
        recursive: bool,
    ) -> Result<BTreeMap<String, Option<Node>>, VolumeError> {
        let mut out = BTreeMap::new();
        for item in self.history.scan_prefix(hidden_subtree_prefix(id, dir)) {
            let (k, _) = item.map_err(db_err)?;
            out.insert(split_hidden_key(&k)?, None);
        }
        for (path, node) in self.own_under(id, dir, recursive)? {
            out.insert(path, Some(node));
        }
        Ok(out)
    }

    /// Every path strictly under `dir` that volume `id` changed after
    /// `version`, with its node then.
    pub(super) fn changed_under(
        &self,
        id: u64,
        dir: &str,
        version: u64,
    ) -> Result<BTreeMap<String, Option<Node>>, VolumeError> {
        let mut out = BTreeMap::new();
        for item in self.history.scan_prefix(history_subtree_prefix(id, dir)) {
            let (k, v) = item.map_err(db_err)?;
            let (path, until) = split_history_key(&k)?;
            // A path's rows come in `until` order: the first past
            // `version` is the one that says what it was then.
            if until > version && !out.contains_key(&path) {
                out.insert(path, decode_history(&v)?);
            }
        }
        Ok(out)
    }

    /// The head's entries under `dir` of the volume `meta` describes,
    /// sorted by path, without checking that `dir` exists.
    pub(super) fn head_under(
        &self,
        meta: &Meta,
        dir: &str,
        recursive: bool,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        if meta.base.is_empty() {
            return self.own_under(meta.id, dir, recursive);
        }
        let below = f::chain_list(&meta.base, dir, recursive, |l| {
            Ok(LevelRows {
                own: self.overrides_under(l.id, dir, recursive)?,
                changed_after: self.changed_under(l.id, dir, l.version)?,
            })
        })?;
        let own = self.overrides_under(meta.id, dir, recursive)?;
        Ok(h::lay_over(below, own, dir, recursive))
    }

    /// Every fork (a volume with a chain), with its name.
    pub(super) fn forks(&self) -> Result<Vec<(String, Meta)>, VolumeError> {
        let mut out = Vec::new();
        for item in self.volumes.iter() {
            let (k, v) = item.map_err(db_err)?;
            let meta = Meta::decode(&v)?;
            if !meta.base.is_empty() {
                let name = String::from_utf8(k.to_vec()).map_err(|_| corrupt("a volume name"))?;
                out.push((name, meta));
            }
        }
        Ok(out)
    }
}

impl EmbeddedStore {
    /// [`VolumeStore::fork`]: one new volume row and its first log
    /// record, whatever the size of the source.
    pub(super) fn fork_volume(
        &self,
        src: &str,
        version: Option<u64>,
        dst: &str,
    ) -> Result<VolumeInfo, VolumeError> {
        check_volume_name(dst)?;
        // gc cannot prune the version read through before the fork's row
        // names it, nor collect its blobs.
        let _gc = self
            .vol()
            .gc_lock
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let (info, published) = self.with_volume(src, false, |meta| {
            let version = version.unwrap_or(meta.head);
            let oldest = self.oldest_kept(&meta)?;
            h::check_kept(src, version, oldest, meta.head)?;
            let mut base = vec![Level {
                id: meta.id,
                version,
            }];
            base.extend(meta.base.iter().copied());
            f::check_depth(src, base.len())?;
            // Older counts are not stored: the head's, less what changed
            // since (the paths in between, not the volume).
            let since = self.diff_in(&meta, version, meta.head)?;
            let (inodes, bytes) = f::counts_before(meta.inodes, meta.bytes, &since);
            let id = self.db.generate_id().map_err(db_err)?.saturating_add(1);
            let now_ms = self.now_ms();
            let new = Meta {
                id,
                head: 1,
                created_ms: now_ms,
                inodes,
                bytes,
                max_bytes: meta.max_bytes,
                retention_ms: meta.retention_ms,
                history_from: 1,
                base,
            };
            let row = new.encode();
            let log = LogRecord {
                time_ms: now_ms,
                changed: Vec::new(),
                removed: Vec::new(),
                bytes_added: Some(0),
            }
            .encode();
            let l = self.vol().lock_for(id);
            let _excl = l.write().unwrap_or_else(PoisonError::into_inner);
            let vol = self.vol();
            let ((), published) = self.publish(id, true, || {
                (&vol.volumes, &vol.log)
                    .transaction(|(tv, tl)| {
                        if tv.get(dst.as_bytes())?.is_some() {
                            return Err(ConflictableTransactionError::Abort(
                                VolumeError::AlreadyExists(dst.to_owned()),
                            ));
                        }
                        tv.insert(dst.as_bytes(), row.clone())?;
                        tl.insert(&log_key(id, 1)[..], log.clone())?;
                        Ok(())
                    })
                    .map_err(tx_err)?;
                let undo = vec![
                    UndoOp {
                        tree: UndoTree::Volumes,
                        key: dst.as_bytes().into(),
                        old: None,
                    },
                    UndoOp {
                        tree: UndoTree::Log,
                        key: log_key(id, 1)[..].into(),
                        old: None,
                    },
                ];
                Ok(((), undo))
            })?;
            Ok((info_of(dst.to_owned(), &new), published))
        })?;
        self.confirm(published)?;
        Ok(info)
    }

    /// Fails with `HasForks` when a chain reads through volume `id`
    /// (`name`). The caller holds its exclusive lock, so no fork of it
    /// starts meanwhile.
    pub(super) fn check_no_forks(&self, name: &str, id: u64) -> Result<(), VolumeError> {
        let forks: Vec<String> = self
            .vol()
            .forks()?
            .into_iter()
            .filter(|(_, m)| m.base.iter().any(|l| l.id == id))
            .map(|(n, _)| n)
            .collect();
        if forks.is_empty() {
            return Ok(());
        }
        Err(VolumeError::HasForks {
            volume: name.to_owned(),
            forks,
        })
    }
}
