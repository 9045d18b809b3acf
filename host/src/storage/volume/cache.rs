//! The snapshot cache every volume backend shares: the latest snapshot of
//! each recently mounted volume, kept current by this process's commits, so
//! a mount copies it instead of scanning the store.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use super::Node;

/// Most nodes the snapshot cache holds over all volumes (about 100 bytes
/// each); the least recently used snapshots go first.
pub(crate) const SNAPSHOT_CACHE_NODES: usize = 1_000_000;

/// The latest snapshot read of each recently mounted volume, by volume id,
/// kept up to date by the commits of this process. A container mounting a
/// volume copies its snapshot from here instead of scanning the store,
/// which is most of a mount's cost.
///
/// A commit does not touch the snapshot (it would cost O(volume)): it
/// appends the paths it wrote, as they are stored after it, and the next
/// read merges them in, O(volume + changes) in memory. Versions only grow,
/// each version of a volume is made by exactly one commit (the head moves
/// by compare-and-swap), and ids are never reused, so an entry is exactly
/// the head when its version (after the pending commits) is the head's. A
/// commit by another process (another host on the shared backend) moves the
/// head past the entry, which then misses and is read again.
#[derive(Debug)]
pub(crate) struct SnapshotCache<K> {
    entries: HashMap<K, CachedSnapshot>,
    /// Nodes and pending paths over all entries.
    pub(crate) nodes: usize,
    clock: u64,
}

/// Paths one commit wrote, and what they hold after it (`None`: removed).
pub(crate) type Delta = BTreeMap<String, Option<Node>>;

#[derive(Debug)]
struct CachedSnapshot {
    /// The version `nodes` is.
    head: u64,
    nodes: Arc<Vec<(String, Node)>>,
    /// Commits since `head`, oldest first, with their versions.
    pending: Vec<(u64, Delta)>,
    pending_paths: usize,
    used: u64,
}

impl CachedSnapshot {
    fn size(&self) -> usize {
        self.nodes.len() + self.pending_paths
    }

    /// The version after the pending commits.
    fn tip(&self) -> u64 {
        self.pending.last().map_or(self.head, |(v, _)| *v)
    }
}

/// `nodes` (sorted by path) with `delta` applied.
fn merge(nodes: &[(String, Node)], delta: Delta) -> Vec<(String, Node)> {
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

impl<K> Default for SnapshotCache<K> {
    fn default() -> Self {
        SnapshotCache {
            entries: HashMap::new(),
            nodes: 0,
            clock: 0,
        }
    }
}

impl<K: Copy + Eq + Hash> SnapshotCache<K> {
    /// The snapshot of volume `id` at version `head`, if cached.
    pub(crate) fn get(&mut self, id: K, head: u64) -> Option<Arc<Vec<(String, Node)>>> {
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

    pub(crate) fn put(&mut self, id: K, head: u64, nodes: Arc<Vec<(String, Node)>>) {
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
    pub(crate) fn advance(&mut self, id: K, from: u64, to: u64, delta: Delta) {
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

    fn shrink(&mut self) {
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

    pub(crate) fn forget(&mut self, id: K) {
        if let Some(e) = self.entries.remove(&id) {
            self.nodes = self.nodes.saturating_sub(e.size());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::storage::volume::NodeKind;

    fn node(size: u64) -> Node {
        Node {
            kind: NodeKind::File,
            blob: None,
            size,
            mtime_ms: 0,
            mode: 0o644,
            target: None,
        }
    }

    #[test]
    fn commits_merge_into_the_cached_snapshot() {
        let mut cache = SnapshotCache::default();
        cache.put(
            7u64,
            1,
            Arc::new(vec![("a".into(), node(1)), ("c".into(), node(3))]),
        );
        let delta: Delta = [("b".to_owned(), Some(node(2))), ("c".to_owned(), None)].into();
        cache.advance(7, 1, 2, delta);
        assert!(cache.get(7, 1).is_none(), "the old head is gone");
        let got = cache.get(7, 2).unwrap();
        let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["a", "b"]);
        // A commit from another head (another writer moved it) drops it.
        cache.advance(7, 5, 6, Delta::new());
        assert!(cache.get(7, 2).is_none() && cache.get(7, 6).is_none());
    }

    #[test]
    fn over_its_size_the_least_recently_used_go() {
        let mut cache = SnapshotCache::default();
        let big = Arc::new(vec![(String::new(), node(0)); SNAPSHOT_CACHE_NODES / 2 + 1]);
        cache.put(1i64, 1, big.clone());
        cache.put(2, 1, big.clone());
        assert!(cache.get(1, 1).is_none(), "evicted");
        assert!(cache.get(2, 1).is_some());
        assert!(cache.get(2, 2).is_none(), "another head");
        assert_eq!(cache.nodes, big.len());
        // A snapshot over the whole size is never cached.
        let huge = Arc::new(vec![(String::new(), node(0)); SNAPSHOT_CACHE_NODES + 1]);
        cache.put(3, 1, huge);
        assert!(cache.get(3, 1).is_none());
    }
}
