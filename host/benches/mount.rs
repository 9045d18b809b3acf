//! Mount cost: materialising a 10,000-file volume into a container, for
//! 1 KB and 1 MB files, next to native baselines measured in the same run
//! (hard-linking the same files with std, and copying them).
//!
//!   cargo bench -p vessel-host --bench mount
//!
//! The 1 MB case uses 16 distinct blobs (10,000 distinct 1 MB files would
//! write 10 GB); a mount costs one link per file whatever the blob, so this
//! measures the same work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vessel_host::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::volume::{Change, Node, NodeKind, VolumeStore};
use vessel_host::volume::{Mount, VolumeMount};

const FILES: usize = 10_000;
const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn setup(store: &Arc<dyn VolumeStore>, name: &str, size: usize, distinct: usize) {
    store.create(name).unwrap();
    let mut blobs = Vec::new();
    for i in 0..distinct {
        let mut data = vec![0u8; size];
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        blobs.push(store.put_blob(&data).unwrap());
    }
    let mut changes = Vec::with_capacity(FILES);
    for i in 0..FILES {
        changes.push(Change::Put {
            path: format!("d{:02}/f{i:05}", i % 100),
            node: Node {
                kind: NodeKind::File,
                blob: Some(blobs[i % distinct]),
                size: size as u64,
                mtime_ms: 0,
                mode: 0o644,
                target: None,
            },
        });
    }
    store.commit(name, &changes).unwrap();
}

/// Lays `snapshot` out under `dir` with std calls, placing each file with
/// `place(blob_path, dest)`; returns the time it took.
fn native(
    store: &Arc<dyn VolumeStore>,
    snapshot: &vessel_host::storage::volume::Snapshot,
    dir: &std::path::Path,
    place: impl Fn(&std::path::Path, &std::path::Path),
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

fn bench_case(
    store: &Arc<dyn VolumeStore>,
    root: &std::path::Path,
    name: &str,
    label: &str,
    copy_runs: usize,
) {
    let spec = VolumeMount {
        guest: "/data".into(),
        volume: name.into(),
        read_only: false,
    };
    let snapshot = store.snapshot(name).unwrap();
    let mut ours = Vec::new();
    let mut link = Vec::new();
    let mut copy = Vec::new();
    for run in 0..RUNS {
        let dir = root.join(format!("{label}-mount-{run}"));
        let t = Instant::now();
        let m = Mount::materialize(store, &spec, &dir).unwrap();
        ours.push(t.elapsed());
        drop(m);

        // Native: the same directories and hard links, straight from std.
        let dir = root.join(format!("{label}-link-{run}"));
        link.push(native(store, &snapshot, &dir, |src, dest| {
            std::fs::hard_link(src, dest).unwrap()
        }));

        // Native: copying the bytes (what a mount without links would do).
        if run < copy_runs {
            let dir = root.join(format!("{label}-copy-{run}"));
            copy.push(native(store, &snapshot, &dir, |src, dest| {
                std::fs::copy(src, dest).map(drop).unwrap()
            }));
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    let (ours, link) = (median(ours), median(link));
    let copy = if copy.is_empty() {
        "native copy skipped (10 GB)".to_owned()
    } else {
        let copy = median(copy);
        format!(
            "native copy {:>9.2} ms (ratio {:.3})",
            copy.as_secs_f64() * 1e3,
            ours.as_secs_f64() / copy.as_secs_f64()
        )
    };
    println!(
        "mount {FILES} files of {label:>3}: vessel {:>7.2} ms | native hard links {:>7.2} ms (ratio {:.2}) | {copy}",
        ours.as_secs_f64() * 1e3,
        link.as_secs_f64() * 1e3,
        ours.as_secs_f64() / link.as_secs_f64(),
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let store: Arc<dyn VolumeStore> = Arc::new(store);
    let work = dir.path().join("containers");
    std::fs::create_dir_all(&work).unwrap();
    setup(&store, "small", 1024, FILES);
    bench_case(&store, &work, "small", "1KB", 3);
    setup(&store, "large", 1 << 20, 16);
    bench_case(&store, &work, "large", "1MB", 0);
}
