//! Volume history through the real binary, on both backends: `history`,
//! `diff`, `NAME@VERSION` reads, `restore`, `retention` and `create
//! --retention`, refusals that change nothing; and the same over HTTP
//! (`?version=`, `/history`, `/diff`, `/restore`) with a scoped token.

use std::time::Duration;

use serde_json::Value;
use vessel_tests::servers::shared;
use vessel_tests::{Vessel, http, json_of};

pub(crate) fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

pub(crate) fn put(v: &Vessel, vol: &str, path: &str, text: &str, force: bool) {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    std::fs::write(&local, text).unwrap();
    let local = local.display().to_string();
    let mut args = vec!["volume", "put", vol, &local, path];
    if force {
        args.push("--force");
    }
    v.run(&args).ok();
}

pub(crate) fn cat(v: &Vessel, vol: &str, path: &str) -> String {
    v.run(&["volume", "get", vol, path, "-"]).ok().to_owned()
}

/// The whole history workflow on one backend.
fn history_workflow(v: &Vessel) {
    v.run(&["volume", "create", "h"]).ok();
    put(v, "h", "/a.txt", "one", false); // 1
    put(v, "h", "/b.txt", "two", false); // 2
    put(v, "h", "/a.txt", "uno", true); // 3
    v.run(&["volume", "rm", "h", "/b.txt"]).ok(); // 4

    let h = json(v.run(&["volume", "history", "h", "--json"]).ok());
    assert_eq!(
        (h["head"].as_u64(), h["oldest"].as_u64()),
        (Some(4), Some(0)),
        "{h}"
    );
    let versions: Vec<u64> = h["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [4, 3, 2, 1]);
    assert_eq!(h["versions"][1]["bytes_added"], 3);
    assert_eq!(h["versions"][0]["removed"], 1);
    assert_eq!(h["retention_ms"], 7 * 24 * 3_600_000u64);
    let n2 = json(v.run(&["volume", "history", "h", "-n", "2", "--json"]).ok());
    assert_eq!(n2["versions"].as_array().unwrap().len(), 2);
    let table = v.run(&["volume", "history", "h"]).ok().to_owned();
    assert!(
        table.contains("head version 4") && table.contains("VERSION"),
        "{table}"
    );
    assert!(table.contains("retention 7d"), "{table}");

    // Reads of older versions: ls, get to stdout and to a file.
    assert_eq!(v.run(&["volume", "ls", "h@2"]).ok(), "a.txt\nb.txt\n");
    assert_eq!(v.run(&["volume", "ls", "h"]).ok(), "a.txt\n");
    assert_eq!(cat(v, "h@1", "/a.txt"), "one");
    assert_eq!(cat(v, "h@3", "/a.txt"), "uno");
    assert_eq!(cat(v, "h@2", "/b.txt"), "two");
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("b-then.txt");
    v.run(&[
        "volume",
        "get",
        "h@3",
        "/b.txt",
        &dest.display().to_string(),
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "two");
    v.run(&["volume", "ls", "h@9"])
        .fails(1, &["no version 9", "head is version 4"]);
    v.run(&["volume", "get", "h@1", "/b.txt", "-"])
        .fails(1, &["b.txt"]);

    // Diffs, as lines and as JSON.
    assert_eq!(
        v.run(&["volume", "diff", "h", "2"]).ok(),
        "M a.txt\nD b.txt\n"
    );
    assert_eq!(
        v.run(&["volume", "diff", "h", "0", "2"]).ok(),
        "A a.txt\nA b.txt\n"
    );
    let d = json(v.run(&["volume", "diff", "h", "1", "3", "--json"]).ok());
    assert_eq!(d[0]["path"], "a.txt");
    assert_eq!(d[0]["change"], "modified");
    assert_eq!(d[1]["change"], "added");
    assert_eq!(d[1]["type"], "file");

    // A version is read-only; nothing changes.
    v.run(&["volume", "put", "h@2", "-", "/x"])
        .fails(2, &["read-only", "write to `h`"]);
    v.run(&["volume", "rm", "h@2", "/a.txt"])
        .fails(2, &["read-only"]);
    assert_eq!(
        json(v.run(&["volume", "history", "h", "--json"]).ok())["head"],
        4
    );

    // Restore brings version 2 back as version 5.
    let r = v.run(&["volume", "restore", "h@2"]).ok().to_owned();
    assert!(r.contains("now version 5"), "{r}");
    assert_eq!(cat(v, "h", "/a.txt"), "one");
    assert_eq!(cat(v, "h", "/b.txt"), "two");
    assert_eq!(v.run(&["volume", "diff", "h", "2"]).ok(), "");
    assert_eq!(
        cat(v, "h@4", "/a.txt"),
        "uno",
        "what it replaced stays readable"
    );
    v.run(&["volume", "restore", "h"])
        .fails(2, &["NAME@VERSION"]);
    v.run(&["volume", "restore", "h@77"])
        .fails(1, &["no version 77"]);

    // Conditional puts: land when the path did not change since the
    // version named (replacing without --force), else fail naming it.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("five");
    std::fs::write(&local, "five").unwrap();
    let local = local.display().to_string();
    let v_run = |ver: &str, l: &str, path: &str| {
        v.run(&["volume", "put", "h", l, path, "--if-version", ver])
    };
    assert!(v_run("5", &local, "/a.txt").ok().contains("version 6"));
    v_run("5", &local, "/a.txt").fails(1, &["another commit changed a path", "a.txt"]);
    v_run("4", &local, "/b.txt").fails(1, &["b.txt"]);
    assert!(v_run("6", &local, "/b.txt").ok().contains("version 7"));
    assert_eq!(cat(v, "h", "/b.txt"), "five");
    assert_eq!(
        v.run(&["volume", "diff", "h", "5"]).ok(),
        "M a.txt\nM b.txt\n"
    );

    // Retention: shown, changed, and 0 keeps only the head.
    assert!(v.run(&["volume", "retention", "h"]).ok().contains("for 7d"));
    let r = json(v.run(&["volume", "retention", "h", "36h", "--json"]).ok());
    assert_eq!(r["retention_ms"], 36 * 3_600_000u64);
    assert!(
        v.run(&["volume", "retention", "h", "0"])
            .ok()
            .contains("only its head")
    );
    v.run(&["volume", "ls", "h@4"])
        .fails(1, &["no version 4", "oldest version kept is 7"]);
    v.run(&["volume", "retention", "h", "7y"])
        .fails(2, &["unknown unit"]);

    // Names that would read as versions cannot be created.
    v.run(&["volume", "create", "x@3"])
        .fails(2, &["reads as a version"]);
    v.run(&["volume", "create", "short", "--retention", "12h"])
        .ok();
    assert!(
        v.run(&["volume", "retention", "short"])
            .ok()
            .contains("for 12h")
    );
    v.run(&["volume", "create", "bad", "--retention", "soon"])
        .fails(2, &["retention"]);
}

#[test]
fn history_diff_reads_and_restore_on_the_embedded_store() {
    history_workflow(&Vessel::new());
}

#[test]
fn history_diff_reads_and_restore_on_postgres_and_s3() {
    let (m, b) = shared().fresh();
    history_workflow(&Vessel::on_backend(&m, &b));
}

#[test]
fn history_over_http_with_a_scoped_token() {
    let v = Vessel::new();
    let server = crate::serve::start(&v, &[]);
    let a = server.addr.as_str();
    let rw = v.token(&["volume:vol:rw"], None);
    let ro = v.token(&["volume:vol:r"], None);
    let other = v.token(&["volume:other:r"], None);
    let (w, r) = (Some(rw.as_str()), Some(ro.as_str()));
    assert_eq!(
        http(
            a,
            "POST",
            "/v1/volumes/vol?retention_ms=86400000",
            w,
            &[],
            b""
        )
        .0,
        201
    );
    let file = "/v1/volumes/vol/files/f.txt";
    assert_eq!(http(a, "PUT", file, w, &[], b"first").0, 201);
    assert_eq!(
        http(a, "PUT", &format!("{file}?force=true"), w, &[], b"second").0,
        201
    );

    let (s, body) = http(a, "GET", &format!("{file}?version=1"), r, &[], b"");
    assert_eq!((s, body.as_slice()), (200, &b"first"[..]));
    let (s, body) = http(a, "GET", "/v1/volumes/vol@1/files/f.txt", r, &[], b"");
    assert_eq!(
        (s, body.as_slice()),
        (200, &b"first"[..]),
        "NAME@VERSION in the path"
    );
    let (s, body) = http(a, "GET", &format!("{file}?version=5"), r, &[], b"");
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("head is version 2"));
    let (s, body) = http(a, "GET", "/v1/volumes/vol/ls?version=0", r, &[], b"");
    assert_eq!((s, json_of(&body)), (200, serde_json::json!([])));

    let (s, body) = http(a, "GET", "/v1/volumes/vol/history", r, &[], b"");
    assert_eq!(s, 200);
    let h = json_of(&body);
    assert_eq!(
        (h["head"].as_u64(), h["retention_ms"].as_u64()),
        (Some(2), Some(86_400_000))
    );
    let (s, body) = http(a, "GET", "/v1/volumes/vol/diff?from=1", r, &[], b"");
    assert_eq!(s, 200);
    assert_eq!(json_of(&body)[0]["change"], "modified");

    // Reading needs the volume's read scope, whatever the version; a
    // restore or a retention change needs write.
    assert_eq!(
        http(
            a,
            "GET",
            &format!("{file}?version=1"),
            Some(&other),
            &[],
            b""
        )
        .0,
        403
    );
    assert_eq!(
        http(a, "GET", "/v1/volumes/vol@1/ls", Some(&other), &[], b"").0,
        403
    );
    assert_eq!(
        http(a, "POST", "/v1/volumes/vol/restore?version=1", r, &[], b"").0,
        403
    );
    assert_eq!(
        http(
            a,
            "PUT",
            "/v1/volumes/vol/retention?retention_ms=0",
            r,
            &[],
            b""
        )
        .0,
        403
    );
    // Writing to a version is refused, and changes nothing.
    assert_eq!(
        http(a, "PUT", "/v1/volumes/vol@1/files/g", w, &[], b"x").0,
        400
    );

    // If-Match names the version the writer read the file at: 412 once a
    // later commit changed it, and nothing lands.
    let (s412, body) = http(a, "PUT", file, w, &[("If-Match", "\"1\"")], b"stale");
    assert_eq!(s412, 412, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("f.txt"));
    assert_eq!(
        http(a, "PUT", file, w, &[("If-Match", "soon")], b"x").0,
        400
    );
    let (_, body) = http(a, "GET", file, r, &[], b"");
    assert_eq!(body, b"second");
    let (s, body) = http(a, "POST", "/v1/volumes/vol/restore?version=1", w, &[], b"");
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["version"], 3);
    let (_, body) = http(a, "GET", file, r, &[], b"");
    assert_eq!(body, b"first");
    let (s, body) = http(
        a,
        "PUT",
        "/v1/volumes/vol/retention?retention_ms=0",
        w,
        &[],
        b"",
    );
    assert_eq!((s, json_of(&body)["retention_ms"].as_u64()), (200, Some(0)));
    assert_eq!(
        http(a, "GET", &format!("{file}?version=2"), r, &[], b"").0,
        404
    );
}

