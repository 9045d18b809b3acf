//! Volume semantics every backend keeps (see `storage::volume`).

use std::time::Duration;

use vessel_host::storage::blobs::{BlobError, BlobId};
use vessel_host::storage::volume::{
    Change, GcOptions, GcReport, Node, NodeKind, VolumeError, VolumeStore,
};

use super::{Make, Setup};

pub(super) fn file(s: &dyn VolumeStore, bytes: &[u8]) -> Node {
    Node {
        kind: NodeKind::File,
        blob: Some(s.put_blob(bytes).unwrap()),
        size: bytes.len() as u64,
        mtime_ms: 1,
        mode: 0o644,
        target: None,
    }
}

pub(super) fn dir_node() -> Node {
    Node {
        kind: NodeKind::Dir,
        blob: None,
        size: 0,
        mtime_ms: 1,
        mode: 0o700,
        target: None,
    }
}

pub(super) fn put(path: &str, node: Node) -> Change {
    Change::Put {
        path: path.into(),
        node,
    }
}

pub(super) fn rm(path: &str) -> Change {
    Change::Remove { path: path.into() }
}

pub(super) fn paths(s: &dyn VolumeStore, vol: &str) -> Vec<String> {
    s.snapshot(vol)
        .unwrap()
        .nodes
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

pub(super) fn read(s: &dyn VolumeStore, vol: &str, path: &str) -> Vec<u8> {
    let n = s.node(vol, path).unwrap().expect("path exists");
    match n.blob {
        Some(b) => s.read_blob(&b, 0, u64::MAX).unwrap(),
        None => Vec::new(),
    }
}

/// The counters in the volume record match a recount of the snapshot.
pub(super) fn assert_counts(s: &dyn VolumeStore, vol: &str) {
    let snap = s.snapshot(vol).unwrap();
    let info = s.info(vol).unwrap();
    assert_eq!(info.version, snap.version);
    assert_eq!(info.inodes, snap.nodes.len() as u64, "inode count");
    let bytes: u64 = snap
        .nodes
        .iter()
        .filter(|(_, n)| n.kind == NodeKind::File)
        .map(|(_, n)| n.size)
        .sum();
    assert_eq!(info.bytes, bytes, "byte count");
}

fn commit_semantics(make: &Make) {
    let b = make(Setup::default());
    let s = &*b.volumes;
    assert!(s.create("v").unwrap());
    assert!(!s.create("v").unwrap(), "second create reports existing");
    assert_eq!(s.info("v").unwrap().version, 0);
    let c = s
        .commit("v", &[put("a/b/c.txt", file(s, b"hello"))])
        .unwrap();
    assert_eq!((c.version, c.changed, c.removed), (1, 1, 0));
    assert_eq!(paths(s, "v"), ["a", "a/b", "a/b/c.txt"]);
    assert_eq!(s.node("v", "a/b").unwrap().unwrap().kind, NodeKind::Dir);
    assert_eq!(s.info("v").unwrap().inodes, 3);
    assert_counts(s, "v");
    s.commit("v", &[put("a/b/c.txt", file(s, b"first"))])
        .unwrap();
    s.commit("v", &[put("a/d.txt", file(s, b"other"))]).unwrap();
    let c = s
        .commit("v", &[put("a/b/c.txt", file(s, b"second!"))])
        .unwrap();
    assert_eq!(c.version, 4);
    assert_eq!(read(s, "v", "a/b/c.txt"), b"second!");
    assert_eq!(read(s, "v", "a/d.txt"), b"other");
    assert_counts(s, "v");
    s.commit("v", &[put("a/b", dir_node())]).unwrap();
    assert_eq!(s.node("v", "a/b").unwrap().unwrap().mode, 0o700);
    assert_eq!(read(s, "v", "a/b/c.txt"), b"second!");
    let c = s.commit("v", &[put("a", file(s, b"now a file"))]).unwrap();
    assert_eq!(c.version, 6);
    assert_eq!(paths(s, "v"), ["a"]);
    assert_eq!(s.info("v").unwrap().inodes, 1);
    assert_counts(s, "v");
    s.commit("v", &[put("a/x/y", file(s, b"y"))]).unwrap();
    assert_eq!(paths(s, "v"), ["a", "a/x", "a/x/y"]);
    assert_eq!(s.node("v", "a").unwrap().unwrap().kind, NodeKind::Dir);
    assert_counts(s, "v");
    s.commit(
        "v",
        &[
            put("a-b/z", file(s, b"z")),
            put("a.txt", file(s, b"t")),
            put("ab", file(s, b"ab")),
        ],
    )
    .unwrap();
    let c = s.commit("v", &[rm("a"), rm("missing")]).unwrap();
    assert_eq!((c.changed, c.removed), (0, 1));
    assert_eq!(paths(s, "v"), ["a-b", "a-b/z", "a.txt", "ab"]);
    assert_counts(s, "v");
    s.commit(
        "v",
        &[
            put("d/1", file(s, b"1")),
            put("d/2", file(s, b"2")),
            rm("d"),
            put("d/3", file(s, b"3")),
            put("e", file(s, b"e")),
            rm("e"),
        ],
    )
    .unwrap();
    assert_eq!(paths(s, "v"), ["a-b", "a-b/z", "a.txt", "ab", "d", "d/3"]);
    assert_counts(s, "v");
    let link = Node {
        kind: NodeKind::Symlink,
        blob: None,
        size: 0,
        mtime_ms: 1,
        mode: 0o777,
        target: Some("d/3".into()),
    };
    s.commit("v", &[put("empty", dir_node()), put("l", link.clone())])
        .unwrap();
    assert_eq!(s.node("v", "l").unwrap(), Some(link));
    assert_eq!(s.list_dir("v", "empty", false).unwrap(), vec![]);
    assert_counts(s, "v");
    s.commit("v", &[put("/./f//g/", file(s, b"g"))]).unwrap();
    assert!(s.node("v", "f/g").unwrap().is_some());
    // Non-ASCII paths sort by bytes.
    s.commit(
        "v",
        &[put("\u{e9}", file(s, b"e")), put("\u{7f}", file(s, b"d"))],
    )
    .unwrap();
    let ps = paths(s, "v");
    let mut sorted = ps.clone();
    sorted.sort();
    assert_eq!(ps, sorted);
    let before = s.snapshot("v").unwrap();
    for bad in [
        put("../x", dir_node()),
        rm("a/../../b"),
        rm("/"),
        put("", dir_node()),
    ] {
        assert!(
            matches!(s.commit("v", &[bad]), Err(VolumeError::InvalidPath { .. })),
            "refused"
        );
    }
    assert_eq!(s.snapshot("v").unwrap(), before, "refusals change nothing");
}

/// Commits whose changes overlap: nested removals, a file over a directory
/// that an earlier change of the same commit wrote under, a deep tree. Every
/// backend plans them with the same planner; this holds the reads each one
/// feeds it to the same answers.
fn overlapping_changes_in_one_commit(make: &Make) {
    let b = make(Setup::default());
    let s = &*b.volumes;
    s.create("v").unwrap();
    s.commit(
        "v",
        &[
            put("d/e/f", file(s, b"f")),
            put("d/e/g/h", file(s, b"h")),
            put("d/i", file(s, b"i")),
            put("k", file(s, b"k")),
        ],
    )
    .unwrap();
    let _ = s.snapshot("v").unwrap(); // cached: the commits below advance it
    let c = s
        .commit(
            "v",
            &[
                put("d/e/new", file(s, b"new")),
                rm("d/e/g"),
                rm("d/e"),
                put("d", file(s, b"d is a file")),
                put("k/under", file(s, b"k is a dir")),
                rm("nothing/here"),
            ],
        )
        .unwrap();
    assert_eq!((c.changed, c.removed), (3, 2));
    assert_eq!(paths(s, "v"), ["d", "k", "k/under"]);
    assert_eq!(read(s, "v", "d"), b"d is a file");
    assert_counts(s, "v");
    // A deep tree, its top replaced by a file in the same commit that
    // wrote under it, then the whole tree built again and removed.
    let deep: String = (0..300)
        .map(|i| format!("l{i}"))
        .collect::<Vec<_>>()
        .join("/");
    let leaf = format!("{deep}/leaf");
    s.commit(
        "v",
        &[put(&leaf, file(s, b"leaf")), put("l0", file(s, b"top"))],
    )
    .unwrap();
    assert_eq!(paths(s, "v"), ["d", "k", "k/under", "l0"]);
    s.commit("v", &[put(&leaf, file(s, b"leaf"))]).unwrap();
    assert_eq!(s.info("v").unwrap().inodes, 3 + 301);
    assert_counts(s, "v");
    let c = s.commit("v", &[rm("l0/l1"), rm("l0")]).unwrap();
    assert_eq!(c.removed, 2);
    assert_eq!(paths(s, "v"), ["d", "k", "k/under"]);
    assert_counts(s, "v");
    // What the cache answers is what a fresh read answers.
    let cached = s.snapshot("v").unwrap();
    let b = b.reopen();
    assert_eq!(b.volumes.snapshot("v").unwrap(), cached);
}

fn bad_nodes_and_missing_blobs_are_refused_whole(make: &Make) {
    let b = make(Setup::default());
    let s = &*b.volumes;
    s.create("v").unwrap();
    let mut missing = file(s, b"x");
    missing.blob = Some(BlobId::of(b"never stored"));
    let mut wrong_size = file(s, b"abc");
    wrong_size.size = 99;
    let no_blob = Node {
        blob: None,
        ..file(s, b"abc")
    };
    let r = s.commit("v", &[put("ok", file(s, b"ok")), put("bad", missing)]);
    assert!(
        matches!(r, Err(VolumeError::Blob(BlobError::Missing(_)))),
        "{r:?}"
    );
    for bad in [wrong_size, no_blob] {
        let r = s.commit("v", &[put("ok", file(s, b"ok")), put("bad", bad)]);
        assert!(matches!(r, Err(VolumeError::InvalidPath { .. })), "{r:?}");
    }
    assert_eq!(s.info("v").unwrap().version, 0);
    assert!(paths(s, "v").is_empty());
    let empty = Node {
        blob: None,
        size: 0,
        ..file(s, b"")
    };
    s.commit("v", &[put("empty", empty)]).unwrap();
    assert_eq!(read(s, "v", "empty"), b"");
    assert!(matches!(
        s.commit("nope", &[]),
        Err(VolumeError::NotFound(_))
    ));
    for bad in ["", "a/b", "a\0b", "..", &"x".repeat(256)] {
        assert!(matches!(
            s.create(bad),
            Err(VolumeError::InvalidName { .. })
        ));
    }
}

fn list_dir_children_and_descendants(make: &Make) {
    let b = make(Setup::default());
    let s = &*b.volumes;
    s.create("v").unwrap();
    s.commit(
        "v",
        &[
            put("c/x/deep", file(s, b"1")),
            put("c/y", file(s, b"2")),
            put("c-d", file(s, b"3")),
            put("c.e/f", file(s, b"4")),
            put("b", file(s, b"5")),
        ],
    )
    .unwrap();
    let names = |v: Vec<(String, Node)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_dir("v", "", false).unwrap()),
        ["b", "c", "c-d", "c.e"]
    );
    assert_eq!(names(s.list_dir("v", "c", false).unwrap()), ["c/x", "c/y"]);
    assert_eq!(
        names(s.list_dir("v", "/c/", true).unwrap()),
        ["c/x", "c/x/deep", "c/y"]
    );
    assert_eq!(s.list_dir("v", "", true).unwrap().len(), 8);
    assert!(matches!(
        s.list_dir("v", "nope", false),
        Err(VolumeError::NoSuchPath { .. })
    ));
    assert!(matches!(
        s.list_dir("v", "b", false),
        Err(VolumeError::InvalidPath { .. })
    ));
    assert!(matches!(
        s.list_dir("nope", "", false),
        Err(VolumeError::NotFound(_))
    ));
    assert_eq!(s.node("v", "").unwrap().unwrap().kind, NodeKind::Dir);
    assert_eq!(s.node("v", "zz").unwrap(), None);
}

