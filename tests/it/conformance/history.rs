//! Volume history every backend keeps (see `storage::volume::history`):
//! the version list, reads at a version, diffs, retention and what gc
//! keeps for it, and commits that expect a head.

use std::time::Duration;

use vessel_host::error_kind::ErrorKind;
use vessel_host::storage::blobs::BlobId;
use vessel_host::storage::volume::{
    Change, CommitOptions, DiffKind, GcOptions, Node, NodeKind, VolumeError, VolumeStore,
};

use super::Make;
use super::volume::{file, put, rm};

fn read_at(s: &dyn VolumeStore, vol: &str, path: &str, v: u64) -> Option<Vec<u8>> {
    let n = s.node_at(vol, path, v).unwrap()?;
    Some(match n.blob {
        Some(b) => s.read_blob(&b, 0, u64::MAX).unwrap(),
        None => Vec::new(),
    })
}

fn paths_at(s: &dyn VolumeStore, vol: &str, v: u64) -> Vec<String> {
    let snap = s.snapshot_at(vol, v).unwrap();
    assert_eq!(snap.version, v);
    snap.nodes.into_iter().map(|(p, _)| p).collect()
}

fn gc_now(s: &dyn VolumeStore) -> vessel_host::storage::volume::GcReport {
    s.gc(&GcOptions {
        pinned: &|_| false,
        min_age: Some(Duration::ZERO),
    })
    .unwrap()
}

fn blob_of(s: &dyn VolumeStore, vol: &str, path: &str, v: u64) -> BlobId {
    s.node_at(vol, path, v).unwrap().unwrap().blob.unwrap()
}

/// Five commits, then every version read back whole, path by path and
/// directory by directory, and listed.
fn every_version_reads_back(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("v").unwrap();
    let one = file(s, b"one");
    s.commit("v", &[put("a", one)]).unwrap(); // 1
    let two = file(s, b"two");
    s.commit("v", &[put("b", two)]).unwrap(); // 2
    let three = file(s, b"three!");
    s.commit("v", &[put("a", three)]).unwrap(); // 3
    s.commit("v", &[rm("b")]).unwrap(); // 4
    let deep = file(s, b"deep");
    s.commit("v", &[put("d/e/f", deep)]).unwrap(); // 5

    let h = s.history("v", 100).unwrap();
    assert_eq!((h.head, h.oldest), (5, 0));
    let listed: Vec<(u64, u64, u64, u64)> = h
        .versions
        .iter()
        .map(|v| (v.version, v.changed, v.removed, v.bytes_added))
        .collect();
    assert_eq!(
        listed,
        [
            (5, 1, 0, 4),
            (4, 0, 1, 0),
            (3, 1, 0, 6),
            (2, 1, 0, 3),
            (1, 1, 0, 3)
        ]
    );
    assert!(h.versions.iter().all(|v| v.time_ms == super::T0));
    assert_eq!(s.history("v", 2).unwrap().versions.len(), 2);

    assert_eq!(paths_at(s, "v", 0), Vec::<String>::new());
    assert_eq!(paths_at(s, "v", 2), ["a", "b"]);
    assert_eq!(paths_at(s, "v", 4), ["a"]);
    assert_eq!(paths_at(s, "v", 5), ["a", "d", "d/e", "d/e/f"]);
    assert_eq!(read_at(s, "v", "a", 1).unwrap(), b"one");
    assert_eq!(read_at(s, "v", "a", 2).unwrap(), b"one");
    assert_eq!(read_at(s, "v", "a", 3).unwrap(), b"three!");
    assert_eq!(read_at(s, "v", "b", 3).unwrap(), b"two");
    assert_eq!(read_at(s, "v", "b", 4), None);
    assert_eq!(read_at(s, "v", "a", 0), None);
    assert_eq!(s.node_at("v", "", 0).unwrap().unwrap().kind, NodeKind::Dir);

    // Directories: children or descendants, of a version where they exist.
    let at = |dir: &str, rec: bool, v: u64| -> Vec<String> {
        s.list_dir_at("v", dir, rec, v)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    assert_eq!(at("", false, 2), ["a", "b"]);
    assert_eq!(at("", false, 5), ["a", "d"]);
    assert_eq!(at("d", true, 5), ["d/e", "d/e/f"]);
    assert!(matches!(
        s.list_dir_at("v", "d", false, 4),
        Err(VolumeError::NoSuchPath { .. })
    ));
    assert!(matches!(
        s.list_dir_at("v", "a", false, 3),
        Err(VolumeError::InvalidPath { .. })
    ));
    // The head read at its own number is the head.
    assert_eq!(
        s.snapshot_at("v", 5).unwrap().nodes,
        s.snapshot("v").unwrap().nodes
    );

    // A version never committed: not-found, naming the head.
    let e = s.node_at("v", "a", 6).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("no version 6") && e.to_string().contains("head is version 5"),
        "{e}"
    );
    assert!(matches!(
        s.node_at("nope", "a", 1),
        Err(VolumeError::NotFound(_))
    ));

    // Rename keeps the history; reopening keeps it too.
    s.rename("v", "w").unwrap();
    assert_eq!(read_at(s, "w", "b", 2).unwrap(), b"two");
    let b = b.reopen();
    let s = b.volumes.as_ref();
    assert_eq!(read_at(s, "w", "a", 1).unwrap(), b"one");
    assert_eq!(s.history("w", 100).unwrap().versions.len(), 5);
}

