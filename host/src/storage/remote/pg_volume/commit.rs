//! A commit on PostgreSQL (see the parent module's docs): one
//! transaction that locks the volume's row, plans over the head, writes the
//! new nodes, the history rows that keep the replaced version readable (see
//! [`crate::storage::volume::history`]) and the log record, and moves the
//! head with a compare-and-swap.

use super::*;
use crate::storage::volume::CommitOptions;
use crate::storage::volume::history;

/// Nodes as the columns of a batched (`unnest`) statement: `kind, blob,
/// size, mtime_ms, mode, target`, each `NULL` for an absent node.
#[derive(Debug, Default)]
struct NodeColumns {
    paths: Vec<String>,
    kinds: Vec<Option<i16>>,
    blobs: Vec<Option<Vec<u8>>>,
    sizes: Vec<Option<i64>>,
    mtimes: Vec<Option<i64>>,
    modes: Vec<Option<i64>>,
    targets: Vec<Option<String>>,
}

impl NodeColumns {
    fn push(&mut self, path: &str, node: Option<&Node>) {
        self.paths.push(path.to_owned());
        self.kinds.push(node.map(|n| kind_code(n.kind)));
        self.blobs
            .push(node.and_then(|n| n.blob).map(|b| b.0.to_vec()));
        self.sizes.push(node.map(|n| to_db(n.size)));
        self.mtimes.push(node.map(|n| to_db(n.mtime_ms)));
        self.modes.push(node.map(|n| i64::from(n.mode)));
        self.targets.push(node.and_then(|n| n.target.clone()));
    }

    fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// Writes the overlay of a commit to volume `id`'s head: removals in one
/// statement, puts in another. A fork (`hide`) also hides each path it
/// removes from the levels it reads through, whether they hold it or not
/// (asking would cost a read per path; a hidden row costs a write), in a
/// third.
async fn write_nodes(
    tx: &Transaction<'_>,
    id: i64,
    overlay: &BTreeMap<String, Option<Node>>,
    hide: bool,
) -> Result<(), VolumeError> {
    let mut puts = NodeColumns::default();
    let mut gone = Vec::new();
    for (path, node) in overlay {
        match node {
            Some(nd) => puts.push(path, Some(nd)),
            None => gone.push(path.clone()),
        }
    }
    if !gone.is_empty() {
        let st = tx
            .prepare_cached("DELETE FROM vessel_volume_nodes WHERE volume = $1 AND path = ANY($2)")
            .await?;
        tx.execute(&st, &[&id, &gone]).await?;
        if hide {
            // An own row wins over a hidden one, so a path put back later
            // keeps its hidden row: removing it again needs no new one.
            let st = tx
                .prepare_cached(
                    "INSERT INTO vessel_volume_hidden (volume, path) \
                     SELECT $1, p FROM unnest($2::text[]) AS u(p) ON CONFLICT DO NOTHING",
                )
                .await?;
            tx.execute(&st, &[&id, &gone]).await?;
        }
    }
    if !puts.is_empty() {
        let st = tx
            .prepare_cached(
                "INSERT INTO vessel_volume_nodes \
                 (volume, path, kind, blob, size, mtime_ms, mode, target) \
                 SELECT $1, p, k, b, s, m, md, t FROM unnest($2::text[], $3::int2[], \
                 $4::bytea[], $5::int8[], $6::int8[], $7::int8[], $8::text[]) \
                 AS u(p, k, b, s, m, md, t) \
                 ON CONFLICT (volume, path) DO UPDATE SET kind = EXCLUDED.kind, \
                 blob = EXCLUDED.blob, size = EXCLUDED.size, \
                 mtime_ms = EXCLUDED.mtime_ms, mode = EXCLUDED.mode, \
                 target = EXCLUDED.target",
            )
            .await?;
        tx.execute(
            &st,
            &[
                &id,
                &puts.paths,
                &puts.kinds,
                &puts.blobs,
                &puts.sizes,
                &puts.mtimes,
                &puts.modes,
                &puts.targets,
            ],
        )
        .await?;
    }
    Ok(())
}

/// The paths of `checks` a commit changed after the version each names
/// (see [`CommitOptions::unchanged_since`]), in order, each once: one
/// query over their own history rows and those under them, under the
/// volume row's lock.
async fn conflicting(
    tx: &Transaction<'_>,
    meta: &Meta,
    checks: &[(String, u64)],
) -> Result<Vec<String>, VolumeError> {
    let mut out: Vec<String> = Vec::new();
    let (mut paths, mut sinces) = (Vec::new(), Vec::new());
    for (path, since) in checks {
        if *since >= meta.head || out.contains(path) || paths.contains(path) {
            continue;
        }
        // Rows before the floor are gone: a change then is unknowable.
        if *since < meta.floor() {
            out.push(path.clone());
        } else {
            paths.push(path.clone());
            sinces.push(to_db(*since));
        }
    }
    if paths.is_empty() {
        return Ok(out);
    }
    let st = tx
        .prepare_cached(
            "SELECT u.p FROM unnest($2::text[], $3::int8[]) WITH ORDINALITY AS u(p, s, i) \
             WHERE EXISTS (SELECT 1 FROM vessel_volume_history h \
             WHERE h.volume = $1 AND h.until > u.s AND (h.path = u.p OR (u.p = '' \
             OR (h.path >= u.p || '/' AND h.path < u.p || '0')))) ORDER BY u.i",
        )
        .await?;
    for row in tx.query(&st, &[&meta.id, &paths, &sinces]).await? {
        out.push(
            row.try_get::<_, String>(0)
                .map_err(|e| VolumeError::Corrupt(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Writes the history rows of a commit into `version` of volume `id`: each
/// changed path's node before it (`kind` NULL: it was absent), in one
/// statement.
async fn write_history(
    tx: &Transaction<'_>,
    id: i64,
    version: u64,
    before: &BTreeMap<String, Option<Node>>,
) -> Result<(), VolumeError> {
    let mut rows = NodeColumns::default();
    for (path, node) in history::rows(before) {
        rows.push(path, node);
    }
    if rows.is_empty() {
        return Ok(());
    }
    let st = tx
        .prepare_cached(
            "INSERT INTO vessel_volume_history \
             (volume, path, until, kind, blob, size, mtime_ms, mode, target) \
             SELECT $1, p, $2, k, b, s, m, md, t FROM unnest($3::text[], $4::int2[], \
             $5::bytea[], $6::int8[], $7::int8[], $8::int8[], $9::text[]) \
             AS u(p, k, b, s, m, md, t)",
        )
        .await?;
    tx.execute(
        &st,
        &[
            &id,
            &to_db(version),
            &rows.paths,
            &rows.kinds,
            &rows.blobs,
            &rows.sizes,
            &rows.mtimes,
            &rows.modes,
            &rows.targets,
        ],
    )
    .await?;
    Ok(())
}

impl RemoteStore {
    /// [`VolumeStore::commit_with`] on the shared backend.
    pub(super) fn commit_shared(
        &self,
        name: &str,
        changes: &[Change],
        options: &CommitOptions,
    ) -> Result<CommitInfo, VolumeError> {
        crate::storage::volume::counted_commit(changes, || {
            check_volume_name(name)?;
            let normalized: Vec<(String, Option<Node>)> = normalize_changes(changes)?
                .into_iter()
                .map(|(p, n)| (p, n.cloned()))
                .collect();
            let mut blob_ids: Vec<Vec<u8>> = normalized
                .iter()
                .filter_map(|(_, n)| n.as_ref().and_then(|n| n.blob))
                .map(|b| b.0.to_vec())
                .collect();
            blob_ids.sort();
            blob_ids.dedup();
            let limit = self.inode_limit();
            let now_ms = self.now_ms();
            let n = name.to_owned();
            let expect_head = options.expect_head;
            let checks: Vec<(String, u64)> = options
                .unchanged_since
                .iter()
                .map(|(p, v)| Ok((normalize_path(p)?, *v)))
                .collect::<Result<_, VolumeError>>()?;
            let (id, from, info, overlay) = self.vol_op(move |inner| async move {
                let mut client = inner.pool.get().await?;
                let tx = client.transaction().await?;
                let st = tx
                    .prepare_cached(&format!(
                        "SELECT {META_COLS} FROM vessel_volumes WHERE name = $1 \
                         FOR NO KEY UPDATE"
                    ))
                    .await?;
                let meta = match tx.query_opt(&st, &[&n]).await? {
                    Some(row) => meta_at(&row, 0)?,
                    None => return Err(VolumeError::NotFound(n)),
                };
                if let Some(expected) = expect_head.filter(|e| *e != meta.head) {
                    return Err(VolumeError::HeadMoved {
                        volume: n,
                        expected,
                        head: meta.head,
                    });
                }
                let conflicts = conflicting(&tx, &meta, &checks).await?;
                if !conflicts.is_empty() {
                    return Err(VolumeError::Conflict {
                        volume: n,
                        paths: conflicts,
                    });
                }
                let sizes = touch_blobs(&tx, &blob_ids).await?;
                for (path, node) in &normalized {
                    if let Some(Node {
                        blob: Some(b),
                        size,
                        ..
                    }) = node
                    {
                        match sizes.get(b.0.as_slice()) {
                            None => return Err(BlobError::Missing(*b).into()),
                            Some(len) if len != size => {
                                return Err(VolumeError::InvalidPath {
                                    path: path.clone(),
                                    reason: format!(
                                        "the node says {size} bytes but blob {b} holds {len}"
                                    ),
                                });
                            }
                            Some(_) => {}
                        }
                    }
                }
                let head = PgHead::read(&tx, &meta, &normalized).await?;
                let base = Base {
                    volume: &n,
                    inodes: meta.inodes,
                    bytes: meta.bytes,
                    max_bytes: meta.max_bytes,
                    inode_limit: limit,
                    now_ms,
                };
                let changes = normalized.iter().map(|(p, n)| (p.as_str(), n.as_ref()));
                let plan = plan(head, base, changes)?;
                let (changed, removed_paths) = (plan.changed, plan.removed);
                let dropped: Vec<Vec<u8>> = plan.dropped.iter().map(|b| b.0.to_vec()).collect();
                let version = meta
                    .head
                    .checked_add(1)
                    .filter(|v| *v <= i64::MAX as u64)
                    .ok_or_else(|| {
                        VolumeError::Corrupt(format!("volume `{n}`: version counter overflow"))
                    })?;
                let (inodes, bytes, overlay) = (plan.inodes, plan.bytes, plan.overlay);
                write_nodes(&tx, meta.id, &overlay, !meta.chain.is_empty()).await?;
                // The nodes this commit replaces stay readable as version
                // `meta.head` (see `history`).
                write_history(&tx, meta.id, version, &plan.before).await?;
                let st = tx
                    .prepare_cached(
                        "INSERT INTO vessel_volume_log \
                         (volume, version, time_ms, changed, removed, dropped, bytes_added, \
                         inodes, bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .await?;
                tx.execute(
                    &st,
                    &[
                        &meta.id,
                        &to_db(version),
                        &to_db(now_ms),
                        &changed,
                        &removed_paths,
                        &dropped,
                        &to_db(plan.bytes_added),
                        &to_db(inodes),
                        &to_db(bytes),
                    ],
                )
                .await?;
                // The compare-and-swap on the head: it must still be the one
                // this commit planned against. A volume written before
                // history existed keeps history from here on.
                let st = tx
                    .prepare_cached(
                        "UPDATE vessel_volumes SET head = $3, inodes = $4, bytes = $5, \
                         history_from = COALESCE(history_from, $2) \
                         WHERE id = $1 AND head = $2",
                    )
                    .await?;
                let moved = tx
                    .execute(
                        &st,
                        &[
                            &meta.id,
                            &to_db(meta.head),
                            &to_db(version),
                            &to_db(inodes),
                            &to_db(bytes),
                        ],
                    )
                    .await?;
                if moved != 1 {
                    return Err(VolumeError::Unavailable(format!(
                        "volume `{n}` moved under a commit; try again"
                    )));
                }
                tx.commit().await?;
                let info = CommitInfo {
                    version,
                    changed: changed.len() as u64,
                    removed: removed_paths.len() as u64,
                };
                Ok((meta.id, meta.head, info, overlay))
            })?;
            // Keep a cached snapshot of the previous head current: the next read
            // merges in what this commit wrote (cheap next to a rescan).
            lock(&self.inner.volume_cache).advance(id, from, info.version, overlay);
            Ok(info)
        })
    }
}
