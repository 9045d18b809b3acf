//! The head a commit plans over, read from sled: the shared planner's
//! [`HeadReader`], remembering the stored bytes of every path it read so a
//! commit that never becomes durable can be undone. A fork's head is what
//! its reads show (its own rows over its chain, see `fork`), so the plan's
//! counts and history rows are those of the merged view.

use super::*;
use crate::storage::volume::plan::HeadReader;

/// Reads volume `id`'s head from sled for the commit planner.
pub(super) struct SledHead<'a> {
    state: &'a VolumeState,
    id: u64,
    /// The volume's row: its chain, for a fork.
    meta: Meta,
    /// Path → its stored bytes before the commit, for every path read:
    /// what undoes the commit if it never becomes durable.
    originals: HashMap<String, Option<IVec>>,
}

impl<'a> SledHead<'a> {
    pub(super) fn new(state: &'a VolumeState, meta: &Meta) -> Self {
        SledHead {
            state,
            id: meta.id,
            meta: meta.clone(),
            originals: HashMap::new(),
        }
    }

    /// What undoes writing `overlay`: every overlay path as it was stored
    /// (read now for any path the planner never read).
    pub(super) fn undo(
        &self,
        overlay: &BTreeMap<String, Option<Node>>,
    ) -> Result<Vec<UndoOp>, VolumeError> {
        let mut undo = Vec::with_capacity(overlay.len());
        for path in overlay.keys() {
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
}

impl HeadReader for SledHead<'_> {
    fn node(&mut self, path: &str) -> Result<Option<Node>, VolumeError> {
        let stored = self
            .state
            .nodes
            .get(node_key(self.id, path))
            .map_err(db_err)?;
        let node = stored.as_deref().map(decode_node).transpose()?;
        self.originals.entry(path.to_owned()).or_insert(stored);
        match node {
            None if !self.meta.base.is_empty() => self.state.head_node(&self.meta, path),
            node => Ok(node),
        }
    }

    fn subtree(&mut self, dir: &str) -> Result<Vec<(String, Node)>, VolumeError> {
        if !self.meta.base.is_empty() {
            // The own rows' bytes, for the undo; the merged view, to plan.
            for item in self.state.nodes.scan_prefix(subtree_prefix(self.id, dir)) {
                let (k, v) = item.map_err(db_err)?;
                self.originals.entry(key_path(&k)?).or_insert(Some(v));
            }
            return self.state.head_under(&self.meta, dir, true);
        }
        let mut out = Vec::new();
        for item in self.state.nodes.scan_prefix(subtree_prefix(self.id, dir)) {
            let (k, v) = item.map_err(db_err)?;
            let path = key_path(&k)?;
            out.push((path.clone(), decode_node(&v)?));
            self.originals.entry(path).or_insert(Some(v));
        }
        Ok(out)
    }
}
