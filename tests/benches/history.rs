//! Volume history costs (embedded backend), each beside a baseline
//! measured in the same run:
//! - `history` of a volume with 10,000 versions (the newest 20, and all
//!   10,000), vs a raw sled scan of as many records of the same size (the
//!   least reading them can cost);
//! - `diff` of two versions 10 changed files apart, in a 50,000-file
//!   volume, vs reading the same 10 paths' nodes twice at the head (the
//!   least the answer needs);
//! - reading one path at a version 1,000 commits old, vs reading it at the
//!   head;
//! - `snapshot_at` of a 10,000-file volume 1,000 commits back, vs the
//!   head's snapshot (from the in-memory cache, as a head read gets it:
//!   not like for like);
//! - a one-file commit in a 50,000-file volume that names the version it
//!   read the file at (the conflict check), vs the same commit without
//!   the check, alternating in one store (relaxed durability, so the
//!   fsync does not hide the difference).
//!
//! Setup commits run with relaxed durability (no fsync per commit) so 10,000
//! of them take seconds; the timed reads do not write.
//!
//!   cargo bench -p vessel-tests --bench history

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::time::{Duration, Instant};

use vessel_host::storage::blobs::BlobId;
use vessel_host::storage::embedded::{DurabilityMode, EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::volume::{Change, CommitOptions, VolumeStore};
use vessel_tests::harness::figures::{Spread, row};
use vessel_tests::harness::nodes;

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(
        dir,
        EmbeddedOptions {
            durability: DurabilityMode::Relaxed {
                interval: Duration::from_secs(3600),
            },
            ..EmbeddedOptions::default()
        },
    )
    .unwrap()
}

fn blobs(store: &EmbeddedStore, n: usize) -> Vec<BlobId> {
    (0..n)
        .map(|i| store.put_blob(&(i as u64).to_le_bytes()).unwrap())
        .collect()
}

/// `files` files in 100 directories, in one commit (version 1).
fn populate(store: &EmbeddedStore, files: usize, blobs: &[BlobId]) {
    store.create("v").unwrap();
    let changes: Vec<Change> = (0..files)
        .map(|i| Change::Put {
            path: format!("d{:02}/f{i:05}", i % 100),
            node: nodes::file(blobs[i % blobs.len()], 8),
        })
        .collect();
    store.commit("v", &changes).unwrap();
}

/// `n` commits of one file each, cycling through the volume's files.
fn churn(store: &EmbeddedStore, files: usize, n: usize, blobs: &[BlobId]) {
    for c in 0..n {
        let i = c * 7919 % files;
        store
            .commit(
                "v",
                &[Change::Put {
                    path: format!("d{:02}/f{i:05}", i % 100),
                    node: nodes::file(blobs[(c + 1) % blobs.len()], 8),
                }],
            )
            .unwrap();
    }
}

/// A store in a fresh folder under `root` holding volume "v": `files`
/// files over 16 blobs, then `commits` one-file commits.
fn churned(
    root: &Path,
    files: usize,
    commits: usize,
) -> (tempfile::TempDir, EmbeddedStore, Vec<BlobId>) {
    let dir = tempfile::tempdir_in(root).unwrap();
    let store = open(dir.path());
    let b = blobs(&store, 16);
    populate(&store, files, &b);
    churn(&store, files, commits, &b);
    (dir, store, b)
}

