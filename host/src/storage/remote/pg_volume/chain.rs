//! Reads through levels on PostgreSQL: the rows that say what a path (or
//! a directory's entries) is in volume `id` at version `v`, for a list of
//! such levels at once. A fork's head is its own level at its head and then
//! its chain; any volume at an older version is its own level at that
//! version (then its chain). The rules that combine the levels are
//! [`crate::storage::volume::fork`]'s; this file only finds the rows.
//!
//! Each function is one statement over every level (the levels passed as
//! two arrays, unnested with their position), so a read costs one round
//! trip whatever the depth, and sees one snapshot of the database. A
//! level `(id, v)` contributes:
//! - the first history row of `id` with `until > v` per path (what the
//!   path was at `v`, when it changed since);
//! - `id`'s own head rows;
//! - `id`'s hidden rows (paths its commits removed while it reads through
//!   a chain).

use super::*;
use deadpool_postgres::GenericClient;

use crate::storage::volume::fork::{Found, LevelRows, chain_list, chain_node};

/// The levels, unnested with their position (`l.i`, from 1) from
/// parameters `$1` (ids) and `$2` (versions).
const LEVELS: &str = "unnest($1::int8[], $2::int8[]) WITH ORDINALITY AS l(id, v, i)";

/// Which table a row came from.
const FROM_HISTORY: i16 = 0;
const FROM_OWN: i16 = 1;
const FROM_HIDDEN: i16 = 2;
/// The marker row of [`points_through`]: the volume read has no row.
const VOLUME_GONE: i16 = 3;

/// The three parts of a level query, `where_` restricting each table
/// (aliased `h`, `n`, `x`) further, as one `UNION ALL`: every row is
/// `level, source, path, kind, blob, size, mtime_ms, mode, target`.
fn level_sql(where_h: &str, where_n: &str, where_x: &str) -> String {
    format!(
        "SELECT l.i, {FROM_HISTORY}::int2, h.path, {hc} FROM {LEVELS} CROSS JOIN LATERAL \
         (SELECT DISTINCT ON (h.path) h.path, {hc} FROM vessel_volume_history h \
          WHERE h.volume = l.id AND h.until > l.v AND {where_h} ORDER BY h.path, h.until) h \
         UNION ALL SELECT l.i, {FROM_OWN}::int2, n.path, {nc} FROM {LEVELS} \
         JOIN vessel_volume_nodes n ON n.volume = l.id AND {where_n} \
         UNION ALL SELECT l.i, {FROM_HIDDEN}::int2, x.path, NULL::int2, NULL::bytea, \
         NULL::int8, NULL::int8, NULL::int8, NULL::text FROM {LEVELS} \
         JOIN vessel_volume_hidden x ON x.volume = l.id AND {where_x}",
        hc = node_cols("h"),
        nc = node_cols("n"),
    )
}

/// The levels as the two array parameters.
fn arrays(levels: &[Level]) -> (Vec<i64>, Vec<i64>) {
    levels.iter().map(|l| (l.id, to_db(l.version))).unzip()
}

/// What one level holds at the paths asked.
#[derive(Debug, Default)]
struct AtLevel {
    history: HashMap<String, Option<Node>>,
    own: HashMap<String, Node>,
    hidden: HashSet<String>,
}

impl AtLevel {
    /// What this level says about `path` (see `fork`'s module docs).
    fn found(&self, path: &str) -> Found {
        if let Some(then) = self.history.get(path) {
            return Found::from_row(then.clone());
        }
        if let Some(n) = self.own.get(path) {
            return Found::Node(n.clone());
        }
        if self.hidden.contains(path) {
            return Found::Gone;
        }
        Found::Below
    }
}

/// A row's level as an index into the levels passed (`l.i` counts from 1).
fn level_index(row: &Row, levels: usize) -> Result<usize, VolumeError> {
    let i: i64 = col(row, 0)?;
    usize::try_from(i)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .filter(|i| *i < levels)
        .ok_or_else(|| VolumeError::Corrupt(format!("a level query returned level {i}")))
}

