//! Escape attempts from inside a guest, through the real mounts and
//! capability handles (issue #7 item 5), one test per kind. Each is refused
//! with an error, and nothing outside what the container was given is read
//! or changed: a host file next to the data dir holds a secret that no
//! answer may contain.
//!
//! Covered elsewhere: `volume_mount::no_escape_from_a_mount` (`..` out of
//! a mount, renames from a mount to another or to scratch),
//! `volume_mount::grants_limit_from_name` (a volume not granted, by name).

use serde_json::{Value, json};

use vessel_tests::harness::{Guest, Host, err_of, nodes, ok};

const SECRET: &str = "HOST-SECRET";

/// A host file outside every container, and the environment.
fn env_with_secret() -> (Host, std::path::PathBuf) {
    let env = Host::new();
    let outside = env.home.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    (env, secret)
}

/// `r` is an error, and mentions none of the secret.
fn refused(r: &Value, what: &str) -> String {
    assert!(!r.to_string().contains(SECRET), "{what}: leaked {r}");
    let e = err_of(r);
    assert!(!e.is_empty(), "{what}");
    e
}

/// Commits symlinks `links` (path, target) to volume `vol` directly in the
/// store: absolute targets a guest may not create, but a volume can hold
/// (uploaded from a local tree, say).
fn seed_links(env: &Host, links: &[(&str, &str)]) {
    nodes::seed(env.volumes().as_ref(), "vol", &[], links);
}

/// A container of the hostile guest with volume `vol` at /data.
async fn with_data(env: &Host) -> Guest {
    if env.volumes().info("vol").is_err() {
        env.volumes().create("vol").unwrap();
    }
    env.start("hostile", env.config(&[("vol", "/data")])).await
}

#[tokio::test]
async fn symlinks_out_of_a_mount_are_not_followed() {
    let (env, secret) = env_with_secret();
    let abs = secret.display().to_string();
    // Absolute targets a guest cannot make (below); the volume has them
    // from the store.
    seed_links(&env, &[("abs", &abs), ("etc", "/etc/passwd")]);
    let mut a = with_data(&env).await;
    // From /data: containers/vessel-container-X/mounts/0 is four levels
    // below the data dir that holds `outside`; followed naively, from the
    // mount's host directory, `rel` leads to the secret.
    let rel = "../../../../outside/secret.txt";
    let containers = env.home.path().join("containers");
    let only = std::fs::read_dir(&containers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mount_dir = only.path().join("mounts").join("0");
    assert_eq!(
        std::fs::read_to_string(mount_dir.join(rel)).unwrap(),
        SECRET
    );
    let r = a.call("raw-symlink", json!(["/data", abs, "abs2"])).await;
    assert_eq!(refused(&r, "absolute symlink"), "not-permitted");
    // A relative one is data: it can be made, not followed out.
    for (link, target) in [("rel", rel), ("up", "../..")] {
        assert_eq!(
            a.call("raw-symlink", json!(["/data", target, link])).await,
            ok(),
            "{link}"
        );
    }
    let links = ["abs", "etc", "rel", "up"];
    for link in links {
        let r = a.call("fs-read", json!([format!("/data/{link}")])).await;
        refused(&r, link);
        let r = a
            .call("raw-read", json!(["/data", format!("{link}/x"), true]))
            .await;
        refused(&r, link);
        let r = a.call("obj-read", json!(["/data", link])).await;
        refused(&r, link);
    }
    // Committed, they are just as inert in the next container.
    let r = a.call("commit", json!(["/data"])).await;
    assert!(r.get("ok").is_some(), "{r}");
    let mut b = with_data(&env).await;
    for link in links {
        let r = b.call("fs-read", json!([format!("/data/{link}")])).await;
        refused(&r, link);
        let r = b.call("obj-read", json!(["/data", link])).await;
        refused(&r, link);
    }
    // A symlink inside the mount still works.
    assert_eq!(b.call("fs-write", json!(["/data/t", "in"])).await, ok());
    assert_eq!(b.call("fs-symlink", json!(["t", "/data/in"])).await, ok());
    assert_eq!(
        b.call("fs-read", json!(["/data/in"])).await,
        json!({"ok": "in"})
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), SECRET);
}

