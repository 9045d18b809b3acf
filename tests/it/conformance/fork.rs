//! Forks every backend makes (see `storage::volume::fork`): a new volume
//! that reads through to another's version without copying it, diverges
//! from it, and keeps what it reads alive.

use std::time::Duration;

use vessel_host::error_kind::ErrorKind;
use vessel_host::storage::volume::fork::MAX_FORK_DEPTH;
use vessel_host::storage::volume::{GcOptions, Node, VolumeError, VolumeStore};

use super::Make;
use super::volume::{assert_counts, dir_node, file, paths, put, read, rm};

fn gc_now(s: &dyn VolumeStore) -> vessel_host::storage::volume::GcReport {
    s.gc(&GcOptions {
        pinned: &|_| false,
        min_age: Some(Duration::ZERO),
    })
    .unwrap()
}

/// Everything a reader can ask of `vol`'s head equals what `src` at
/// version `v` answers: the whole tree, each path, each listing.
fn same_tree(s: &dyn VolumeStore, vol: &str, src: &str, v: u64) {
    let want = s.snapshot_at(src, v).unwrap().nodes;
    let got = s.snapshot(vol).unwrap().nodes;
    assert_eq!(got, want, "{vol} against {src}@{v}");
    for (path, node) in &want {
        assert_eq!(s.node(vol, path).unwrap().as_ref(), Some(node), "{path}");
        if node.kind == vessel_host::storage::volume::NodeKind::Dir {
            for recursive in [false, true] {
                assert_eq!(
                    s.list_dir(vol, path, recursive).unwrap(),
                    s.list_dir_at(src, path, recursive, v).unwrap(),
                    "{path} (recursive {recursive})"
                );
            }
        }
    }
    assert_eq!(
        s.list_dir(vol, "", false).unwrap(),
        s.list_dir_at(src, "", false, v).unwrap()
    );
}

fn src_with_history(s: &dyn VolumeStore) {
    s.create("src").unwrap();
    s.commit(
        "src",
        &[
            put("a", file(s, b"a1")),
            put("d/e", file(s, b"e1")),
            put("d/f", file(s, b"f1")),
            put("d/sub/g", file(s, b"g1")),
        ],
    )
    .unwrap(); // 1
    s.commit("src", &[put("a", file(s, b"a2")), rm("d/sub")])
        .unwrap(); // 2
    s.commit("src", &[put("b", file(s, b"b3"))]).unwrap(); // 3
}

