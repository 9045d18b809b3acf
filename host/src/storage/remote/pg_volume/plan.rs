//! The head a commit plans over on PostgreSQL: everything the shared
//! planner will read, fetched up front through the commit's transaction
//! (the planner is synchronous, and one query beats one per path). A
//! fork's head is what it shows, read through its chain, so the history
//! rows record what a reader saw and removing a directory hides every
//! path the levels below hold under it.

use super::*;
use crate::storage::volume::plan::HeadReader;

/// The stored head at the paths a commit touches, read ahead.
#[derive(Debug, Default)]
pub(super) struct PgHead {
    /// The changed paths and their ancestors (`None`: absent).
    points: HashMap<String, Option<Node>>,
    /// Every stored node under the directories in `roots`.
    under: BTreeMap<String, Node>,
    /// Directories whose whole subtree is in `under`.
    roots: Vec<String>,
}

impl PgHead {
    /// Reads what planning `changes` over the volume `meta` describes
    /// needs: each changed path and its ancestors in one query, then the
    /// subtree of each changed path that is a directory now and that a
    /// change may remove (a removal, or a put of a file or symlink).
    pub(super) async fn read(
        tx: &Transaction<'_>,
        meta: &Meta,
        changes: &[(String, Option<Node>)],
    ) -> Result<Self, VolumeError> {
        let id = meta.id;
        // A fork's head: its own level at its head, then its chain.
        let levels = (!meta.chain.is_empty()).then(|| meta.levels(meta.head));
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for (p, _) in changes {
            wanted.insert(p.clone());
            for a in ancestors(p) {
                wanted.insert(a.to_owned());
            }
        }
        let wanted: Vec<String> = wanted.into_iter().collect();
        let mut head = PgHead::default();
        if let Some(levels) = &levels {
            let (points, _) = chain::points_through(tx, levels, &wanted, id).await?;
            head.points = points;
        } else {
            head.read_own(tx, id, wanted).await?;
        }
        // Outermost first, so a nested directory's subtree comes with its
        // ancestor's.
        let mut dirs: Vec<&str> = changes
            .iter()
            .filter(|(_, n)| n.as_ref().is_none_or(|n| n.kind != NodeKind::Dir))
            .map(|(p, _)| p.as_str())
            .filter(|p| head.is_dir(p))
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        for dir in dirs {
            if head.covered(dir) {
                continue;
            }
            let under = match &levels {
                Some(levels) => chain::list_through(tx, levels, dir, true).await?,
                None => own_under(tx, id, dir).await?,
            };
            head.under.extend(under);
            head.roots.push(dir.to_owned());
        }
        Ok(head)
    }

    /// Reads the own rows at `wanted` (a volume that is not a fork).
    async fn read_own(
        &mut self,
        tx: &Transaction<'_>,
        id: i64,
        wanted: Vec<String>,
    ) -> Result<(), VolumeError> {
        let st = tx
            .prepare_cached(&format!(
                "SELECT n.path, {} FROM vessel_volume_nodes n \
                 WHERE n.volume = $1 AND n.path = ANY($2)",
                node_cols("n")
            ))
            .await?;
        for row in tx.query(&st, &[&id, &wanted]).await? {
            let path: String = col(&row, 0)?;
            let node = node_at(&row, 1)?;
            self.points.insert(path, node);
        }
        for p in wanted {
            self.points.entry(p).or_insert(None);
        }
        Ok(())
    }

    fn is_dir(&self, path: &str) -> bool {
        matches!(self.points.get(path), Some(Some(n)) if n.kind == NodeKind::Dir)
    }

    /// Whether `dir`'s subtree was read (as itself or inside an ancestor's).
    fn covered(&self, dir: &str) -> bool {
        self.roots.iter().any(|r| {
            dir == r
                || dir
                    .strip_prefix(r.as_str())
                    .is_some_and(|s| s.starts_with('/'))
        })
    }

    fn not_read(what: &str, path: &str) -> VolumeError {
        // The planner reads only what `read` fetched; reaching this is a
        // host bug, reported rather than answered with a wrong plan.
        VolumeError::Io(format!(
            "commit planner read {what} {path:?}, which the commit did not fetch"
        ))
    }
}

/// Every own row strictly under `dir` of volume `id` (not a fork).
async fn own_under(
    tx: &Transaction<'_>,
    id: i64,
    dir: &str,
) -> Result<Vec<(String, Node)>, VolumeError> {
    let st = tx
        .prepare_cached(&format!(
            "SELECT n.path, {} FROM vessel_volume_nodes n WHERE n.volume = $1 \
             AND n.path >= $2 AND ($3::text IS NULL OR n.path < $3)",
            node_cols("n")
        ))
        .await?;
    let (lo, hi) = subtree_range(dir);
    let mut out = Vec::new();
    for row in tx.query(&st, &[&id, &lo, &hi]).await? {
        let path: String = col(&row, 0)?;
        if let Some(node) = node_at(&row, 1)? {
            out.push((path, node));
        }
    }
    Ok(out)
}

impl HeadReader for PgHead {
    fn node(&mut self, path: &str) -> Result<Option<Node>, VolumeError> {
        match self.points.get(path) {
            Some(n) => Ok(n.clone()),
            None => Err(Self::not_read("node", path)),
        }
    }

    fn subtree(&mut self, dir: &str) -> Result<Vec<(String, Node)>, VolumeError> {
        if !self.is_dir(dir) {
            // Nothing is stored under a path that is not a directory now.
            return Ok(Vec::new());
        }
        if !self.covered(dir) {
            return Err(Self::not_read("the subtree of", dir));
        }
        let prefix = format!("{dir}/");
        Ok(self
            .under
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
