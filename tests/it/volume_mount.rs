//! Volumes mounted into containers: snapshots, private writes, commit,
//! reload, background and final commits, blob immutability, limits and
//! escapes, through the volprobe component running in the host.

use serde_json::{Value, json};
use vessel_host::storage::embedded::EmbeddedOptions;

use vessel_tests::guest;
use vessel_tests::harness::{Host, err_of, nodes, ok};

#[tokio::test]
async fn writes_are_private_until_commit_and_others_see_them_after_reload() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    let mut b = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        a.call("fs-write", json!(["/data/x.txt", "hello"])).await,
        ok()
    );
    assert_eq!(
        a.call("fs-read", json!(["/data/x.txt"])).await,
        json!({"ok": "hello"})
    );
    // Not committed: b does not see it, nor does the store.
    assert!(
        b.call("fs-read", json!(["/data/x.txt"]))
            .await
            .get("err")
            .is_some()
    );
    assert!(env.volumes().node("vol", "x.txt").unwrap().is_none());
    let info = a.call("commit", json!(["/data"])).await;
    assert_eq!(info, json!({"ok": "1 1 0"}), "version 1, one change");
    assert!(env.volumes().node("vol", "x.txt").unwrap().is_some());
    // b still sees its snapshot until it reloads.
    assert!(
        b.call("fs-read", json!(["/data/x.txt"]))
            .await
            .get("err")
            .is_some()
    );
    assert_eq!(b.call("reload", json!(["/data"])).await, json!({"ok": 1}));
    assert_eq!(
        b.call("fs-read", json!(["/data/x.txt"])).await,
        json!({"ok": "hello"})
    );
    // A new container starts from the latest version.
    let mut c = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        c.call("fs-read", json!(["/data/x.txt"])).await,
        json!({"ok": "hello"})
    );
    assert_eq!(c.call("version", json!(["/data"])).await, json!({"ok": 1}));
}

#[tokio::test]
async fn guest_writes_never_touch_stored_blobs() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    a.call("fs-write", json!(["/data/f", "original"])).await;
    a.call("commit", json!(["/data"])).await;
    let node = env.volumes().node("vol", "f").unwrap().unwrap();
    let blob = node.blob.unwrap();

    // A new container gets the file as a link to the blob; appending,
    // truncating and rewriting must copy it up first.
    let mut b = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(b.call("fs-append", json!(["/data/f", "+more"])).await, ok());
    assert_eq!(
        b.call("fs-read", json!(["/data/f"])).await,
        json!({"ok": "original+more"})
    );
    assert_eq!(
        env.volumes().read_blob(&blob, 0, 100).unwrap(),
        b"original",
        "the stored blob is unchanged"
    );
    let mut c = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        c.call("fs-write", json!(["/data/f", "rewritten"])).await,
        ok()
    );
    assert_eq!(env.volumes().read_blob(&blob, 0, 100).unwrap(), b"original");
    // A third container still sees the committed content.
    let mut d = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        d.call("fs-read", json!(["/data/f"])).await,
        json!({"ok": "original"})
    );
    // Commits from b then c: last writer wins.
    b.call("commit", json!(["/data"])).await;
    c.call("commit", json!(["/data"])).await;
    d.call("reload", json!(["/data"])).await;
    assert_eq!(
        d.call("fs-read", json!(["/data/f"])).await,
        json!({"ok": "rewritten"})
    );
}

#[tokio::test]
async fn commit_publishes_dirs_renames_and_removals() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    a.call("fs-mkdir", json!(["/data/empty"])).await;
    a.call("fs-mkdir", json!(["/data/d/e"])).await;
    a.call("fs-write", json!(["/data/d/e/f.txt", "f"])).await;
    a.call("fs-write", json!(["/data/gone.txt", "g"])).await;
    a.call("commit", json!(["/data"])).await;
    assert_eq!(
        a.call("fs-rename", json!(["/data/d", "/data/moved"])).await,
        ok()
    );
    assert_eq!(a.call("fs-remove", json!(["/data/gone.txt"])).await, ok());
    a.call("commit", json!(["/data"])).await;
    let mut b = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        b.call("fs-list", json!(["/data"])).await,
        json!({"ok": ["empty", "moved"]})
    );
    assert_eq!(
        b.call("fs-read", json!(["/data/moved/e/f.txt"])).await,
        json!({"ok": "f"})
    );
}