/// Committers on several threads (and, on the shared backend, two hosts):
/// different paths all land, versions count the commits.
fn concurrent_commits_to_different_paths_all_land(make: &Make) {
    let b = make(Setup::default());
    let (_, second) = b.second_host();
    let s = &*b.volumes;
    s.create("v").unwrap();
    let threads = 6u64;
    let per = 10u64;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let s = if t % 2 == 0 {
                b.volumes.clone()
            } else {
                second.clone()
            };
            scope.spawn(move || {
                for i in 0..per {
                    let body = format!("{t}-{i}");
                    let n = file(&*s, body.as_bytes());
                    s.commit("v", &[put(&format!("t{t}/f{i}"), n)]).unwrap();
                }
            });
        }
    });
    let info = s.info("v").unwrap();
    assert_eq!(info.version, threads * per);
    assert_eq!(info.inodes, threads * per + threads);
    for t in 0..threads {
        for i in 0..per {
            assert_eq!(
                read(s, "v", &format!("t{t}/f{i}")),
                format!("{t}-{i}").as_bytes()
            );
        }
    }
    assert_counts(s, "v");
    assert_eq!(second.snapshot("v").unwrap(), s.snapshot("v").unwrap());
}

fn inode_limit_fails_the_crossing_commit_whole(make: &Make) {
    let b = make(Setup {
        inode_limit: 5,
        ..Setup::default()
    });
    let s = &*b.volumes;
    assert_eq!(s.inode_limit(), 5);
    s.create("v").unwrap();
    s.commit("v", &[put("d/1", file(s, b"1")), put("d/2", file(s, b"2"))])
        .unwrap();
    let before = s.snapshot("v").unwrap();
    match s.commit("v", &[put("e/1", file(s, b"1")), put("e/2", file(s, b"2"))]) {
        Err(VolumeError::NoSpace { volume, limit }) => {
            assert_eq!((volume.as_str(), limit), ("v", 5))
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert_eq!(s.snapshot("v").unwrap(), before, "nothing of it is visible");
    s.commit("v", &[put("e/1", file(s, b"1"))]).unwrap();
    assert_eq!(s.info("v").unwrap().inodes, 5);
    assert!(matches!(
        s.commit("v", &[put("x", dir_node())]),
        Err(VolumeError::NoSpace { .. })
    ));
    s.commit(
        "v",
        &[rm("d"), put("x", dir_node()), put("y/z", dir_node())],
    )
    .unwrap();
    assert_eq!(paths(s, "v"), ["e", "e/1", "x", "y", "y/z"]);
    assert_counts(s, "v");
}

fn over_quota(r: Result<vessel_host::storage::volume::CommitInfo, VolumeError>) -> (u64, u64) {
    match r {
        Err(VolumeError::OverQuota {
            volume,
            max_bytes,
            would_be,
            at_least,
        }) => {
            assert_eq!(volume, "q");
            assert!(!at_least, "a commit knows the size it would reach");
            (max_bytes, would_be)
        }
        other => panic!("expected OverQuota, got {other:?}"),
    }
}

/// Issue #17, point 3: an optional byte quota per volume, the bytes of the
/// head's files (each file whole: contents shared by two files count
/// twice), checked by the commit that would cross it, which then fails
/// whole. It can be read back, changed (also below the volume's size:
/// then only shrinking commits land) and removed, and it survives a
/// restart.
fn byte_quota_fails_the_crossing_commit_whole(make: &Make) {
    let b = make(Setup::default());
    {
        let s = &*b.volumes;
        assert!(s.create_with("q", Some(10)).unwrap());
        assert!(!s.create_with("q", Some(99)).unwrap(), "exists");
        assert!(s.create("free").unwrap());
        assert_eq!(s.info("q").unwrap().max_bytes, Some(10), "unchanged");
        let listed: Vec<(String, Option<u64>)> = s
            .list()
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.max_bytes))
            .collect();
        assert!(listed.contains(&("q".into(), Some(10))), "{listed:?}");
        assert!(listed.contains(&("free".into(), None)), "{listed:?}");

        s.commit("q", &[put("a", file(s, b"123456"))]).unwrap();
        let before = s.snapshot("q").unwrap();
        // 6 + 6 > 10: nothing of the commit lands, not even its directory.
        let r = s.commit("q", &[put("d", dir_node()), put("d/b", file(s, b"abcdef"))]);
        assert_eq!(over_quota(r), (10, 12));
        assert_eq!(s.snapshot("q").unwrap(), before, "nothing of it is visible");
        assert_eq!(s.info("q").unwrap().bytes, 6);
        // A replaced file counts by its new size: up to exactly the quota.
        s.commit("q", &[put("a", file(s, b"0123456789"))]).unwrap();
        assert_eq!(s.info("q").unwrap().bytes, 10);
        // Directories, symlinks and empty files take no bytes.
        let empty = Node {
            blob: None,
            size: 0,
            ..file(s, b"")
        };
        s.commit("q", &[put("e", dir_node()), put("e/empty", empty)])
            .unwrap();
        // Deduplication saves disk, not quota: the same contents at a
        // second path count again.
        let same = file(s, b"0123456789");
        assert_eq!(over_quota(s.commit("q", &[put("copy", same)])), (10, 20));

        // Lowered below the size: allowed; a commit that shrinks the
        // volume lands though still over, one that grows it does not.
        let info = s.set_max_bytes("q", Some(4)).unwrap();
        assert_eq!((info.max_bytes, info.bytes), (Some(4), 10));
        s.commit("q", &[put("a", file(s, b"12345"))]).unwrap();
        assert_eq!(
            over_quota(s.commit("q", &[put("a", file(s, b"123456"))])),
            (4, 6)
        );
        s.commit("q", &[rm("a")]).unwrap();
        assert_eq!(s.info("q").unwrap().bytes, 0);
        s.commit("q", &[put("a", file(s, b"1234"))]).unwrap();
        // Removed: anything goes; the other volume never had one.
        assert_eq!(s.set_max_bytes("q", None).unwrap().max_bytes, None);
        s.commit("q", &[put("big", file(s, &[7u8; 1000]))]).unwrap();
        s.commit("free", &[put("big", file(s, &[7u8; 1000]))])
            .unwrap();
        s.set_max_bytes("q", Some(2000)).unwrap();
        assert_counts(s, "q");

        // Bad input.
        assert!(matches!(
            s.create_with("huge", Some(u64::MAX)),
            Err(VolumeError::InvalidQuota { .. })
        ));
        assert!(matches!(
            s.set_max_bytes("q", Some(u64::MAX)),
            Err(VolumeError::InvalidQuota { .. })
        ));
        assert!(matches!(
            s.set_max_bytes("nope", Some(1)),
            Err(VolumeError::NotFound(_))
        ));
        assert_eq!(s.info("q").unwrap().max_bytes, Some(2000));
    }
    let b = b.reopen();
    let s = &*b.volumes;
    let info = s.info("q").unwrap();
    assert_eq!((info.max_bytes, info.bytes), (Some(2000), 1004));
    assert_eq!(s.info("free").unwrap().max_bytes, None);
    let r = s.commit("q", &[put("more", file(s, &[8u8; 997]))]);
    assert_eq!(over_quota(r), (2000, 2001));
}

