//! Volume history, written once for every backend: which versions are
//! kept, how an older version is read from the head plus the history rows,
//! and how two versions differ.
//!
//! The head stays stored as it always was (one row per path), so reading
//! it costs what it did. A commit that changes path `p` into version `u`
//! also writes a *history row* `(p, until = u)` holding `p`'s node in
//! version `u - 1` (or "absent"), in the same transaction. So `p` in an
//! older version `v` is the node of `p`'s first history row with
//! `until > v`, or the head's node when there is none: the row describes
//! `p` from its previous change (at most `v`) until `u`. A directory at `v`
//! is the head's subtree with those rows laid over it.
//!
//! Retention: a version stays readable while it is the head or for
//! `retention` after the commit that replaced it. The oldest kept version
//! `K` is worked out from the commit log's times; rows with `until <= K`
//! describe only versions older than `K` and gc deletes them, with the log
//! records before `K`. Until then their blobs stay referenced. A volume
//! written before history existed keeps none from before its first commit
//! under this code (`history_from`).

use std::collections::BTreeMap;

use super::{Node, NodeKind, VolumeError};

/// How long a replaced version stays readable unless the volume says
/// otherwise: seven days.
pub const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// The longest retention: what the shared backend's `bigint` holds.
pub const MAX_RETENTION_MS: u64 = i64::MAX as u64;

/// One committed version, as `history` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct VersionInfo {
    pub version: u64,
    /// When the commit landed (ms since the Unix epoch).
    pub time_ms: u64,
    /// Paths the commit put.
    pub changed: u64,
    /// Paths the commit removed.
    pub removed: u64,
    /// The bytes of the files it created or replaced.
    pub bytes_added: u64,
}

/// A volume's kept versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct History {
    pub head: u64,
    /// The oldest version that can still be read.
    pub oldest: u64,
    pub retention_ms: u64,
    /// Newest first; version 0 (the empty volume) has no entry.
    pub versions: Vec<VersionInfo>,
}

/// How a path differs between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    Added,
    Modified,
    Removed,
}

/// One path that differs between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDiff {
    pub path: String,
    pub kind: DiffKind,
    /// The node in the older version.
    pub before: Option<Node>,
    /// The node in the newer one.
    pub after: Option<Node>,
}

/// Conditions a commit checks against the head before it applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// The head the commit was planned against; another head fails it
    /// with [`VolumeError::HeadMoved`] and applies nothing.
    pub expect_head: Option<u64>,
    /// Paths, each with the version its writer last saw it at. When a
    /// commit after that version changed one of them, or anything under
    /// it, this commit fails with [`VolumeError::Conflict`] naming every
    /// such path and applies nothing. A version older than the history
    /// kept cannot be checked, so its path conflicts. The cost is the
    /// paths' own history rows: O(paths), not O(files).
    pub unchanged_since: Vec<(String, u64)>,
}

/// The history rows a commit into `version` writes: each changed path's
/// node before the commit, from the planner's `before`.
pub(crate) fn rows(
    before: &BTreeMap<String, Option<Node>>,
) -> impl Iterator<Item = (&str, Option<&Node>)> {
    before.iter().map(|(p, n)| (p.as_str(), n.as_ref()))
}

/// The oldest version of a volume that is still kept.
///
/// `replaced` gives, for the versions after `history_from` in increasing
/// order, each version's number and commit time; it is read lazily and
/// stops at the first version replaced inside the window. Version `v` is
/// kept when it is the head or when version `v + 1` landed at or after
/// `now - retention`.
pub(crate) fn oldest_kept(
    head: u64,
    history_from: u64,
    retention_ms: u64,
    now_ms: u64,
    replaced: impl IntoIterator<Item = Result<(u64, u64), VolumeError>>,
) -> Result<u64, VolumeError> {
    if retention_ms == 0 {
        return Ok(head);
    }
    let cutoff = now_ms.saturating_sub(retention_ms);
    for item in replaced {
        let (version, time_ms) = item?;
        if version <= history_from {
            continue;
        }
        if time_ms >= cutoff {
            return Ok(version.saturating_sub(1).max(history_from).min(head));
        }
    }
    Ok(head)
}

