//! The commit planner every volume backend shares: from a commit's
//! normalised changes and the head it starts from, the writes that make the
//! new version (an overlay of path → node or removal), the new inode and
//! byte counts, and the paths changed and removed. It applies the rules of
//! the module docs of [`crate::storage::volume`] once: missing parents are
//! created, a non-directory over a directory takes its subtree with it, the
//! inode limit and the byte quota fail the commit whole.
//!
//! A backend supplies a [`HeadReader`] over its stored head and writes the
//! overlay in its own transaction; the planner never writes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use super::{Node, NodeKind, VolumeError, ancestors, check_quota};
use crate::storage::blobs::BlobId;

/// Mode of directories a commit creates implicitly (missing parents).
pub(crate) const IMPLICIT_DIR_MODE: u32 = 0o755;

/// What the planner reads of the head a commit starts from. The head does
/// not move while a commit plans (the backend holds the volume's lock or a
/// row lock), so a reader may cache what it read.
///
/// The planner reads [`node`](Self::node) only at the changed paths and
/// their ancestors, and [`subtree`](Self::subtree) only at a changed path
/// whose stored node is a directory: a backend that reads ahead (in one
/// query) knows what to read from the changes alone.
pub(crate) trait HeadReader {
    /// The stored node at `path`.
    fn node(&mut self, path: &str) -> Result<Option<Node>, VolumeError>;
    /// Every stored node strictly under directory `dir`.
    fn subtree(&mut self, dir: &str) -> Result<Vec<(String, Node)>, VolumeError>;
}

/// What a commit will write, planned over a head.
#[derive(Debug)]
pub(crate) struct Planned<R> {
    /// The reader, back (for what it recorded while reading).
    pub(crate) head: R,
    /// Path → its node after the commit (`None`: removed), sorted by path.
    pub(crate) overlay: BTreeMap<String, Option<Node>>,
    pub(crate) inodes: u64,
    pub(crate) bytes: u64,
    /// The paths the changes put, in order (the commit log's record).
    pub(crate) changed: Vec<String>,
    /// The paths the changes removed that existed, in order.
    pub(crate) removed: Vec<String>,
    /// The blobs of files this commit replaces or removes, sorted and
    /// without repeats: what a mount of an older version may still need
    /// once the head no longer names them (see `super::pins`). Only the
    /// shared backend records them (one process owns an embedded store and
    /// knows its mounts' blobs exactly).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) dropped: Vec<BlobId>,
    /// Path → its node in the head the commit started from, for every
    /// overlay path whose node the commit changes: the history rows that
    /// keep the older version readable (see `super::history`).
    pub(crate) before: BTreeMap<String, Option<Node>>,
    /// The bytes of the files this commit created or replaced.
    pub(crate) bytes_added: u64,
}

/// The volume a commit starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Base<'a> {
    pub(crate) volume: &'a str,
    pub(crate) inodes: u64,
    pub(crate) bytes: u64,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) inode_limit: u64,
    /// The mtime of directories the commit creates.
    pub(crate) now_ms: u64,
}

/// Plans `changes` (normalised, as [`super::normalize_changes`] gives them:
/// a path and the node to put there, or `None` to remove it) over the head
/// `head` reads. Fails whole with `NoSpace` or `OverQuota` when the commit
/// would cross the inode limit or the byte quota and grows the volume.
pub(crate) fn plan<'c, R: HeadReader>(
    head: R,
    base: Base<'_>,
    changes: impl IntoIterator<Item = (&'c str, Option<&'c Node>)>,
) -> Result<Planned<R>, VolumeError> {
    let mut p = Plan {
        head,
        overlay: BTreeMap::new(),
        stored_blobs: HashMap::new(),
        read: HashMap::new(),
        known_dirs: HashSet::new(),
        inodes: base.inodes,
        bytes: base.bytes,
        now_ms: base.now_ms,
    };
    let (mut changed, mut removed) = (Vec::new(), Vec::new());
    for (path, node) in changes {
        match node {
            Some(node) => {
                p.put(path, node)?;
                changed.push(path.to_owned());
            }
            None => {
                if p.remove(path)? {
                    removed.push(path.to_owned());
                }
            }
        }
    }
    // A commit that does not grow the count is allowed even over a
    // (lowered) limit, so a full volume can always be cleaned up.
    if p.inodes > base.inode_limit && p.inodes > base.inodes {
        return Err(VolumeError::NoSpace {
            volume: base.volume.to_owned(),
            limit: base.inode_limit,
        });
    }
    check_quota(base.volume, base.max_bytes, base.bytes, p.bytes)?;
    let mut dropped: Vec<BlobId> = p
        .stored_blobs
        .iter()
        .filter(|(path, blob)| match p.overlay.get(*path) {
            Some(Some(now)) => now.blob.as_ref() != Some(*blob),
            Some(None) => true,
            None => false,
        })
        .map(|(_, blob)| *blob)
        .collect();
    dropped.sort_unstable();
    dropped.dedup();
    // Every overlay path was read from the head before the plan wrote it
    // (`current` or `remove_subtree`); a path missing from `read` would be
    // a planner bug, and recording it as absent would make an old version
    // lie, so it fails the commit instead.
    let mut before = BTreeMap::new();
    let mut bytes_added = 0u64;
    for (path, now) in &p.overlay {
        let Some(was) = p.read.get(path) else {
            return Err(VolumeError::Corrupt(format!(
                "commit planner: {path} was written without being read"
            )));
        };
        if was != now {
            if let Some(n) = now.as_ref().filter(|n| n.kind == NodeKind::File) {
                bytes_added = bytes_added.saturating_add(n.size);
            }
            before.insert(path.clone(), was.clone());
        }
    }
    Ok(Planned {
        head: p.head,
        overlay: p.overlay,
        inodes: p.inodes,
        bytes: p.bytes,
        changed,
        removed,
        dropped,
        before,
        bytes_added,
    })
}

