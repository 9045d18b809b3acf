//! Volume forks through the real binary, on both backends: `vessel volume
//! fork SRC[@V] DST`, reads and writes of both sides (from the CLI and a
//! component), the refusals, delete while forks exist; the same over HTTP
//! with scoped tokens; and a fork killed with SIGKILL.

use std::time::Duration;

use vessel_tests::servers::shared;
use vessel_tests::{Vessel, http, json_of};

use crate::volume_history::{cat, json};

/// Puts `text` at `path`, replacing what is there.
fn put(v: &Vessel, vol: &str, path: &str, text: &str) {
    crate::volume_history::put(v, vol, path, text, true);
}

fn tree(v: &Vessel, vol: &str) -> String {
    v.run(&["volume", "ls", vol, "-r"]).ok().to_owned()
}

/// The whole fork workflow on one backend.
fn fork_workflow(v: &Vessel) {
    v.run(&["volume", "create", "src", "--max-bytes", "1MiB"])
        .ok();
    put(v, "src", "/a.txt", "one"); // 1
    put(v, "src", "/d/b.txt", "bee"); // 2
    put(v, "src", "/a.txt", "three"); // 3

    let info = json(v.run(&["volume", "fork", "src@2", "exp", "--json"]).ok());
    assert_eq!(
        (info["name"].as_str(), info["version"].as_u64()),
        (Some("exp"), Some(1)),
        "{info}"
    );
    assert_eq!(info["inodes"], 3, "a.txt, d, d/b.txt: {info}");
    assert_eq!(info["bytes"], 6);
    assert_eq!(info["max_bytes"], 1 << 20, "the quota comes along");
    assert_eq!(cat(v, "exp", "/a.txt"), "one");
    assert_eq!(tree(v, "exp"), tree(v, "src@2"));
    let said = v
        .run(&["volume", "fork", "src", "exp-head"])
        .ok()
        .to_owned();
    assert!(said.contains("nothing copied"), "{said}");
    assert_eq!(cat(v, "exp-head", "/a.txt"), "three");

    // Each side changes on its own.
    put(v, "exp", "/new.txt", "fresh");
    put(v, "src", "/a.txt", "four");
    assert_eq!(cat(v, "exp", "/a.txt"), "one");
    assert_eq!(cat(v, "src", "/a.txt"), "four");
    v.run(&["volume", "get", "src", "/new.txt", "-"])
        .fails(1, &["new.txt"]);
    assert_eq!(cat(v, "exp", "/new.txt"), "fresh");
    let h = json(v.run(&["volume", "history", "exp", "--json"]).ok());
    assert_eq!(
        (h["head"].as_u64(), h["oldest"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(v.run(&["volume", "diff", "exp", "1"]).ok(), "A new.txt\n");
    assert_eq!(cat(v, "exp@1", "/a.txt"), "one");
    v.run(&["volume", "rm", "exp", "/d", "-r"]).ok();
    assert_eq!(tree(v, "exp").lines().count(), 2, "{}", tree(v, "exp"));
    assert_eq!(cat(v, "src", "/d/b.txt"), "bee");

    // A component mounting the fork writes to the fork alone.
    let probe = vessel_tests::guest("volprobe").display().to_string();
    let w = v.run(&[
        "call",
        &probe,
        "fs-write",
        "--volume",
        "exp:/data",
        "--args",
        r#"["/data/from-guest.txt", "hello"]"#,
    ]);
    assert!(w.ok().contains("ok"), "{w:?}");
    assert_eq!(cat(v, "exp", "/from-guest.txt"), "hello");
    v.run(&["volume", "get", "src", "/from-guest.txt", "-"])
        .fails(1, &["from-guest.txt"]);
    let r = v.run(&[
        "call",
        &probe,
        "fs-read",
        "--volume",
        "exp-head:/data",
        "--args",
        r#"["/data/a.txt"]"#,
    ]);
    assert_eq!(r.ok(), "{\"ok\":\"three\"}\n");

    // Refusals, each naming its cause, changing nothing.
    v.run(&["volume", "fork", "src", "exp"])
        .fails(1, &["`exp` already exists"]);
    v.run(&["volume", "fork", "nope", "x"])
        .fails(1, &["`nope` does not exist"]);
    v.run(&["volume", "fork", "src@99", "x"])
        .fails(1, &["no version 99"]);
    v.run(&["volume", "fork", "src", "x@3"]).fails(2, &["x@3"]);
    v.run(&["volume", "fork", "src", "a/b"]).fails(2, &["a/b"]);
    v.run(&["volume", "delete", "src", "--yes"])
        .fails(1, &["has forks", "exp", "exp-head"]);
    assert_eq!(cat(v, "src", "/a.txt"), "four");

    // A fork of a fork, and a restore inside a fork.
    v.run(&["volume", "fork", "exp", "exp2"]).ok();
    v.run(&["volume", "restore", "exp@1"]).ok();
    assert_eq!(tree(v, "exp"), tree(v, "src@2"));
    assert_eq!(cat(v, "exp2", "/new.txt"), "fresh");
    v.run(&["volume", "delete", "exp", "--yes"])
        .fails(1, &["has forks", "exp2"]);

    // Forks go, then the source can.
    for name in ["exp2", "exp", "exp-head", "src"] {
        v.run(&["volume", "delete", name, "--yes"]).ok();
    }
    let gc = json(v.run(&["volume", "gc", "--min-age", "0", "--json"]).ok());
    assert!(gc["removed_blobs"].as_u64().unwrap() >= 6, "{gc}");
}

#[test]
fn fork_workflow_on_the_embedded_store() {
    fork_workflow(&Vessel::new());
}

#[test]
fn fork_workflow_on_postgres_and_s3() {
    let (m, b) = shared().fresh();
    fork_workflow(&Vessel::on_backend(&m, &b));
}

#[test]
fn forks_over_http_with_scoped_tokens() {
    let v = Vessel::new();
    let server = crate::serve::start(&v, &[]);
    let a = server.addr.as_str();
    let owner = v.token(&["volume:src:rw", "volume:dst:rw", "volume:dst2:rw"], None);
    let read_src = v.token(&["volume:src:r", "volume:mine:rw"], None);
    let write_dst = v.token(&["volume:dst3:rw"], None);
    let w = Some(owner.as_str());
    assert_eq!(http(a, "POST", "/v1/volumes/src", w, &[], b"").0, 201);
    let file = "/v1/volumes/src/files/f.txt";
    assert_eq!(http(a, "PUT", file, w, &[], b"first").0, 201);
    assert_eq!(
        http(a, "PUT", &format!("{file}?force=true"), w, &[], b"second").0,
        201
    );

    let (s, body) = http(a, "POST", "/v1/volumes/src/fork?to=dst", w, &[], b"");
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&body));
    let info = json_of(&body);
    assert_eq!(
        (info["name"].as_str(), info["version"].as_u64()),
        (Some("dst"), Some(1))
    );
    let (_, got) = http(a, "GET", "/v1/volumes/dst/files/f.txt", w, &[], b"");
    assert_eq!(got, b"second");
    // A version, in the query or the path.
    let (s, _) = http(
        a,
        "POST",
        "/v1/volumes/src/fork?to=dst2&version=1",
        w,
        &[],
        b"",
    );
    assert_eq!(s, 201);
    let (_, got) = http(a, "GET", "/v1/volumes/dst2/files/f.txt", w, &[], b"");
    assert_eq!(got, b"first");
    let (s, body) = http(
        a,
        "POST",
        "/v1/volumes/src@1/fork?to=dst2&version=2",
        w,
        &[],
        b"",
    );
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    let (s, body) = http(a, "POST", "/v1/volumes/src/fork?to=dst2", w, &[], b"");
    assert_eq!(s, 409, "{}", String::from_utf8_lossy(&body));
    let (s, body) = http(
        a,
        "POST",
        "/v1/volumes/src/fork?to=dst9&version=7",
        w,
        &[],
        b"",
    );
    assert_eq!(
        s,
        403,
        "no scope on dst9: {}",
        String::from_utf8_lossy(&body)
    );

    // Reading the source and writing the new volume are both needed.
    let (s, body) = http(
        a,
        "POST",
        "/v1/volumes/src@1/fork?to=mine",
        Some(&read_src),
        &[],
        b"",
    );
    assert_eq!(s, 201, "{}", String::from_utf8_lossy(&body));
    let (s, _) = http(
        a,
        "POST",
        "/v1/volumes/src/fork?to=dst3",
        Some(&write_dst),
        &[],
        b"",
    );
    assert_eq!(s, 403);
    let (s, _) = http(
        a,
        "POST",
        "/v1/volumes/src/fork?to=other",
        Some(&read_src),
        &[],
        b"",
    );
    assert_eq!(s, 403);
    let (s, body) = http(a, "DELETE", "/v1/volumes/src", w, &[], b"");
    assert_eq!(s, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("forks"));
}

/// `vessel volume fork` killed with SIGKILL at random points: after each
/// kill the fork either exists whole (its tree is the source's version)
/// or not at all, and the name can be forked again.
#[test]
fn a_fork_killed_with_sigkill_exists_whole_or_not_at_all() {
    let v = Vessel::new();
    v.run(&["volume", "create", "s"]).ok();
    let d = tempfile::tempdir().unwrap();
    for i in 0..200 {
        let sub = d.path().join(format!("d{}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    let p = d.path().display().to_string();
    v.run(&["volume", "put", "s", &p, "/"]).ok(); // 1
    put(&v, "s", "/d3/f13", "changed"); // 2
    let want = tree(&v, "s@1");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut x = seed;
    let mut landed = 0;
    for round in 0..24 {
        let name = format!("f{round}");
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let delay = Duration::from_micros((x >> 33) % 60_000);
        let mut child = v
            .command()
            .args(["volume", "fork", "s@1", &name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let listed = v.run(&["volume", "list", "--json"]).ok().to_owned();
        let exists = json(&listed)
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == name.as_str());
        if status.success() {
            assert!(
                exists,
                "round {round} (seed {seed}): a finished fork is missing"
            );
        }
        if exists {
            landed += 1;
            assert_eq!(tree(&v, &name), want, "round {round} (seed {seed})");
            assert_eq!(cat(&v, &name, "/d3/f13"), "file 13");
            assert_eq!(
                json(v.run(&["volume", "history", &name, "--json"]).ok())["head"],
                1
            );
        } else {
            // Not there at all: the name is free.
            v.run(&["volume", "fork", "s@1", &name]).ok();
            assert_eq!(tree(&v, &name), want, "round {round} (seed {seed})");
        }
    }
    eprintln!("{landed} of 24 forks landed before their kill");
    assert_eq!(cat(&v, "s", "/d3/f13"), "changed");
}