#[tokio::test]
async fn reload_with_open_files_is_busy_and_changes_nothing() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    a.call("fs-write", json!(["/data/open.txt", "x"])).await;
    let r = a
        .call("reload-while-open", json!(["/data", "/data/open.txt"]))
        .await;
    let err = r
        .get("err")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    assert!(err.contains("busy") && err.contains("open.txt"), "{r}");
    // Nothing was committed by the failed reload.
    assert!(env.volumes().node("vol", "open.txt").unwrap().is_none());
    // With the file closed, reload works (and commits first).
    assert_eq!(a.call("reload", json!(["/data"])).await, json!({"ok": 1}));
}

#[tokio::test]
async fn final_commit_after_a_trap_and_background_commits() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    let r = a
        .try_call("write-then-trap", json!(["/data/t.txt", "kept"]))
        .await;
    assert!(r.is_err());
    a.c.shutdown().unwrap();
    assert!(env.volumes().node("vol", "t.txt").unwrap().is_some());

    // Background commits while the guest runs.
    let mut config = env.config(&[("vol", "/data")]);
    config.background_commit = Some(std::time::Duration::from_millis(100));
    let mut b = env.start("volprobe", config.clone()).await;
    b.call("write-then-spin", json!(["/data/bg.txt", "bg", 700]))
        .await;
    assert!(
        env.volumes().node("vol", "bg.txt").unwrap().is_some(),
        "committed in the background before the container ended"
    );

    // And while it waits in a host call (a sleep): the commit lands during
    // the wait, not when the guest wakes.
    let mut s = env.start("volprobe", config.clone()).await;
    let sleeper = tokio::spawn(async move {
        s.call("write-then-sleep", json!(["/data/slept.txt", "z", 3000]))
            .await;
        s
    });
    let seen = std::time::Instant::now();
    while env.volumes().node("vol", "slept.txt").unwrap().is_none() {
        assert!(
            seen.elapsed() < std::time::Duration::from_millis(2500),
            "no background commit while the guest slept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut s = sleeper.await.unwrap();
    s.c.shutdown().unwrap();

    // A file open for writing across background commits is not published
    // half-written: either absent or whole.
    let mut c = env.start("volprobe", config).await;
    c.call(
        "write-slowly",
        json!(["/data/slow.txt", "first-", "second", 700]),
    )
    .await;
    match env.volumes().node("vol", "slow.txt").unwrap() {
        None => {}
        Some(n) => assert_eq!(n.size, "first-second".len() as u64, "torn file published"),
    }
    c.c.shutdown().unwrap();
    let n = env.volumes().node("vol", "slow.txt").unwrap().unwrap();
    assert_eq!(n.size, 12);
}

#[tokio::test]
async fn inode_limit_gives_enospc_on_the_crossing_create() {
    let env = Host::with_options(EmbeddedOptions {
        volume_inode_limit: 10,
        ..EmbeddedOptions::default()
    });
    env.volumes().create("vol").unwrap();
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    a.call("fs-mkdir", json!(["/data/d"])).await;
    let r = a.call("create-many", json!(["/data/d", 50])).await;
    assert_eq!(r[0], json!(9), "1 dir + 9 files = 10 inodes: {r}");
    let msg = r[1].as_str().unwrap_or_default();
    assert!(
        msg.contains("StorageFull") || msg.contains("No space"),
        "{msg}"
    );
    a.call("commit", json!(["/data"])).await;
    assert_eq!(env.volumes().info("vol").unwrap().inodes, 10);
}

#[tokio::test]
async fn no_escape_from_a_mount() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    env.volumes().create("other").unwrap();
    let mut a = env
        .start(
            "volprobe",
            env.config(&[("vol", "/data"), ("other", "/other")]),
        )
        .await;
    for p in [
        "/data/../../etc/passwd",
        "/data/../scratch-escape",
        "/etc/passwd",
    ] {
        assert!(
            a.call("fs-read", json!([p])).await.get("err").is_some(),
            "{p}"
        );
    }
    a.call("fs-write", json!(["/data/a", "a"])).await;
    // Renames between mounts, or from a mount to scratch, are refused.
    let r = a.call("fs-rename", json!(["/data/a", "/other/a"])).await;
    assert!(r.get("err").is_some(), "{r}");
    let r = a.call("fs-rename", json!(["/data/a", "/a"])).await;
    assert!(r.get("err").is_some(), "{r}");
    assert_eq!(
        a.call("fs-read", json!(["/data/a"])).await,
        json!({"ok": "a"})
    );
}

