//! Forks, written once for every backend: how a volume made by
//! [`VolumeStore::fork`](super::VolumeStore::fork) reads through to the
//! version it was forked from.
//!
//! A fork copies nothing when it is made: it is a new volume row whose
//! *chain* names the levels it reads through, nearest first: `(src, V)`,
//! then `src`'s own chain (a fork of a fork reads through both). Its own
//! head rows hold only the paths it changed since; a path it removed that
//! a level below may hold gets a *hidden* row, so the level below stops
//! showing it. So a path of a fork's head is, in order:
//! 1. its own head row, if any;
//! 2. absent, if it has a hidden row;
//! 3. otherwise the path in the first level of the chain, where level
//!    `(id, v)` says: the first history row of `id` with `until > v` (what
//!    the path was at `v`), else `id`'s own row, else absent if `id` hid
//!    it, else "ask the next level".
//!
//! A listing lays the levels over each other the same way, deepest first.
//! A level's volume can go on committing: its history rows keep version
//! `v` readable, and gc never prunes rows a fork still reads (the floor of
//! a volume stays at or below the oldest version any chain names). A
//! volume some chain names cannot be deleted (`HasForks`).
//!
//! History rows of a fork's own commits hold what the merged view showed,
//! so older versions of a fork read exactly as for any volume.

use std::collections::BTreeMap;

use super::history::lay_over;
use super::{Node, NodeKind, PathDiff, VolumeError};

/// The most levels a chain may have: a fork of a fork of … stops here, so
/// a read costs at most this many lookups per path.
pub const MAX_FORK_DEPTH: usize = 16;

/// What one level of a chain says about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The path is this node.
    Node(Node),
    /// The path does not exist (removed, or hidden from the levels below).
    Gone,
    /// This level does not know: ask the next one.
    Below,
}

impl Found {
    /// A history row's node (`None`: the path was absent then).
    pub(crate) fn from_row(row: Option<Node>) -> Found {
        match row {
            Some(n) => Found::Node(n),
            None => Found::Gone,
        }
    }
}

/// The node of a path, asking the levels of a chain in order with `at`
/// (which reads one level: its history rows after the level's version, its
/// own row, its hidden row).
pub(crate) fn chain_node<L>(
    chain: &[L],
    mut at: impl FnMut(&L) -> Result<Found, VolumeError>,
) -> Result<Option<Node>, VolumeError> {
    for level in chain {
        match at(level)? {
            Found::Node(n) => return Ok(Some(n)),
            Found::Gone => return Ok(None),
            Found::Below => {}
        }
    }
    Ok(None)
}

/// What one level of a chain holds under a directory: its own rows and
/// hidden rows (as `None`, an own row winning over a hidden one), and its
/// history rows after the level's version (the node then, `None`:
/// absent), each keyed by path.
#[derive(Debug, Default)]
pub(crate) struct LevelRows {
    pub(crate) own: BTreeMap<String, Option<Node>>,
    pub(crate) changed_after: BTreeMap<String, Option<Node>>,
}

/// The entries under `dir` (all descendants when `recursive`) that a chain
/// shows, sorted by path: the levels laid over each other, deepest first.
/// `rows` reads one level's [`LevelRows`] under `dir`.
pub(crate) fn chain_list<L>(
    chain: &[L],
    dir: &str,
    recursive: bool,
    mut rows: impl FnMut(&L) -> Result<LevelRows, VolumeError>,
) -> Result<Vec<(String, Node)>, VolumeError> {
    let mut out = Vec::new();
    for level in chain.iter().rev() {
        let LevelRows { own, changed_after } = rows(level)?;
        out = lay_over(out, own, dir, recursive);
        out = lay_over(out, changed_after, dir, recursive);
    }
    Ok(out)
}

/// A volume's inode and byte counts at an older version, from its counts
/// now and the diff from that version to now (`diff(old, head)`): what a
/// fork of an older version starts with, for the cost of the paths changed
/// since rather than of the volume.
pub(crate) fn counts_before(inodes: u64, bytes: u64, since: &[PathDiff]) -> (u64, u64) {
    let (mut inodes, mut bytes) = (i128::from(inodes), i128::from(bytes));
    let size = |n: &Option<Node>| match n {
        Some(n) if n.kind == NodeKind::File => i128::from(n.size),
        _ => 0,
    };
    for d in since {
        inodes += i128::from(d.before.is_some()) - i128::from(d.after.is_some());
        bytes += size(&d.before) - size(&d.after);
    }
    let clamp = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
    (clamp(inodes), clamp(bytes))
}

/// Checks that a new fork of `src` may have a chain of `levels` levels: at
/// most [`MAX_FORK_DEPTH`].
pub(crate) fn check_depth(src: &str, levels: usize) -> Result<(), VolumeError> {
    if levels > MAX_FORK_DEPTH {
        return Err(VolumeError::ForkTooDeep {
            volume: src.to_owned(),
            limit: MAX_FORK_DEPTH,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(size: u64) -> Node {
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
    fn the_nearest_level_that_knows_answers() {
        let levels = [Found::Below, Found::Gone, Found::Node(file(1))];
        let got = chain_node(&levels, |l| Ok(l.clone())).unwrap();
        assert_eq!(got, None);
        let levels = [Found::Below, Found::Node(file(2)), Found::Gone];
        let got = chain_node(&levels, |l| Ok(l.clone())).unwrap();
        assert_eq!(got, Some(file(2)));
        let got = chain_node(&[Found::Below], |l| Ok(l.clone())).unwrap();
        assert_eq!(got, None);
    }

    #[test]
    fn listings_lay_levels_over_each_other() {
        // Deepest level: a, b; the next hides a and adds c; then a history
        // row says c did not exist yet at the version the fork names.
        let deep = LevelRows {
            own: [("a".into(), Some(file(1))), ("b".into(), Some(file(2)))].into(),
            changed_after: BTreeMap::new(),
        };
        let near = LevelRows {
            own: [("a".into(), None), ("c".into(), Some(file(3)))].into(),
            changed_after: [("c".into(), None)].into(),
        };
        let mut levels = vec![near, deep];
        let mut i = 0;
        let got = chain_list(&[0, 1], "", true, |_| {
            i += 1;
            Ok(levels.pop().unwrap_or_default())
        })
        .unwrap();
        assert_eq!(i, 2);
        assert_eq!(got, vec![("b".to_owned(), file(2))]);
    }
}