/// Fails unless `version` is kept: between `oldest` and `head`.
pub(crate) fn check_kept(
    volume: &str,
    version: u64,
    oldest: u64,
    head: u64,
) -> Result<(), VolumeError> {
    if version > head || version < oldest {
        return Err(VolumeError::VersionNotKept {
            volume: volume.to_owned(),
            version,
            oldest,
            head,
        });
    }
    Ok(())
}

/// The head's entries (`head`, sorted by path) as they were in an older
/// version: `changed` maps each path changed since then to its node then
/// (`None`: it did not exist). `under` is the directory listed (`""`: the
/// root) and `recursive` whether grandchildren count.
pub(crate) fn lay_over(
    head: Vec<(String, Node)>,
    changed: BTreeMap<String, Option<Node>>,
    under: &str,
    recursive: bool,
) -> Vec<(String, Node)> {
    let prefix = if under.is_empty() {
        String::new()
    } else {
        format!("{under}/")
    };
    let wanted = |path: &str| {
        path.strip_prefix(prefix.as_str())
            .is_some_and(|rest| !rest.is_empty() && (recursive || !rest.contains('/')))
    };
    // Both sides are sorted by path: one merge, no map of the whole tree.
    let mut out = Vec::with_capacity(head.len());
    let mut changed = changed.into_iter().peekable();
    for (path, node) in head {
        while let Some((c, _)) = changed.peek() {
            if c.as_str() >= path.as_str() {
                break;
            }
            if let Some((c, Some(n))) = changed.next().filter(|(c, _)| wanted(c)) {
                out.push((c, n));
            }
        }
        match changed.peek() {
            Some((c, _)) if *c == path => {
                if let Some((c, Some(n))) = changed.next().filter(|(c, _)| wanted(c)) {
                    out.push((c, n));
                }
            }
            _ if wanted(&path) => out.push((path, node)),
            _ => {}
        }
    }
    for (c, n) in changed {
        if let Some(n) = n.filter(|_| wanted(&c)) {
            out.push((c, n));
        }
    }
    out
}

/// Whether two nodes of one path differ in what a reader sees. A
/// directory whose attributes changed counts; its mtime alone (which a
/// write below it bumps) does not.
fn differs(a: &Node, b: &Node) -> bool {
    if a.kind == NodeKind::Dir && b.kind == NodeKind::Dir {
        return a.mode != b.mode;
    }
    a.kind != b.kind
        || a.blob != b.blob
        || a.size != b.size
        || a.mode != b.mode
        || a.target != b.target
}

