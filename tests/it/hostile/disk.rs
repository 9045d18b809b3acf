//! Disk: a guest filling its scratch `/` or a mount's working tree stops at
//! its container's disk budget with ENOSPC (`insufficient-space`), by every
//! write path; and no guest operation changes a stored blob that other
//! containers share (times included).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde_json::json;
use vessel_host::storage::volume::{Change, Node, NodeKind, VolumeStore};

use super::{BYSTANDER, Bystander, Host};

const MIB: u64 = 1 << 20;

/// Stores `files` (path, bytes) as a commit of volume `name`, created
/// first; returns each file's blob path in the blob folder.
fn seed(
    store: &Arc<dyn VolumeStore>,
    name: &str,
    files: &[(&str, &[u8])],
) -> Vec<std::path::PathBuf> {
    store.create(name).unwrap();
    let mut changes = Vec::new();
    let mut blobs = Vec::new();
    for (path, bytes) in files {
        for dir in vessel_host::storage::volume::ancestors(path) {
            changes.push(Change::Put {
                path: dir.to_owned(),
                node: Node {
                    kind: NodeKind::Dir,
                    blob: None,
                    size: 0,
                    mtime_ms: 1,
                    mode: 0o755,
                    target: None,
                },
            });
        }
        let blob = store.put_blob(bytes).unwrap();
        blobs.push(store.local_blob(&blob).unwrap());
        changes.push(Change::Put {
            path: (*path).to_owned(),
            node: Node {
                kind: NodeKind::File,
                blob: Some(blob),
                size: bytes.len() as u64,
                mtime_ms: 1,
                mode: 0o644,
                target: None,
            },
        });
    }
    store.commit(name, &changes).unwrap();
    blobs
}

fn mtime_secs(path: &std::path::Path) -> u64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `[functions.NAME]` of the filler calling export `export`, with
/// `extra` lines (mounts, limits) and its own single container, so
/// consecutive calls share its scratch and working trees.
fn filler_fn(name: &str, export: &str, extra: &str) -> String {
    format!(
        "\n[functions.{name}]\ncomponent = \"@FILLER@\"\nexport = \"{export}\"\nmax_containers = 1\ncommit_every = 0\n{extra}\n"
    )
}

/// Point 7 of issue #17: `set-times` on a descriptor opened for reading
/// (and `set-times-at`) on a file of a read-write mount that still links
/// a stored blob. The blob's inode is shared by the blob folder and every
/// container mounting the volume, and gc reads blob mtimes: the file is
/// copied up first, so only this container's copy gets the new time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_times_never_reaches_a_shared_blob() {
    let host = Host::new();
    let store = host.service.stores.volumes.clone().unwrap();
    let blobs = seed(&store, "v", &[("f", b"shared one"), ("g", b"shared two")]);
    let before: Vec<u64> = blobs.iter().map(|b| mtime_secs(b)).collect();
    let mut manifest = BYSTANDER.to_owned();
    manifest += &filler_fn("touch", "set-mtime", r#"mounts = { "/data" = "v" }"#);
    manifest += &filler_fn(
        "peek",
        "mtime",
        r#"mounts = { "/data" = { volume = "v", read_only = true } }"#,
    );
    let app = host.load(&manifest, &["filler"]);
    let bystander = Bystander::start(&app);
    let touch = app.function("touch").unwrap();
    let peek = app.function("peek").unwrap();
    for (path, how) in [("/data/f", "descriptor"), ("/data/g", "at")] {
        let got = touch.call(json!([path, 1000, how])).await.unwrap();
        assert_eq!(got, json!({"ok": null}), "{how}");
        // Another container, mounting the same volume, links the same
        // blob: it sees the blob's own time.
        let seen = peek.call(json!([path])).await.unwrap();
        let i = usize::from(how == "at");
        assert_eq!(seen, json!({"ok": before[i]}), "{how}: another container");
        assert_eq!(mtime_secs(&blobs[i]), before[i], "{how}: the blob folder");
    }
    bystander.finish().await;
    app.shutdown().await.unwrap();
    for (i, b) in blobs.iter().enumerate() {
        assert_eq!(mtime_secs(b), before[i], "after the final commit");
    }
    // The toucher's copies, with their new times, are what it committed.
    for path in ["f", "g"] {
        let node = store.node("v", path).unwrap().unwrap();
        assert_eq!(node.mtime_ms, 1_000_000, "{path}");
    }
}

/// A directory descriptor opened before its directory was renamed still
/// opens files of the renamed directory: a write through it copies up
/// the file it really reaches, never writing a stored blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_through_a_moved_directory_leaves_the_blob_alone() {
    let host = Host::new();
    let store = host.service.stores.volumes.clone().unwrap();
    let blobs = seed(&store, "v", &[("d/f", b"stored bytes")]);
    let mut manifest = BYSTANDER.to_owned();
    manifest += &filler_fn(
        "moved",
        "write-via-moved-dir",
        r#"mounts = { "/data" = "v" }"#,
    );
    let app = host.load(&manifest, &["filler"]);
    let bystander = Bystander::start(&app);
    let got = app
        .function("moved")
        .unwrap()
        .call(json!(["/data/d", "/data/e", "f", "guest bytes"]))
        .await
        .unwrap();
    assert_eq!(got, json!({"ok": null}));
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), b"stored bytes");
    bystander.finish().await;
    app.shutdown().await.unwrap();
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), b"stored bytes");
    let node = store.node("v", "e/f").unwrap().unwrap();
    assert_eq!(
        store.read_blob(&node.blob.unwrap(), 0, 100).unwrap(),
        b"guest bytes"
    );
}