fn snapshots_are_consistent_while_commits_run(make: &Make) {
    let b = make(Setup::default());
    let (_, reader) = b.second_host();
    let s = &*b.volumes;
    s.create("v").unwrap();
    let blob = file(s, b"same");
    let rounds = 30u64;
    std::thread::scope(|scope| {
        let writer = b.volumes.clone();
        let node = blob.clone();
        scope.spawn(move || {
            for i in 0..rounds {
                writer
                    .commit(
                        "v",
                        &[
                            put(&format!("a/{i:04}"), node.clone()),
                            put(&format!("b/{i:04}"), node.clone()),
                        ],
                    )
                    .unwrap();
            }
        });
        let mut seen = 0;
        while seen < rounds {
            let snap = reader.snapshot("v").unwrap();
            let a = snap
                .nodes
                .iter()
                .filter(|(p, _)| p.starts_with("a/"))
                .count();
            let bb = snap
                .nodes
                .iter()
                .filter(|(p, _)| p.starts_with("b/"))
                .count();
            assert_eq!(a, bb, "a torn snapshot at version {}", snap.version);
            assert_eq!(a as u64, snap.version, "files match the version");
            seen = snap.version;
        }
    });
}

fn rename_and_delete(make: &Make) {
    let b = make(Setup::default());
    let s = &*b.volumes;
    s.create("old").unwrap();
    s.create("other").unwrap();
    s.commit("old", &[put("f", file(s, b"data"))]).unwrap();
    s.rename("old", "new").unwrap();
    assert!(matches!(s.info("old"), Err(VolumeError::NotFound(_))));
    assert_eq!(read(s, "new", "f"), b"data");
    assert_eq!(s.info("new").unwrap().version, 1);
    assert!(matches!(
        s.rename("new", "other"),
        Err(VolumeError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.rename("gone", "x"),
        Err(VolumeError::NotFound(_))
    ));
    assert!(matches!(
        s.rename("new", "a/b"),
        Err(VolumeError::InvalidName { .. })
    ));
    s.rename("new", "new").unwrap();
    let mut names: Vec<_> = s.list().unwrap().into_iter().map(|i| i.name).collect();
    names.sort();
    assert_eq!(names, ["new", "other"]);
    s.delete("new").unwrap();
    assert!(matches!(s.delete("new"), Err(VolumeError::NotFound(_))));
    assert!(matches!(s.snapshot("new"), Err(VolumeError::NotFound(_))));
    s.create("new").unwrap();
    assert!(
        paths(s, "new").is_empty(),
        "a new volume of an old name starts empty"
    );
    assert_eq!(s.info("new").unwrap().version, 0);
    assert_eq!(s.list().unwrap().len(), 2);
}

fn gc(s: &dyn VolumeStore, min_age: Option<Duration>) -> GcReport {
    s.gc(&GcOptions {
        pinned: &|_| false,
        min_age,
    })
    .unwrap()
}

fn gc_keeps_referenced_young_and_pinned_blobs(make: &Make) {
    let b = make(Setup {
        gc_grace: Duration::ZERO,
        ..Setup::default()
    });
    let s = &*b.volumes;
    s.create("v").unwrap();
    // Only the head: a replaced blob is garbage at once.
    s.set_retention("v", 0).unwrap();
    let kept = file(s, b"kept");
    let replaced = file(s, b"replaced");
    let _orphan = s.put_blob(b"never committed").unwrap();
    s.commit("v", &[put("f", replaced), put("g", kept.clone())])
        .unwrap();
    s.commit("v", &[put("f", file(s, b"newer"))]).unwrap();
    let r = gc(s, None);
    assert_eq!(r.removed_blobs, 2, "the orphan and the replaced blob");
    assert_eq!(
        r.removed_bytes,
        ("never committed".len() + "replaced".len()) as u64
    );
    assert_eq!(read(s, "v", "f"), b"newer");
    assert_eq!(read(s, "v", "g"), b"kept");
    assert_eq!(gc(s, None).removed_blobs, 0);
    // Young orphans survive a minimum age; pinned ones survive any.
    let young = s.put_blob(b"young orphan").unwrap();
    let pinned = s.put_blob(b"pinned orphan").unwrap();
    let r = gc(s, Some(Duration::from_secs(3600)));
    assert_eq!(
        (r.removed_blobs, r.kept_young, r.min_age_secs),
        (0, 2, 3600)
    );
    let r = s
        .gc(&GcOptions {
            pinned: &|id| *id == pinned,
            min_age: Some(Duration::ZERO),
        })
        .unwrap();
    assert_eq!((r.removed_blobs, r.kept_pinned), (1, 1));
    let mut fresh = file(s, b"x");
    fresh.blob = Some(young);
    fresh.size = "young orphan".len() as u64;
    assert!(
        matches!(
            s.commit("v", &[put("late", fresh)]),
            Err(VolumeError::Blob(BlobError::Missing(_)))
        ),
        "a commit naming a collected blob fails whole"
    );
    // Stored again, it can be named again.
    assert_eq!(s.put_blob(b"young orphan").unwrap(), young);
    // A deleted volume's blobs become garbage.
    s.delete("v").unwrap();
    assert_eq!(
        gc(s, None).removed_blobs,
        5,
        "f, g, x, the once pinned one and the young one"
    );
    assert!(matches!(
        s.read_blob(&kept.blob.unwrap(), 0, 1)
            .and_then(|_| s.local_blob(&BlobId::of(b"nope"))),
        Err(VolumeError::Blob(BlobError::Missing(_)))
    ));
}

/// A live mount registered with the store pins its snapshot's blobs
/// against the store's own collection, and refuses a deletion, until it
/// ends.
fn live_mounts_pin_their_blobs_until_they_end(make: &Make) {
    let b = make(Setup {
        gc_grace: Duration::ZERO,
        ..Setup::default()
    });
    let s = &*b.volumes;
    s.create("v").unwrap();
    // Only the head: a replaced blob is garbage at once.
    s.set_retention("v", 0).unwrap();
    let old = file(s, b"what the mount saw");
    s.commit("v", &[put("f", old)]).unwrap();
    let mount = s.register_mount("v").unwrap();
    let snap = s.snapshot("v").unwrap();
    mount.pin(snap.nodes.iter().filter_map(|(_, n)| n.blob));
    s.commit("v", &[rm("f")]).unwrap();
    let r = gc(s, Some(Duration::ZERO));
    assert_eq!((r.removed_blobs, r.kept_pinned), (0, 1), "{r:?}");
    assert_eq!(s.mounts().count("v"), 1);
    drop(mount);
    assert_eq!(s.mounts().count("v"), 0);
    // The shared backend forgets the record without waiting: allow it a
    // moment.
    let start = std::time::Instant::now();
    while gc(s, Some(Duration::ZERO)).removed_blobs != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "never released");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn blobs_read_by_range_and_dedupe(make: &Make) {
    let b = make(Setup {
        multipart_threshold: 5 << 20,
        ..Setup::default()
    });
    let s = &*b.volumes;
    let id = s.put_blob(b"0123456789").unwrap();
    assert_eq!(s.read_blob(&id, 2, 3).unwrap(), b"234");
    assert_eq!(s.read_blob(&id, 8, 100).unwrap(), b"89");
    assert_eq!(s.read_blob(&id, 100, 5).unwrap(), b"");
    assert_eq!(
        std::fs::read(s.local_blob(&id).unwrap()).unwrap(),
        b"0123456789"
    );
    assert!(matches!(
        s.local_blob(&BlobId::of(b"nope")),
        Err(VolumeError::Blob(BlobError::Missing(_)))
    ));
    assert_eq!(
        s.put_blob(b"0123456789").unwrap(),
        id,
        "same bytes, same blob"
    );
    // Large contents (over the multipart threshold) from a file and a
    // reader, byte for byte.
    let big: Vec<u8> = (0..(13u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &big).unwrap();
    let (fid, size) = s.put_blob_file(tmp.path()).unwrap();
    assert_eq!((fid, size), (BlobId::of(&big), big.len() as u64));
    let (rid, rsize) = s.put_blob_reader(&mut &big[..]).unwrap();
    assert_eq!((rid, rsize), (fid, size));
    assert_eq!(s.read_blob(&fid, 0, u64::MAX).unwrap(), big);
    assert_eq!(
        s.read_blob(&fid, 7 << 20, 3).unwrap(),
        big[7 << 20..(7 << 20) + 3].to_vec()
    );
    if let Some(r) = &b.remote {
        let stats = r.s3_stats();
        assert!(
            stats.multipart_uploads >= 1,
            "large contents went up in parts: {stats:?}"
        );
        assert!(stats.parts >= 2, "{stats:?}");
    }
}

fn reopening_keeps_everything(make: &Make) {
    let b = make(Setup::default());
    let (snap, infos) = {
        let s = &*b.volumes;
        s.create("v").unwrap();
        s.create("w").unwrap();
        s.commit(
            "v",
            &[put("a/b", file(s, b"bytes")), put("empty", dir_node())],
        )
        .unwrap();
        s.commit("v", &[put("c", file(s, b"more"))]).unwrap();
        s.rename("w", "w2").unwrap();
        let mut infos = s.list().unwrap();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        (s.snapshot("v").unwrap(), infos)
    };
    let b = b.reopen();
    let s = &*b.volumes;
    let mut again = s.list().unwrap();
    again.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(again, infos);
    assert_eq!(s.snapshot("v").unwrap(), snap);
    assert_eq!(read(s, "v", "a/b"), b"bytes");
    assert_eq!(s.commit("v", &[rm("c")]).unwrap().version, 3);
}

super::suite!(
    commit_semantics,
    overlapping_changes_in_one_commit,
    bad_nodes_and_missing_blobs_are_refused_whole,
    list_dir_children_and_descendants,
    concurrent_commits_to_different_paths_all_land,
    inode_limit_fails_the_crossing_commit_whole,
    byte_quota_fails_the_crossing_commit_whole,
    snapshots_are_consistent_while_commits_run,
    rename_and_delete,
    gc_keeps_referenced_young_and_pinned_blobs,
    live_mounts_pin_their_blobs_until_they_end,
    blobs_read_by_range_and_dedupe,
    reopening_keeps_everything,
);
