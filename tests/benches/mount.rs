//! Mount cost: mounting a 10,000-file volume into a container, for 1 KB and
//! 1 MB files, next to native baselines measured in the same run
//! (hard-linking the same files with std, and copying them).
//!
//!   cargo bench -p vessel-tests --bench mount
//!
//! Mounts are lazy (see `vessel_host::volume::mount`): a mount reads the
//! snapshot and makes an empty directory; files appear on first use. Each
//! case prints, as medians of 7 runs:
//! - `new container`: `Container::new` with the volume mounted (scratch
//!   directory, mount, WASI context, store), with a target of under 20 ms:
//!   right after the store was opened (the snapshot is scanned from sled),
//!   after a commit moved the head since the last mount (the store's cached
//!   snapshot with the commit merged in), and with the head unchanged;
//! - `mount alone`: `Mount::materialize` right after the store was opened;
//! - `placing all`: placing every file afterwards, what the lazy paths add
//!   up to if a guest touches every file (the old eager mount's cost);
//! - the native baselines, and the ratios of the mount to them.
//!
//! The 1 MB case uses 16 distinct blobs (10,000 distinct 1 MB files would
//! write 10 GB); placing a file costs one link whatever the blob, so this
//! measures the same work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vessel_tests::harness::figures::median;

use vessel_host::container::{Container, ContainerConfig};
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_host::storage::Stores;
use vessel_host::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::volume::{Change, Node, NodeKind, VolumeStore};
use vessel_host::volume::{Mount, VolumeMount};
use vessel_tests::harness::nodes;

const FILES: usize = 10_000;
const RUNS: usize = 7;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn setup(store: &Arc<dyn VolumeStore>, name: &str, size: usize, distinct: usize) {
    store.create(name).unwrap();
    let mut blobs = Vec::new();
    for i in 0..distinct {
        let mut data = vec![0u8; size];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        blobs.push(store.put_blob(&data).unwrap());
    }
    let changes: Vec<Change> = (0..FILES)
        .map(|i| {
            let path = format!("d{:02}/f{i:05}", i % 100);
            nodes::put(path, nodes::file(blobs[i % distinct], size as u64))
        })
        .collect();
    store.commit(name, &changes).unwrap();
}

/// Lays `snapshot` out under `dir` with std calls, placing each file with
/// `place(blob_path, dest)`; returns the time it took.
fn native(
    store: &Arc<dyn VolumeStore>,
    snapshot: &vessel_host::storage::volume::Snapshot,
    dir: &Path,
    place: impl Fn(&Path, &Path),
) -> Duration {
    let t = Instant::now();
    for (path, node) in &snapshot.nodes {
        let dest = dir.join(path);
        match node.kind {
            NodeKind::Dir => std::fs::create_dir_all(&dest).unwrap(),
            _ => {
                let src = store.local_blob(node.blob.as_ref().unwrap()).unwrap();
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                place(&src, &dest);
            }
        }
    }
    t.elapsed()
}

fn open(data: &Path) -> Arc<dyn VolumeStore> {
    Arc::new(EmbeddedStore::open(data, EmbeddedOptions::default()).unwrap())
}

fn config(store: &Arc<dyn VolumeStore>, spec: &VolumeMount, work: &Path) -> ContainerConfig {
    ContainerConfig {
        stores: Stores {
            dicts: None,
            volumes: Some(store.clone()),
        },
        volume_mounts: vec![spec.clone()],
        work_dir: Some(work.to_owned()),
        ..ContainerConfig::default()
    }
}

/// Times `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

