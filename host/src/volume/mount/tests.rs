//! Unit tests of `mount`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore};

fn file(store: &Arc<dyn VolumeStore>, bytes: &[u8]) -> Node {
    Node {
        kind: NodeKind::File,
        blob: Some(store.put_blob(bytes).unwrap()),
        size: bytes.len() as u64,
        mtime_ms: 1,
        mode: 0o644,
        target: None,
    }
}

fn link(target: &str) -> Node {
    Node {
        kind: NodeKind::Symlink,
        blob: None,
        size: 0,
        mtime_ms: 1,
        mode: 0o777,
        target: Some(target.to_owned()),
    }
}

fn put(path: &str, node: Node) -> Change {
    Change::Put {
        path: path.to_owned(),
        node,
    }
}

fn setup() -> (tempfile::TempDir, Arc<dyn VolumeStore>, Mount) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn VolumeStore> = Arc::new(
        EmbeddedStore::open(&dir.path().join("data"), EmbeddedOptions::default()).unwrap(),
    );
    store.create("v").unwrap();
    let changes = vec![
        put("a/b/c/deep.txt", file(&store, b"deep")),
        put("a/b/sib", file(&store, b"sib")),
        put("a/b-x", file(&store, b"b-x")),
        put("top", file(&store, b"top")),
        put("to-c", link("a/b/c")),
        put("loop", link("loop")),
    ];
    store.commit("v", &changes).unwrap();
    let spec = VolumeMount {
        guest: "/data".into(),
        volume: "v".into(),
        read_only: false,
        version: None,
        conflicts: Default::default(),
    };
    let m = Mount::materialize(&store, &spec, &dir.path().join("mnt")).unwrap();
    (dir, store, m)
}