#[tokio::test]
async fn object_api_without_a_mount() {
    let env = Host::new();
    let mut a = env.start("volprobe", env.config(&[])).await;
    assert_eq!(
        a.call(
            "obj-write",
            json!(["objs", "dir/a.txt", "hello world", false])
        )
        .await,
        ok()
    );
    let r = a
        .call("obj-write", json!(["objs", "dir/a.txt", "again", false]))
        .await;
    assert!(
        r["err"]
            .as_str()
            .unwrap_or_default()
            .contains("already exists"),
        "{r}"
    );
    assert_eq!(
        a.call("obj-read", json!(["objs", "dir/a.txt", 6, 100]))
            .await,
        json!({"ok": "world"})
    );
    a.call("obj-copy", json!(["objs", ["dir/a.txt"], "b.txt"]))
        .await;
    assert_eq!(
        a.call("obj-list", json!(["objs", "", true])).await,
        json!({"ok": ["b.txt:File:11", "dir:Directory:0", "dir/a.txt:File:11"]})
    );
    let r = a.call("obj-remove", json!(["objs", "dir", false])).await;
    assert!(
        r["err"].as_str().unwrap_or_default().contains("non-empty"),
        "{r}"
    );
    assert_eq!(
        a.call("obj-remove", json!(["objs", "dir", true])).await,
        ok()
    );
    let r = a.call("obj-read", json!(["objs", "dir/a.txt", 0, 1])).await;
    assert!(
        r["err"].as_str().unwrap_or_default().contains("not found"),
        "{r}"
    );
    let r = a
        .call("obj-read", json!(["objs", "b.txt", 0, 1u64 << 40]))
        .await;
    assert!(
        r["err"].as_str().unwrap_or_default().contains("too large"),
        "{r}"
    );
    let r = a
        .call("obj-write", json!(["objs", "../x", "x", true]))
        .await;
    assert!(
        r["err"].as_str().unwrap_or_default().contains("invalid"),
        "{r}"
    );
}

#[tokio::test]
async fn grants_limit_from_name() {
    let env = Host::new();
    env.volumes().create("mine").unwrap();
    env.volumes().create("theirs").unwrap();
    let mut config = env.config(&[]);
    config.grants.volumes =
        vessel_host::container::Grant::Only(["mine".to_owned()].into_iter().collect());
    let mut a = env.start("volprobe", config).await;
    assert_eq!(
        a.call("obj-write", json!(["mine", "x", "x", true])).await,
        ok()
    );
    let r = a.call("obj-write", json!(["theirs", "x", "x", true])).await;
    assert!(
        r["err"]
            .as_str()
            .unwrap_or_default()
            .contains("access denied"),
        "{r}"
    );
}

#[test]
fn cli_call_with_a_mounted_volume_commits_at_exit() {
    let v = vessel_tests::Vessel::new();
    let probe = guest("volprobe").display().to_string();
    v.run(&["volume", "create", "shared"]).ok();
    // The guest writes without committing; the final commit at container
    // exit publishes it.
    let out = v.run(&[
        "call",
        &probe,
        "fs-write",
        "--volume",
        "shared:/data",
        "--args",
        r#"["/data/hello.txt", "from a guest"]"#,
    ]);
    assert_eq!(out.ok(), "{\"ok\":null}\n");
    assert_eq!(
        v.run(&["volume", "get", "shared", "hello.txt", "-"]).ok(),
        "from a guest"
    );
    // A later container sees it at start.
    let out = v.run(&[
        "call",
        &probe,
        "fs-read",
        "--volume",
        "shared:/data",
        "--path",
        "/data/hello.txt",
    ]);
    assert_eq!(out.ok(), "{\"ok\":\"from a guest\"}\n");
    // A read-only mount refuses writes; a missing volume is a clear error.
    let out = v.run(&[
        "call",
        &probe,
        "fs-write",
        "--volume",
        "shared:/data:ro",
        "--args",
        r#"["/data/x", "x"]"#,
    ]);
    assert!(out.ok().contains("err"), "{out:?}");
    v.run(&[
        "call",
        &probe,
        "fs-read",
        "--volume",
        "nope:/data",
        "--path",
        "/data/x",
    ])
    .fails(1, &["volume `nope` does not exist"]);
    v.run(&[
        "call",
        &probe,
        "fs-read",
        "--volume",
        "shared:data",
        "--path",
        "/x",
    ])
    .fails(2, &["GUEST_PATH must be absolute"]);
    v.run(&[
        "call",
        &probe,
        "fs-read",
        "--volume",
        "shared:/data",
        "--volume",
        "shared:/data/sub",
        "--path",
        "/x",
    ])
    .fails(2, &["overlaps the mount at /data"]);
}