/// The writes a commit is building, over the head it started from.
struct Plan<R> {
    head: R,
    /// Path → its state after the changes so far (`None`: removed).
    overlay: BTreeMap<String, Option<Node>>,
    /// Path → the blob of the file stored there, for every stored file
    /// read: what the commit may drop.
    stored_blobs: HashMap<String, BlobId>,
    /// Path → its node in the head, for every path read from it.
    read: HashMap<String, Option<Node>>,
    /// Paths known to be directories in the planned state (saves re-reading
    /// common ancestors of many changed paths).
    known_dirs: HashSet<String>,
    inodes: u64,
    bytes: u64,
    now_ms: u64,
}

impl<R: HeadReader> Plan<R> {
    fn current(&mut self, path: &str) -> Result<Option<Node>, VolumeError> {
        match self.overlay.get(path) {
            Some(n) => Ok(n.clone()),
            None => {
                let node = self.head.node(path)?;
                if let Some(b) = node.as_ref().and_then(|n| n.blob) {
                    self.stored_blobs.insert(path.to_owned(), b);
                }
                self.read
                    .entry(path.to_owned())
                    .or_insert_with(|| node.clone());
                Ok(node)
            }
        }
    }

    fn forget(&mut self, node: &Node) {
        self.inodes = self.inodes.saturating_sub(1);
        if node.kind == NodeKind::File {
            self.bytes = self.bytes.saturating_sub(node.size);
        }
    }

    fn add(&mut self, node: &Node) {
        self.inodes = self.inodes.saturating_add(1);
        if node.kind == NodeKind::File {
            self.bytes = self.bytes.saturating_add(node.size);
        }
    }

    /// Removes everything strictly under `dir` from the planned state.
    fn remove_subtree(&mut self, dir: &str) -> Result<(), VolumeError> {
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
        let stored = self.head.subtree(dir)?;
        for (path, node) in touched {
            if let Some(node) = node {
                self.forget(&node);
                self.known_dirs.remove(&path);
                self.overlay.insert(path, None);
            }
        }
        for (path, node) in stored {
            if let Some(b) = node.blob {
                self.stored_blobs.entry(path.clone()).or_insert(b);
            }
            self.read
                .entry(path.clone())
                .or_insert_with(|| Some(node.clone()));
            if self.overlay.contains_key(&path) {
                continue;
            }
            self.forget(&node);
            self.known_dirs.remove(&path);
            self.overlay.insert(path, None);
        }
        Ok(())
    }