/// Runs one case on the volume `name` of the store in `data` (which it
/// reopens) and returns the store open again.
fn bench_case(
    engine: &VesselEngine,
    mut store: Arc<dyn VolumeStore>,
    data: &Path,
    root: &Path,
    name: &str,
    label: &str,
    copy_runs: usize,
) -> Arc<dyn VolumeStore> {
    let spec = VolumeMount {
        guest: "/data".into(),
        volume: name.into(),
        read_only: false,
        version: None,
        conflicts: Default::default(),
    };
    let work = root.join(format!("{label}-containers"));
    let snapshot = store.snapshot(name).unwrap();
    let (mut opened, mut moved, mut same, mut mount, mut all) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut link, mut copy) = (vec![], vec![]);
    for run in 0..RUNS {
        // Right after the store is opened: the snapshot is scanned from
        // sled (the host's first mount of the volume).
        drop(store);
        store = open(data);
        let (t, c) = timed(|| Container::new(engine, &config(&store, &spec, &work)).unwrap());
        opened.push(t);
        drop(c);
        // A commit moved the head since the last mount: the cached
        // snapshot plus the commit's paths.
        let marker = Node {
            mtime_ms: run as u64,
            ..nodes::dir()
        };
        store.commit(name, &[nodes::put("marker", marker)]).unwrap();
        let (t, c) = timed(|| Container::new(engine, &config(&store, &spec, &work)).unwrap());
        moved.push(t);
        drop(c);
        // Nothing changed since the last mount.
        let (t, c) = timed(|| Container::new(engine, &config(&store, &spec, &work)).unwrap());
        same.push(t);
        drop(c);

        // The mount alone, from a store just opened, and then every file.
        drop(store);
        store = open(data);
        let dir = root.join(format!("{label}-mount-{run}"));
        let (t, m) = timed(|| Mount::materialize(&store, &spec, &dir).unwrap());
        mount.push(t);
        let mut m = m;
        assert_eq!(m.placed(), 0, "a mount places nothing");
        let (t, ()) = timed(|| m.place_all().unwrap());
        all.push(t);
        assert_eq!(m.placed(), FILES + 100 + 1, "files, dirs, marker");
        drop(m);

        // Native: the same directories and hard links, straight from std.
        let dir = root.join(format!("{label}-link-{run}"));
        link.push(native(&store, &snapshot, &dir, |src, dest| {
            std::fs::hard_link(src, dest).unwrap()
        }));

        // Native: copying the bytes (what a mount without links would do).
        if run < copy_runs {
            let dir = root.join(format!("{label}-copy-{run}"));
            copy.push(native(&store, &snapshot, &dir, |src, dest| {
                std::fs::copy(src, dest).map(drop).unwrap()
            }));
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    let (opened, moved, same, mount, all, link) = (
        median(opened),
        median(moved),
        median(same),
        median(mount),
        median(all),
        median(link),
    );
    let copy = if copy.is_empty() {
        "native copy skipped (10 GB)".to_owned()
    } else {
        let copy = median(copy);
        format!(
            "native copy {:>7.2} ms (ratio {:.4})",
            ms(copy),
            mount.as_secs_f64() / copy.as_secs_f64()
        )
    };
    println!(
        "{FILES} files of {label}: new container {:>5.2} ms after the store opened, {:>5.2} ms after a commit, {:>5.2} ms unchanged (target < 20 ms)",
        ms(opened),
        ms(moved),
        ms(same),
    );
    println!(
        "    mount alone {:>5.2} ms | native hard links {:>7.2} ms (ratio {:.3}) | {copy}",
        ms(mount),
        ms(link),
        mount.as_secs_f64() / link.as_secs_f64(),
    );
    println!(
        "    placing all {FILES} files lazily afterwards {:>7.2} ms (ratio to native hard links {:.2})",
        ms(all),
        all.as_secs_f64() / link.as_secs_f64(),
    );
    store
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open(&data);
    let engine = VesselEngine::new(EngineConfig::default()).unwrap();
    let work = dir.path().join("containers");
    std::fs::create_dir_all(&work).unwrap();
    setup(&store, "small", 1024, FILES);
    let store = bench_case(&engine, store, &data, &work, "small", "1KB", 3);
    setup(&store, "large", 1 << 20, 16);
    bench_case(&engine, store, &data, &work, "large", "1MB", 0);
}
