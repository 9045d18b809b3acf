//! [`VolumeStore`] over PostgreSQL (heads, nodes, the commit log, the blob
//! index) and S3 (blob contents): the shared backend's volumes.
//!
//! # Layout
//!
//! - `vessel_volumes`: name → id (from a sequence, never reused), head
//!   version, creation time, inode and byte counts, and for a fork the
//!   chain of levels it reads through (`base_ids`, `base_versions`; see
//!   [`fork`]). A rename changes the name only.
//! - `vessel_volume_nodes`: `(volume id, path)` → the node. Paths sort in
//!   byte order (`COLLATE "C"`), so a directory's subtree is the range
//!   `dir/` .. `dir0` and a snapshot is one ordered scan.
//! - `vessel_volume_hidden`: `(volume id, path)`: a path a fork removed,
//!   which the levels it reads through may still hold (see [`chain`]).
//! - `vessel_volume_log`: `(volume id, version)` → time, changed and
//!   removed paths, the blobs the commit stopped naming, bytes added, and
//!   the inode and byte counts after it (NULL in records older than them).
//! - `vessel_volume_history`: `(volume id, path, until)` → the path's
//!   node before commit `until`, which keeps older versions readable (see
//!   [`crate::storage::volume::history`]); `vessel_volumes` holds each
//!   volume's retention and the oldest version its history reaches
//!   (`history_from`).
//! - `vessel_blobs`: blob id → the S3 object holding it, its size and when
//!   it was last uploaded or named by a commit (`touched`, database time).
//!
//! # Commit
//!
//! One transaction: lock the volume's row (`FOR NO KEY UPDATE`, so
//! committers of one volume on any host take turns and each plans against
//! the head the previous one left, while a fork of the volume, which holds
//! the row `FOR KEY SHARE`, does not stop them: see [`fork`]), touch the
//! rows of the blobs the commit names (in id order, so concurrent commits
//! never deadlock; a missing row fails the commit whole with a
//! missing-blob error), read the paths it changes and their ancestors in
//! one query (a fork's through its chain), plan the new nodes exactly as
//! the embedded store does, write them in batched statements, append the
//! log record, and move the head with a compare-and-swap
//! (`UPDATE ... WHERE head = <the head planned against>`), which must
//! match. Readers see the old head or the new one, never a mix; a crash or
//! a lost connection before the commit leaves the old head. The byte quota
//! (`max_bytes`) is checked on the planned bytes in the same transaction.
//!
//! The new head is visible to other sessions at COMMIT, which PostgreSQL
//! makes visible only after flushing its WAL as long as
//! `synchronous_commit` is not `off`; the store's sessions set it `on`
//! (`remote/mod.rs`), so no host reads a commit a database crash could take
//! back. (A connection lost during COMMIT leaves the outcome unknown to the
//! committer, which gets `unavailable`; the commit may then be durable and
//! visible, never visible and lost.)
//!
//! # Blobs first, then metadata
//!
//! [`VolumeStore::put_blob`] uploads the object under a fresh key, then
//! inserts (or touches) the blob's row, so a row always names a complete
//! object, and a commit can only name blobs whose rows exist.
//!
//! # Why gc is safe while other hosts commit
//!
//! Gc deletes a blob's row only in a statement that locks it (in id order)
//! and re-checks, on the row's latest version, that it was touched longer
//! ago than the grace period, and that no node names the blob; only then,
//! after that transaction commits, does it delete the object.
//! - A commit that names blob X touches X's row in its transaction. If it
//!   touched X first, gc's lock waits for it; when the commit lands, the
//!   re-check sees the fresh `touched` and keeps X (if it rolled back,
//!   nothing names X through it). If gc locked X first, the commit's touch
//!   waits; once gc's delete lands the row is gone, the commit fails whole
//!   with "blob missing" and nothing of it is visible.
//! - Nodes that name X from earlier commits are seen by gc's `NOT EXISTS`.
//!   No node can name X without its commit having touched X. History rows
//!   count as nodes do: a commit that stops naming X in the head writes
//!   the history row naming it in the same transaction, so gc sees one or
//!   the other; gc prunes the rows past retention first.
//! - A fork reads other volumes' rows, never copies: what it reads stays
//!   a node or a history row of the volume it came from, which the prune
//!   keeps as long as a chain names that version (see [`fork`]).
//! - An upload of X's contents that finds the row (a dedup hit) touches it,
//!   with the same argument as a commit. One that does not find it uploads a
//!   new object under a new key: gc's delete of the old object cannot hit
//!   the new one.
//! - Objects without a row (an upload whose host died before the insert)
//!   are deleted once older than the grace period.
//!
//! So the only way gc removes something a commit needs is a blob uploaded
//! more than the grace period (an hour by default) before the commit that
//! names it, and that commit then fails cleanly. Live mounts pin their
//! blobs on every host: each is recorded in the database with the version
//! it mounted, each commit records the blobs it dropped, and a collection
//! keeps what a commit after a live mount's version dropped (see
//! [`mounts`]).