/// Diffs name what was added, modified and removed, either way round, and
/// leave out what came back as it was.
fn diffs_between_versions(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("v").unwrap();
    let (x, y) = (file(s, b"x"), file(s, b"y"));
    s.commit(
        "v",
        &[
            put("keep", x.clone()),
            put("gone", x.clone()),
            put("edit", x.clone()),
        ],
    )
    .unwrap(); // 1
    s.commit(
        "v",
        &[rm("gone"), put("edit", y.clone()), put("new/f", y.clone())],
    )
    .unwrap(); // 2
    s.commit("v", &[put("flip", x.clone())]).unwrap(); // 3
    s.commit("v", &[rm("flip")]).unwrap(); // 4

    let d = s.diff("v", 1, Some(2)).unwrap();
    let got: Vec<(&str, DiffKind)> = d.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert_eq!(
        got,
        [
            ("edit", DiffKind::Modified),
            ("gone", DiffKind::Removed),
            ("new", DiffKind::Added),
            ("new/f", DiffKind::Added)
        ]
    );
    let edit = d.iter().find(|e| e.path == "edit").unwrap();
    assert_eq!(edit.before.as_ref().unwrap().blob, x.blob);
    assert_eq!(edit.after.as_ref().unwrap().blob, y.blob);
    // Backwards, the kinds swap.
    let back: Vec<(String, DiffKind)> = s
        .diff("v", 2, Some(1))
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.kind))
        .collect();
    assert!(back.contains(&("gone".into(), DiffKind::Added)));
    assert!(back.contains(&("new/f".into(), DiffKind::Removed)));
    // `flip` came and went: no difference from 2 to the head.
    assert_eq!(s.diff("v", 2, None).unwrap(), Vec::new());
    assert_eq!(s.diff("v", 3, None).unwrap()[0].kind, DiffKind::Removed);
    assert!(s.diff("v", 4, None).unwrap().is_empty());
    assert!(matches!(
        s.diff("v", 1, Some(9)),
        Err(VolumeError::VersionNotKept { version: 9, .. })
    ));
}

