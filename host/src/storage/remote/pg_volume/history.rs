//! Older versions on PostgreSQL: the oldest kept version, the history
//! listing, reads at a version, diffs, retention, and gc's pruning of the
//! rows past retention. The rules are [`crate::storage::volume::history`]'s;
//! this file only finds the rows.
//!
//! `vessel_volume_history` holds one row per path a commit changed,
//! `(volume, path, until)` → the path's node before commit `until` (`kind`
//! NULL: it was absent). `vessel_volumes.history_from` is the oldest
//! version history may reach: 0 for a volume created with history, NULL for
//! one written before (set to its head by its next commit), raised by gc to
//! the oldest kept version once it has pruned the rows before it.
//!
//! Each read runs in one read-only `REPEATABLE READ` transaction: the head,
//! the log and the history rows come from one snapshot, so neither a
//! commit nor gc's prune (one transaction that deletes rows and raises the
//! floor together) can show a reader a mix.

use super::*;
use deadpool_postgres::GenericClient;

use crate::storage::volume::history::{self as h, MAX_RETENTION_MS, VersionInfo};
use crate::storage::volume::{History, PathDiff};

/// A read-only transaction over one snapshot of the database.
pub(super) async fn read_tx(
    client: &mut deadpool_postgres::Client,
) -> Result<Transaction<'_>, VolumeError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// Volume `name`'s row.
pub(super) async fn meta_named(tx: &Transaction<'_>, name: &str) -> Result<Meta, VolumeError> {
    let st = tx
        .prepare_cached(&format!(
            "SELECT {META_COLS} FROM vessel_volumes WHERE name = $1"
        ))
        .await?;
    match tx.query_opt(&st, &[&name]).await? {
        Some(row) => meta_at(&row, 0),
        None => Err(VolumeError::NotFound(name.to_owned())),
    }
}

/// The oldest kept version of the volume `meta` describes, at `now_ms`.
/// Only the first version after the floor replaced inside the window
/// matters (see [`h::oldest_kept`]), so one row is read.
pub(super) async fn oldest_kept<C: GenericClient>(
    client: &C,
    meta: &Meta,
    now_ms: u64,
) -> Result<u64, VolumeError> {
    let (floor, retention) = (meta.floor(), meta.retention());
    if retention == 0 {
        return Ok(meta.head);
    }
    let cutoff = now_ms.saturating_sub(retention);
    let st = client
        .prepare_cached(
            "SELECT version, time_ms FROM vessel_volume_log \
             WHERE volume = $1 AND version > $2 AND time_ms >= $3 \
             ORDER BY version LIMIT 1",
        )
        .await?;
    let first = match client
        .query_opt(&st, &[&meta.id, &to_db(floor), &to_db(cutoff)])
        .await?
    {
        Some(row) => Some(Ok((
            u64_col(&row, 0, "a version")?,
            u64_col(&row, 1, "a commit time")?,
        ))),
        None => None,
    };
    h::oldest_kept(meta.head, floor, retention, now_ms, first)
}

/// Volume `name`'s row, once `version` is known to be kept.
async fn meta_at_version(
    tx: &Transaction<'_>,
    name: &str,
    version: u64,
    now_ms: u64,
) -> Result<Meta, VolumeError> {
    let meta = meta_named(tx, name).await?;
    let oldest = oldest_kept(tx, &meta, now_ms).await?;
    h::check_kept(name, version, oldest, meta.head)?;
    Ok(meta)
}

/// The head's nodes at `paths` (those that exist).
async fn head_nodes(
    tx: &Transaction<'_>,
    id: i64,
    paths: &[String],
) -> Result<HashMap<String, Node>, VolumeError> {
    let st = tx
        .prepare_cached(&format!(
            "SELECT n.path, {} FROM vessel_volume_nodes n \
             WHERE n.volume = $1 AND n.path = ANY($2)",
            node_cols("n")
        ))
        .await?;
    let mut out = HashMap::new();
    for row in tx.query(&st, &[&id, &paths]).await? {
        if let Some(node) = node_at(&row, 1)? {
            out.insert(col(&row, 0)?, node);
        }
    }
    Ok(out)
}

