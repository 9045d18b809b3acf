//! Disk: a guest filling its scratch `/` or a mount's working tree stops at
//! its container's disk budget with ENOSPC (`insufficient-space`), by every
//! write path; and no guest operation changes a stored blob that other
//! containers share (times included).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde_json::{Value, json};
use vessel_host::call::{CallArgs, build_params, find_export, to_json};
use vessel_host::container::{Container, ContainerConfig, linker};
use vessel_host::engine::VesselEngine;
use vessel_host::storage::volume::{Change, Node, NodeKind, VolumeStore};
use vessel_host::volume::VolumeMount;
use vessel_tests::guest;

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
    // The final commit stores the copies' bytes, the blobs' own, and the
    // store refreshes their times (for gc's grace): its time, never the
    // guest's.
    for b in &blobs {
        assert!(mtime_secs(b) > 1000, "after the final commit");
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

/// The filler in a container of its own, configured directly (as an
/// embedder does), beside the host's apps.
struct Filler {
    c: Container,
    inst: wasmtime::component::Instance,
    engine: VesselEngine,
    component: wasmtime::component::Component,
}

impl Filler {
    async fn start(host: &Host, disk_mib: u64, mounts: &[&str]) -> Filler {
        let engine = host.runtime.engine().clone();
        let config = ContainerConfig {
            stores: host.service.stores.clone(),
            work_dir: Some(host.home.path().join("containers")),
            volume_mounts: mounts
                .iter()
                .map(|v| VolumeMount {
                    guest: "/data".into(),
                    volume: (*v).to_owned(),
                    read_only: false,
                })
                .collect(),
            background_commit: None,
            disk_limit: disk_mib * MIB,
            ..ContainerConfig::default()
        };
        let component = engine.load(&guest("filler")).unwrap().0;
        let mut c = Container::new(&engine, &config).unwrap();
        let inst = c
            .instantiate(&linker(&engine).unwrap(), &component)
            .await
            .unwrap();
        Filler {
            c,
            inst,
            engine,
            component,
        }
    }

    async fn call(&mut self, name: &str, args: Value) -> Value {
        let export = find_export(&self.engine, &self.component, "filler", name).unwrap();
        let params = build_params(
            &export,
            &CallArgs {
                args: Some(args),
                flags: vec![],
            },
        )
        .unwrap();
        let func = self
            .inst
            .get_func(self.c.store_mut(), export.index)
            .unwrap();
        let r = self
            .c
            .call(func, &params, usize::from(export.result.is_some()))
            .await
            .unwrap_or_else(|e| panic!("{name} failed: {e}"));
        r.as_ref().map(to_json).unwrap_or(Value::Null)
    }

    /// A fill: the bytes written and the error.
    async fn fill(&mut self, path: &str, mib: u64, how: &str) -> (u64, Option<String>) {
        let got = self.call("fill", json!([path, mib, how])).await;
        written(&got)
    }
}

/// The `written` and `error` of a fill's answer.
fn written(got: &Value) -> (u64, Option<String>) {
    (
        got["written"].as_u64().unwrap(),
        got["error"].as_str().map(str::to_owned),
    )
}

/// The error a guest gets past its budget: WASI's `insufficient-space`
/// (ENOSPC). Through std, `StorageFull`; but wasi-libc's `write` maps
/// every error of an output stream to EIO without asking
/// `filesystem-error-code` (`wasip2_handle_write_error`), which std calls
/// `Uncategorized`.
fn is_enospc(e: Option<&str>) -> bool {
    matches!(
        e,
        Some("insufficient-space" | "StorageFull" | "Uncategorized")
    )
}

/// The issue's case, in an app: a guest asked to write 300 MiB under
/// `disk = 64` writes at most 64 MiB and gets ENOSPC (not a trap), its
/// warm container keeps the bytes and can free them, and the bystander
/// answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filling_scratch_stops_at_the_budget_beside_a_bystander() {
    let host = Host::new();
    let mut manifest = BYSTANDER.to_owned();
    manifest += &filler_fn("fill", "fill", "disk = 64");
    let app = host.load(&manifest, &["filler"]);
    let bystander = Bystander::start(&app);
    let fill = app.function("fill").unwrap();
    let (n, e) = written(&fill.call(json!(["/big", 300, "std"])).await.unwrap());
    assert!(is_enospc(e.as_deref()), "{e:?}");
    assert_eq!(n, 64 * MIB - 4096, "all of the budget but the file's entry");
    // The same warm container: /big still holds the budget, so another
    // file cannot even be made (its entry does not fit)...
    let other = fill.call(json!(["/other", 1, "stream"])).await.unwrap();
    assert_eq!(written(&other), (0, Some("insufficient-space".into())));
    // ...until /big is truncated (the fill opens it with truncation).
    let (n3, e) = written(&fill.call(json!(["/big", 300, "write"])).await.unwrap());
    assert!(is_enospc(e.as_deref()), "{e:?}");
    assert_eq!(n3, 64 * MIB - 4096);
    let seen = bystander.finish().await;
    assert!(seen.answered >= 2, "{seen:?}");
    app.shutdown().await.unwrap();
}

