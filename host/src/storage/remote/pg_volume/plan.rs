//! Commit planning on PostgreSQL: the writes a commit builds over the head
//! it started from, read through the commit's transaction.

use super::*;

/// The writes a commit is building, over the head it started from (the
/// embedded store's plan, reading through a transaction).
pub(super) struct Plan<'a> {
    pub(super) tx: &'a Transaction<'a>,
    pub(super) id: i64,
    /// Path → its state after the changes so far (`None`: removed).
    pub(super) overlay: BTreeMap<String, Option<Node>>,
    /// Stored state of the paths read up front (`None`: absent).
    pub(super) read: HashMap<String, Option<Node>>,
    pub(super) known_dirs: HashSet<String>,
    pub(super) inodes: u64,
    pub(super) bytes: u64,
    pub(super) now_ms: u64,
}

impl Plan<'_> {
    pub(super) async fn current(&mut self, path: &str) -> Result<Option<Node>, VolumeError> {
        if let Some(n) = self.overlay.get(path) {
            return Ok(n.clone());
        }
        if let Some(n) = self.read.get(path) {
            return Ok(n.clone());
        }
        let st = self
            .tx
            .prepare_cached(&format!(
                "SELECT {} FROM vessel_volume_nodes n WHERE n.volume = $1 AND n.path = $2",
                node_cols("n")
            ))
            .await?;
        let node = match self.tx.query_opt(&st, &[&self.id, &path]).await? {
            Some(row) => node_at(&row, 0)?,
            None => None,
        };
        self.read.insert(path.to_owned(), node.clone());
        Ok(node)
    }

    /// Reads `paths` in one query.
    pub(super) async fn prefetch(&mut self, paths: Vec<String>) -> Result<(), VolumeError> {
        let st = self
            .tx
            .prepare_cached(&format!(
                "SELECT n.path, {} FROM vessel_volume_nodes n \
                 WHERE n.volume = $1 AND n.path = ANY($2)",
                node_cols("n")
            ))
            .await?;
        for row in self.tx.query(&st, &[&self.id, &paths]).await? {
            let path: String = col(&row, 0)?;
            let node = node_at(&row, 1)?;
            self.read.insert(path, node);
        }
        for p in paths {
            self.read.entry(p).or_insert(None);
        }
        Ok(())
    }

    pub(super) fn forget(&mut self, node: &Node) {
        self.inodes = self.inodes.saturating_sub(1);
        if node.kind == NodeKind::File {
            self.bytes = self.bytes.saturating_sub(node.size);
        }
    }

    pub(super) fn add(&mut self, node: &Node) {
        self.inodes = self.inodes.saturating_add(1);
        if node.kind == NodeKind::File {
            self.bytes = self.bytes.saturating_add(node.size);
        }
    }

    /// Removes everything strictly under `dir` from the planned state.
    pub(super) async fn remove_subtree(&mut self, dir: &str) -> Result<(), VolumeError> {
        let (lo, hi) = subtree_range(dir);
        let touched: Vec<(String, Option<Node>)> = self
            .overlay
            .range::<str, _>((
                std::ops::Bound::Included(lo.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&lo))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let touched_paths: HashSet<String> = touched.iter().map(|(k, _)| k.clone()).collect();
        let st = self
            .tx
            .prepare_cached(&format!(
                "SELECT n.path, {} FROM vessel_volume_nodes n WHERE n.volume = $1 \
                 AND n.path >= $2 AND ($3::text IS NULL OR n.path < $3)",
                node_cols("n")
            ))
            .await?;
        let mut stored = Vec::new();
        for row in self.tx.query(&st, &[&self.id, &lo, &hi]).await? {
            let path: String = col(&row, 0)?;
            if touched_paths.contains(&path) {
                continue;
            }
            if let Some(node) = node_at(&row, 1)? {
                stored.push((path, node));
            }
        }
        for (path, node) in touched {
            if let Some(node) = node {
                self.forget(&node);
                self.known_dirs.remove(&path);
                self.overlay.insert(path, None);
            }
        }
        for (path, node) in stored {
            self.forget(&node);
            self.known_dirs.remove(&path);
            self.overlay.insert(path, None);
        }
        Ok(())
    }

    /// Makes sure `dir` is a directory, replacing a file or symlink there.
    pub(super) async fn ensure_dir(&mut self, dir: &str) -> Result<(), VolumeError> {
        if self.known_dirs.contains(dir) {
            return Ok(());
        }
        match self.current(dir).await? {
            Some(n) if n.kind == NodeKind::Dir => {}
            other => {
                if let Some(old) = &other {
                    self.forget(old);
                }
                let node = Node {
                    kind: NodeKind::Dir,
                    blob: None,
                    size: 0,
                    mtime_ms: self.now_ms,
                    mode: IMPLICIT_DIR_MODE,
                    target: None,
                };
                self.add(&node);
                self.overlay.insert(dir.to_owned(), Some(node));
            }
        }
        self.known_dirs.insert(dir.to_owned());
        Ok(())
    }

    pub(super) async fn put(&mut self, path: &str, node: &Node) -> Result<(), VolumeError> {
        for dir in ancestors(path) {
            self.ensure_dir(dir).await?;
        }
        if let Some(old) = self.current(path).await? {
            // A directory replaced by a file or symlink takes its subtree
            // with it; a directory over a directory keeps its children.
            if old.kind == NodeKind::Dir && node.kind != NodeKind::Dir {
                self.remove_subtree(path).await?;
            }
            self.forget(&old);
        }
        self.add(node);
        if node.kind == NodeKind::Dir {
            self.known_dirs.insert(path.to_owned());
        } else {
            self.known_dirs.remove(path);
        }
        self.overlay.insert(path.to_owned(), Some(node.clone()));
        Ok(())
    }

    /// Returns whether something was removed.
    pub(super) async fn remove(&mut self, path: &str) -> Result<bool, VolumeError> {
        let Some(old) = self.current(path).await? else {
            return Ok(false);
        };
        if old.kind == NodeKind::Dir {
            self.remove_subtree(path).await?;
        }
        self.forget(&old);
        self.known_dirs.remove(path);
        self.overlay.insert(path.to_owned(), None);
        Ok(true)
    }
}