/// For each of `paths` changed after `version`, its node then: that of
/// its first history row with `until > version` (`None`: absent then).
async fn history_nodes(
    tx: &Transaction<'_>,
    id: i64,
    paths: &[String],
    version: u64,
) -> Result<HashMap<String, Option<Node>>, VolumeError> {
    let st = tx
        .prepare_cached(&format!(
            "SELECT DISTINCT ON (h.path) h.path, {} FROM vessel_volume_history h \
             WHERE h.volume = $1 AND h.path = ANY($2) AND h.until > $3 \
             ORDER BY h.path, h.until",
            node_cols("h")
        ))
        .await?;
    let mut out = HashMap::new();
    for row in tx.query(&st, &[&id, &paths, &to_db(version)]).await? {
        out.insert(col(&row, 0)?, node_at(&row, 1)?);
    }
    Ok(out)
}

/// The nodes of `paths` (normalised) at `version` (kept): from the history
/// rows when the path changed since, else from the head; the root is
/// always the implicit directory.
async fn nodes_then(
    tx: &Transaction<'_>,
    meta: &Meta,
    paths: &[String],
    version: u64,
) -> Result<HashMap<String, Option<Node>>, VolumeError> {
    if !meta.chain.is_empty() {
        let (mut out, _) = chain::points_through(tx, &meta.levels(version), paths, meta.id).await?;
        if paths.iter().any(|p| p.is_empty()) {
            out.insert(String::new(), Some(root_node(meta.created_ms)));
        }
        return Ok(out);
    }
    let mut head = head_nodes(tx, meta.id, paths).await?;
    let mut then = if version < meta.head {
        history_nodes(tx, meta.id, paths, version).await?
    } else {
        HashMap::new()
    };
    let mut out = HashMap::with_capacity(paths.len());
    for p in paths {
        let node = if p.is_empty() {
            Some(root_node(meta.created_ms))
        } else {
            match then.remove(p) {
                Some(n) => n,
                None => head.remove(p),
            }
        };
        out.insert(p.clone(), node);
    }
    Ok(out)
}

/// `path`'s node at `version` (kept).
async fn node_then(
    tx: &Transaction<'_>,
    meta: &Meta,
    path: &str,
    version: u64,
) -> Result<Option<Node>, VolumeError> {
    let paths = [path.to_owned()];
    Ok(nodes_then(tx, meta, &paths, version)
        .await?
        .remove(path)
        .flatten())
}

/// The head's entries under directory `dir` (all descendants when
/// `recursive`), sorted by path, without checking that `dir` exists.
async fn head_under(
    tx: &Transaction<'_>,
    id: i64,
    dir: &str,
    recursive: bool,
) -> Result<Vec<(String, Node)>, VolumeError> {
    let (lo, hi) = subtree_range(dir);
    let st = tx
        .prepare_cached(&format!(
            "SELECT n.path, {} FROM vessel_volume_nodes n WHERE n.volume = $1 \
             AND n.path >= $2 AND ($3::text IS NULL OR n.path < $3) \
             AND ($4 OR position('/' in substr(n.path, char_length($2) + 1)) = 0) \
             ORDER BY n.path",
            node_cols("n")
        ))
        .await?;
    let mut out = Vec::new();
    for row in tx.query(&st, &[&id, &lo, &hi, &recursive]).await? {
        let p: String = col(&row, 0)?;
        if let Some(node) = node_at(&row, 1)? {
            out.push((p, node));
        }
    }
    Ok(out)
}

/// Every path strictly under `dir` (all depths) changed after `version`,
/// with its node then.
async fn changed_under(
    tx: &Transaction<'_>,
    id: i64,
    dir: &str,
    version: u64,
) -> Result<BTreeMap<String, Option<Node>>, VolumeError> {
    let (lo, hi) = subtree_range(dir);
    let st = tx
        .prepare_cached(&format!(
            "SELECT DISTINCT ON (h.path) h.path, {} FROM vessel_volume_history h \
             WHERE h.volume = $1 AND h.path >= $2 AND ($3::text IS NULL OR h.path < $3) \
             AND h.until > $4 ORDER BY h.path, h.until",
            node_cols("h")
        ))
        .await?;
    let mut out = BTreeMap::new();
    for row in tx.query(&st, &[&id, &lo, &hi, &to_db(version)]).await? {
        out.insert(col(&row, 0)?, node_at(&row, 1)?);
    }
    Ok(out)
}

/// The entries under `dir` at `version` (kept, the head included), as
/// `list_dir` gives them at the head: `dir` must be a directory then. A
/// fork's go through its chain.
pub(super) async fn list_then(
    tx: &Transaction<'_>,
    name: &str,
    meta: &Meta,
    dir: &str,
    recursive: bool,
    version: u64,
) -> Result<Vec<(String, Node)>, VolumeError> {
    let kind = node_then(tx, meta, dir, version).await?.map(|n| n.kind);
    check_listable(name, dir, kind)?;
    if !meta.chain.is_empty() {
        return chain::list_through(tx, &meta.levels(version), dir, recursive).await;
    }
    let head = head_under(tx, meta.id, dir, recursive).await?;
    if version >= meta.head {
        return Ok(head);
    }
    let changed = changed_under(tx, meta.id, dir, version).await?;
    Ok(h::lay_over(head, changed, dir, recursive))
}