mod chain;
mod commit;
mod fork;
mod history;
mod mounts;
mod plan;
mod rows;

pub(crate) use mounts::{host_id, spawn_renewal};
use plan::PgHead;
use rows::*;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::s3::{Ledger, S3Error, Upload};
use super::{DbError, Inner, RemoteStore, Stalled, from_db, to_db};
use crate::storage::blobs::{BlobError, BlobId};
use crate::storage::volume::history::DEFAULT_RETENTION_MS;
use crate::storage::volume::pins::{Mounts, Registration};
use crate::storage::volume::plan::{Base, IMPLICIT_DIR_MODE, plan};
use crate::storage::volume::{
    Change, CommitInfo, CommitOptions, GcOptions, GcReport, History, Node, NodeKind, PathDiff,
    Snapshot, VolumeError, VolumeInfo, VolumeStore, ancestors, check_listable, check_max_bytes,
    check_volume_name, normalize_changes, normalize_path,
};

impl From<Stalled> for VolumeError {
    fn from(s: Stalled) -> Self {
        DbError::from(s).into()
    }
}

impl From<tokio_postgres::Error> for VolumeError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for VolumeError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DbError::from(e).into()
    }
}

/// An S3 failure for blob `id`.
fn s3_err(id: Option<BlobId>, e: S3Error) -> VolumeError {
    match (e, id) {
        (S3Error::NotFound(_), Some(id)) => VolumeError::Blob(BlobError::Missing(id)),
        (S3Error::NotFound(key), None) => {
            VolumeError::Unavailable(format!("the blob store lost object {key}"))
        }
        (e @ S3Error::Unavailable(_), _) => VolumeError::Unavailable(e.to_string()),
        (S3Error::Local(m), _) => VolumeError::Io(m),
    }
}

impl VolumeStore for RemoteStore {
    fn location(&self) -> String {
        self.inner.location.clone()
    }