/// A replaced version is readable for the retention after it was
/// replaced, then it is not; gc then removes exactly the blobs only it
/// named, and a longer retention later does not bring it back.
fn retention_expires_versions_and_gc_prunes_exactly(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("v").unwrap();
    let hour = 3_600_000;
    let info = s.set_retention("v", hour).unwrap();
    assert_eq!(info.retention_ms, hour);
    assert_eq!(s.info("v").unwrap().retention_ms, hour);
    s.commit("v", &[put("x", file(s, b"A"))]).unwrap(); // 1
    let a = blob_of(s, "v", "x", 1);
    s.commit("v", &[put("x", file(s, b"B"))]).unwrap(); // 2 replaces 1 at T0
    let bb = blob_of(s, "v", "x", 2);
    gc_now(s);
    assert_eq!(
        read_at(s, "v", "x", 1).unwrap(),
        b"A",
        "kept inside the window"
    );

    b.clock.advance_ms(2 * hour);
    s.commit("v", &[put("x", file(s, b"C"))]).unwrap(); // 3 replaces 2 now
    let h = s.history("v", 10).unwrap();
    assert_eq!((h.oldest, h.head), (2, 3));
    assert_eq!(
        h.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [3, 2]
    );
    let e = s.node_at("v", "x", 1).unwrap_err();
    assert!(
        e.to_string().contains("no version 1")
            && e.to_string().contains("oldest version kept is 2"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(read_at(s, "v", "x", 2).unwrap(), b"B");

    let r = gc_now(s);
    assert_eq!(r.removed_blobs, 1, "{r:?}");
    assert!(s.read_blob(&a, 0, 1).is_err(), "only version 1 named A");
    assert_eq!(s.read_blob(&bb, 0, 9).unwrap(), b"B");

    // A longer retention does not resurrect what was pruned.
    s.set_retention("v", 30 * 24 * hour).unwrap();
    assert!(matches!(
        s.node_at("v", "x", 1),
        Err(VolumeError::VersionNotKept { oldest: 2, .. })
    ));
    // Retention 0 keeps only the head; gc then drops B.
    s.set_retention("v", 0).unwrap();
    assert_eq!(s.history("v", 10).unwrap().oldest, 3);
    assert!(s.node_at("v", "x", 2).is_err());
    assert_eq!(gc_now(s).removed_blobs, 1);
    assert!(s.read_blob(&bb, 0, 1).is_err());
    assert_eq!(
        std::str::from_utf8(&read_at(s, "v", "x", 3).unwrap()).unwrap(),
        "C"
    );
    assert!(matches!(
        s.set_retention("v", u64::MAX),
        Err(VolumeError::InvalidRetention { .. })
    ));
}

/// Under the default retention, gc keeps every blob a kept version names,
/// in any volume; deleting the volume lets them go.
fn gc_keeps_blobs_of_kept_versions(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("v").unwrap();
    assert_eq!(s.info("v").unwrap().retention_ms, 7 * 24 * 3_600_000);
    s.commit(
        "v",
        &[put("d/a", file(s, b"old a")), put("d/b", file(s, b"old b"))],
    )
    .unwrap();
    s.commit("v", &[rm("d")]).unwrap();
    s.commit("v", &[put("d/a", file(s, b"new a"))]).unwrap();
    let r = gc_now(s);
    assert_eq!(r.removed_blobs, 0, "{r:?}");
    assert_eq!(read_at(s, "v", "d/a", 1).unwrap(), b"old a");
    assert_eq!(read_at(s, "v", "d/b", 1).unwrap(), b"old b");
    s.delete("v").unwrap();
    assert_eq!(gc_now(s).removed_blobs, 3);
}

/// A commit that expects a head applies only on that head.
fn commits_can_expect_a_head(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("v").unwrap();
    s.commit("v", &[put("a", file(s, b"1"))]).unwrap();
    let stale = CommitOptions {
        expect_head: Some(0),
        ..CommitOptions::default()
    };
    let e = s
        .commit_with("v", &[put("b", file(s, b"2"))], &stale)
        .unwrap_err();
    assert!(
        matches!(
            e,
            VolumeError::HeadMoved {
                expected: 0,
                head: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
    assert!(s.node("v", "b").unwrap().is_none());
    let fresh = CommitOptions {
        expect_head: Some(1),
        ..CommitOptions::default()
    };
    assert_eq!(
        s.commit_with("v", &[put("b", file(s, b"2"))], &fresh)
            .unwrap()
            .version,
        2
    );
}

/// A commit that names the versions it read its paths at fails whole,
/// naming each path another commit changed since (or changed under it),
/// and lands when nothing did.
fn commits_detect_conflicting_paths(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("v").unwrap();
    s.commit("v", &[put("a", file(s, b"a")), put("d/x", file(s, b"x"))])
        .unwrap(); // 1
    s.commit("v", &[put("b", file(s, b"b"))]).unwrap(); // 2
    s.commit("v", &[put("d/x", file(s, b"x2"))]).unwrap(); // 3
    let since = |pairs: &[(&str, u64)]| CommitOptions {
        unchanged_since: pairs.iter().map(|(p, v)| ((*p).to_owned(), *v)).collect(),
        ..CommitOptions::default()
    };
    let attempt =
        |changes: &[Change], pairs: &[(&str, u64)]| s.commit_with("v", changes, &since(pairs));
    // `b` changed at 2, `d/x` (under `d`) at 3; `a` not since 1.
    let e = attempt(
        &[
            put("a", file(s, b"mine")),
            put("b", file(s, b"mine")),
            rm("d"),
        ],
        &[("a", 1), ("b", 1), ("d", 1)],
    )
    .unwrap_err();
    match &e {
        VolumeError::Conflict { volume, paths } => {
            assert_eq!(volume, "v");
            assert_eq!(paths, &["b", "d"]);
        }
        other => panic!("not a conflict: {other}"),
    }
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
    assert!(e.to_string().contains("b, d"), "{e}");
    assert_eq!(s.info("v").unwrap().version, 3, "nothing applied");
    assert_eq!(read_at(s, "v", "a", 3).unwrap(), b"a");
    // Read at the versions that changed them: it lands.
    let ok = attempt(
        &[put("a", file(s, b"mine")), put("b", file(s, b"mine"))],
        &[("a", 1), ("b", 2), ("d", 3)],
    )
    .unwrap();
    assert_eq!(ok.version, 4);
    // A path created meanwhile by another commit conflicts too.
    s.commit("v", &[put("new", file(s, b"theirs"))]).unwrap(); // 5
    let e = attempt(&[put("new", file(s, b"mine"))], &[("new", 4)]).unwrap_err();
    assert!(matches!(e, VolumeError::Conflict { .. }), "{e}");
    // Versions past retention cannot be checked: a conflict.
    s.set_retention("v", 0).unwrap();
    gc_now(s);
    let e = attempt(&[put("a", file(s, b"late"))], &[("a", 4)]).unwrap_err();
    assert!(matches!(e, VolumeError::Conflict { .. }), "{e}");
    let head = s.info("v").unwrap().version;
    attempt(&[put("a", file(s, b"late"))], &[("a", head)]).unwrap();
}

/// Writers race to replace one file, each naming the version it read:
/// every round exactly one wins, every other gets the conflict naming the
/// file, and the file holds the winner's bytes. Without the check, every
/// commit lands (last writer wins), as before.
fn racing_writers_one_wins_each_round(make: &Make) {
    let b = make(Default::default());
    let s = b.volumes.as_ref();
    s.create("v").unwrap();
    s.commit("v", &[put("shared", file(s, b"start"))]).unwrap();
    let writers = 100;
    for round in 0..3u32 {
        let base = s.info("v").unwrap().version;
        let nodes: Vec<Node> = (0..writers)
            .map(|w| file(s, format!("round {round} writer {w}").as_bytes()))
            .collect();
        let barrier = std::sync::Barrier::new(writers);
        let results: Vec<Result<u64, VolumeError>> = std::thread::scope(|t| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|n| {
                    let barrier = &barrier;
                    t.spawn(move || {
                        barrier.wait();
                        s.commit_with(
                            "v",
                            &[put("shared", n.clone())],
                            &CommitOptions {
                                unchanged_since: vec![("shared".into(), base)],
                                ..CommitOptions::default()
                            },
                        )
                        .map(|c| c.version)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<usize> = (0..writers).filter(|w| results[*w].is_ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one wins");
        for (w, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, base + 1),
                Err(VolumeError::Conflict { paths, .. }) => assert_eq!(paths, &["shared"], "{w}"),
                Err(e) => panic!("round {round} writer {w}: {e}"),
            }
        }
        let head = s.node("v", "shared").unwrap().unwrap();
        assert_eq!(
            head.blob, nodes[won[0]].blob,
            "the winner's bytes, not lost"
        );
    }
    // Last writer wins: all land, one after another.
    let base = s.info("v").unwrap().version;
    let landed: Vec<u64> = std::thread::scope(|t| {
        let handles: Vec<_> = (0..20)
            .map(|w| {
                t.spawn(move || {
                    s.commit(
                        "v",
                        &[put("shared", file(s, format!("lww {w}").as_bytes()))],
                    )
                    .unwrap()
                    .version
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = landed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ((base + 1)..=(base + 20)).collect::<Vec<_>>());
}

super::suite!(
    commits_detect_conflicting_paths,
    racing_writers_one_wins_each_round,
    every_version_reads_back,
    diffs_between_versions,
    retention_expires_versions_and_gc_prunes_exactly,
    gc_keeps_blobs_of_kept_versions,
    commits_can_expect_a_head,
);