/// A fork reads as its source's version, then each side's commits stay
/// its own, and the fork's own history reads back.
fn forks_read_through_and_diverge(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    src_with_history(s);
    let info = s.fork("src", Some(2), "dst").unwrap();
    assert_eq!(info.name, "dst");
    assert_eq!(info.version, 1);
    same_tree(s, "dst", "src", 2);
    assert_counts(s, "dst");
    assert_eq!(read(s, "dst", "a"), b"a2");
    assert_eq!(s.node("dst", "b").unwrap(), None, "b came after version 2");

    // The fork changes its copy.
    s.commit(
        "dst",
        &[
            put("a", file(s, b"a-dst")),
            rm("d/e"),
            put("d/new", file(s, b"new")),
        ],
    )
    .unwrap(); // dst 2
    // The source moves on too, over paths the fork reads.
    s.commit("src", &[rm("d/f"), put("d/e", file(s, b"e4"))])
        .unwrap(); // src 4
    assert_eq!(read(s, "dst", "a"), b"a-dst");
    assert_eq!(s.node("dst", "d/e").unwrap(), None);
    assert_eq!(read(s, "dst", "d/f"), b"f1", "still the forked version");
    assert_eq!(read(s, "dst", "d/new"), b"new");
    assert_eq!(paths(s, "dst"), ["a", "d", "d/f", "d/new"]);
    let names: Vec<String> = s
        .list_dir("dst", "d", false)
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(names, ["d/f", "d/new"]);
    assert_eq!(read(s, "src", "a"), b"a2");
    assert_eq!(read(s, "src", "d/e"), b"e4");
    assert_eq!(paths(s, "src"), ["a", "b", "d", "d/e"]);
    assert_counts(s, "dst");
    assert_counts(s, "src");

    // The fork's own history: version 1 is the fork, 2 its commit.
    let h = s.history("dst", 10).unwrap();
    assert_eq!(h.head, 2);
    assert_eq!(h.oldest, 1);
    let versions: Vec<u64> = h.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, [2, 1]);
    same_tree(s, "dst", "dst", 2);
    assert_eq!(
        s.snapshot_at("dst", 1).unwrap().nodes,
        s.snapshot_at("src", 2).unwrap().nodes
    );
    let diff: Vec<(String, String)> = s
        .diff("dst", 1, None)
        .unwrap()
        .into_iter()
        .map(|d| (d.path, format!("{:?}", d.kind)))
        .collect();
    assert_eq!(
        diff,
        [
            ("a".to_owned(), "Modified".to_owned()),
            ("d/e".to_owned(), "Removed".to_owned()),
            ("d/new".to_owned(), "Added".to_owned()),
        ]
    );
    let err = s.node_at("dst", "a", 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    // A directory removed whole and made again hides what the source has
    // under it; a file over a directory replaces the subtree.
    s.commit("dst", &[rm("d")]).unwrap();
    assert_eq!(paths(s, "dst"), ["a"]);
    s.commit("dst", &[put("d", dir_node()), put("d/z", file(s, b"z"))])
        .unwrap();
    assert_eq!(paths(s, "dst"), ["a", "d", "d/z"]);
    assert_counts(s, "dst");
    // A rename of either side changes nothing the fork reads.
    s.rename("src", "src2").unwrap();
    assert_eq!(paths(s, "dst"), ["a", "d", "d/z"]);
    assert_eq!(read(s, "dst", "a"), b"a-dst");
    let b = b.reopen();
    let s = b.volumes.as_ref();
    assert_eq!(paths(s, "dst"), ["a", "d", "d/z"]);
    assert_eq!(
        s.snapshot_at("dst", 1).unwrap().nodes,
        s.snapshot_at("src2", 2).unwrap().nodes
    );
}