fn history_case(root: &Path, runs: usize) {
    let dir = tempfile::tempdir_in(root).unwrap();
    let store = open(dir.path());
    let b = blobs(&store, 16);
    populate(&store, 1_000, &b);
    let t = Instant::now();
    churn(&store, 1_000, 9_999, &b);
    println!(
        "  (setup: 9,999 one-file commits took {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(store.info("v").unwrap().version, 10_000);
    // Baseline: 10,000 records of a log entry's size in a sled tree.
    let sled_dir = tempfile::tempdir_in(root).unwrap();
    let db = sled::open(sled_dir.path()).unwrap();
    let tree = db.open_tree("log").unwrap();
    for v in 0..10_000u64 {
        tree.insert(v.to_be_bytes(), vec![7u8; 40]).unwrap();
    }
    for (n, label) in [(20usize, "newest 20"), (10_000, "all 10,000")] {
        let ours = Spread::time(runs, |_| {
            let h = store.history("v", n).unwrap();
            assert_eq!(h.versions.len(), n);
        });
        let base = Spread::time(runs, |_| {
            let got = tree.iter().rev().take(n).count();
            assert_eq!(got, n);
        });
        row(
            &format!("history of 10,000 versions, {label}"),
            ours,
            &format!("raw sled scan of {n} records"),
            base,
        );
    }
}

fn diff_and_reads_case(root: &Path, runs: usize) {
    let files = 50_000;
    let (_dir, store, _) = churned(root, files, 1_000);
    let before = store.info("v").unwrap().version;
    let changed: Vec<String> = (0..10)
        .map(|i| {
            let i = i * 4_999;
            format!("d{:02}/f{i:05}", i % 100)
        })
        .collect();
    // Contents no earlier commit used, so each of the 10 differs.
    let fresh = store.put_blob(b"new contents").unwrap();
    let changes: Vec<Change> = changed
        .iter()
        .map(|p| Change::Put {
            path: p.clone(),
            node: nodes::file(fresh, 12),
        })
        .collect();
    store.commit("v", &changes).unwrap();
    let ours = Spread::time(runs, |_| {
        let d = store.diff("v", before, None).unwrap();
        assert_eq!(d.len(), 10);
    });
    let base = Spread::time(runs, |_| {
        for p in &changed {
            store.node("v", p).unwrap().unwrap();
            store.node("v", p).unwrap().unwrap();
        }
    });
    row(
        "diff, 10 files apart, 50,000-file volume",
        ours,
        "20 head node reads of the same paths",
        base,
    );

    let path = &changed[0];
    let old = before - 999;
    let ours = Spread::time(runs * 20, |_| {
        store.node_at("v", path, old).unwrap().unwrap();
    });
    let base = Spread::time(runs * 20, |_| {
        store.node("v", path).unwrap().unwrap();
    });
    row(
        "read one path 1,000 commits back",
        ours,
        "read it at the head",
        base,
    );
}

fn snapshot_case(root: &Path, runs: usize) {
    let (_dir, store, _) = churned(root, 10_000, 1_000);
    let head = store.info("v").unwrap().version;
    let ours = Spread::time(runs, |_| {
        let s = store.snapshot_at("v", head - 1_000).unwrap();
        assert_eq!(s.nodes.len(), 10_100);
    });
    let base = Spread::time(runs, |_| {
        let s = store.snapshot("v").unwrap();
        assert_eq!(s.nodes.len(), 10_100);
    });
    row(
        "snapshot of 10,000 files, 1,000 commits back",
        ours,
        "snapshot of the head (cached)",
        base,
    );
}

fn conflict_check_case(root: &Path, runs: usize) {
    let files = 50_000;
    let (_dir, store, b) = churned(root, files, 1_000);
    let commit = |i: usize, checked: bool| {
        let path = format!("d{:02}/f{:05}", i % 100, i * 37 % files);
        let head = store.info("v").unwrap().version;
        let options = CommitOptions {
            unchanged_since: if checked {
                vec![(path.clone(), head)]
            } else {
                Vec::new()
            },
            ..CommitOptions::default()
        };
        store
            .commit_with(
                "v",
                &[Change::Put {
                    path,
                    node: nodes::file(b[i % 16], 8),
                }],
                &options,
            )
            .unwrap();
    };
    // Alternate the two so drift on a shared machine hits both alike.
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for r in 0..runs * 2 {
        let checked = r % 2 == 0;
        let t = Instant::now();
        commit(r, checked);
        let took = t.elapsed();
        if checked {
            with.push(took);
        } else {
            without.push(took);
        }
    }
    row(
        "1-file commit, 50,000 files, conflict-checked",
        Spread::of(with),
        "the same commit, last writer wins",
        Spread::of(without),
    );
}

fn main() {
    let root = std::env::temp_dir();
    println!("volume history (embedded store); min/median/max of repeated runs");
    history_case(&root, 30);
    diff_and_reads_case(&root, 30);
    snapshot_case(&root, 10);
    conflict_check_case(&root, 200);
}
