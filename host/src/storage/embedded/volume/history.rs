//! Older versions in the embedded store: the oldest kept version, the
//! history listing, reads at a version, diffs, and gc's pruning of rows
//! past retention. The rules are [`crate::storage::volume::history`]'s;
//! this file only finds the rows in sled.
//!
//! Reads take the volume's lock shared, as head reads do, so no commit
//! lands between reading the head and the rows. gc prunes without that
//! lock, in one batch with the floor it raises; a read re-checks the floor
//! after reading, so it never answers with a half-pruned version.

use super::*;
use crate::storage::volume::history::{self as h, VersionInfo};

impl EmbeddedStore {
    /// [`VolumeStore::set_retention`]: a new row, published like a quota
    /// change.
    pub(super) fn set_retention_of(
        &self,
        name: &str,
        retention_ms: u64,
    ) -> Result<VolumeInfo, VolumeError> {
        if retention_ms > MAX_RETENTION_MS {
            return Err(VolumeError::InvalidRetention { retention_ms });
        }
        self.rewrite_meta(name, |meta| Meta {
            retention_ms: Some(retention_ms),
            ..meta
        })
    }

    /// The paths of `checks` that a commit changed after the version each
    /// names (see [`CommitOptions::unchanged_since`]), in order, each once.
    /// Run under the volume's exclusive lock, before planning.
    pub(super) fn conflicting(
        &self,
        meta: &Meta,
        checks: &[(String, u64)],
    ) -> Result<Vec<String>, VolumeError> {
        let mut out: Vec<String> = Vec::new();
        if checks.is_empty() {
            return Ok(out);
        }
        let floor = meta.history_from.max(self.floor(meta.id)?);
        let history = &self.vol().history;
        for (path, since) in checks {
            let path = normalize_path(path)?;
            if *since >= meta.head || out.contains(&path) {
                continue;
            }
            // Rows before the floor are gone: a change then is unknowable.
            let mut changed = *since < floor;
            if !changed && !path.is_empty() {
                let own = history_path_prefix(meta.id, &path);
                let from = history_key(meta.id, &path, since.saturating_add(1));
                if let Some(item) = history.range(from..).next() {
                    let (k, _) = item.map_err(db_err)?;
                    changed = k.starts_with(&own);
                }
            }
            if !changed {
                for item in history.scan_prefix(history_subtree_prefix(meta.id, &path)) {
                    let (k, _) = item.map_err(db_err)?;
                    if split_history_key(&k)?.1 > *since {
                        changed = true;
                        break;
                    }
                }
            }
            if changed {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// The floor gc left for volume `id` (0: none).
    fn floor(&self, id: u64) -> Result<u64, VolumeError> {
        match self.vol().history.get(floor_key(id)).map_err(db_err)? {
            None => Ok(0),
            Some(v) => {
                let b: [u8; 8] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt("a history floor is not 8 bytes"))?;
                Ok(u64::from_be_bytes(b))
            }
        }
    }

    /// The oldest version of the volume `meta` describes that is kept.
    pub(super) fn oldest_kept(&self, meta: &Meta) -> Result<u64, VolumeError> {
        let from = meta.history_from.max(self.floor(meta.id)?).min(meta.head);
        let log = &self.vol().log;
        let start = log_key(meta.id, from.saturating_add(1));
        let end = log_key(meta.id, u64::MAX);
        let replaced = log.range(start..=end).map(|item| {
            let (k, v) = item.map_err(db_err)?;
            let (_, rest) = split_key(&k)?;
            let version: [u8; 8] = rest
                .try_into()
                .map_err(|_| corrupt("a log key is malformed"))?;
            Ok((u64::from_be_bytes(version), LogRecord::time_of(&v)?))
        });
        h::oldest_kept(meta.head, from, meta.retention(), self.now_ms(), replaced)
    }

    /// Runs `f` on `name` under its shared lock, once `version` is known to
    /// be kept, and checks again afterwards that gc did not prune it
    /// meanwhile.
    fn at_version<R>(
        &self,
        name: &str,
        version: u64,
        f: impl Fn(&Meta) -> Result<R, VolumeError>,
    ) -> Result<R, VolumeError> {
        self.read_volume(name, |meta| {
            let oldest = self.oldest_kept(&meta)?;
            h::check_kept(name, version, oldest, meta.head)?;
            let out = f(&meta)?;
            let floor = self.floor(meta.id)?;
            h::check_kept(name, version, oldest.max(floor), meta.head)?;
            Ok(out)
        })
    }

    /// `path`'s node at `version` (kept, at most the head).
    fn node_then(
        &self,
        meta: &Meta,
        path: &str,
        version: u64,
    ) -> Result<Option<Node>, VolumeError> {
        if version < meta.head
            && !path.is_empty()
            && let Some(row) = self.vol().row_after(meta.id, path, version)?
        {
            return Ok(row);
        }
        self.vol().head_node(meta, path)
    }

    pub(super) fn list_then(
        &self,
        name: &str,
        meta: &Meta,
        dir: &str,
        recursive: bool,
        version: u64,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        let kind = self.node_then(meta, dir, version)?.map(|n| n.kind);
        check_listable(name, dir, kind)?;
        // The whole tree comes from the snapshot cache when it can.
        let head = if dir.is_empty() && recursive {
            Arc::unwrap_or_clone(self.head_nodes(meta)?)
        } else {
            self.vol().head_under(meta, dir, recursive)?
        };
        if version == meta.head {
            return Ok(head);
        }
        let changed = self.vol().changed_under(meta.id, dir, version)?;
        Ok(h::lay_over(head, changed, dir, recursive))
    }

    pub(super) fn history_of(&self, name: &str, limit: usize) -> Result<History, VolumeError> {
        self.read_volume(name, |meta| {
            let oldest = self.oldest_kept(&meta)?;
            let mut versions = Vec::new();
            let (start, end) = (log_key(meta.id, oldest.max(1)), log_key(meta.id, meta.head));
            for item in self.vol().log.range(start..=end).rev().take(limit) {
                let (k, v) = item.map_err(db_err)?;
                let (_, rest) = split_key(&k)?;
                let version: [u8; 8] = rest
                    .try_into()
                    .map_err(|_| corrupt("a log key is malformed"))?;
                let (time_ms, changed, removed, bytes_added) = LogRecord::summary_of(&v)?;
                versions.push(VersionInfo {
                    version: u64::from_be_bytes(version),
                    time_ms,
                    changed,
                    removed,
                    bytes_added,
                });
            }
            Ok(History {
                head: meta.head,
                oldest,
                retention_ms: meta.retention(),
                versions,
            })
        })
    }

    pub(super) fn node_at_version(
        &self,
        name: &str,
        path: &str,
        version: u64,
    ) -> Result<Option<Node>, VolumeError> {
        let path = normalize_path(path)?;
        self.at_version(name, version, |meta| self.node_then(meta, &path, version))
    }

    pub(super) fn list_dir_at_version(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
        version: u64,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        let path = normalize_path(path)?;
        self.at_version(name, version, |meta| {
            self.list_then(name, meta, &path, recursive, version)
        })
    }

    pub(super) fn diff_versions(
        &self,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<PathDiff>, VolumeError> {
        self.read_volume(name, |meta| {
            let to = to.unwrap_or(meta.head);
            let oldest = self.oldest_kept(&meta)?;
            h::check_kept(name, from, oldest, meta.head)?;
            h::check_kept(name, to, oldest, meta.head)?;
            let changed = self.diff_in(&meta, from, to)?;
            let floor = self.floor(meta.id)?;
            h::check_kept(name, from.min(to), oldest.max(floor), meta.head)?;
            Ok(changed)
        })
    }

    /// The diff of two kept versions of the volume `meta` describes (the
    /// caller holds its lock and checked both are kept): it reads only the
    /// rows of the versions in between.
    pub(super) fn diff_in(
        &self,
        meta: &Meta,
        from: u64,
        to: u64,
    ) -> Result<Vec<PathDiff>, VolumeError> {
        let (lo, hi) = (from.min(to), from.max(to));
        // The rows of the versions after `lo` up to `hi` name every path
        // that changed between them, once or more.
        let mut paths = std::collections::BTreeSet::new();
        let start = history_version_prefix(meta.id, lo.saturating_add(1));
        let end = history_version_prefix(meta.id, hi.saturating_add(1));
        for item in self.vol().history.range(start..end).keys() {
            let (_, path) = split_version_key(&item.map_err(db_err)?)?;
            paths.insert(path);
        }
        let mut changed = Vec::with_capacity(paths.len());
        for path in paths {
            let before = self.node_then(meta, &path, from)?;
            let after = self.node_then(meta, &path, to)?;
            changed.push((path, before, after));
        }
        Ok(h::diff(changed))
    }

    /// Deletes volume `id`'s history rows that only versions before its
    /// oldest kept one need, raising its floor in the same batch; returns
    /// the blobs its remaining rows name. `read_through`: the oldest
    /// version of it a fork reads, whose rows stay. Run by gc, with
    /// commits and forks shut out.
    pub(super) fn prune_history(
        &self,
        meta: &Meta,
        read_through: Option<u64>,
    ) -> Result<HashSet<BlobId>, VolumeError> {
        let vol = self.vol();
        let oldest = self.oldest_kept(meta)?;
        let oldest = read_through.map_or(oldest, |v| oldest.min(v));
        if oldest > self.floor(meta.id)? {
            let mut batch = Batch::default();
            let start = history_version_prefix(meta.id, 0);
            let end = history_version_prefix(meta.id, oldest.saturating_add(1));
            for item in vol.history.range(start..end).keys() {
                let key = item.map_err(db_err)?;
                let (until, path) = split_version_key(&key)?;
                batch.remove(history_key(meta.id, &path, until));
                batch.remove(key);
            }
            batch.insert(&floor_key(meta.id)[..], &oldest.to_be_bytes()[..]);
            vol.history.apply_batch(batch).map_err(db_err)?;
        }
        let mut blobs = HashSet::new();
        for item in vol.history.scan_prefix(history_subtree_prefix(meta.id, "")) {
            let (_, v) = item.map_err(db_err)?;
            if let Some(b) = decode_history(&v)?.and_then(|n| n.blob) {
                blobs.insert(b);
            }
        }
        Ok(blobs)
    }
}