/// Forks of forks read through every level, up to the depth limit.
fn forks_of_forks(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    src_with_history(s);
    let info = s.fork("src", None, "f1").unwrap();
    assert_eq!((info.inodes, info.bytes), (5, 8));
    s.commit("f1", &[rm("a"), put("c", file(s, b"c1"))])
        .unwrap();
    s.fork("f1", None, "f2").unwrap();
    s.commit("f2", &[put("a", file(s, b"a-f2")), rm("b")])
        .unwrap();
    s.commit("src", &[put("b", file(s, b"b-src"))]).unwrap();
    assert_eq!(paths(s, "f2"), ["a", "c", "d", "d/e", "d/f"]);
    assert_eq!(read(s, "f2", "a"), b"a-f2");
    assert_eq!(read(s, "f2", "c"), b"c1");
    assert_eq!(read(s, "f2", "d/e"), b"e1");
    assert_eq!(read(s, "f1", "b"), b"b3");
    assert_counts(s, "f2");
    // A fork of an older version of a fork.
    s.fork("f2", Some(1), "f3").unwrap();
    same_tree(s, "f3", "f2", 1);
    same_tree(s, "f3", "f1", 2);

    let mut last = "f3".to_owned();
    let mut depth = 3;
    let err = loop {
        let next = format!("deep{depth}");
        match s.fork(&last, None, &next) {
            Ok(_) => {
                depth += 1;
                last = next;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(depth, MAX_FORK_DEPTH, "{err}");
    assert!(matches!(err, VolumeError::ForkTooDeep { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    same_tree(s, &last, "f2", 1);
}

/// gc keeps every blob a fork reads, though its source replaced them and
/// keeps no history; a source cannot go while forks read through it; once
/// the fork goes, the blobs only it kept go exactly.
fn forks_keep_what_they_read(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("src").unwrap();
    s.set_retention("src", 0).unwrap();
    s.set_max_bytes("src", Some(1000)).unwrap();
    s.commit(
        "src",
        &[
            put("keep", file(s, b"shared by both")),
            put("old", file(s, b"only the fork reads this")),
            put("gone", file(s, b"replaced in the source")),
        ],
    )
    .unwrap();
    let info = s.fork("src", None, "dst").unwrap();
    assert_eq!(info.max_bytes, Some(1000));
    assert_eq!(info.retention_ms, 0);
    s.commit(
        "src",
        &[rm("old"), put("gone", file(s, b"the source's new bytes"))],
    )
    .unwrap();
    s.commit("src", &[put("more", file(s, b"more"))]).unwrap();
    let report = gc_now(s);
    assert_eq!(report.removed_blobs, 0, "{report:?}");
    assert_eq!(read(s, "dst", "old"), b"only the fork reads this");
    assert_eq!(read(s, "dst", "gone"), b"replaced in the source");
    // The source's own history is gone (retention 0), though the fork
    // still reads the version it came from.
    let err = s.node_at("src", "old", 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    let err = s.delete("src").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert!(err.to_string().contains("dst"), "{err}");
    assert_eq!(read(s, "dst", "keep"), b"shared by both");

    s.delete("dst").unwrap();
    let report = gc_now(s);
    assert_eq!(report.removed_blobs, 2, "{report:?}");
    assert_eq!(read(s, "src", "keep"), b"shared by both");
    s.delete("src").unwrap();
    assert_eq!(gc_now(s).removed_blobs, 3);
}

/// What a fork refuses, each with the error that names it, changing
/// nothing.
fn fork_errors(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    src_with_history(s);
    s.create("taken").unwrap();
    let kind = |r: Result<_, VolumeError>| {
        r.map(|_: vessel_host::storage::volume::VolumeInfo| ())
            .unwrap_err()
            .kind()
    };
    assert_eq!(kind(s.fork("src", None, "taken")), ErrorKind::AlreadyExists);
    assert_eq!(kind(s.fork("nope", None, "x")), ErrorKind::NotFound);
    assert_eq!(kind(s.fork("src", Some(9), "x")), ErrorKind::NotFound);
    assert_eq!(kind(s.fork("src", None, "a/b")), ErrorKind::InvalidArgument);
    s.set_retention("src", 0).unwrap();
    let err = s.fork("src", Some(1), "x").unwrap_err();
    assert!(
        matches!(err, VolumeError::VersionNotKept { oldest: 3, .. }),
        "{err}"
    );
    let names: Vec<String> = s.list().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // An empty volume forks too.
    s.create("empty").unwrap();
    s.fork("empty", None, "empty2").unwrap();
    assert_eq!(paths(s, "empty2"), Vec::<String>::new());
    s.commit("empty2", &[put("x", file(s, b"x"))]).unwrap();
    assert_eq!(paths(s, "empty"), Vec::<String>::new());
}

/// Commits of a fork and its source from many threads at once each land
/// on their own side.
fn forks_and_sources_commit_concurrently(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("src").unwrap();
    let nodes: Vec<Node> = (0..8)
        .map(|i| file(s, format!("v{i}").as_bytes()))
        .collect();
    s.commit("src", &[put("base", nodes[0].clone())]).unwrap();
    s.fork("src", None, "dst").unwrap();
    std::thread::scope(|t| {
        for (i, n) in nodes.iter().enumerate() {
            let vol = if i % 2 == 0 { "src" } else { "dst" };
            t.spawn(move || s.commit(vol, &[put(&format!("p{i}"), n.clone())]).unwrap());
        }
    });
    assert_eq!(paths(s, "src"), ["base", "p0", "p2", "p4", "p6"]);
    assert_eq!(paths(s, "dst"), ["base", "p1", "p3", "p5", "p7"]);
    assert_counts(s, "dst");
}

super::suite!(
    forks_read_through_and_diverge,
    forks_of_forks,
    forks_keep_what_they_read,
    fork_errors,
    forks_and_sources_commit_concurrently,
);