    fn create_with(&self, name: &str, max_bytes: Option<u64>) -> Result<bool, VolumeError> {
        check_volume_name(name)?;
        check_max_bytes(max_bytes)?;
        let n = name.to_owned();
        let now = self.now_ms();
        let max = max_bytes.map(to_db);
        self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(
                    "INSERT INTO vessel_volumes \
                     (name, id, head, created_ms, inodes, bytes, max_bytes, history_from) \
                     VALUES ($1, nextval('vessel_volume_ids'), 0, $2, 0, 0, $3, 0) \
                     ON CONFLICT (name) DO NOTHING RETURNING id",
                )
                .await?;
            Ok(client
                .query_opt(&st, &[&n, &to_db(now), &max])
                .await?
                .is_some())
        })
    }

    fn set_max_bytes(&self, name: &str, max_bytes: Option<u64>) -> Result<VolumeInfo, VolumeError> {
        check_volume_name(name)?;
        check_max_bytes(max_bytes)?;
        let n = name.to_owned();
        let max = max_bytes.map(to_db);
        let meta = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            // One statement: it waits for a commit holding the row and
            // applies to the head that commit left.
            let st = client
                .prepare_cached(&format!(
                    "UPDATE vessel_volumes SET max_bytes = $2 WHERE name = $1 \
                     RETURNING {META_COLS}"
                ))
                .await?;
            match client.query_opt(&st, &[&n, &max]).await? {
                Some(row) => meta_at(&row, 0),
                None => Err(VolumeError::NotFound(n)),
            }
        })?;
        Ok(info_of(name.to_owned(), &meta))
    }

    fn set_retention(&self, name: &str, retention_ms: u64) -> Result<VolumeInfo, VolumeError> {
        self.set_retention_shared(name, retention_ms)
    }

    fn delete(&self, name: &str) -> Result<(), VolumeError> {
        check_volume_name(name)?;
        let n = name.to_owned();
        let id = self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = client.transaction().await?;
            let st = tx
                .prepare_cached("SELECT id FROM vessel_volumes WHERE name = $1 FOR UPDATE")
                .await?;
            let row = tx
                .query_opt(&st, &[&n])
                .await?
                .ok_or_else(|| VolumeError::NotFound(n.clone()))?;
            let id: i64 = col(&row, 0)?;
            // Under the row's lock: a fork of it in flight holds the row
            // `FOR KEY SHARE`, so it has landed (and shows here) or waits
            // and then finds the volume gone.
            let forks = fork::forks_of(&tx, id).await?;
            if !forks.is_empty() {
                return Err(VolumeError::HasForks { volume: n, forks });
            }
            for sql in [
                "DELETE FROM vessel_volume_nodes WHERE volume = $1",
                "DELETE FROM vessel_volume_hidden WHERE volume = $1",
                "DELETE FROM vessel_volume_log WHERE volume = $1",
                "DELETE FROM vessel_volume_history WHERE volume = $1",
                "DELETE FROM vessel_volumes WHERE id = $1",
            ] {
                let st = tx.prepare_cached(sql).await?;
                tx.execute(&st, &[&id]).await?;
            }
            tx.commit().await?;
            Ok(id)
        })?;
        lock(&self.inner.volume_cache).forget(id);
        Ok(())
    }

    fn fork(&self, src: &str, version: Option<u64>, dst: &str) -> Result<VolumeInfo, VolumeError> {
        self.fork_shared(src, version, dst)
    }

    fn rename(&self, old: &str, new: &str) -> Result<(), VolumeError> {
        check_volume_name(old)?;
        check_volume_name(new)?;
        let (o, n) = (old.to_owned(), new.to_owned());
        self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = client.transaction().await?;
            let st = tx
                .prepare_cached("SELECT id FROM vessel_volumes WHERE name = $1 FOR UPDATE")
                .await?;
            if tx.query_opt(&st, &[&o]).await?.is_none() {
                return Err(VolumeError::NotFound(o));
            }
            if o == n {
                return Ok(());
            }
            let st = tx
                .prepare_cached("UPDATE vessel_volumes SET name = $2 WHERE name = $1")
                .await?;
            match tx.execute(&st, &[&o, &n]).await {
                Ok(_) => {}
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                    return Err(VolumeError::AlreadyExists(n));
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn list(&self) -> Result<Vec<VolumeInfo>, VolumeError> {
        self.vol_op(|inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(&format!(
                    "SELECT name, {META_COLS} FROM vessel_volumes ORDER BY name"
                ))
                .await?;
            let mut out = Vec::new();
            for row in client.query(&st, &[]).await? {
                out.push(info_of(col(&row, 0)?, &meta_at(&row, 1)?));
            }
            Ok(out)
        })
    }

    fn info(&self, name: &str) -> Result<VolumeInfo, VolumeError> {
        Ok(info_of(name.to_owned(), &self.meta_of(name)?))
    }

    fn snapshot(&self, name: &str) -> Result<Snapshot, VolumeError> {
        let meta = self.meta_of(name)?;
        if let Some(nodes) = lock(&self.inner.volume_cache).get(meta.id, meta.head) {
            return Ok(Snapshot {
                version: meta.head,
                nodes: nodes.as_ref().clone(),
            });
        }
        let n = name.to_owned();
        // A volume is a fork or not for its whole life, and the id names
        // the volume `meta` describes whatever renames meanwhile.
        let (id, Snapshot { version, nodes }) = if meta.chain.is_empty() {
            (meta.id, self.snapshot_own(name, meta.id)?)
        } else {
            self.vol_op(move |inner| async move {
                let mut client = inner.pool.get().await?;
                let tx = history::read_tx(&mut client).await?;
                let meta = history::meta_named(&tx, &n).await?;
                let nodes = chain::list_through(&tx, &meta.levels(meta.head), "", true).await?;
                tx.commit().await?;
                let version = meta.head;
                Ok((meta.id, Snapshot { version, nodes }))
            })?
        };
        let nodes = Arc::new(nodes);
        lock(&self.inner.volume_cache).put(id, version, nodes.clone());
        Ok(Snapshot {
            version,
            nodes: Arc::unwrap_or_clone(nodes),
        })
    }

    fn node(&self, name: &str, path: &str) -> Result<Option<Node>, VolumeError> {
        let path = normalize_path(path)?;
        check_volume_name(name)?;
        let n = name.to_owned();
        self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(&format!(
                    "SELECT {META_COLS}, {}, EXISTS (SELECT 1 FROM vessel_volume_hidden x \
                     WHERE x.volume = v.id AND x.path = $2) FROM vessel_volumes v \
                     LEFT JOIN vessel_volume_nodes n ON n.volume = v.id AND n.path = $2 \
                     WHERE v.name = $1",
                    node_cols("n")
                ))
                .await?;
            let row = client
                .query_opt(&st, &[&n, &path])
                .await?
                .ok_or_else(|| VolumeError::NotFound(n.clone()))?;
            let meta = meta_at(&row, 0)?;
            if path.is_empty() {
                return Ok(Some(root_node(meta.created_ms)));
            }
            if let Some(node) = node_at(&row, META_LEN)? {
                return Ok(Some(node));
            }
            let hidden: bool = col(&row, META_LEN + 6)?;
            if meta.chain.is_empty() || hidden {
                return Ok(None);
            }
            // Read through the chain: a second statement, which the
            // volume's row still being there makes as good as the first's
            // snapshot (the levels at fixed versions do not change).
            let paths = [path];
            let (mut nodes, exists) =
                chain::points_through(&client, &meta.chain, &paths, meta.id).await?;
            if !exists {
                return Err(VolumeError::NotFound(n));
            }
            Ok(paths.first().and_then(|p| nodes.remove(p)).flatten())
        })
    }

    fn list_dir(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        let path = normalize_path(path)?;
        check_volume_name(name)?;
        let n = name.to_owned();
        self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = history::read_tx(&mut client).await?;
            let meta = history::meta_named(&tx, &n).await?;
            // The head read as any kept version is: through the volume's
            // own level (and a fork's chain).
            let out = history::list_then(&tx, &n, &meta, &path, recursive, meta.head).await?;
            tx.commit().await?;
            Ok(out)
        })
    }

    fn commit_with(
        &self,
        name: &str,
        changes: &[Change],
        options: &CommitOptions,
    ) -> Result<CommitInfo, VolumeError> {
        self.commit_shared(name, changes, options)
    }

    fn history(&self, name: &str, limit: usize) -> Result<History, VolumeError> {
        self.history_shared(name, limit)
    }

    fn node_at(&self, name: &str, path: &str, version: u64) -> Result<Option<Node>, VolumeError> {
        self.node_at_shared(name, path, version)
    }

    fn list_dir_at(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
        version: u64,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        self.list_dir_at_shared(name, path, recursive, version)
    }

    fn diff(&self, name: &str, from: u64, to: Option<u64>) -> Result<Vec<PathDiff>, VolumeError> {
        self.diff_shared(name, from, to)
    }

    fn mounts(&self) -> &Mounts {
        &self.inner.mounts
    }

    fn ping(&self) -> Result<(), VolumeError> {
        // Short: a health check must answer quickly either way.
        let timeout = self.inner.op_timeout.min(std::time::Duration::from_secs(5));
        let inner = self.inner.clone();
        self.block(Some(timeout), async move {
            let client = inner.pool.get().await?;
            client.simple_query("SELECT 1").await?;
            Ok::<(), VolumeError>(())
        })
    }

    fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        let timeout = self.inner.op_timeout.min(std::time::Duration::from_secs(5));
        let inner = self.inner.clone();
        let blobs = self
            .block(Some(timeout), async move {
                inner.blobs.check().await.map_err(VolumeError::Unavailable)
            })
            .map_err(|e| e.to_string());
        vec![
            ("metadata", self.ping().map_err(|e| e.to_string())),
            ("blobs", blobs),
        ]
    }

    fn register_mount(&self, volume: &str) -> Result<Registration, VolumeError> {
        self.register_mount_shared(volume, None)
    }

    fn register_mount_at(
        &self,
        volume: &str,
        version: Option<u64>,
    ) -> Result<Registration, VolumeError> {
        self.register_mount_shared(volume, version)
    }

    fn mounts_elsewhere(&self, volume: &str) -> Result<usize, VolumeError> {
        self.mounts_elsewhere_shared(volume)
    }

    fn inode_limit(&self) -> u64 {
        self.inner.inode_limit
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<BlobId, VolumeError> {
        let id = BlobId::of(bytes);
        if self.touch_existing(id)? {
            return Ok(id);
        }
        let (got, _) = self.upload_reader(&mut &bytes[..])?;
        Ok(got)
    }

    fn put_blob_file(&self, path: &Path) -> Result<(BlobId, u64), VolumeError> {
        let io = |e: std::io::Error| VolumeError::Blob(BlobError::Io(e));
        // Hash first: contents stored already need no upload.
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut hasher = blake3::Hasher::new();
        let size = std::io::copy(&mut f, &mut hasher).map_err(io)?;
        let id = BlobId(*hasher.finalize().as_bytes());
        if self.touch_existing(id)? {
            return Ok((id, size));
        }
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        // The id returned is the hash of what was uploaded, so a file that
        // changes meanwhile is stored as what was read, never mislabelled.
        self.upload_reader(&mut f)
    }

    fn put_blob_reader(&self, reader: &mut dyn Read) -> Result<(BlobId, u64), VolumeError> {
        self.upload_reader(reader)
    }

    fn local_blob(&self, id: &BlobId) -> Result<PathBuf, VolumeError> {
        self.fetch(id)
    }

    fn read_blob(&self, id: &BlobId, offset: u64, len: u64) -> Result<Vec<u8>, VolumeError> {
        let path = self.fetch(id)?;
        if !lock(&self.inner.verified).contains(id) {
            // Cached by an earlier process: hash it once in this one.
            self.inner.cache.verify(id)?;
            lock(&self.inner.verified).insert(*id);
        }
        let io = |e: std::io::Error| VolumeError::Blob(BlobError::Io(e));
        let mut f = std::fs::File::open(&path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        let want = len.min(size.saturating_sub(offset));
        let mut out = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        if want > 0 {
            f.seek(SeekFrom::Start(offset)).map_err(io)?;
            f.take(want).read_to_end(&mut out).map_err(io)?;
        }
        Ok(out)
    }

    fn gc(&self, options: &GcOptions<'_>) -> Result<GcReport, VolumeError> {
        let grace = options.min_age.unwrap_or(self.inner.gc_grace);
        let secs = grace.as_secs_f64();
        // Versions past retention go first; the blobs the remaining
        // history rows name stay, as those the heads name do.
        self.prune_histories()?;
        // Unreferenced blobs, old or young.
        let unreferenced: Vec<(Vec<u8>, bool)> = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(
                    "SELECT b.id, b.touched < now() - make_interval(secs => $1) \
                     FROM vessel_blobs b WHERE NOT EXISTS \
                     (SELECT 1 FROM vessel_volume_nodes n WHERE n.blob = b.id) \
                     AND NOT EXISTS \
                     (SELECT 1 FROM vessel_volume_history h WHERE h.blob = b.id)",
                )
                .await?;
            let mut out = Vec::new();
            for row in client.query(&st, &[&secs]).await? {
                out.push((col(&row, 0)?, col(&row, 1)?));
            }
            Ok(out)
        })?;
        let mut report = GcReport {
            min_age_secs: grace.as_secs(),
            ..GcReport::default()
        };
        // Asked after the unreferenced blobs are listed: a mount recorded
        // later reads a head that no longer names them.
        let mounted = self.inner.mounts.pinned();
        let shared = self.blobs_pinned_by_mounts()?;
        let mut doomed = Vec::new();
        for (idb, old) in unreferenced {
            let id = BlobId(idb.as_slice().try_into().map_err(|_| {
                VolumeError::Corrupt("the blob index holds an id that is not 32 bytes".into())
            })?);
            if !old {
                report.kept_young += 1;
            } else if shared.contains(&idb) || mounted.contains(&id) || (options.pinned)(&id) {
                report.kept_pinned += 1;
            } else {
                doomed.push(idb);
            }
        }
        doomed.sort();
        // The rows go first, each locked and re-checked (see the module
        // docs); only the objects of rows really deleted go after.
        let deleted: Vec<(Vec<u8>, String, u64)> = self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = client.transaction().await?;
            let st = tx
                .prepare_cached(
                    "DELETE FROM vessel_blobs b WHERE b.id IN \
                     (SELECT id FROM vessel_blobs WHERE id = ANY($1) \
                      AND touched < now() - make_interval(secs => $2) ORDER BY id FOR UPDATE) \
                     AND b.touched < now() - make_interval(secs => $2) \
                     AND NOT EXISTS (SELECT 1 FROM vessel_volume_nodes n WHERE n.blob = b.id) \
                     AND NOT EXISTS \
                     (SELECT 1 FROM vessel_volume_history h WHERE h.blob = b.id) \
                     RETURNING b.id, b.object, b.size",
                )
                .await?;
            let mut out = Vec::new();
            for row in tx.query(&st, &[&doomed, &secs]).await? {
                out.push((
                    col(&row, 0)?,
                    col(&row, 1)?,
                    u64_col(&row, 2, "a blob size")?,
                ));
            }
            tx.commit().await?;
            Ok(out)
        })?;
        for (idb, key, size) in deleted {
            let blobs = self.inner.blobs.clone();
            self.s3_run(Box::pin(async move { blobs.delete(key).await }))
                .map_err(|e| s3_err(None, e))?;
            report.removed_blobs += 1;
            report.removed_bytes += size;
            if let Ok(arr) = <[u8; 32]>::try_from(idb.as_slice()) {
                let id = BlobId(arr);
                self.inner.cache_index.removed(&id);
                self.drop_cached(&[id]);
            }
        }
        // Objects no row names: uploads whose host died before recording
        // them. Old enough ones go.
        let blobs = self.inner.blobs.clone();
        let listed = self
            .block(None, async move { blobs.list().await })
            .map_err(|e| s3_err(None, e))?;
        let known: HashSet<String> = self.vol_op(|inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached("SELECT object FROM vessel_blobs")
                .await?;
            let mut out = HashSet::new();
            for row in client.query(&st, &[]).await? {
                out.insert(col(&row, 0)?);
            }
            Ok(out)
        })?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        for (key, modified, size) in listed {
            if known.contains(&key) || now_ms.saturating_sub(modified) < grace_ms {
                continue;
            }
            let blobs = self.inner.blobs.clone();
            self.s3_run(Box::pin(async move { blobs.delete(key).await }))
                .map_err(|e| s3_err(None, e))?;
            report.removed_blobs += 1;
            report.removed_bytes += size;
        }
        self.abort_stale_uploads(secs, &mut report)?;
        self.drop_stale_cached()?;
        Ok(report)
    }
}