/// The nodes of `paths` through `levels`, each path once (`None`: absent;
/// the root is not stored, callers answer it), and whether volume
/// `volume` still had its row in the statement's snapshot. That check
/// lets a read that found the volume in an earlier statement trust this
/// one: while a volume exists, every level it reads through does (a
/// volume some chain names cannot be deleted).
pub(super) async fn points_through<C: GenericClient>(
    client: &C,
    levels: &[Level],
    paths: &[String],
    volume: i64,
) -> Result<(HashMap<String, Option<Node>>, bool), VolumeError> {
    let sql = format!(
        "{} UNION ALL SELECT 0::int8, {VOLUME_GONE}::int2, NULL::text, NULL::int2, \
         NULL::bytea, NULL::int8, NULL::int8, NULL::int8, NULL::text \
         WHERE NOT EXISTS (SELECT 1 FROM vessel_volumes WHERE id = $4)",
        level_sql("h.path = ANY($3)", "n.path = ANY($3)", "x.path = ANY($3)")
    );
    let st = client.prepare_cached(&sql).await?;
    let (ids, versions) = arrays(levels);
    let mut at: Vec<AtLevel> = levels.iter().map(|_| AtLevel::default()).collect();
    let mut exists = true;
    for row in client
        .query(&st, &[&ids, &versions, &paths, &volume])
        .await?
    {
        let source: i16 = col(&row, 1)?;
        if source == VOLUME_GONE {
            exists = false;
            continue;
        }
        let i = level_index(&row, levels.len())?;
        let Some(level) = at.get_mut(i) else {
            continue;
        };
        let path: String = col(&row, 2)?;
        match source {
            FROM_HISTORY => {
                level.history.insert(path, node_at(&row, 3)?);
            }
            FROM_OWN => {
                if let Some(n) = node_at(&row, 3)? {
                    level.own.insert(path, n);
                }
            }
            _ => {
                level.hidden.insert(path);
            }
        }
    }
    let mut out = HashMap::with_capacity(paths.len());
    for p in paths {
        let node = chain_node(&at, |level| Ok(level.found(p)))?;
        out.insert(p.clone(), node);
    }
    Ok((out, exists))
}

/// The entries under directory `dir` (all descendants when `recursive`)
/// through `levels`, sorted by path, without checking that `dir` is a
/// directory.
pub(super) async fn list_through<C: GenericClient>(
    client: &C,
    levels: &[Level],
    dir: &str,
    recursive: bool,
) -> Result<Vec<(String, Node)>, VolumeError> {
    let range = |t: &str| {
        format!(
            "{t}.path >= $3 AND ($4::text IS NULL OR {t}.path < $4) \
             AND ($5 OR position('/' in substr({t}.path, char_length($3) + 1)) = 0)"
        )
    };
    let sql = level_sql(&range("h"), &range("n"), &range("x"));
    let st = client.prepare_cached(&sql).await?;
    let (ids, versions) = arrays(levels);
    let (lo, hi) = subtree_range(dir);
    let mut rows: Vec<LevelRows> = levels.iter().map(|_| LevelRows::default()).collect();
    // Hidden rows first, so an own row of the same path wins whatever the
    // order the rows come in.
    let mut own: Vec<Vec<(String, Node)>> = levels.iter().map(|_| Vec::new()).collect();
    for row in client
        .query(&st, &[&ids, &versions, &lo, &hi, &recursive])
        .await?
    {
        let i = level_index(&row, levels.len())?;
        let path: String = col(&row, 2)?;
        match col::<i16>(&row, 1)? {
            FROM_HISTORY => {
                let node = node_at(&row, 3)?;
                if let Some(level) = rows.get_mut(i) {
                    level.changed_after.insert(path, node);
                }
            }
            FROM_OWN => {
                if let (Some(n), Some(level)) = (node_at(&row, 3)?, own.get_mut(i)) {
                    level.push((path, n));
                }
            }
            _ => {
                if let Some(level) = rows.get_mut(i) {
                    level.own.insert(path, None);
                }
            }
        }
    }
    for (level, nodes) in rows.iter_mut().zip(own) {
        for (path, n) in nodes {
            level.own.insert(path, Some(n));
        }
    }
    let indices: Vec<usize> = (0..levels.len()).collect();
    chain_list(&indices, dir, recursive, |i| {
        Ok(rows.get_mut(*i).map(std::mem::take).unwrap_or_default())
    })
}