/// Every write path of `wasi:filesystem` stops at the budget: the write
/// that crosses it is cut there, the next fails with ENOSPC, the bytes
/// already written stay readable, and a removal frees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_path_stops_at_the_budget() {
    let host = Host::new();
    let app = host.load(BYSTANDER, &[]);
    let bystander = Bystander::start(&app);
    for how in ["std", "write", "stream", "blocking", "append", "zeroes"] {
        let mut g = Filler::start(&host, 8, &[]).await;
        let (n, e) = g.fill("/f", 20, how).await;
        assert!(is_enospc(e.as_deref()), "{how}: {e:?}");
        // Exactly the budget less the file's entry: the write that
        // crosses it is cut there (a stream offers no more than that).
        assert_eq!(n, 8 * MIB - 4096, "{how}");
        let size = g.call("size", json!(["/f"])).await;
        let on_disk = size["ok"].as_u64().unwrap();
        assert_eq!(on_disk, n, "{how}");
        let read = g.call("check", json!(["/f", how == "zeroes"])).await;
        assert_eq!(read, json!({"ok": on_disk}), "{how}");
        assert!(g.c.disk().used() <= 8 * MIB, "{how}");
        assert_eq!(g.call("rm", json!(["/f"])).await, json!({"ok": null}));
        assert_eq!(g.fill("/g", 6, how).await, (6 * MIB, None), "{how}");
    }
    bystander.finish().await;
    app.shutdown().await.unwrap();
}

/// Apparent size counts: a sparse write far past the end or a set-size
/// costs the whole extent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sparse_writes_and_set_size_cost_their_whole_extent() {
    let host = Host::new();
    let app = host.load(BYSTANDER, &[]);
    let bystander = Bystander::start(&app);
    let mut g = Filler::start(&host, 8, &[]).await;
    let no_space = json!({"err": "insufficient-space"});
    for how in ["set-size", "sparse"] {
        assert_eq!(
            g.call("grow", json!(["/s", 1u64 << 40, how])).await,
            no_space,
            "{how}"
        );
        assert_eq!(
            g.call("grow", json!(["/s", 9 * MIB, how])).await,
            no_space,
            "{how}"
        );
    }
    assert_eq!(
        g.call("grow", json!(["/s", 5 * MIB, "sparse"])).await,
        json!({"ok": null})
    );
    assert_eq!(
        g.call("grow", json!(["/t", 3 * MIB, "set-size"])).await,
        no_space
    );
    assert_eq!(
        g.call("grow", json!(["/t", 2 * MIB, "set-size"])).await,
        json!({"ok": null})
    );
    assert_eq!(g.call("size", json!(["/s"])).await, json!({"ok": 5 * MIB}));
    // Shrinking frees.
    assert_eq!(
        g.call("grow", json!(["/s", 0, "set-size"])).await,
        json!({"ok": null})
    );
    assert_eq!(
        g.call("grow", json!(["/t", 7 * MIB, "set-size"])).await,
        json!({"ok": null})
    );
    bystander.finish().await;
    app.shutdown().await.unwrap();
}

