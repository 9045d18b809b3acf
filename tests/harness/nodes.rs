//! Volume contents made directly in a store, beside the guests: files and
//! symlinks a test or bench commits to set the scene (including absolute
//! symlinks a guest could not make, but a volume uploaded from a local tree
//! can hold).

use vessel_host::storage::blobs::BlobId;
use vessel_host::storage::volume::{Change, Node, NodeKind, VolumeStore};

/// A file node of `size` bytes whose contents are blob `blob`.
pub fn file(blob: BlobId, size: u64) -> Node {
    Node {
        kind: NodeKind::File,
        blob: Some(blob),
        size,
        mtime_ms: 1,
        mode: 0o644,
        target: None,
    }
}

/// A directory node.
pub fn dir() -> Node {
    Node {
        kind: NodeKind::Dir,
        blob: None,
        size: 0,
        mtime_ms: 1,
        mode: 0o755,
        target: None,
    }
}

/// A symlink node pointing at `target`.
pub fn symlink(target: &str) -> Node {
    Node {
        kind: NodeKind::Symlink,
        blob: None,
        size: 0,
        mtime_ms: 1,
        mode: 0o777,
        target: Some(target.to_owned()),
    }
}

/// The change that puts `node` at `path`.
pub fn put(path: impl Into<String>, node: Node) -> Change {
    Change::Put {
        path: path.into(),
        node,
    }
}

/// `files` files of `size` bytes, all with contents `blob`, spread over
/// `dirs` directories as `dNN/fNNNNN`: a large volume for benches.
pub fn spread(blob: BlobId, size: u64, files: usize, dirs: usize) -> Vec<Change> {
    (0..files)
        .map(|i| put(format!("d{:02}/f{i:05}", i % dirs.max(1)), file(blob, size)))
        .collect()
}

/// Creates volume `volume` if it does not exist, and commits `files` (path,
/// contents) and `links` (path, target) to it in one commit.
pub fn seed(store: &dyn VolumeStore, volume: &str, files: &[(&str, &str)], links: &[(&str, &str)]) {
    if store.info(volume).is_err() {
        store
            .create(volume)
            .unwrap_or_else(|e| panic!("create {volume}: {e}"));
    }
    let mut changes = Vec::new();
    for (path, text) in files {
        let blob = store
            .put_blob(text.as_bytes())
            .unwrap_or_else(|e| panic!("put_blob: {e}"));
        changes.push(put(*path, file(blob, text.len() as u64)));
    }
    for (path, target) in links {
        changes.push(put(*path, symlink(target)));
    }
    store
        .commit(volume, &changes)
        .unwrap_or_else(|e| panic!("commit to {volume}: {e}"));
}
