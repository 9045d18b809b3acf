//! What a fork costs, on the embedded store and on PostgreSQL + S3, each
//! figure beside a baseline measured in the same run:
//! - `fork` of a 100,000-file volume of 10 GiB (1,000 distinct 105 KiB
//!   blobs, each named by 100 files), vs `cp -al` of the same tree laid
//!   out as hard links on disk (the cheapest copy a file system offers
//!   without reflinks; `cp -r --reflink=never` would write the 10 GiB and
//!   is not run). On the embedded store the fork must write no blob: the
//!   blob folder is counted before and after.
//! - `fork` of a version 10 commits old: the counts of an older version
//!   come from the diff to the head (or, on PostgreSQL, the log); vs the
//!   fork of the head.
//! - a whole recursive listing of a fork (its reads fall through to the
//!   source), vs the same listing of the source (both read the store).
//! - a one-file commit into the fork, vs the same into the source.
//!
//! The embedded store runs with relaxed durability (setup commits would
//! otherwise fsync; a fork is one small transaction either way).
//! PostgreSQL and SeaweedFS are started on loopback and stopped at the end.
//!
//!   cargo bench -p vessel-tests --bench fork
//!   VESSEL_FORK_FILES=10000 VESSEL_FORK_BACKENDS=embedded cargo bench -p vessel-tests --bench fork

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vessel_host::storage::blobs::BlobId;
use vessel_host::storage::embedded::{DurabilityMode, EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::remote::{RemoteOptions, RemoteStore};
use vessel_host::storage::volume::{Change, VolumeStore};
use vessel_tests::harness::figures::{Spread, env_u64, row};
use vessel_tests::harness::nodes;
use vessel_tests::servers::{Postgres, Seaweed};

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

const SIZE: u64 = (10u64 << 30) / 100_000;

/// `files` files over `distinct` blobs in one commit, then 10 one-file
/// commits: the source volume "src".
fn populate(store: &dyn VolumeStore, files: usize) -> Vec<BlobId> {
    let distinct = (files / 100).max(1);
    let blobs: Vec<BlobId> = (0..distinct)
        .map(|i| {
            let mut bytes = vec![0u8; SIZE as usize];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            store.put_blob(&bytes).unwrap()
        })
        .collect();
    store.create("src").unwrap();
    let changes: Vec<Change> = (0..files)
        .map(|i| Change::Put {
            path: format!("d{:02}/f{i:06}", i % 100),
            node: nodes::file(blobs[i % distinct], SIZE),
        })
        .collect();
    store.commit("src", &changes).unwrap();
    for c in 0..10 {
        let change = Change::Put {
            path: format!("d{:02}/f{c:06}", c % 100),
            node: nodes::file(blobs[(c + 1) % distinct], SIZE),
        };
        store.commit("src", &[change]).unwrap();
    }
    blobs
}

/// The fork rows of one backend; `blob_dir`: the embedded blob folder, to
/// check that forks write no blob. Returns the fork-of-head figure.
fn measure(
    label: &str,
    store: &dyn VolumeStore,
    files: usize,
    runs: usize,
    blob_dir: Option<&Path>,
) -> Spread {
    let t = Instant::now();
    let blobs = populate(store, files);
    let info = store.info("src").unwrap();
    println!(
        "\n{label}: {files} files, {:.2} GiB, {} distinct blobs, set up in {:.1} s; min/median/max of {runs} runs",
        info.bytes as f64 / (1u64 << 30) as f64,
        blobs.len(),
        t.elapsed().as_secs_f64()
    );
    let before = blob_dir.map(count_files);
    let head = Spread::time(runs, |i| {
        let got = store.fork("src", None, &format!("head{i}")).unwrap();
        assert_eq!(got.inodes, info.inodes);
    });
    if let Some(dir) = blob_dir {
        assert_eq!(Some(count_files(dir)), before, "a fork wrote a blob");
    }
    let old = Spread::time(runs.min(5), |i| {
        store.fork("src", Some(1), &format!("old{i}")).unwrap();
    });
    let again = Spread::time(runs.min(5), |i| {
        store.fork("src", None, &format!("again{i}")).unwrap();
    });
    row(
        "fork of a version 10 commits old",
        old,
        "fork of the head",
        again,
    );
    let fork_list = Spread::time(5, |_| {
        let n = store.list_dir("head0", "", true).unwrap().len();
        assert_eq!(n as u64, info.inodes);
    });
    let src_list = Spread::time(5, |_| {
        let n = store.list_dir("src", "", true).unwrap().len();
        assert_eq!(n as u64, info.inodes);
    });
    row(
        "whole listing of a fork (reads through)",
        fork_list,
        "whole listing of its source",
        src_list,
    );
    let (mut into_fork, mut into_src) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let change = [Change::Put {
            path: format!("d07/f{:06}", (i * 7919) % files),
            node: nodes::file(blobs[i % blobs.len()], SIZE),
        }];
        let t = Instant::now();
        store.commit("head0", &change).unwrap();
        into_fork.push(t.elapsed());
        let t = Instant::now();
        store.commit("src", &change).unwrap();
        into_src.push(t.elapsed());
    }
    row(
        "1-file commit into a fork",
        Spread::of(into_fork),
        "the same commit into the source",
        Spread::of(into_src),
    );
    head
}