/// Commits `files` (path → contents) and `links` (path → target) to volume
/// `name` directly in the store.
fn seed(env: &Host, name: &str, files: &[(&str, &str)], links: &[(&str, &str)]) {
    nodes::seed(env.volumes().as_ref(), name, files, links);
}

/// Every path in the working tree of the one container made under `work`
/// (mount 0), sorted.
fn working_tree(work: &std::path::Path) -> Vec<String> {
    let containers: Vec<_> = std::fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let root = containers[0].join("mounts").join("0");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(&root).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_lazy_mount_shows_the_whole_snapshot_to_every_operation() {
    let env = Host::new();
    let many: Vec<(String, String)> = (0..30)
        .map(|i| (format!("many/f{i:02}"), format!("{i}")))
        .collect();
    let mut files: Vec<(&str, &str)> = vec![
        ("a/b/c/deep.txt", "deep"),
        ("a/b/sib.txt", "sib"),
        ("a/b/full/x", "x"),
        ("dir/one", "1"),
        ("dir/two", "22"),
        ("top.txt", "top"),
        ("gone.txt", "gone"),
    ];
    files.extend(many.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    seed(&env, "vol", &files, &[("link", "a/b")]);
    let work = env.home.path().join("lazy");
    let mut config = env.config(&[("vol", "/data")]);
    config.work_dir = Some(work.clone());
    let mut a = env.start("volprobe", config).await;
    assert!(working_tree(&work).is_empty(), "mounting placed nothing");

    // Listing directories nothing has opened yet.
    assert_eq!(
        a.call("fs-list", json!(["/data"])).await,
        json!({"ok": ["a", "dir", "gone.txt", "link", "many", "top.txt"]})
    );
    assert_eq!(
        a.call("fs-list", json!(["/data/dir"])).await,
        json!({"ok": ["one", "two"]})
    );
    // Stat of never-touched paths, through a symlink too.
    assert_eq!(
        a.call("fs-stat", json!(["/data/dir/two"])).await,
        json!({"ok": "file 2"})
    );
    assert_eq!(
        a.call("fs-stat", json!(["/data/link"])).await,
        json!({"ok": "symlink a/b"})
    );
    assert_eq!(
        a.call("fs-stat", json!(["/data/link/c"])).await,
        json!({"ok": "dir"})
    );
    // Opening a deep path directly, and through the symlink.
    assert_eq!(
        a.call("fs-read", json!(["/data/a/b/c/deep.txt"])).await,
        json!({"ok": "deep"})
    );
    assert_eq!(
        a.call("fs-read", json!(["/data/link/sib.txt"])).await,
        json!({"ok": "sib"})
    );
    // A create-new over a never-touched file sees it; rmdir of a
    // never-listed, non-empty directory is refused.
    let r = a
        .call("fs-create-new", json!(["/data/a/b/sib.txt", "x"]))
        .await;
    assert!(err_of(&r).contains("AlreadyExists"), "{r}");
    let r = a.call("fs-rmdir", json!(["/data/a/b/full"])).await;
    assert!(err_of(&r).to_lowercase().contains("not empty"), "{r}");
    assert_eq!(
        a.call("fs-read", json!(["/data/a/b/full/x"])).await,
        json!({"ok": "x"})
    );
    // Rename and unlink of never-touched files, rename of a never-touched
    // directory (it moves with all its files).
    assert_eq!(
        a.call("fs-rename", json!(["/data/top.txt", "/data/moved.txt"]))
            .await,
        ok()
    );
    assert_eq!(a.call("fs-remove", json!(["/data/gone.txt"])).await, ok());
    assert_eq!(
        a.call("fs-rename", json!(["/data/many", "/data/many2"]))
            .await,
        ok()
    );
    let listed = a.call("fs-list", json!(["/data/many2"])).await;
    assert_eq!(listed["ok"].as_array().unwrap().len(), 30, "{listed}");
    // Removed and renamed-away paths do not come back.
    for p in ["/data/top.txt", "/data/gone.txt", "/data/many/f00"] {
        assert!(
            a.call("fs-stat", json!([p])).await.get("err").is_some(),
            "{p}"
        );
    }
    assert_eq!(
        a.call("fs-read", json!(["/data/moved.txt"])).await,
        json!({"ok": "top"})
    );
    // The commit carries the changes only: moved.txt, the 30 files and
    // their directory (put); top.txt, gone.txt, many (removed).
    assert_eq!(
        a.call("commit", json!(["/data"])).await,
        json!({"ok": "2 32 3"})
    );
    let mut b = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        b.call("fs-list", json!(["/data"])).await,
        json!({"ok": ["a", "dir", "link", "many2", "moved.txt"]})
    );
    assert_eq!(
        b.call("fs-read", json!(["/data/many2/f29"])).await,
        json!({"ok": "29"})
    );
    assert_eq!(
        b.call("fs-read", json!(["/data/link/c/deep.txt"])).await,
        json!({"ok": "deep"})
    );
}

#[tokio::test]
async fn touching_a_few_files_places_and_commits_only_those() {
    let env = Host::new();
    let many: Vec<(String, String)> = (0..500)
        .map(|i| (format!("d{}/f{i:03}", i % 10), format!("{i}")))
        .collect();
    let files: Vec<(&str, &str)> = many.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
    seed(&env, "vol", &files, &[]);
    let work = env.home.path().join("few");
    let mut config = env.config(&[("vol", "/data")]);
    config.work_dir = Some(work.clone());
    let mut a = env.start("volprobe", config).await;
    assert_eq!(
        a.call("fs-read", json!(["/data/d3/f003"])).await,
        json!({"ok": "3"})
    );
    assert_eq!(
        a.call("fs-append", json!(["/data/d4/f004", "+"])).await,
        ok()
    );
    assert_eq!(
        a.call("fs-write", json!(["/data/d5/new", "new"])).await,
        ok()
    );
    assert_eq!(
        working_tree(&work),
        ["d3", "d3/f003", "d4", "d4/f004", "d5", "d5/new"],
        "only what was reached"
    );
    assert_eq!(
        a.call("commit", json!(["/data"])).await,
        json!({"ok": "2 2 0"})
    );
    let store = env.volumes();
    assert_eq!(store.info("vol").unwrap().inodes, 500 + 10 + 1);
    let f004 = store.node("vol", "d4/f004").unwrap().unwrap();
    assert_eq!(store.read_blob(&f004.blob.unwrap(), 0, 10).unwrap(), b"4+");
    assert_eq!(working_tree(&work).len(), 6, "the commit placed nothing");
}

#[tokio::test]
async fn a_directory_renamed_over_a_snapshot_directory_replaces_it() {
    let env = Host::new();
    seed(&env, "vol", &[("a/x", "x"), ("b/y", "y")], &[]);
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        a.call("fs-rename", json!(["/data/a", "/data/c"])).await,
        ok()
    );
    assert_eq!(
        a.call("fs-rename", json!(["/data/b", "/data/a"])).await,
        ok()
    );
    a.call("commit", json!(["/data"])).await;
    let mut b = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        b.call("fs-list", json!(["/data"])).await,
        json!({"ok": ["a", "c"]})
    );
    assert_eq!(
        b.call("fs-list", json!(["/data/a"])).await,
        json!({"ok": ["y"]})
    );
    assert_eq!(
        b.call("fs-list", json!(["/data/c"])).await,
        json!({"ok": ["x"]})
    );
}