#[tokio::test]
async fn hard_links_to_files_outside_are_refused() {
    let (env, secret) = env_with_secret();
    let abs = secret.display().to_string();
    seed_links(&env, &[("s", &abs)]);
    let mut a = with_data(&env).await;
    for old in [abs.as_str(), "../../../../outside/secret.txt"] {
        let r = a.call("raw-link", json!(["/data", old, "l", false])).await;
        refused(&r, old);
    }
    // Through symlinks that point out, absolute (from the store) or not.
    assert_eq!(
        a.call(
            "raw-symlink",
            json!(["/data", "../../../../outside/secret.txt", "r"])
        )
        .await,
        ok()
    );
    for link in ["s", "r"] {
        let r = a.call("raw-link", json!(["/data", link, "l", true])).await;
        refused(&r, link);
    }
    // Between a mount and scratch, either way: a different device.
    assert_eq!(a.call("fs-write", json!(["/in-scratch", "s"])).await, ok());
    assert_eq!(
        a.call("fs-write", json!(["/data/in-data", "d"])).await,
        ok()
    );
    let r = a
        .call("fs-hard-link", json!(["/in-scratch", "/data/l"]))
        .await;
    assert_eq!(refused(&r, "scratch to mount"), "cross-device");
    let r = a.call("fs-hard-link", json!(["/data/in-data", "/l"])).await;
    assert_eq!(refused(&r, "mount to scratch"), "cross-device");
    // Nothing named `l` appeared; the secret has one link.
    let r = a.call("fs-list-dir", json!(["/data"])).await;
    assert!(!r.to_string().contains("\"l\""), "{r}");
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(std::fs::metadata(&secret).unwrap().nlink(), 1);
}

#[tokio::test]
async fn dotdot_and_absolute_paths_stay_inside() {
    let (env, _secret) = env_with_secret();
    let mut a = with_data(&env).await;
    for (preopen, path) in [
        ("/data", ".."),
        ("/data", "../scratch"),
        ("/data", "../../../../outside/secret.txt"),
        ("/data", "a/../../outside"),
        ("/data", "/etc/passwd"),
        ("/", ".."),
        ("/", "../../../outside/secret.txt"),
        ("/", "/etc/passwd"),
    ] {
        let r = a.call("raw-read", json!([preopen, path, true])).await;
        refused(&r, path);
        let r = a.call("raw-write", json!([preopen, path, "x"])).await;
        refused(&r, path);
        let r = a.call("raw-mkdir", json!([preopen, path])).await;
        refused(&r, path);
    }
    // The object API refuses `..` and names why.
    let r = a.call("obj-read", json!(["/data", "../outside"])).await;
    assert!(refused(&r, "object ..").contains("InvalidArgument"), "{r}");
    // What the guest sees at `/` is its own scratch directory.
    assert_eq!(a.call("preopens", json!([])).await, json!(["/", "/data"]));
}

#[tokio::test]
async fn trailing_slash_symlinks_are_not_followed_out() {
    // The class of GHSA-vqjp-4c8c-hfgg: a symlink to a directory outside,
    // named with a trailing slash (or `/.`), must not be followed out.
    let (env, secret) = env_with_secret();
    let outside = secret.parent().unwrap().display().to_string();
    seed_links(&env, &[("x", &outside), ("z", "/etc")]);
    let mut a = with_data(&env).await;
    assert_eq!(
        a.call("raw-symlink", json!(["/data", "../../../../outside", "y"]))
            .await,
        ok()
    );
    for link in ["x", "y", "z"] {
        for path in [
            format!("{link}/"),
            format!("{link}/."),
            format!("{link}//"),
            format!("{link}/secret.txt"),
        ] {
            for follow in [true, false] {
                let r = a.call("raw-read", json!(["/data", &path, follow])).await;
                refused(&r, &path);
            }
            let r = a
                .call("raw-mkdir", json!(["/data", format!("{path}new")]))
                .await;
            refused(&r, &path);
            let r = a
                .call("raw-write", json!(["/data", format!("{path}new"), "x"]))
                .await;
            refused(&r, &path);
        }
        let r = a
            .call("obj-read", json!(["/data", format!("{link}/secret.txt")]))
            .await;
        refused(&r, link);
    }
    // Nothing was created outside.
    let names: Vec<String> = std::fs::read_dir(secret.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["secret.txt"]);
}

