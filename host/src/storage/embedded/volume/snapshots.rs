//! The snapshot cache: the latest snapshot of each recently mounted volume,
//! kept current by this process's commits, so a mount copies it instead of
//! scanning sled.

use super::*;

/// The latest snapshot read of each recently mounted volume, by volume id,
/// kept up to date by the commits of this process (the only writer: sled is
/// single-process). A container mounting a volume copies its snapshot from
/// here instead of scanning sled, which is most of a mount's cost.
///
/// A commit does not touch the snapshot (it would cost O(volume)): it
/// appends the paths it wrote, as they are in sled after it, and the next
/// read merges them in, O(volume + changes) in memory. Versions only grow
/// and ids are never reused, so an entry is exactly the head when its
/// version (after the pending commits) is the head's.
#[derive(Debug, Default)]
pub(super) struct SnapshotCache {
    pub(super) entries: HashMap<u64, CachedSnapshot>,
    /// Nodes and pending paths over all entries.
    pub(super) nodes: usize,
    pub(super) clock: u64,
}

/// Paths one commit wrote, and what they hold after it (`None`: removed).
pub(super) type Delta = BTreeMap<String, Option<Node>>;

#[derive(Debug)]
pub(super) struct CachedSnapshot {
    /// The version `nodes` is.
    pub(super) head: u64,
    pub(super) nodes: Arc<Vec<(String, Node)>>,
    /// Commits since `head`, oldest first, with their versions.
    pub(super) pending: Vec<(u64, Delta)>,
    pub(super) pending_paths: usize,
    pub(super) used: u64,
}

impl CachedSnapshot {
    pub(super) fn size(&self) -> usize {
        self.nodes.len() + self.pending_paths
    }

    /// The version after the pending commits.
    pub(super) fn tip(&self) -> u64 {
        self.pending.last().map_or(self.head, |(v, _)| *v)
    }
}

/// `nodes` (sorted by path) with `delta` applied.
pub(super) fn merge(nodes: &[(String, Node)], delta: Delta) -> Vec<(String, Node)> {
    let mut out = Vec::with_capacity(nodes.len() + delta.len());
    let mut old = nodes.iter().peekable();
    let mut new = delta.into_iter().peekable();
    loop {
        let take_old = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, _)), Some((b, _))) => {
                if a == b {
                    // Replaced or removed by the delta.
                    old.next();
                    false
                } else {
                    a < b
                }
            }
        };
        if take_old {
            if let Some(e) = old.next() {
                out.push(e.clone());
            }
        } else if let Some((path, Some(node))) = new.next() {
            out.push((path, node));
        }
    }
    out
}

impl SnapshotCache {
    /// The snapshot of volume `id` at version `head`, if cached.
    pub(super) fn get(&mut self, id: u64, head: u64) -> Option<Arc<Vec<(String, Node)>>> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.entries.get_mut(&id)?;
        if e.tip() != head {
            return None;
        }
        e.used = clock;
        if !e.pending.is_empty() {
            let mut delta = Delta::new();
            for (_, d) in std::mem::take(&mut e.pending) {
                delta.extend(d);
            }
            self.nodes = self.nodes.saturating_sub(e.size());
            e.pending_paths = 0;
            e.nodes = Arc::new(merge(&e.nodes, delta));
            e.head = head;
            self.nodes += e.size();
        }
        let nodes = e.nodes.clone();
        self.shrink();
        Some(nodes)
    }

    pub(super) fn put(&mut self, id: u64, head: u64, nodes: Arc<Vec<(String, Node)>>) {
        self.forget(id);
        if nodes.len() > SNAPSHOT_CACHE_NODES {
            return;
        }
        self.clock += 1;
        self.nodes += nodes.len();
        self.entries.insert(
            id,
            CachedSnapshot {
                head,
                nodes,
                pending: Vec::new(),
                pending_paths: 0,
                used: self.clock,
            },
        );
        self.shrink();
    }

    /// Records that a commit moved volume `id` from version `from` to `to`
    /// by writing `delta`.
    pub(super) fn advance(&mut self, id: u64, from: u64, to: u64, delta: Delta) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        // Pending paths beyond the snapshot's size: a fresh scan is as
        // cheap as the merge, and memory stays bounded.
        if e.tip() != from || e.pending_paths + delta.len() > e.nodes.len().max(1024) {
            self.forget(id);
            return;
        }
        e.pending_paths += delta.len();
        self.nodes += delta.len();
        e.pending.push((to, delta));
        self.shrink();
    }

    pub(super) fn shrink(&mut self) {
        while self.nodes > SNAPSHOT_CACHE_NODES {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.forget(oldest);
        }
    }

    pub(super) fn forget(&mut self, id: u64) {
        if let Some(e) = self.entries.remove(&id) {
            self.nodes = self.nodes.saturating_sub(e.size());
        }
    }
}