/// The version below which gc may prune the volume `meta` describes: its
/// oldest kept version, or the oldest version a fork's chain names when
/// that is older (the fork still reads it; see [`super::fork`]). Asked
/// under the row's lock, it sees every fork of the volume that has
/// landed, and a fork in flight waits for the lock.
async fn prunable<C: GenericClient>(
    client: &C,
    meta: &Meta,
    now_ms: u64,
) -> Result<u64, VolumeError> {
    let oldest = oldest_kept(client, meta, now_ms).await?;
    if oldest <= meta.floor() {
        // Nothing to prune, whatever forks read: spare the lookup.
        return Ok(oldest);
    }
    Ok(match fork::oldest_named(client, meta.id).await? {
        Some(named) => oldest.min(named),
        None => oldest,
    })
}

/// A count column (`bigint`) as u64.
fn count(row: &Row, i: usize, what: &str) -> Result<u64, VolumeError> {
    u64_col(row, i, what)
}

impl RemoteStore {
    /// [`VolumeStore::set_retention`] on the shared backend.
    pub(super) fn set_retention_shared(
        &self,
        name: &str,
        retention_ms: u64,
    ) -> Result<VolumeInfo, VolumeError> {
        check_volume_name(name)?;
        if retention_ms > MAX_RETENTION_MS {
            return Err(VolumeError::InvalidRetention { retention_ms });
        }
        let n = name.to_owned();
        let meta = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            // One statement: it waits for a commit (or gc's prune) holding
            // the row.
            let st = client
                .prepare_cached(&format!(
                    "UPDATE vessel_volumes SET retention_ms = $2 WHERE name = $1 \
                     RETURNING {META_COLS}"
                ))
                .await?;
            match client.query_opt(&st, &[&n, &to_db(retention_ms)]).await? {
                Some(row) => meta_at(&row, 0),
                None => Err(VolumeError::NotFound(n)),
            }
        })?;
        Ok(info_of(name.to_owned(), &meta))
    }

    /// [`VolumeStore::history`] on the shared backend.
    pub(super) fn history_shared(&self, name: &str, limit: usize) -> Result<History, VolumeError> {
        check_volume_name(name)?;
        let (n, now_ms) = (name.to_owned(), self.now_ms());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = read_tx(&mut client).await?;
            let meta = meta_named(&tx, &n).await?;
            let oldest = oldest_kept(&tx, &meta, now_ms).await?;
            let st = tx
                .prepare_cached(
                    "SELECT version, time_ms, cardinality(changed)::bigint, \
                     cardinality(removed)::bigint, COALESCE(bytes_added, 0) \
                     FROM vessel_volume_log WHERE volume = $1 AND version >= $2 \
                     AND version <= $3 ORDER BY version DESC LIMIT $4",
                )
                .await?;
            let rows = tx
                .query(
                    &st,
                    &[&meta.id, &to_db(oldest.max(1)), &to_db(meta.head), &limit],
                )
                .await?;
            let mut versions = Vec::with_capacity(rows.len());
            for row in &rows {
                versions.push(VersionInfo {
                    version: count(row, 0, "a version")?,
                    time_ms: count(row, 1, "a commit time")?,
                    changed: count(row, 2, "a count of changed paths")?,
                    removed: count(row, 3, "a count of removed paths")?,
                    bytes_added: count(row, 4, "a count of bytes added")?,
                });
            }
            tx.commit().await?;
            Ok(History {
                head: meta.head,
                oldest,
                retention_ms: meta.retention(),
                versions,
            })
        })
    }

    /// [`VolumeStore::node_at`] on the shared backend.
    pub(super) fn node_at_shared(
        &self,
        name: &str,
        path: &str,
        version: u64,
    ) -> Result<Option<Node>, VolumeError> {
        let path = normalize_path(path)?;
        check_volume_name(name)?;
        let (n, now_ms) = (name.to_owned(), self.now_ms());
        self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = read_tx(&mut client).await?;
            let meta = meta_at_version(&tx, &n, version, now_ms).await?;
            let node = node_then(&tx, &meta, &path, version).await?;
            tx.commit().await?;
            Ok(node)
        })
    }

    /// [`VolumeStore::list_dir_at`] on the shared backend.
    pub(super) fn list_dir_at_shared(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
        version: u64,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        let path = normalize_path(path)?;
        check_volume_name(name)?;
        let (n, now_ms) = (name.to_owned(), self.now_ms());
        self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = read_tx(&mut client).await?;
            let meta = meta_at_version(&tx, &n, version, now_ms).await?;
            let out = list_then(&tx, &n, &meta, &path, recursive, version).await?;
            tx.commit().await?;
            Ok(out)
        })
    }

    /// [`VolumeStore::diff`] on the shared backend.
    pub(super) fn diff_shared(
        &self,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<PathDiff>, VolumeError> {
        check_volume_name(name)?;
        let (n, now_ms) = (name.to_owned(), self.now_ms());
        self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = read_tx(&mut client).await?;
            let meta = meta_named(&tx, &n).await?;
            let to = to.unwrap_or(meta.head);
            let oldest = oldest_kept(&tx, &meta, now_ms).await?;
            h::check_kept(&n, from, oldest, meta.head)?;
            h::check_kept(&n, to, oldest, meta.head)?;
            let (lo, hi) = (from.min(to), from.max(to));
            // The rows of the commits after `lo` up to `hi` name every path
            // that changed between them, once or more.
            let st = tx
                .prepare_cached(
                    "SELECT DISTINCT path FROM vessel_volume_history \
                     WHERE volume = $1 AND until > $2 AND until <= $3",
                )
                .await?;
            let mut paths = Vec::new();
            for row in tx.query(&st, &[&meta.id, &to_db(lo), &to_db(hi)]).await? {
                paths.push(col::<String>(&row, 0)?);
            }
            let mut before = nodes_then(&tx, &meta, &paths, from).await?;
            let mut after = nodes_then(&tx, &meta, &paths, to).await?;
            tx.commit().await?;
            let changed: Vec<_> = paths
                .into_iter()
                .map(|p| {
                    let (b, a) = (before.remove(&p).flatten(), after.remove(&p).flatten());
                    (p, b, a)
                })
                .collect();
            Ok(h::diff(changed))
        })
    }

    /// Deletes the history rows of every volume that only versions before
    /// its oldest kept one need (and no fork reads: [`prunable`]), raising
    /// its floor in the same transaction (so a longer retention set later
    /// cannot bring back a version whose rows are gone). Run by gc before
    /// it looks for unreferenced blobs.
    pub(super) fn prune_histories(&self) -> Result<(), VolumeError> {
        let ids: Vec<i64> = self.vol_op(|inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached("SELECT id FROM vessel_volumes ORDER BY id")
                .await?;
            let mut out = Vec::new();
            for row in client.query(&st, &[]).await? {
                out.push(col(&row, 0)?);
            }
            Ok(out)
        })?;
        for id in ids {
            let now_ms = self.now_ms();
            self.vol_op(move |inner| async move {
                let mut client = inner.pool.get().await?;
                let by_id = format!("SELECT {META_COLS} FROM vessel_volumes WHERE id = $1");
                // A look without the lock first: most volumes have nothing
                // to prune, and a commit need not wait for them.
                let st = client.prepare_cached(&by_id).await?;
                let Some(row) = client.query_opt(&st, &[&id]).await? else {
                    return Ok(());
                };
                let meta = meta_at(&row, 0)?;
                if prunable(&client, &meta, now_ms).await? <= meta.floor() {
                    return Ok(());
                }
                // Under the row's lock, so no commit or retention change
                // lands between working out the oldest version and pruning.
                let tx = client.transaction().await?;
                let st = tx.prepare_cached(&format!("{by_id} FOR UPDATE")).await?;
                let Some(row) = tx.query_opt(&st, &[&id]).await? else {
                    return Ok(());
                };
                let meta = meta_at(&row, 0)?;
                let oldest = prunable(&tx, &meta, now_ms).await?;
                let st = tx
                    .prepare_cached(
                        "DELETE FROM vessel_volume_history WHERE volume = $1 AND until <= $2",
                    )
                    .await?;
                tx.execute(&st, &[&id, &to_db(oldest)]).await?;
                let st = tx
                    .prepare_cached(
                        "UPDATE vessel_volumes \
                         SET history_from = GREATEST(COALESCE(history_from, head), $2) \
                         WHERE id = $1",
                    )
                    .await?;
                tx.execute(&st, &[&id, &to_db(oldest)]).await?;
                tx.commit().await?;
                Ok(())
            })?;
        }
        Ok(())
    }
}