#[tokio::test]
async fn renames_across_mounts_are_refused() {
    let env = Host::new();
    env.volumes().create("one").unwrap();
    env.volumes().create("two").unwrap();
    let mut a = env
        .start("hostile", env.config(&[("one", "/a"), ("two", "/b")]))
        .await;
    assert_eq!(a.call("fs-write", json!(["/a/f", "f"])).await, ok());
    assert_eq!(a.call("fs-mkdir", json!(["/a/d"])).await, ok());
    assert_eq!(a.call("fs-write", json!(["/s", "s"])).await, ok());
    for (src, dst) in [
        ("/a/f", "/b/f"),
        ("/a/d", "/b/d"),
        ("/a/f", "/g"),
        ("/s", "/a/s"),
        ("/s", "/b/s"),
    ] {
        let r = a.call("fs-rename", json!([src, dst])).await;
        assert_eq!(refused(&r, src), "cross-device", "{src} -> {dst}");
    }
    // Everything stayed where it was, and commits say so.
    assert_eq!(a.call("fs-read", json!(["/a/f"])).await, json!({"ok": "f"}));
    assert_eq!(a.call("fs-read", json!(["/s"])).await, json!({"ok": "s"}));
    a.call("commit", json!(["/a"])).await;
    a.call("commit", json!(["/b"])).await;
    assert!(env.volumes().node("one", "f").unwrap().is_some());
    assert_eq!(env.volumes().info("two").unwrap().inodes, 0);
}

#[tokio::test]
async fn a_read_only_mount_refuses_trunc_link_and_rename_and_its_blob_is_intact() {
    let env = Host::new();
    env.volumes().create("ro").unwrap();
    let mut w = env.start("hostile", env.config(&[("ro", "/w")])).await;
    assert_eq!(w.call("fs-write", json!(["/w/f", "precious"])).await, ok());
    w.call("commit", json!(["/w"])).await;
    let node = env.volumes().node("ro", "f").unwrap().unwrap();
    let blob = node.blob.unwrap();

    let mut config = env.config(&[("ro", "/ro")]);
    config.volume_mounts[0].read_only = true;
    let mut a = env.start("hostile", config).await;
    for (what, r) in [
        (
            "open O_TRUNC",
            a.call("fs-open-trunc", json!(["/ro/f"])).await,
        ),
        ("write", a.call("fs-write", json!(["/ro/f", "x"])).await),
        ("create", a.call("fs-write", json!(["/ro/new", "x"])).await),
        (
            "link",
            a.call("fs-hard-link", json!(["/ro/f", "/ro/g"])).await,
        ),
        (
            "rename",
            a.call("fs-rename", json!(["/ro/f", "/ro/g"])).await,
        ),
        ("remove", a.call("fs-remove", json!(["/ro/f"])).await),
        ("mkdir", a.call("fs-mkdir", json!(["/ro/d"])).await),
        ("symlink", a.call("fs-symlink", json!(["f", "/ro/l"])).await),
        ("commit", a.call("commit", json!(["/ro"])).await),
    ] {
        let e = refused(&r, what);
        assert!(
            ["not-permitted", "read-only", "access"].contains(&e.as_str())
                || e.contains("AccessDenied"),
            "{what}: {e}"
        );
    }
    // Out of the read-only mount into scratch: a different device.
    let r = a.call("fs-hard-link", json!(["/ro/f", "/g"])).await;
    assert_eq!(refused(&r, "link out"), "cross-device");
    let r = a.call("fs-rename", json!(["/ro/f", "/g"])).await;
    assert_eq!(refused(&r, "rename out"), "cross-device");
    assert_eq!(
        a.call("fs-read", json!(["/ro/f"])).await,
        json!({"ok": "precious"})
    );
    assert_eq!(
        a.call("fs-list-dir", json!(["/ro"])).await,
        json!({"ok": ["f"]})
    );
    assert_eq!(
        env.volumes().read_blob(&blob, 0, 100).unwrap(),
        b"precious",
        "the stored blob is unchanged"
    );
    assert_eq!(env.volumes().node("ro", "f").unwrap().unwrap(), node);
}