/// Empty files and directories cost an entry each (4 KiB): a guest cannot
/// run the host out of inodes with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn empty_files_and_directories_cost_an_entry_each() {
    let host = Host::new();
    let app = host.load(BYSTANDER, &[]);
    let bystander = Bystander::start(&app);
    for dirs in [false, true] {
        let mut g = Filler::start(&host, 1, &[]).await;
        let got = g.call("touch-many", json!(["/", 100_000, dirs])).await;
        assert_eq!(got, json!([256, "insufficient-space"]), "dirs: {dirs}");
        assert!(g.c.disk().used() <= MIB);
    }
    bystander.finish().await;
    app.shutdown().await.unwrap();
}

/// A file removed while the guest holds it open keeps its bytes on the
/// host's disk, and in the budget, until it is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_files_held_open_still_count() {
    let host = Host::new();
    let app = host.load(BYSTANDER, &[]);
    let bystander = Bystander::start(&app);
    let mut g = Filler::start(&host, 16, &[]).await;
    let got = g.call("fill-unlinked", json!(["/a", 12, "/b", 12])).await;
    let (n, e) = written(&got);
    assert!(is_enospc(e.as_deref()) && n < 4 * MIB, "{got}");
    // The call ended: the removed file is closed, its bytes are free.
    assert_eq!(g.call("rm", json!(["/b"])).await, json!({"ok": null}));
    assert_eq!(g.fill("/c", 12, "write").await, (12 * MIB, None));
    bystander.finish().await;
    app.shutdown().await.unwrap();
}

/// A guest filling a mount's working tree stops at the same budget. Files
/// it only reads (links of stored blobs) cost nothing; one it writes is
/// copied up first, and the copy costs its size; the volume API's
/// write-file and copy count too. What it wrote is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filling_a_mount_stops_at_the_budget() {
    let host = Host::new();
    let store = host.service.stores.volumes.clone().unwrap();
    let seed_bytes: Vec<u8> = (0..6 * MIB).map(|i| (i % 251) as u8).collect();
    let blobs = seed(&store, "v", &[("seed", &seed_bytes)]);
    let app = host.load(BYSTANDER, &[]);
    let bystander = Bystander::start(&app);
    let mut g = Filler::start(&host, 16, &["v"]).await;
    // Reading the snapshot costs nothing.
    assert_eq!(
        g.call("check", json!(["/data/seed", false])).await,
        json!({"ok": 6 * MIB})
    );
    assert_eq!(g.c.disk().measure_now().unwrap(), 0);
    let (n, e) = g.fill("/data/big", 300, "write").await;
    assert!(is_enospc(e.as_deref()) && n == 16 * MIB, "{n} {e:?}");
    assert_eq!(
        g.call("rm", json!(["/data/big"])).await,
        json!({"ok": null})
    );
    // Appending to the snapshot's file copies it up: 6 MiB, then 10 more.
    let got = g.call("append", json!(["/data/seed", 20])).await;
    let (n, e) = written(&got);
    assert!(is_enospc(e.as_deref()) && n == 10 * MIB, "{got}");
    let full = g.call("obj-write", json!(["/data", "x", 1])).await;
    assert!(full["err"].to_string().contains("NoSpace"), "{full}");
    let copy = g.call("obj-copy", json!(["/data", "seed", "seed2"])).await;
    assert!(copy["err"].to_string().contains("NoSpace"), "{copy}");
    assert_eq!(
        g.call("commit", json!(["/data"])).await,
        json!({"ok": null})
    );
    assert!(g.c.disk().used() <= 16 * MIB);
    g.c.shutdown().unwrap();
    let node = store.node("v", "seed").unwrap().unwrap();
    assert_eq!(node.size, 16 * MIB);
    assert_eq!(
        std::fs::read(&blobs[0]).unwrap(),
        seed_bytes,
        "the blob is untouched"
    );
    assert!(store.node("v", "x").unwrap().is_none());
    bystander.finish().await;
    app.shutdown().await.unwrap();
}