/// `cp -al` of a tree of `files` hard links to `distinct` files.
fn cp_al(root: &Path, files: usize) -> Spread {
    let distinct = (files / 100).max(1);
    let originals = root.join("originals");
    std::fs::create_dir_all(&originals).unwrap();
    for i in 0..distinct {
        std::fs::write(originals.join(i.to_string()), vec![i as u8; SIZE as usize]).unwrap();
    }
    let tree = root.join("tree");
    for i in 0..files {
        let d = tree.join(format!("d{:02}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&d).unwrap();
        }
        let from = originals.join((i % distinct).to_string());
        std::fs::hard_link(from, d.join(format!("f{i:06}"))).unwrap();
    }
    let runs = 5;
    let spread = Spread::time(runs, |i| {
        let to = root.join(format!("copy{i}"));
        let ok = Command::new("cp")
            .arg("-al")
            .arg(&tree)
            .arg(&to)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    });
    for i in 0..runs {
        std::fs::remove_dir_all(root.join(format!("copy{i}"))).unwrap();
    }
    spread
}

fn main() {
    let files = env_u64("VESSEL_FORK_FILES", 100_000) as usize;
    let backends = std::env::var("VESSEL_FORK_BACKENDS").unwrap_or("embedded,remote".into());
    let runs = 20;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let base = cp_al(dir.path(), files);
    println!("fork; baseline: cp -al of the same tree ({files} hard links), 5 runs");
    if backends.contains("embedded") {
        let data = dir.path().join("data");
        let store = EmbeddedStore::open(
            &data,
            EmbeddedOptions {
                durability: DurabilityMode::Relaxed {
                    interval: Duration::from_secs(3600),
                },
                ..EmbeddedOptions::default()
            },
        )
        .unwrap();
        let head = measure(
            "embedded store",
            &store,
            files,
            runs,
            Some(&data.join("blobs")),
        );
        row(
            &format!("fork of the head ({files} files)"),
            head,
            "cp -al of the tree",
            base,
        );
    }
    if backends.contains("remote") {
        eprintln!("starting PostgreSQL and SeaweedFS");
        let pg = Postgres::start();
        let s3 = Seaweed::start();
        let o = RemoteOptions::new(
            &pg.url_for("public"),
            &s3.url("bench"),
            dir.path().join("cache"),
        );
        let store = RemoteStore::open(o).unwrap();
        let head = measure("PostgreSQL + S3 (loopback)", &store, files, runs, None);
        row(
            &format!("fork of the head ({files} files)"),
            head,
            "cp -al of the tree",
            base,
        );
    }
}