/// The differences between two versions, from the paths changed between
/// them: each with its node in the older version and in the newer one.
/// Sorted by path; paths that came back as they were are left out.
pub(crate) fn diff(
    changed: impl IntoIterator<Item = (String, Option<Node>, Option<Node>)>,
) -> Vec<PathDiff> {
    let mut out: Vec<PathDiff> = changed
        .into_iter()
        .filter_map(|(path, before, after)| {
            let kind = match (&before, &after) {
                (None, None) => return None,
                (None, Some(_)) => DiffKind::Added,
                (Some(_), None) => DiffKind::Removed,
                (Some(a), Some(b)) if differs(a, b) => DiffKind::Modified,
                (Some(_), Some(_)) => return None,
            };
            Some(PathDiff {
                path,
                kind,
                before,
                after,
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Parses a retention as the CLI and manifests write it: `0`, or a number
/// with a unit (`500ms`, `30s`, `15m`, `12h`, `7d`, `2w`). Returns milliseconds.
pub fn parse_retention(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(0);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        format!("retention {text:?} needs a unit: ms, s, m, h, d or w (e.g. 7d), or 0")
    })?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("retention {text:?}: expected a number and a unit, such as 7d"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        other => {
            return Err(format!(
                "retention {text:?}: unknown unit {other:?} (use ms, s, m, h, d or w)"
            ));
        }
    };
    n.checked_mul(ms)
        .filter(|ms| *ms <= MAX_RETENTION_MS)
        .ok_or_else(|| format!("retention {text:?} is too long"))
}

/// Writes a retention the way [`parse_retention`] reads it, in the largest
/// unit up to days that divides it.
pub fn format_retention(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    // Days rather than weeks: "7d" is how people say the default.
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(blob: u8) -> Node {
        Node {
            kind: NodeKind::File,
            blob: Some(crate::storage::blobs::BlobId([blob; 32])),
            size: 1,
            mtime_ms: 1,
            mode: 0o644,
            target: None,
        }
    }

    #[test]
    fn the_oldest_kept_version_follows_the_window() {
        let log = |v: &[(u64, u64)]| v.iter().map(|x| Ok(*x)).collect::<Vec<_>>();
        // Versions 1..=3 landed at 10, 20, 30; now 35, retention 10: version
        // 2 was replaced at 30 (inside), version 1 at 20 (outside).
        assert_eq!(
            oldest_kept(3, 0, 10, 35, log(&[(1, 10), (2, 20), (3, 30)])).unwrap(),
            2
        );
        assert_eq!(oldest_kept(3, 0, 0, 35, log(&[(1, 10)])).unwrap(), 3);
        assert_eq!(
            oldest_kept(3, 0, 1000, 35, log(&[(1, 10), (2, 20), (3, 30)])).unwrap(),
            0
        );
        // Nothing before `history_from` is readable.
        assert_eq!(
            oldest_kept(3, 2, 1000, 35, log(&[(1, 10), (2, 20), (3, 30)])).unwrap(),
            2
        );
        // Every replacement is old: only the head.
        assert_eq!(
            oldest_kept(3, 0, 1, 1000, log(&[(1, 10), (2, 20), (3, 30)])).unwrap(),
            3
        );
    }

    #[test]
    fn an_old_version_is_the_head_with_the_rows_laid_over() {
        let head = vec![
            ("a".to_owned(), file(1)),
            ("b".to_owned(), file(2)),
            ("d/e".to_owned(), file(3)),
        ];
        let changed = BTreeMap::from([
            ("a".to_owned(), None),
            ("c".to_owned(), Some(file(9))),
            ("d/f".to_owned(), Some(file(8))),
        ]);
        let at = lay_over(head.clone(), changed.clone(), "", false);
        let paths: Vec<_> = at.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["b", "c"]);
        let all = lay_over(head, changed, "", true);
        let paths: Vec<_> = all.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["b", "c", "d/e", "d/f"]);
    }

    #[test]
    fn a_diff_names_each_kind_and_skips_what_came_back() {
        let d = diff([
            ("z".to_owned(), Some(file(1)), Some(file(1))),
            ("b".to_owned(), None, Some(file(1))),
            ("a".to_owned(), Some(file(1)), Some(file(2))),
            ("c".to_owned(), Some(file(1)), None),
            ("n".to_owned(), None, None),
        ]);
        let kinds: Vec<_> = d.iter().map(|e| (e.path.as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("a", DiffKind::Modified),
                ("b", DiffKind::Added),
                ("c", DiffKind::Removed)
            ]
        );
    }

    #[test]
    fn retentions_parse_and_print_back() {
        for (text, ms) in [
            ("0", 0),
            ("7d", 604_800_000),
            ("90s", 90_000),
            ("2w", 1_209_600_000),
            ("36h", 129_600_000),
        ] {
            assert_eq!(parse_retention(text).unwrap(), ms, "{text}");
            assert_eq!(parse_retention(&format_retention(ms)).unwrap(), ms);
        }
        for bad in ["", "7", "d", "-1d", "7y", "99999999999999999w"] {
            let e = parse_retention(bad).unwrap_err();
            assert!(e.contains("retention"), "{bad}: {e}");
        }
    }
}