impl RemoteStore {
    /// Aborts the multipart uploads no process has advanced for `secs`
    /// (their process died: a live upload touches its row after every few
    /// parts), counting them and the bytes their parts held.
    fn abort_stale_uploads(&self, secs: f64, report: &mut GcReport) -> Result<(), VolumeError> {
        let stale: Vec<(String, String, i64)> = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(
                    "SELECT object, upload_id, bytes FROM vessel_uploads \
                     WHERE touched < now() - make_interval(secs => $1)",
                )
                .await?;
            let mut out = Vec::new();
            for row in client.query(&st, &[&secs]).await? {
                out.push((col(&row, 0)?, col(&row, 1)?, col(&row, 2)?));
            }
            Ok(out)
        })?;
        for (key, upload_id, bytes) in stale {
            let (blobs, k) = (self.inner.blobs.clone(), key.clone());
            self.s3_run(Box::pin(
                async move { blobs.abort_upload(k, upload_id).await },
            ))
            .map_err(|e| s3_err(None, e))?;
            self.record_upload(Ledger::Finished { key: &key })
                .map_err(|e| s3_err(None, e))?;
            report.removed_uploads += 1;
            report.removed_upload_bytes += u64::try_from(bytes).unwrap_or(0);
        }
        Ok(())
    }

    /// Drops this host's cached copies of blobs no row names any more:
    /// another host's gc removed them. (A blob fetched meanwhile is not in
    /// the list asked about.)
    fn drop_stale_cached(&self) -> Result<(), VolumeError> {
        let cached = self.inner.cache_index.blobs();
        if cached.is_empty() {
            return Ok(());
        }
        let ids: Vec<Vec<u8>> = cached.iter().map(|b| b.0.to_vec()).collect();
        let alive: HashSet<Vec<u8>> = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached("SELECT id FROM vessel_blobs WHERE id = ANY($1)")
                .await?;
            let mut out = HashSet::new();
            for row in client.query(&st, &[&ids]).await? {
                out.insert(col(&row, 0)?);
            }
            Ok(out)
        })?;
        let stale: Vec<BlobId> = cached
            .into_iter()
            .filter(|b| !alive.contains(b.0.as_slice()))
            .collect();
        for id in &stale {
            self.inner.cache_index.removed(id);
        }
        self.drop_cached(&stale);
        Ok(())
    }
}