#[tokio::test]
async fn another_containers_scratch_is_out_of_reach() {
    let env = Host::new();
    let mut a = env.start("hostile", env.config(&[])).await;
    assert_eq!(a.call("fs-write", json!(["/private", "mine"])).await, ok());
    let mut b = env.start("hostile", env.config(&[])).await;
    // b's `/` is its own scratch, holding only the empty /tmp the host
    // makes in every one.
    let r = b.call("fs-list-dir", json!(["/"])).await;
    assert_eq!(r, json!({"ok": ["tmp"]}));
    let r = b.call("fs-list-dir", json!(["/tmp"])).await;
    assert_eq!(r, json!({"ok": []}));
    let r = b.call("fs-read", json!(["/private"])).await;
    refused(&r, "same name");
    // By the host path of a's scratch, absolute or relative, by symlink or
    // by `..`.
    let work = env.home.path().join("containers");
    let dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 2);
    let (a_dir, b_dir) = if dirs[0].join("scratch/private").exists() {
        (&dirs[0], &dirs[1])
    } else {
        (&dirs[1], &dirs[0])
    };
    let abs = a_dir.join("scratch/private").display().to_string();
    let name = a_dir.file_name().unwrap().to_string_lossy().into_owned();
    let rel = format!("../../{name}/scratch/private");
    // Followed naively from b's scratch, `rel` is a's file.
    assert_eq!(
        std::fs::read_to_string(b_dir.join("scratch").join(&rel)).unwrap(),
        "mine"
    );
    for target in [abs.as_str(), rel.as_str()] {
        let r = b.call("raw-read", json!(["/", target, true])).await;
        let e = err_of(&r);
        assert!(!r.to_string().contains("mine"), "{target}: {e}");
        let made = b.call("raw-symlink", json!(["/", target, "peek"])).await;
        if target == abs {
            assert_eq!(err_of(&made), "not-permitted");
            continue;
        }
        assert_eq!(made, ok());
        let r = b.call("fs-read", json!(["/peek"])).await;
        assert!(r.get("err").is_some(), "{target}: {r}");
        assert_eq!(b.call("fs-remove", json!(["/peek"])).await, ok());
    }
    assert_eq!(
        a.call("fs-read", json!(["/private"])).await,
        json!({"ok": "mine"})
    );
}

#[tokio::test]
async fn dicts_and_volumes_not_granted_are_refused_by_name() {
    let env = Host::new();
    env.volumes().create("mine").unwrap();
    env.volumes().create("theirs").unwrap();
    let app = env.load(
        r#"
[dicts.mine]
create_if_missing = true

[functions.dict]
component = "@HOSTILE@"
export = "dict-open"
dicts = ["mine"]

[functions.volume]
component = "@HOSTILE@"
export = "volume-open"
volumes = ["mine"]
"#,
        &["hostile"],
    );
    let dict = app.function("dict").unwrap();
    assert_eq!(
        dict.call(json!(["mine"])).await.unwrap(),
        json!({"ok": "ok mine"})
    );
    let r = dict.call(json!(["theirs"])).await.unwrap();
    assert!(refused(&r, "dict").contains("AccessDenied"), "{r}");
    let volume = app.function("volume").unwrap();
    assert_eq!(
        volume.call(json!(["mine"])).await.unwrap(),
        json!({"ok": []})
    );
    let r = volume.call(json!(["theirs"])).await.unwrap();
    assert!(refused(&r, "volume").contains("AccessDenied"), "{r}");
    // Nor was `theirs` created as a dict on the way.
    assert!(
        env.dicts()
            .list()
            .unwrap()
            .iter()
            .all(|d| d.name != "theirs")
    );
    app.shutdown().await.unwrap();
}
