//! What a fork costs (embedded backend), beside a baseline measured in the
//! same run:
//! - `fork` of a 100,000-file volume of 10 GiB (1,000 distinct 105 KiB
//!   blobs, each named by 100 files), vs `cp -al` of the same tree laid
//!   out as hard links on disk (the cheapest copy a file system offers
//!   without reflinks; `cp -r --reflink=never` would write the 10 GiB and
//!   is not run). The fork must write no blob: the blob count is checked.
//! - `fork` of a version 10 commits old: the counts of an older version
//!   are not stored, so this one works them out from the diff to the head
//!   (the paths changed since, not the volume); vs the fork of the head.
//! - a whole recursive listing of a fork (its reads fall through to the
//!   source), vs the same listing of the source (both scan sled).
//! - a one-file commit into the fork, vs the same into the source.
//!
//! Setup commits run with relaxed durability; the forks themselves too (a
//! fork is one small sled transaction; with fsync both sides pay it).
//!
//!   cargo bench -p vessel-tests --bench fork
//!   VESSEL_FORK_FILES=10000 cargo bench -p vessel-tests --bench fork

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vessel_host::storage::blobs::BlobId;
use vessel_host::storage::embedded::{DurabilityMode, EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::volume::{Change, VolumeStore};
use vessel_tests::harness::figures::{Spread, env_u64};
use vessel_tests::harness::nodes;

fn row(label: &str, ours: Spread, base_label: &str, base: Spread) {
    println!(
        "{label:<46} {:>26}   {base_label:<40} {:>26}   ratio {:8.3}x",
        ours.ms(),
        base.ms(),
        ours.median.as_secs_f64() / base.median.as_secs_f64().max(1e-12)
    );
}

fn blob_files(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn main() {
    let files = env_u64("VESSEL_FORK_FILES", 100_000) as usize;
    let distinct = (files / 100).max(1);
    let size: u64 = (10u64 << 30) / 100_000;
    let runs = 20;
    let root = std::env::temp_dir();
    let dir = tempfile::tempdir_in(&root).unwrap();
    let store = EmbeddedStore::open(
        &dir.path().join("data"),
        EmbeddedOptions {
            durability: DurabilityMode::Relaxed {
                interval: Duration::from_secs(3600),
            },
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let blobs: Vec<BlobId> = (0..distinct)
        .map(|i| {
            let mut bytes = vec![0u8; size as usize];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            store.put_blob(&bytes).unwrap()
        })
        .collect();
    store.create("src").unwrap();
    let t = Instant::now();
    let changes: Vec<Change> = (0..files)
        .map(|i| Change::Put {
            path: format!("d{:02}/f{i:06}", i % 100),
            node: nodes::file(blobs[i % distinct], size),
        })
        .collect();
    store.commit("src", &changes).unwrap();
    for c in 0..10 {
        store
            .commit(
                "src",
                &[Change::Put {
                    path: format!("d{:02}/f{c:06}", c % 100),
                    node: nodes::file(blobs[(c + 1) % distinct], size),
                }],
            )
            .unwrap();
    }
    let info = store.info("src").unwrap();
    println!(
        "fork (embedded store): {files} files, {:.2} GiB, {distinct} distinct blobs, set up in {:.1} s; min/median/max of {runs} runs",
        info.bytes as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64()
    );

    // The baseline tree: the same paths, hard links to the blob files.
    let blob_dir = dir.path().join("data");
    let before = blob_files(&blob_dir.join("blobs"));
    let tree = dir.path().join("tree");
    for i in 0..files {
        let d = tree.join(format!("d{:02}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&d).unwrap();
        }
        let blob = store.local_blob(&blobs[i % distinct]).unwrap();
        std::fs::hard_link(blob, d.join(format!("f{i:06}"))).unwrap();
    }

    let ours = Spread::time(runs, |i| {
        let got = store.fork("src", None, &format!("head{i}")).unwrap();
        assert_eq!(got.inodes, info.inodes);
    });
    assert_eq!(
        blob_files(&blob_dir.join("blobs")),
        before,
        "a fork wrote a blob"
    );
    let base_runs = 5;
    let base = Spread::time(base_runs, |i| {
        let to = dir.path().join(format!("copy{i}"));
        let ok = Command::new("cp")
            .arg("-al")
            .arg(&tree)
            .arg(&to)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    });
    row(
        &format!("fork of the head ({files} files)"),
        ours,
        &format!("cp -al of the tree ({base_runs} runs)"),
        base,
    );
    for i in 0..base_runs {
        std::fs::remove_dir_all(dir.path().join(format!("copy{i}"))).unwrap();
    }

    let old = Spread::time(5, |i| {
        store.fork("src", Some(1), &format!("old{i}")).unwrap();
    });
    let head = Spread::time(5, |i| {
        store.fork("src", None, &format!("again{i}")).unwrap();
    });
    row(
        "fork of a version 10 commits old",
        old,
        "fork of the head",
        head,
    );

    // Both listings scan sled (a listing does not use the snapshot cache).
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

    let mut into_fork = Vec::new();
    let mut into_src = Vec::new();
    for i in 0..200 {
        let change = [Change::Put {
            path: format!("d07/f{:06}", (i * 7919) % files),
            node: nodes::file(blobs[i % distinct], size),
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
}