    /// Makes sure `dir` is a directory, replacing a file or symlink there.
    fn ensure_dir(&mut self, dir: &str) -> Result<(), VolumeError> {
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

    fn put(&mut self, path: &str, node: &Node) -> Result<(), VolumeError> {
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
    fn remove(&mut self, path: &str) -> Result<bool, VolumeError> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A head held in memory, counting its reads.
    #[derive(Debug, Default)]
    struct Mem {
        nodes: BTreeMap<String, Node>,
        reads: usize,
    }

    impl HeadReader for Mem {
        fn node(&mut self, path: &str) -> Result<Option<Node>, VolumeError> {
            self.reads += 1;
            Ok(self.nodes.get(path).cloned())
        }
        fn subtree(&mut self, dir: &str) -> Result<Vec<(String, Node)>, VolumeError> {
            let prefix = format!("{dir}/");
            Ok(self
                .nodes
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
    }

    fn file(size: u64) -> Node {
        Node {
            kind: NodeKind::File,
            blob: None,
            size,
            mtime_ms: 1,
            mode: 0o644,
            target: None,
        }
    }

    fn dir() -> Node {
        Node {
            kind: NodeKind::Dir,
            ..file(0)
        }
    }

    fn base(inodes: u64, bytes: u64) -> Base<'static> {
        Base {
            volume: "v",
            inodes,
            bytes,
            max_bytes: None,
            inode_limit: 100,
            now_ms: 7,
        }
    }

    #[test]
    fn parents_are_created_and_counted() {
        let f = file(5);
        let out = plan(Mem::default(), base(0, 0), [("a/b/c", Some(&f))]).unwrap();
        let paths: Vec<&str> = out.overlay.keys().map(String::as_str).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c"]);
        assert_eq!((out.inodes, out.bytes), (3, 5));
        assert_eq!(out.overlay["a"].as_ref().unwrap().mode, IMPLICIT_DIR_MODE);
        assert_eq!(out.changed, ["a/b/c"]);
    }

    #[test]
    fn a_file_over_a_directory_takes_its_subtree() {
        let mut head = Mem::default();
        head.nodes.insert("d".into(), dir());
        head.nodes.insert("d/x".into(), file(3));
        head.nodes.insert("d/y".into(), file(4));
        let f = file(1);
        let out = plan(head, base(3, 7), [("d", Some(&f))]).unwrap();
        assert_eq!(out.overlay["d/x"], None);
        assert_eq!(out.overlay["d/y"], None);
        assert_eq!((out.inodes, out.bytes), (1, 1));
    }

    #[test]
    fn removing_a_directory_counts_what_this_commit_put_under_it_once() {
        let mut head = Mem::default();
        head.nodes.insert("d".into(), dir());
        head.nodes.insert("d/x".into(), file(3));
        let f = file(10);
        let out = plan(
            head,
            base(2, 3),
            [("d/x", Some(&f)), ("d/new", Some(&f)), ("d", None)],
        )
        .unwrap();
        assert_eq!((out.inodes, out.bytes), (0, 0));
        assert_eq!(out.removed, ["d"]);
        // Removing what is not there removes nothing.
        let out = plan(Mem::default(), base(0, 0), [("gone", None)]).unwrap();
        assert!(out.removed.is_empty() && out.overlay.is_empty());
    }

    #[test]
    fn a_deep_path_under_a_known_parent_reads_once_per_new_level() {
        let deep: String = (0..200)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join("/");
        let (f, d) = (file(1), dir());
        let child = format!("{deep}/f");
        let changes = [(deep.as_str(), Some(&d)), (child.as_str(), Some(&f))];
        let mut b = base(0, 0);
        b.inode_limit = 1_000;
        let out = plan(Mem::default(), b, changes).unwrap();
        // 199 ancestors + the dir itself + the file: one read each.
        assert_eq!(out.head.reads, 201);
    }

    #[test]
    fn dropped_lists_the_blobs_of_replaced_and_removed_files() {
        let blob = |b: u8| Some(BlobId([b; 32]));
        let with = |b: u8| Node {
            blob: blob(b),
            ..file(1)
        };
        let mut head = Mem::default();
        head.nodes.insert("d".into(), dir());
        head.nodes.insert("d/x".into(), with(1));
        head.nodes.insert("d/y".into(), with(2));
        head.nodes.insert("same".into(), with(3));
        head.nodes.insert("new".into(), with(4));
        head.nodes.insert("kept".into(), with(5));
        let (same, new) = (with(3), with(9));
        let out = plan(
            head,
            base(6, 5),
            [("d", None), ("same", Some(&same)), ("new", Some(&new))],
        )
        .unwrap();
        // d/x and d/y went with d, `new` was replaced; `same` kept its
        // blob and `kept` was not touched.
        assert_eq!(
            out.dropped,
            [BlobId([1; 32]), BlobId([2; 32]), BlobId([4; 32])]
        );
    }

    #[test]
    fn limits_fail_whole_unless_the_commit_shrinks() {
        let f = file(10);
        let mut b = base(0, 0);
        b.inode_limit = 1;
        let err = plan(Mem::default(), b, [("a/b", Some(&f))]).unwrap_err();
        assert!(
            matches!(err, VolumeError::NoSpace { limit: 1, .. }),
            "{err}"
        );
        let mut b = base(0, 0);
        b.max_bytes = Some(5);
        let err = plan(Mem::default(), b, [("a", Some(&f))]).unwrap_err();
        assert!(
            matches!(err, VolumeError::OverQuota { would_be: 10, .. }),
            "{err}"
        );
        // Over both limits already, a commit that shrinks passes.
        let mut head = Mem::default();
        head.nodes.insert("a".into(), file(10));
        head.nodes.insert("b".into(), file(10));
        let mut b = base(2, 20);
        b.inode_limit = 1;
        b.max_bytes = Some(5);
        let out = plan(head, b, [("a", None)]).unwrap();
        assert_eq!((out.inodes, out.bytes), (1, 10));
    }
}