fn on_disk(m: &Mount) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(d) = stack.pop() {
        for e in m.root.read_dir(dot(&d)).unwrap() {
            let e = e.unwrap();
            let p = if d.is_empty() {
                e.file_name().to_string_lossy().into_owned()
            } else {
                format!("{d}/{}", e.file_name().to_string_lossy())
            };
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn mounting_places_nothing_and_a_walk_places_only_its_path() {
    let (_d, _s, mut m) = setup();
    assert!(on_disk(&m).is_empty());
    assert_eq!(m.placed(), 0);
    assert_eq!(m.inodes, 9, "4 files, 3 dirs, 2 symlinks");
    let p = m.resolve("", "a/b/c/deep.txt", true).unwrap();
    assert_eq!(p.as_deref(), Some("a/b/c/deep.txt"));
    assert_eq!(
        on_disk(&m),
        ["a", "a/b", "a/b/c", "a/b/c/deep.txt"],
        "only the path walked"
    );
    assert_eq!(m.root.read_to_string("a/b/c/deep.txt").unwrap(), "deep");
}

#[test]
fn walks_follow_symlinks_and_dotdot_physically() {
    let (_d, _s, mut m) = setup();
    // Through a symlink: its target's entries get placed.
    let p = m.resolve("", "to-c/deep.txt", true).unwrap();
    assert_eq!(p.as_deref(), Some("a/b/c/deep.txt"));
    // `..` after a symlink goes to the target's parent.
    let p = m.resolve("", "to-c/../sib", true).unwrap();
    assert_eq!(p.as_deref(), Some("a/b/sib"));
    // The last component is followed only when asked.
    assert_eq!(
        m.resolve("", "to-c", false).unwrap().as_deref(),
        Some("to-c")
    );
    assert_eq!(
        m.resolve("", "to-c", true).unwrap().as_deref(),
        Some("a/b/c")
    );
    // Out of the mount, absolute, loops and missing parts.
    assert_eq!(m.resolve("", "../x", true).unwrap(), None);
    assert_eq!(m.resolve("a", "../../x", true).unwrap(), None);
    assert_eq!(m.resolve("", "/etc", true).unwrap(), None);
    assert_eq!(
        m.resolve("", "loop/x", true).unwrap().as_deref(),
        Some("loop/x")
    );
    assert_eq!(
        m.resolve("", "nope/x/y", true).unwrap().as_deref(),
        Some("nope/x/y")
    );
    assert_eq!(m.resolve("a", "", true).unwrap().as_deref(), Some("a"));
}

#[test]
fn completing_a_dir_places_its_children_only() {
    let (_d, _s, mut m) = setup();
    m.resolve("", "a/b", true).unwrap();
    m.complete_dir("a/b").unwrap();
    assert_eq!(on_disk(&m), ["a", "a/b", "a/b/c", "a/b/sib"]);
    m.complete_dir("").unwrap();
    assert_eq!(
        on_disk(&m),
        ["a", "a/b", "a/b/c", "a/b/sib", "loop", "to-c", "top"],
        "the root's children; a/b-x is under a, not completed yet"
    );
    m.complete_tree("a").unwrap();
    assert_eq!(m.placed(), 9);
    assert_eq!(
        m.unplaced_children(""),
        Vec::<String>::new(),
        "nothing left to place"
    );
}

#[test]
fn a_removed_placed_entry_does_not_come_back() {
    let (_d, _s, mut m) = setup();
    m.resolve("", "top", false).unwrap();
    m.root.remove_file("top").unwrap();
    m.resolve("", "top", true).unwrap();
    m.complete_dir("").unwrap();
    assert!(m.root.symlink_metadata("top").is_err());
}

#[test]
fn copy_up_leaves_the_blob_alone() {
    let (_d, store, mut m) = setup();
    m.resolve("", "top", true).unwrap();
    m.copy_up("top", true).unwrap();
    m.root.write("top", b"changed").unwrap();
    let blob = store.node("v", "top").unwrap().unwrap().blob.unwrap();
    assert_eq!(store.read_blob(&blob, 0, 100).unwrap(), b"top");
    assert_eq!(m.root.read_to_string("top").unwrap(), "changed");
}

#[test]
fn a_committed_removal_drops_the_subtree_but_not_its_neighbours() {
    let (_d, store, mut m) = setup();
    // `a/b` sorts before `a/b-x` before `a/b/...`: only the subtree goes.
    m.resolve("", "a/b", false).unwrap();
    m.complete_tree("a/b").unwrap();
    m.root.remove_dir_all("a/b").unwrap();
    m.dirty.insert("a/b".into());
    let info = m.commit(&BTreeSet::new()).unwrap();
    assert_eq!(info.removed, 1);
    assert!(m.base.contains_key("a/b-x"), "the neighbour stays");
    assert!(!m.base.keys().any(|p| p == "a/b" || p.starts_with("a/b/")));
    // Reaching the neighbour still places it.
    m.resolve("", "a/b-x", true).unwrap();
    assert_eq!(m.root.read_to_string("a/b-x").unwrap(), "b-x");
    assert_eq!(store.node("v", "a/b-x").unwrap().unwrap().size, 3);
}

#[test]
fn a_parent_replaced_by_a_symlink_or_a_file_does_not_fail_the_commit() {
    let (_d, store, mut m) = setup();
    for (i, outside) in ["/etc", "../../..", ""].into_iter().enumerate() {
        let n = format!("n{i}");
        m.root.create_dir(&n).unwrap();
        m.root.write(format!("{n}/f"), b"f").unwrap();
        m.dirty.insert(n.clone());
        m.dirty.insert(format!("{n}/f"));
        m.commit(&BTreeSet::new()).unwrap();
        // The guest removes the tree and puts a symlink (out of the
        // mount) or a file in its place: the old child is dirty too.
        m.root.remove_dir_all(&n).unwrap();
        if outside.is_empty() {
            m.root.write(&n, b"now a file").unwrap();
        } else {
            m.root.symlink_contents(outside, &n).unwrap();
        }
        m.dirty.insert(n.clone());
        m.dirty.insert(format!("{n}/f"));
        m.commit(&BTreeSet::new()).unwrap();
        let kind = store.node("v", &n).unwrap().unwrap().kind;
        let want = if outside.is_empty() {
            NodeKind::File
        } else {
            NodeKind::Symlink
        };
        assert_eq!(kind, want, "{n}");
        assert!(store.node("v", &format!("{n}/f")).unwrap().is_none());
    }
}

#[test]
fn deep_trees_commit_and_reload_without_recursion() {
    let (_d, store, mut m) = setup();
    // Deeper than a recursive walk of this thread's stack would allow
    // at a few hundred bytes a frame on a small stack.
    let depth = 1500;
    let path = vec!["d"; depth].join("/");
    m.root.create_dir_all(&path).unwrap();
    m.root.write(format!("{path}/leaf"), b"x").unwrap();
    m.dirty.insert("d".into());
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let info = m.commit(&BTreeSet::new()).unwrap();
            assert_eq!(info.changed, depth as u64 + 1);
            m
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(store.node("v", &format!("{path}/leaf")).unwrap().is_some());
}

#[test]
fn reload_replaces_only_changed_placed_paths() {
    let (_d, store, mut m) = setup();
    m.resolve("", "top", true).unwrap();
    m.resolve("", "a/b/sib", true).unwrap();
    store
        .commit(
            "v",
            &[
                put("top", file(&store, b"new top")),
                put("a/b/new", file(&store, b"new")),
                Change::Remove {
                    path: "a/b/c".into(),
                },
            ],
        )
        .unwrap();
    assert_eq!(m.reload().unwrap(), 2);
    // Changed and placed: gone from the working tree until reached.
    assert!(m.root.symlink_metadata("top").is_err());
    assert!(
        m.root.symlink_metadata("a/b/sib").is_ok(),
        "unchanged stays"
    );
    m.resolve("", "top", true).unwrap();
    assert_eq!(m.root.read_to_string("top").unwrap(), "new top");
    m.complete_dir("a/b").unwrap();
    let mut names: Vec<String> = m
        .root
        .read_dir("a/b")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["new", "sib"]);
}