/// A component mounting an older version reads it, cannot write it or
/// commit it (`access-denied`), and a reload keeps it; the same from a
/// manifest's `version = N`. A version past the head is a clear error.
#[test]
fn a_component_mounts_an_older_version_read_only() {
    let v = Vessel::new();
    let probe = vessel_tests::guest("volprobe").display().to_string();
    v.run(&["volume", "create", "m"]).ok();
    put(&v, "m", "/f.txt", "then", false); // 1
    put(&v, "m", "/f.txt", "now", true); // 2
    let call = |mount: &str, function: &str, args: &str| {
        v.run(&["call", &probe, function, "--volume", mount, "--args", args])
    };
    assert_eq!(
        call("m@1:/data", "fs-read", r#"["/data/f.txt"]"#).ok(),
        "{\"ok\":\"then\"}\n"
    );
    assert_eq!(
        call("m:/data", "fs-read", r#"["/data/f.txt"]"#).ok(),
        "{\"ok\":\"now\"}\n"
    );
    let w = call("m@1:/data:ro", "fs-write", r#"["/data/g.txt", "x"]"#);
    assert!(w.ok().contains("err"), "{w:?}");
    let c = call("m@1:/data", "commit", r#"["/data"]"#);
    assert!(c.ok().contains("read-only"), "{c:?}");
    assert_eq!(
        call("m@1:/data", "reload", r#"["/data"]"#).ok(),
        "{\"ok\":1}\n"
    );
    assert_eq!(
        json(v.run(&["volume", "history", "m", "--json"]).ok())["head"],
        2
    );
    call("m@7:/data", "fs-read", r#"["/data/f.txt"]"#)
        .fails(1, &["no version 7", "head is version 2"]);

    let dir = tempfile::tempdir().unwrap();
    let app = vessel_tests::write_manifest(
        dir.path(),
        r#"
[app]
name = "pinned"

[functions.fs-read]
component = "@VOLPROBE@"
mounts = { "/data" = { volume = "m", version = 1 } }
"#,
        &["volprobe"],
    );
    let app = app.display().to_string();
    assert_eq!(
        v.run(&["call", &app, "fs-read", "--args", r#"["/data/f.txt"]"#])
            .ok(),
        "{\"ok\":\"then\"}\n"
    );
    let bad = vessel_tests::write_manifest(
        dir.path(),
        r#"
[app]
name = "pinned"

[functions.fs-read]
component = "@VOLPROBE@"
mounts = { "/data" = { volume = "m", version = 1, read_only = false } }
"#,
        &["volprobe"],
    );
    v.run(&[
        "call",
        &bad.display().to_string(),
        "fs-read",
        "--args",
        "[\"/x\"]",
    ])
    .fails(2, &["version 1 is read-only"]);
}

/// `vessel volume restore` killed with SIGKILL at random points: after
/// each kill the volume is exactly one of the two versions' trees (the
/// restore landed whole or not at all), every file reads back, and the
/// next restore works.
#[test]
fn a_restore_killed_with_sigkill_lands_whole_or_not_at_all() {
    let v = Vessel::new();
    v.run(&["volume", "create", "r"]).ok();
    let trees: Vec<tempfile::TempDir> = (0..2)
        .map(|t| {
            let d = tempfile::tempdir().unwrap();
            for i in 0..150 {
                let sub = d.path().join(format!("d{}", i % 10));
                std::fs::create_dir_all(&sub).unwrap();
                std::fs::write(sub.join(format!("f{i}")), format!("tree {t} file {i}")).unwrap();
            }
            if t == 1 {
                for i in 0..100 {
                    std::fs::write(d.path().join(format!("extra{i}")), "only in 2").unwrap();
                }
            }
            d
        })
        .collect();
    for t in &trees {
        let p = t.path().display().to_string();
        v.run(&["volume", "put", "r", &p, "/", "--force"]).ok();
    }
    // Version 1 holds tree 0, version 2 tree 1 (and 100 more files).
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut x = seed;
    let mut landed = 0;
    for round in 0..24 {
        let target = 1 + round % 2;
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let delay = Duration::from_micros((x >> 33) % 40_000);
        let mut child = v
            .command()
            .args(["volume", "restore", &format!("r@{target}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        landed += u32::from(status.success());
        // Exactly version 1's tree or version 2's.
        let same_as: Vec<u64> = [1u64, 2]
            .into_iter()
            .filter(|ver| {
                v.run(&["volume", "diff", "r", &ver.to_string()])
                    .ok()
                    .is_empty()
            })
            .collect();
        assert_eq!(
            same_as.len(),
            1,
            "round {round} (seed {seed}): head is neither tree"
        );
        let t = same_as[0] - 1;
        assert_eq!(cat(&v, "r", "/d3/f13"), format!("tree {t} file 13"));
        let ls = v.run(&["volume", "ls", "r", "-r"]).ok().lines().count();
        assert_eq!(ls, if t == 0 { 160 } else { 260 }, "round {round}");
    }
    eprintln!("{landed} of 24 restores finished before their kill");
    // Whatever the kills left, a restore still works.
    v.run(&["volume", "restore", "r@2"]).ok();
    assert!(v.run(&["volume", "diff", "r", "2"]).ok().is_empty());
}
