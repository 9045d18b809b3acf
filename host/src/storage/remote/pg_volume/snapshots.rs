//! The snapshot cache of the shared backend: the latest snapshot of recently
//! mounted volumes, by volume id and head.

use super::*;

/// The latest snapshot read of recently mounted volumes, by volume id and
/// head. A hit costs one indexed row read (the head) instead of a scan.
#[derive(Debug, Default)]
pub(crate) struct SnapshotCache {
    /// Volume id → head, nodes, last use.
    pub(super) entries: HashMap<i64, CachedSnapshot>,
    pub(super) nodes: usize,
    pub(super) clock: u64,
}

impl SnapshotCache {
    pub(super) fn get(&mut self, id: i64, head: u64) -> Option<Arc<Vec<(String, Node)>>> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.entries.get_mut(&id)?;
        if e.0 != head {
            return None;
        }
        e.2 = clock;
        Some(e.1.clone())
    }

    pub(super) fn put(&mut self, id: i64, head: u64, nodes: Arc<Vec<(String, Node)>>) {
        if let Some(old) = self.entries.remove(&id) {
            self.nodes = self.nodes.saturating_sub(old.1.len());
        }
        if nodes.len() > SNAPSHOT_CACHE_NODES {
            return;
        }
        self.clock += 1;
        self.nodes += nodes.len();
        self.entries.insert(id, (head, nodes, self.clock));
        while self.nodes > SNAPSHOT_CACHE_NODES {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.2)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(old) = self.entries.remove(&oldest) {
                self.nodes = self.nodes.saturating_sub(old.1.len());
            }
        }
    }
}