#[tokio::test]
async fn reload_of_a_lazy_mount_shows_the_new_head() {
    let env = Host::new();
    seed(
        &env,
        "vol",
        &[("keep", "k"), ("change", "old"), ("drop", "d")],
        &[],
    );
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    let mut b = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    // a has placed `change`, not the others.
    assert_eq!(
        a.call("fs-read", json!(["/data/change"])).await,
        json!({"ok": "old"})
    );
    b.call("fs-write", json!(["/data/change", "new"])).await;
    b.call("fs-remove", json!(["/data/drop"])).await;
    b.call("fs-write", json!(["/data/added", "+"])).await;
    b.call("commit", json!(["/data"])).await;
    assert_eq!(a.call("reload", json!(["/data"])).await, json!({"ok": 2}));
    assert_eq!(
        a.call("fs-list", json!(["/data"])).await,
        json!({"ok": ["added", "change", "keep"]})
    );
    assert_eq!(
        a.call("fs-read", json!(["/data/change"])).await,
        json!({"ok": "new"})
    );
}

#[tokio::test]
async fn a_mounted_volume_is_not_deleted_or_renamed_unless_forced() {
    let env = Host::with_options(EmbeddedOptions {
        blob_gc_grace: std::time::Duration::ZERO,
        ..EmbeddedOptions::default()
    });
    seed(
        &env,
        "vol",
        &[("never-read", "still here"), ("f", "f")],
        &[],
    );
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    let msg = env
        .service
        .volume_delete("vol", false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("volume `vol` is mounted by 1 running container") && msg.contains("--force"),
        "{msg}"
    );
    let msg = env
        .service
        .volume_rename("vol", "other")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is mounted"), "{msg}");
    assert!(env.volumes().info("vol").is_ok(), "nothing happened");
    // The container ends: the volume can go.
    drop(a);
    env.service.volume_rename("vol", "renamed").unwrap();
    env.service.volume_delete("renamed", false).unwrap();

    // Forced: the container keeps reading its snapshot, even files it never
    // touched whose blobs are garbage now, but cannot commit or reload.
    seed(
        &env,
        "vol",
        &[("never-read", "still here"), ("f", "f")],
        &[],
    );
    a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    a.call("fs-write", json!(["/data/w", "w"])).await;
    env.service.volume_delete("vol", true).unwrap();
    let gc = env.service.volume_gc(None).unwrap();
    assert_eq!(gc.removed_blobs, 0, "{gc:?}");
    assert_eq!(gc.kept_pinned, 2, "{gc:?}");
    assert_eq!(
        a.call("fs-read", json!(["/data/never-read"])).await,
        json!({"ok": "still here"})
    );
    let r = a.call("commit", json!(["/data"])).await;
    assert!(err_of(&r).contains("deleted while mounted"), "{r}");
    let r = a.call("reload", json!(["/data"])).await;
    assert!(err_of(&r).contains("deleted while mounted"), "{r}");
    // A volume created under the name later never gets its writes, and
    // the old mount does not hold it: it can be renamed.
    env.volumes().create("vol").unwrap();
    assert!(a.c.shutdown().is_err(), "the final commit fails too");
    assert!(env.volumes().node("vol", "w").unwrap().is_none());
    env.service.volume_rename("vol", "vol-new").unwrap();
    drop(a);
    assert_eq!(env.service.volume_gc(None).unwrap().removed_blobs, 2);
}

#[tokio::test]
async fn large_files_read_through_a_mount_byte_for_byte() {
    let env = Host::new();
    // Over several of the host's read pieces, not a multiple of any.
    let data: Vec<u8> = (0..(3 << 20) + 7u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let fnv = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    env.volumes().create("vol").unwrap();
    let mut batch = env.service.volume_batch("vol", false).unwrap();
    batch.put_bytes(&data, "/big").unwrap();
    batch.commit().unwrap();
    let mut a = env.start("volprobe", env.config(&[("vol", "/data")])).await;
    for chunk in [1u32 << 20, 4 << 20, 65_536, 1000] {
        assert_eq!(
            a.call("fs-checksum", json!(["/data/big", chunk])).await,
            json!({ "ok": fnv }),
            "{chunk}-byte reads"
        );
    }
    assert_eq!(
        a.call("fs-read-len", json!(["/data/big", 1u32 << 20]))
            .await,
        json!({ "ok": data.len() })
    );
}
