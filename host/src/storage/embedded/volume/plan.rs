//! Commit planning: the writes a commit builds over the head it started
//! from, with the ancestors it must create or check.

use super::*;

// PLAN-START

/// The writes a commit is building, over the head it started from.
pub(super) struct Plan<'a> {
    pub(super) state: &'a VolumeState,
    pub(super) id: u64,
    /// Path → its state after the changes so far (`None`: removed).
    pub(super) overlay: BTreeMap<String, Option<Node>>,
    /// Paths known to be directories in the planned state (saves re-reading
    /// common ancestors of many changed paths).
    pub(super) known_dirs: HashSet<String>,
    pub(super) inodes: u64,
    pub(super) bytes: u64,
    pub(super) now_ms: u64,
    /// Path → its stored bytes before the commit, for every path read from
    /// sled: what undoes the commit if it never becomes durable.
    pub(super) originals: HashMap<String, Option<IVec>>,
}

impl Plan<'_> {
    pub(super) fn current(&mut self, path: &str) -> Result<Option<Node>, VolumeError> {
        if let Some(n) = self.overlay.get(path) {
            return Ok(n.clone());
        }
        let stored = self
            .state
            .nodes
            .get(node_key(self.id, path))
            .map_err(db_err)?;
        let node = stored.as_deref().map(decode_node).transpose()?;
        self.originals.entry(path.to_owned()).or_insert(stored);
        Ok(node)
    }

    /// What undoes the planned node writes: every overlay path as it was
    /// stored (read now for any path the plan never read from sled).
    pub(super) fn undo(&self) -> Result<Vec<UndoOp>, VolumeError> {
        let mut undo = Vec::with_capacity(self.overlay.len());
        for path in self.overlay.keys() {
            let key = node_key(self.id, path);
            let old = match self.originals.get(path) {
                Some(old) => old.clone(),
                None => self.state.nodes.get(&key).map_err(db_err)?,
            };
            undo.push(UndoOp {
                tree: UndoTree::Nodes,
                key: key.into(),
                old,
            });
        }
        Ok(undo)
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
    pub(super) fn remove_subtree(&mut self, dir: &str) -> Result<(), VolumeError> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        // Paths this commit already touched under `dir`: the overlay wins
        // over the stored head for them.
        let touched: Vec<(String, Option<Node>)> = self
            .overlay
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let touched_paths: HashSet<&str> = touched.iter().map(|(k, _)| k.as_str()).collect();
        let mut stored = Vec::new();
        for item in self.state.nodes.scan_prefix(subtree_prefix(self.id, dir)) {
            let (k, v) = item.map_err(db_err)?;
            let path = key_path(&k)?;
            if !touched_paths.contains(path.as_str()) {
                stored.push((path, decode_node(&v)?, v));
            }
        }
        for (path, node) in touched {
            if let Some(node) = node {
                self.forget(&node);
                self.known_dirs.remove(&path);
                self.overlay.insert(path, None);
            }
        }
        for (path, node, bytes) in stored {
            self.forget(&node);
            self.known_dirs.remove(&path);
            self.originals.entry(path.clone()).or_insert(Some(bytes));
            self.overlay.insert(path, None);
        }
        Ok(())
    }

    /// Makes sure `dir` is a directory, replacing a file or symlink there.
    pub(super) fn ensure_dir(&mut self, dir: &str) -> Result<(), VolumeError> {
        if self.known_dirs.contains(dir) {
            return Ok(());
        }
        match self.current(dir)? {
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

    pub(super) fn put(&mut self, path: &str, node: &Node) -> Result<(), VolumeError> {
        // Every ancestor of a known directory is known too, so only the
        // ancestors below the deepest known one need a look: a deep path
        // under a parent put just before costs one lookup, not one per
        // level (which made a 2,000-level tree quadratic in its bytes).
        let unknown: Vec<&str> = ancestors(path)
            .rev()
            .take_while(|d| !self.known_dirs.contains(*d))
            .collect();
        for dir in unknown.into_iter().rev() {
            self.ensure_dir(dir)?;
        }
        if let Some(old) = self.current(path)? {
            // A directory replaced by a file or symlink takes its subtree
            // with it; replacing a directory by a directory keeps the
            // children (it only updates its attributes).
            if old.kind == NodeKind::Dir && node.kind != NodeKind::Dir {
                self.remove_subtree(path)?;
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
    pub(super) fn remove(&mut self, path: &str) -> Result<bool, VolumeError> {
        let Some(old) = self.current(path)? else {
            return Ok(false);
        };
        if old.kind == NodeKind::Dir {
            self.remove_subtree(path)?;
        }
        self.forget(&old);
        self.known_dirs.remove(path);
        self.overlay.insert(path.to_owned(), None);
        Ok(true)
    }
}
