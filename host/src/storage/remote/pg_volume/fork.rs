//! Forks on PostgreSQL (the rules: [`crate::storage::volume::fork`]):
//! making one, and what keeps the levels a fork reads through alive.
//!
//! A fork is a `vessel_volumes` row whose `base_ids` and `base_versions`
//! hold its chain, nearest level first: `(src id, V)` then `src`'s own
//! chain. Ids, not names, so renames change nothing. Making one copies no
//! node and no blob: a few statements whatever the size of `src`.
//!
//! What keeps a level readable:
//! - gc's prune never raises a volume's floor above the oldest version
//!   any chain names for it ([`oldest_named`]), so the history rows (and
//!   the blobs they name) that make that version stay;
//! - a volume some chain names cannot be deleted ([`forks_of`], checked by
//!   `delete` under the row's lock).
//!
//! Locks: the fork holds `src`'s row `FOR KEY SHARE` until it lands. A
//! delete or a prune of `src` takes the row `FOR UPDATE`, so it either
//! lands first (the fork then sees the row gone, or its raised floor) or
//! waits for the fork and then sees its chain. Commits to `src` take the
//! row `FOR NO KEY UPDATE`, which the fork does not block.

use super::*;
use deadpool_postgres::GenericClient;

use crate::storage::volume::fork::check_depth;
use crate::storage::volume::history::check_kept;

/// The names of the volumes whose chain names volume `id`, sorted.
pub(super) async fn forks_of<C: GenericClient>(
    client: &C,
    id: i64,
) -> Result<Vec<String>, VolumeError> {
    let st = client
        .prepare_cached(
            "SELECT name FROM vessel_volumes WHERE base_ids @> ARRAY[$1::int8] ORDER BY name",
        )
        .await?;
    let mut out = Vec::new();
    for row in client.query(&st, &[&id]).await? {
        out.push(col(&row, 0)?);
    }
    Ok(out)
}

/// The oldest version of volume `id` that a chain names (`None`: no fork
/// reads through it): gc's prune keeps every version from there on.
pub(super) async fn oldest_named<C: GenericClient>(
    client: &C,
    id: i64,
) -> Result<Option<u64>, VolumeError> {
    let st = client
        .prepare_cached(
            "SELECT min(u.v) FROM vessel_volumes f \
             CROSS JOIN LATERAL unnest(f.base_ids, f.base_versions) AS u(id, v) \
             WHERE f.base_ids @> ARRAY[$1::int8] AND u.id = $1",
        )
        .await?;
    let row = client.query_one(&st, &[&id]).await?;
    match col::<Option<i64>>(&row, 0)? {
        Some(v) => Ok(Some(
            from_db(v, "a base version").map_err(VolumeError::Corrupt)?,
        )),
        None => Ok(None),
    }
}

/// The inode and byte counts of the volume `meta` describes at `version`:
/// the row's at the head; else those its log recorded for the version, or
/// (a version committed before the log kept counts) a recount of the
/// version's listing.
async fn counts_at<C: GenericClient>(
    client: &C,
    meta: &Meta,
    version: u64,
) -> Result<(u64, u64), VolumeError> {
    if version >= meta.head {
        return Ok((meta.inodes, meta.bytes));
    }
    let st = client
        .prepare_cached(
            "SELECT inodes, bytes FROM vessel_volume_log WHERE volume = $1 AND version = $2",
        )
        .await?;
    if let Some(row) = client.query_opt(&st, &[&meta.id, &to_db(version)]).await? {
        let inodes = col::<Option<i64>>(&row, 0)?;
        let bytes = col::<Option<i64>>(&row, 1)?;
        if let (Some(i), Some(b)) = (inodes, bytes) {
            let count = |v, what| from_db(v, what).map_err(VolumeError::Corrupt);
            return Ok((count(i, "an inode count")?, count(b, "a byte count")?));
        }
    }
    let nodes = chain::list_through(client, &meta.levels(version), "", true).await?;
    let bytes = nodes
        .iter()
        .filter(|(_, n)| n.kind == NodeKind::File)
        .fold(0u64, |sum, (_, n)| sum.saturating_add(n.size));
    Ok((nodes.len() as u64, bytes))
}

impl RemoteStore {
    /// [`VolumeStore::fork`] on the shared backend.
    pub(super) fn fork_shared(
        &self,
        src: &str,
        version: Option<u64>,
        dst: &str,
    ) -> Result<VolumeInfo, VolumeError> {
        check_volume_name(src)?;
        check_volume_name(dst)?;
        let (s, d, now_ms) = (src.to_owned(), dst.to_owned(), self.now_ms());
        let meta = self.vol_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = client.transaction().await?;
            let st = tx
                .prepare_cached(&format!(
                    "SELECT {META_COLS} FROM vessel_volumes WHERE name = $1 FOR KEY SHARE"
                ))
                .await?;
            let from = match tx.query_opt(&st, &[&s]).await? {
                Some(row) => meta_at(&row, 0)?,
                None => return Err(VolumeError::NotFound(s)),
            };
            let at = version.unwrap_or(from.head);
            if at != from.head {
                let oldest = super::history::oldest_kept(&tx, &from, now_ms).await?;
                check_kept(&s, at, oldest, from.head)?;
            }
            let mut chain = vec![Level {
                id: from.id,
                version: at,
            }];
            chain.extend(from.chain.iter().copied());
            check_depth(&s, chain.len())?;
            let (inodes, bytes) = counts_at(&tx, &from, at).await?;
            let (ids, versions): (Vec<i64>, Vec<i64>) =
                chain.iter().map(|l| (l.id, to_db(l.version))).unzip();
            let st = tx
                .prepare_cached(&format!(
                    "INSERT INTO vessel_volumes (name, id, head, created_ms, inodes, bytes, \
                     max_bytes, retention_ms, history_from, base_ids, base_versions) \
                     VALUES ($1, nextval('vessel_volume_ids'), 1, $2, $3, $4, $5, $6, 1, $7, $8) \
                     ON CONFLICT (name) DO NOTHING RETURNING {META_COLS}"
                ))
                .await?;
            let row = tx
                .query_opt(
                    &st,
                    &[
                        &d,
                        &to_db(now_ms),
                        &to_db(inodes),
                        &to_db(bytes),
                        &from.max_bytes.map(to_db),
                        &from.retention_ms.map(to_db),
                        &ids,
                        &versions,
                    ],
                )
                .await?
                .ok_or_else(|| VolumeError::AlreadyExists(d.clone()))?;
            let meta = meta_at(&row, 0)?;
            // Version 1 is the fork itself: it changed nothing, and the
            // history lists it like any commit.
            let st = tx
                .prepare_cached(
                    "INSERT INTO vessel_volume_log (volume, version, time_ms, changed, removed, \
                     dropped, bytes_added, inodes, bytes) \
                     VALUES ($1, 1, $2, '{}', '{}', '{}', 0, $3, $4)",
                )
                .await?;
            tx.execute(
                &st,
                &[&meta.id, &to_db(now_ms), &to_db(inodes), &to_db(bytes)],
            )
            .await?;
            tx.commit().await?;
            Ok(meta)
        })?;
        Ok(info_of(dst.to_owned(), &meta))
    }
}
