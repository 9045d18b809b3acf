//! Volume store costs (embedded backend), each next to native baselines
//! measured in the same run on the same disk:
//! - commit of 1 changed file in a 50,000-file volume (storing its new
//!   blob, then the metadata commit), vs writing and fsyncing one file
//!   (and a bare fsync);
//! - commit of 100 changed files in a 10,000-file volume (storing their
//!   100 blobs, then the commit), vs writing and fsyncing 100 files;
//! - snapshot of a 10,000-file volume, vs walking and stat-ing the same
//!   tree natively and vs a raw sled scan of 10,000 keys;
//! - a put of a new 1 KiB blob, vs writing, fsyncing and renaming a file
//!   natively and fsyncing its directory.
//!
//! The commit of 1 file and the blob put run again on a tmpfs (`/dev/shm`,
//! when there is one), where an fsync costs nothing: what remains is the
//! CPU and system-call cost, which disk latency would hide.
//!
//! Commits are measured with the default durability (fsync before the
//! commit returns) and with relaxed durability (sled writes its log to the
//! OS, no fsync), so the cost beyond the fsync shows.
//!
//!   cargo bench -p vessel-tests --bench volume_store

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use vessel_tests::harness::figures::Spread;

use vessel_host::storage::blobs::BlobId;
use vessel_host::storage::embedded::{DurabilityMode, EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::volume::{Change, VolumeStore};
use vessel_tests::harness::nodes;

fn ms(d: Duration) -> String {
    format!("{:9.3} ms", d.as_secs_f64() * 1e3)
}

/// A row of min/median/max beside the baseline's; the ratio is of medians.
fn row(label: &str, ours: Spread, base_label: &str, base: Spread) {
    println!(
        "{label:<66} {:>28}   {base_label:<34} {:>28}   ratio {:6.2}x",
        ours.ms(),
        base.ms(),
        ours.median.as_secs_f64() / base.median.as_secs_f64().max(1e-12)
    );
}

/// A store with volume `v` holding `files` files in 100 directories.
fn populated(dir: &Path, files: usize, durability: DurabilityMode) -> EmbeddedStore {
    let store = EmbeddedStore::open(
        dir,
        EmbeddedOptions {
            durability,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    store.create("v").unwrap();
    let blobs: Vec<BlobId> = (0..16u8)
        .map(|i| store.put_blob(&[i; 1024]).unwrap())
        .collect();
    let changes: Vec<Change> = (0..files)
        .map(|i| Change::Put {
            path: format!("d{:02}/f{i:05}", i % 100),
            node: nodes::file(blobs[i % 16], 1024),
        })
        .collect();
    let t = Instant::now();
    store.commit("v", &changes).unwrap();
    println!(
        "  (setup: one commit of {files} new files took {})",
        ms(t.elapsed()).trim()
    );
    store
}

/// Distinct 1 KiB blobs for the changed files of every run.
fn fresh_blobs(store: &EmbeddedStore, n: usize, run: usize) -> Vec<BlobId> {
    (0..n)
        .map(|i| {
            let mut data = vec![0u8; 1024];
            data[..8].copy_from_slice(&(run as u64).to_le_bytes());
            data[8..16].copy_from_slice(&(i as u64).to_le_bytes());
            store.put_blob(&data).unwrap()
        })
        .collect()
}

fn commit_case(root: &Path, files: usize, changed: usize, runs: usize) {
    for (mode_label, mode) in [
        ("fsync", DurabilityMode::Sync),
        (
            "relaxed: sled flush, no fsync",
            DurabilityMode::Relaxed {
                interval: Duration::from_secs(3600),
            },
        ),
    ] {
        let dir = tempfile::tempdir_in(root).unwrap();
        let store = populated(dir.path(), files, mode);
        // The timed commit stores the changed files' new blobs too (their
        // fsyncs included), as the baseline writes and fsyncs the files:
        // both make the same changed bytes durable.
        let ours = Spread::time(runs, |r| {
            let set = fresh_blobs(&store, changed, if r == usize::MAX { runs } else { r });
            let changes: Vec<Change> = set
                .iter()
                .enumerate()
                .map(|(i, b)| Change::Put {
                    path: format!("d{:02}/f{:05}", i % 100, i * 97 % files),
                    node: nodes::file(*b, 1024),
                })
                .collect();
            store.commit("v", &changes).unwrap();
        });
        let native_dir = tempfile::tempdir_in(root).unwrap();
        let base = Spread::time(runs, |r| {
            let mut handles = Vec::with_capacity(changed);
            for i in 0..changed {
                // A fresh name per run: re-creating (truncating) a file
                // makes ext4 flush it on close, which would skew the
                // no-fsync baseline.
                let p = native_dir.path().join(format!("r{r}-f{i}"));
                let mut f = std::fs::File::create(p).unwrap();
                f.write_all(&[r as u8; 1024]).unwrap();
                handles.push(f);
            }
            for f in &handles {
                if mode == DurabilityMode::Sync {
                    f.sync_all().unwrap();
                }
            }
            if mode == DurabilityMode::Sync {
                std::fs::File::open(native_dir.path())
                    .unwrap()
                    .sync_all()
                    .unwrap();
            }
        });
        row(
            &format!("commit {changed} changed of {files} files ({mode_label})"),
            ours,
            &format!(
                "native write {changed} x 1 KiB ({})",
                if mode == DurabilityMode::Sync {
                    "fsync"
                } else {
                    "no fsync"
                }
            ),
            base,
        );
    }
}

fn snapshot_case(root: &Path, files: usize, runs: usize) {
    let dir = tempfile::tempdir_in(root).unwrap();
    let store = populated(
        dir.path(),
        files,
        DurabilityMode::Relaxed {
            interval: Duration::from_secs(3600),
        },
    );
    let ours = Spread::time(runs, |_| {
        let snap = store.snapshot("v").unwrap();
        assert_eq!(snap.nodes.len(), files + 100);
    });
    // Native: the same tree as real files, walked with a stat per entry.
    let tree = tempfile::tempdir_in(root).unwrap();
    for d in 0..100 {
        std::fs::create_dir(tree.path().join(format!("d{d:02}"))).unwrap();
    }
    for i in 0..files {
        std::fs::write(
            tree.path().join(format!("d{:02}/f{i:05}", i % 100)),
            [0u8; 16],
        )
        .unwrap();
    }
    let walk = Spread::time(runs, |_| {
        let mut n = 0;
        for d in std::fs::read_dir(tree.path()).unwrap() {
            let d = d.unwrap();
            let _ = d.metadata().unwrap();
            n += 1;
            for f in std::fs::read_dir(d.path()).unwrap() {
                let _ = f.unwrap().metadata().unwrap();
                n += 1;
            }
        }
        assert_eq!(n, files + 100);
    });
    row(
        &format!("snapshot of {files} files"),
        ours,
        &format!("native walk + stat of {files}"),
        walk,
    );
    // Raw sled: a prefix scan over the same number of keys, no decoding.
    let db = sled::Config::new()
        .path(tree.path().join("sled"))
        .open()
        .unwrap();
    let t = db.open_tree("raw").unwrap();
    for i in 0..files + 100 {
        t.insert(format!("v/d{:02}/f{i:05}", i % 100), &[0u8; 60][..])
            .unwrap();
    }
    let scan = Spread::time(runs, |_| {
        assert_eq!(t.scan_prefix("v/").count(), files + 100);
    });
    row(
        &format!("snapshot of {files} files"),
        ours,
        &format!("raw sled scan of {} keys", files + 100),
        scan,
    );
}

fn blob_case(root: &Path, runs: usize, label: &str) {
    let dir = tempfile::tempdir_in(root).unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let blob = |r: usize| {
        let mut data = vec![7u8; 1024];
        data[..8].copy_from_slice(&(r as u64).to_le_bytes());
        data
    };
    // A long-running owner's steady state: every fan-out directory has
    // been used before.
    for i in 0..2000u64 {
        store.put_blob(&(u64::MAX - i).to_le_bytes()).unwrap();
    }
    let ours = Spread::time(runs, |r| {
        store.put_blob(&blob(r)).unwrap();
    });
    let native = tempfile::tempdir_in(root).unwrap();
    std::fs::create_dir(native.path().join("d")).unwrap();
    let base = Spread::time(runs, |r| {
        let tmp = native.path().join(format!("tmp{r}"));
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(&blob(r)).unwrap();
        f.sync_all().unwrap();
        let dest = native.path().join("d").join(format!("b{r}"));
        std::fs::rename(&tmp, &dest).unwrap();
        std::fs::File::open(native.path().join("d"))
            .unwrap()
            .sync_all()
            .unwrap();
    });
    row(
        &format!("put_blob of 1 KiB (new contents{label})"),
        ours,
        "native write+fsync+rename+dir fsync",
        base,
    );
}

fn main() {
    // Benches run on the target dir's disk (not a tmpfs /tmp), so fsync
    // figures are real.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("volume_store_bench");
    std::fs::create_dir_all(&root).unwrap();
    println!("volume store (embedded), min/median/max; baselines measured in the same run\n");
    let t = Instant::now();
    let fsync_dir = tempfile::tempdir_in(&root).unwrap();
    let bare = Spread::time(21, |r| {
        let mut f = std::fs::File::create(fsync_dir.path().join(format!("f{r}"))).unwrap();
        f.write_all(&[r as u8; 8]).unwrap();
        f.sync_all().unwrap();
    });
    println!("  one native write+fsync of 8 bytes: {}", bare.ms());
    commit_case(&root, 50_000, 1, 31);
    commit_case(&root, 10_000, 100, 15);
    snapshot_case(&root, 10_000, 15);
    blob_case(&root, 61, "");
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let shm_root = tempfile::tempdir_in(shm).unwrap();
        println!("\non tmpfs (fsync is free):");
        commit_case(shm_root.path(), 10_000, 1, 301);
        blob_case(shm_root.path(), 1001, ", tmpfs");
    }
    println!("\n(total {:.1} s)", t.elapsed().as_secs_f64());
}
