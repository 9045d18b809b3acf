//! `vessel volume ...` driven through the real binary: every command,
//! directories and stdin/stdout round trips, JSON output, overwrite
//! refusals, bad input that changes nothing, and state that outlives each
//! process (every command below is its own process on the same data dir).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use vessel_tests::Vessel;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The volume's version, from `list --json`.
fn version(v: &Vessel, name: &str) -> u64 {
    let list = json(v.run(&["volume", "list", "--json"]).ok());
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name} in {list}"))["version"]
        .as_u64()
        .unwrap()
}

/// Every path under `root` → its bytes (`None` for a directory).
fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(rel, None);
                stack.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Bytes that are not text and differ along the file (a cheap LCG).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

fn run_with_stdin(v: &Vessel, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = v
        .command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn create_list_rename_delete() {
    let v = Vessel::new();
    assert!(v.run(&["volume", "list"]).ok().contains("No volumes"));
    assert_eq!(json(v.run(&["volume", "list", "--json"]).ok()), json("[]"));
    assert!(v.run(&["volume", "create", "alpha"]).ok().contains("alpha"));
    v.run(&["volume", "create", "alpha"])
        .fails(1, &["`alpha` already exists"]);
    v.run(&["volume", "create", "beta"]).ok();

    let list = json(v.run(&["volume", "list", "--json"]).ok());
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(list[0]["version"], 0);
    assert_eq!(list[0]["inodes"], 0);
    assert!(list[0]["created_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let table = v.run(&["volume", "list"]).ok().to_owned();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("alpha") && table.contains("beta"), "{table}");

    v.run(&["volume", "put", "alpha", "-", "/f.txt"]);
    v.run(&["volume", "rename", "alpha", "beta"])
        .fails(1, &["`beta` already exists"]);
    v.run(&["volume", "rename", "alpha", "gamma"]).ok();
    v.run(&["volume", "ls", "alpha"])
        .fails(1, &["`alpha` does not exist"]);
    v.run(&["volume", "ls", "gamma"]).ok();

    v.run(&["volume", "delete", "gamma"])
        .fails(2, &["--yes", "vessel volume delete gamma --yes"]);
    v.run(&["volume", "ls", "gamma"]).ok();
    v.run(&["volume", "delete", "gamma", "--yes"]).ok();
    v.run(&["volume", "delete", "gamma", "--yes"])
        .fails(1, &["`gamma` does not exist"]);
    let list = json(v.run(&["volume", "list", "--json"]).ok());
    assert_eq!(list.as_array().unwrap().len(), 1);
    // A new volume under a deleted name starts empty.
    v.run(&["volume", "create", "gamma"]).ok();
    assert_eq!(v.run(&["volume", "ls", "gamma"]).ok(), "");
}

#[test]
fn put_and_get_files_with_overwrite_rules() {
    let v = Vessel::new();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("model.bin");
    std::fs::write(&local, b"version one").unwrap();
    v.run(&["volume", "create", "vol"]).ok();
    let l = local.to_str().unwrap();

    // A file lands at the root by default, into a directory on a
    // trailing slash, and at the exact path otherwise.
    v.run(&["volume", "put", "vol", l]).ok();
    v.run(&["volume", "put", "vol", l, "/models/"]).ok();
    v.run(&["volume", "put", "vol", l, "/exact/name.bin"]).ok();
    // ...and into an existing directory.
    v.run(&["volume", "put", "vol", l, "/exact"]).ok();
    assert_eq!(
        v.run(&["volume", "ls", "vol", "/", "-r"]).ok(),
        "exact/\nexact/model.bin\nexact/name.bin\nmodel.bin\nmodels/\nmodels/model.bin\n"
    );
    let before = version(&v, "vol");

    // No overwrite without --force, and nothing changes.
    std::fs::write(&local, b"version two").unwrap();
    v.run(&["volume", "put", "vol", l])
        .fails(1, &["model.bin: already exists in volume `vol`", "--force"]);
    assert_eq!(version(&v, "vol"), before);
    assert_eq!(
        v.run(&["volume", "get", "vol", "model.bin", "-"]).ok(),
        "version one"
    );
    v.run(&["volume", "put", "vol", l, "--force"]).ok();
    assert_eq!(
        v.run(&["volume", "get", "vol", "model.bin", "-"]).ok(),
        "version two"
    );
    // A file never replaces a directory, even with --force.
    std::fs::write(work.path().join("models"), b"x").unwrap();
    v.run(&[
        "volume",
        "put",
        "vol",
        work.path().join("models").to_str().unwrap(),
        "/models",
        "--force",
    ])
    .ok(); // an existing directory: the file goes into it
    let stdin_over_dir = run_with_stdin(&v, &["volume", "put", "vol", "-", "/models", "-f"], b"x");
    assert_eq!(stdin_over_dir.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stdin_over_dir.stderr).contains("is a directory"),
        "{stdin_over_dir:?}"
    );

    // get: into the current directory by default, onto a named path, and
    // never over an existing local file without --force.
    let dl = tempfile::tempdir().unwrap();
    let out = v
        .command()
        .args(["volume", "get", "vol", "/models/model.bin"])
        .current_dir(dl.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(dl.path().join("model.bin")).unwrap(),
        b"version one"
    );
    let target = dl.path().join("model.bin");
    let t = target.to_str().unwrap();
    v.run(&["volume", "get", "vol", "model.bin", t])
        .fails(1, &["model.bin: already exists locally", "--force"]);
    assert_eq!(std::fs::read(&target).unwrap(), b"version one");
    v.run(&["volume", "get", "vol", "model.bin", t, "--force"])
        .ok();
    assert_eq!(std::fs::read(&target).unwrap(), b"version two");
    // No temporary files are left beside it.
    assert_eq!(std::fs::read_dir(dl.path()).unwrap().count(), 1);

    // Missing things are clear errors.
    v.run(&["volume", "get", "vol", "nope.bin", "-"])
        .fails(1, &["nope.bin: no such file or directory in volume `vol`"]);
    v.run(&["volume", "get", "vol", "models", "-"])
        .fails(2, &["is a directory"]);
    v.run(&["volume", "put", "nosuch", l])
        .fails(1, &["`nosuch` does not exist"]);
}

#[test]
fn directories_round_trip_byte_for_byte() {
    let v = Vessel::new();
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    std::fs::create_dir_all(s.join("a/b/c")).unwrap();
    std::fs::create_dir_all(s.join("empty/nested-empty")).unwrap();
    std::fs::write(s.join("top.txt"), "top\n").unwrap();
    std::fs::write(s.join("a/zero"), b"").unwrap();
    std::fs::write(s.join("a/b/c/big.bin"), noise(3 << 20, 7)).unwrap();
    std::fs::write(s.join("a/b/nul.bin"), b"\0\0\x01\xff\0").unwrap();
    std::fs::write(s.join("a-b.txt"), "sorts between a and a/").unwrap();
    for i in 0..40 {
        std::fs::write(s.join(format!("a/many-{i:02}")), noise(100 + i, i as u64)).unwrap();
    }
    v.run(&["volume", "create", "vol"]).ok();
    v.run(&["volume", "put", "vol", s.to_str().unwrap(), "/data"])
        .ok();
    assert_eq!(version(&v, "vol"), 1, "a directory put is one commit");

    // Onto a new local path: the directory itself.
    let dl = tempfile::tempdir().unwrap();
    let out = dl.path().join("copy");
    v.run(&["volume", "get", "vol", "/data", out.to_str().unwrap()])
        .ok();
    assert_eq!(tree(&out), tree(s));
    // Into an existing directory: a directory named after the remote one.
    v.run(&["volume", "get", "vol", "data", dl.path().to_str().unwrap()])
        .ok();
    assert_eq!(tree(&dl.path().join("data")), tree(s));
    // The whole volume.
    let whole = dl.path().join("whole");
    v.run(&["volume", "get", "vol", "/", whole.to_str().unwrap()])
        .ok();
    assert_eq!(tree(&whole.join("data")), tree(s));

    // A second get into the same place refuses before writing anything
    // (the removed file is not restored), then --force works.
    let again = dl.path().join("data");
    std::fs::write(again.join("top.txt"), "changed locally").unwrap();
    std::fs::remove_file(again.join("a/zero")).unwrap();
    v.run(&["volume", "get", "vol", "/data", dl.path().to_str().unwrap()])
        .fails(1, &["data/a-b.txt: already exists locally"]);
    assert_eq!(
        std::fs::read_to_string(again.join("top.txt")).unwrap(),
        "changed locally"
    );
    assert!(!again.join("a/zero").exists(), "nothing half-written");
    v.run(&[
        "volume",
        "get",
        "vol",
        "/data/",
        dl.path().to_str().unwrap(),
        "--force",
    ])
    .ok();
    assert_eq!(tree(&again), tree(s));

    // A second put of the same directory refuses without --force and names
    // the first existing file; with --force it lands as one more version.
    v.run(&["volume", "put", "vol", s.to_str().unwrap(), "/data"])
        .fails(1, &["already exists in volume `vol`"]);
    assert_eq!(version(&v, "vol"), 1);
    v.run(&[
        "volume",
        "put",
        "vol",
        s.to_str().unwrap(),
        "/data",
        "--force",
    ])
    .ok();
    assert_eq!(version(&v, "vol"), 2);
}

#[test]
fn stdin_and_stdout() {
    let v = Vessel::new();
    v.run(&["volume", "create", "vol"]).ok();
    let data = noise(5 << 20, 3);
    let out = run_with_stdin(&v, &["volume", "put", "vol", "-", "/in/blob.bin"], &data);
    assert!(out.status.success(), "{out:?}");
    let got = v
        .command()
        .args(["volume", "get", "vol", "in/blob.bin", "-"])
        .output()
        .unwrap();
    assert!(got.status.success(), "{got:?}");
    assert!(got.stdout == data, "stdout differs from what went in");
    // Overwrite rules hold for stdin too.
    let again = run_with_stdin(&v, &["volume", "put", "vol", "-", "/in/blob.bin"], b"x");
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let again = run_with_stdin(
        &v,
        &["volume", "put", "vol", "-", "/in/blob.bin", "--force"],
        b"x",
    );
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        v.run(&["volume", "get", "vol", "in/blob.bin", "-"]).ok(),
        "x"
    );
    // stdin needs a file path to land on.
    v.run(&["volume", "put", "vol", "-"])
        .fails(2, &["needs a REMOTE file path"]);
    v.run(&["volume", "put", "vol", "-", "/dir/"])
        .fails(2, &["needs a REMOTE file path"]);
}

#[test]
fn ls_json_and_paths() {
    let v = Vessel::new();
    v.run(&["volume", "create", "vol"]).ok();
    run_with_stdin(&v, &["volume", "put", "vol", "-", "/d/e/f.txt"], b"12345");
    run_with_stdin(&v, &["volume", "put", "vol", "-", "/g.txt"], b"1");
    let root = json(v.run(&["volume", "ls", "vol", "--json"]).ok());
    let root = root.as_array().unwrap();
    assert_eq!(root.len(), 2);
    assert_eq!(root[0]["path"], "d");
    assert_eq!(root[0]["type"], "dir");
    assert_eq!(root[1]["path"], "g.txt");
    assert_eq!(root[1]["type"], "file");
    assert_eq!(root[1]["size"], 1);
    let file = json(v.run(&["volume", "ls", "vol", "d/e/f.txt", "--json"]).ok());
    assert_eq!(file[0]["size"], 5);
    let deep = json(v.run(&["volume", "ls", "vol", "/d", "-r", "--json"]).ok());
    let paths: Vec<&str> = deep
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["d/e", "d/e/f.txt"]);
    assert_eq!(v.run(&["volume", "ls", "vol", "d"]).ok(), "d/e/\n");
    v.run(&["volume", "ls", "vol", "nope"])
        .fails(1, &["nope: no such file or directory in volume `vol`"]);
}

#[test]
fn cp_and_rm() {
    let v = Vessel::new();
    v.run(&["volume", "create", "vol"]).ok();
    run_with_stdin(&v, &["volume", "put", "vol", "-", "/src/a.txt"], b"A");
    run_with_stdin(&v, &["volume", "put", "vol", "-", "/src/sub/b.txt"], b"B");
    run_with_stdin(&v, &["volume", "put", "vol", "-", "/one.txt"], b"1");
    run_with_stdin(&v, &["volume", "put", "vol", "-", "/dst/keep"], b"k");

    v.run(&["volume", "cp", "vol", "one.txt", "two.txt"]).ok();
    assert_eq!(v.run(&["volume", "get", "vol", "two.txt", "-"]).ok(), "1");
    v.run(&["volume", "cp", "vol", "src", "copy"])
        .fails(2, &["src: is a directory", "-r"]);
    v.run(&["volume", "cp", "vol", "src", "copy", "-r"]).ok();
    assert_eq!(
        v.run(&["volume", "get", "vol", "copy/sub/b.txt", "-"]).ok(),
        "B"
    );
    // Several sources go into a directory.
    v.run(&["volume", "cp", "vol", "one.txt", "src", "dst", "-r"])
        .ok();
    assert_eq!(
        v.run(&["volume", "ls", "vol", "dst", "-r"]).ok(),
        "dst/keep\ndst/one.txt\ndst/src/\ndst/src/a.txt\ndst/src/sub/\ndst/src/sub/b.txt\n"
    );
    v.run(&["volume", "cp", "vol", "one.txt", "two.txt", "missing-dir"])
        .fails(1, &["missing-dir: no such file or directory"]);
    v.run(&["volume", "cp", "vol", "src", "src/sub", "-r"])
        .fails(2, &["into itself"]);
    v.run(&["volume", "cp", "vol", "nope", "x"])
        .fails(1, &["nope: no such file or directory"]);

    let before = version(&v, "vol");
    v.run(&["volume", "rm", "vol", "copy"])
        .fails(2, &["copy: is a directory", "-r"]);
    v.run(&["volume", "rm", "vol", "gone.txt"])
        .fails(1, &["gone.txt: no such file or directory"]);
    assert_eq!(version(&v, "vol"), before, "refusals change nothing");
    v.run(&["volume", "rm", "vol", "two.txt"]).ok();
    v.run(&["volume", "rm", "vol", "copy", "-r"]).ok();
    assert_eq!(
        v.run(&["volume", "ls", "vol"]).ok(),
        "dst/\none.txt\nsrc/\n"
    );
    v.run(&["volume", "rm", "vol", "/", "-r"]).ok();
    assert_eq!(v.run(&["volume", "ls", "vol"]).ok(), "");
}

#[test]
fn bad_input_is_a_clear_error_that_changes_nothing() {
    let v = Vessel::new();
    v.run(&["volume", "create", "vol"]).ok();
    run_with_stdin(&v, &["volume", "put", "vol", "-", "/keep.txt"], b"keep");
    let before = version(&v, "vol");
    let long = "x".repeat(256);
    for bad in ["a/b", long.as_str(), "..", "/"] {
        v.run(&["volume", "create", bad])
            .fails(2, &["invalid volume name"]);
        v.run(&["volume", "ls", bad])
            .fails(2, &["invalid volume name"]);
        v.run(&["volume", "rename", "vol", bad])
            .fails(2, &["invalid volume name"]);
    }
    assert_eq!(v.run(&["volume", "create", &"y".repeat(255)]).code, 0);

    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("missing.bin");
    v.run(&["volume", "put", "vol", missing.to_str().unwrap()])
        .fails(2, &["missing.bin: no such local file or directory"]);
    std::fs::write(work.path().join("f"), b"f").unwrap();
    let f = work.path().join("f");
    for args in [
        vec!["volume", "put", "vol", f.to_str().unwrap(), "../escape"],
        vec!["volume", "put", "vol", f.to_str().unwrap(), "a/../../b"],
        vec!["volume", "ls", "vol", "../x"],
        vec!["volume", "get", "vol", "../keep.txt", "-"],
        vec!["volume", "rm", "vol", "../keep.txt"],
        vec!["volume", "cp", "vol", "keep.txt", "../out"],
    ] {
        v.run(&args).fails(2, &["`..` is not allowed"]);
    }
    let dotdot = run_with_stdin(&v, &["volume", "put", "vol", "-", "/x/../y"], b"no");
    assert_eq!(dotdot.status.code(), Some(2), "{dotdot:?}");
    assert_eq!(version(&v, "vol"), before);
    assert_eq!(v.run(&["volume", "ls", "vol"]).ok(), "keep.txt\n");
    // Usage errors from clap are exit 2 as well.
    v.run(&["volume", "cp", "vol", "only-one"]).fails(2, &[]);
    v.run(&["volume", "frobnicate"]).fails(2, &[]);
}

/// The blob files of the data dir of `v`, with their contents.
fn blob_files(v: &Vessel) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for fan in std::fs::read_dir(v.home.path().join("blobs")).unwrap() {
        let fan = fan.unwrap().path();
        if fan.file_name().unwrap().len() != 2 {
            continue;
        }
        for blob in std::fs::read_dir(&fan).unwrap() {
            let p = blob.unwrap().path();
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn gc_removes_unreferenced_blobs_only() {
    let v = Vessel::new();
    let local = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = local.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    // Retention 0: a replaced file's contents are garbage at once (with
    // history kept, they are not; see volume_history.rs).
    v.run(&["volume", "create", "g", "--retention", "0"]).ok();
    v.run(&["volume", "put", "g", &file("keep", "keep me"), "/keep.txt"])
        .ok();
    v.run(&["volume", "put", "g", &file("old", "replace me"), "/f.txt"])
        .ok();
    // Overwriting f.txt leaves its first contents unreferenced.
    v.run(&[
        "volume",
        "put",
        "g",
        &file("new", "new contents"),
        "/f.txt",
        "--force",
    ])
    .ok();
    let blobs = blob_files(&v);
    assert_eq!(blobs.len(), 3, "{blobs:?}");
    let orphan = blobs
        .iter()
        .find(|(_, bytes)| bytes.as_slice() == b"replace me")
        .map(|(p, _)| p.clone())
        .unwrap();

    // Younger than the grace period: kept, and said so.
    let report = json(v.run(&["volume", "gc", "--json"]).ok());
    assert_eq!(report["removed_blobs"], 0, "{report}");
    assert_eq!(report["kept_young"], 1, "{report}");
    assert_eq!(report["min_age_secs"], 3600, "{report}");
    let text = v.run(&["volume", "gc"]).ok().to_owned();
    assert!(
        text.contains("Removed 0 unreferenced blobs")
            && text.contains("Kept 1 unreferenced blob younger than 3600 s"),
        "{text}"
    );
    assert!(orphan.exists());

    // Two hours old: gone; the referenced blobs stay.
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::open(&orphan)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let report = json(v.run(&["volume", "gc", "--json"]).ok());
    assert_eq!(report["removed_blobs"], 1, "{report}");
    assert_eq!(report["removed_bytes"], "replace me".len(), "{report}");
    assert!(!orphan.exists());
    let left: Vec<Vec<u8>> = blob_files(&v).into_values().collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&b"keep me".to_vec()) && left.contains(&b"new contents".to_vec()));
    assert_eq!(
        v.run(&["volume", "get", "g", "/f.txt", "-"]).ok(),
        "new contents"
    );

    // --min-age 0 takes fresh garbage too, and what an upload killed
    // midway left (counted: it can be large).
    v.run(&["volume", "rm", "g", "/f.txt"]).ok();
    std::fs::write(
        v.home
            .path()
            .join("blobs")
            .join("tmp")
            .join("killed-upload.tmp"),
        vec![7u8; 3000],
    )
    .unwrap();
    let text = v.run(&["volume", "gc", "--min-age", "0"]).ok().to_owned();
    assert!(
        text.contains("Removed 1 unreferenced blob (12 B).")
            && text.contains("Removed 1 unfinished upload (2.93 KiB)."),
        "{text}"
    );
    assert_eq!(
        v.run(&["volume", "get", "g", "/keep.txt", "-"]).ok(),
        "keep me"
    );

    // A deleted volume's contents are garbage. (Nothing mounts it in this
    // process, so --force changes nothing here.)
    v.run(&["volume", "delete", "g", "--yes", "--force"]).ok();
    let report = json(v.run(&["volume", "gc", "--min-age", "0", "--json"]).ok());
    assert_eq!(report["removed_blobs"], 1, "{report}");
    assert!(blob_files(&v).is_empty());
    v.run(&["volume", "gc", "--min-age", "soon"])
        .fails(2, &["invalid value 'soon'"]);
}

/// Every command that meets a missing volume or dict says how to create
/// it: run here, forwarded to a server that holds the data dir, and from
/// inside a call's mount.
#[test]
fn a_missing_volume_or_dict_comes_with_how_to_create_it() {
    let v = Vessel::new();
    let file = v.home.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_str().unwrap();
    let check = |v: &Vessel| {
        v.run(&["volume", "put", "nov", f, "/f"])
            .fails(1, &["(create it with `vessel volume create nov`)"]);
        v.run(&["volume", "ls", "nov"])
            .fails(1, &["(create it with `vessel volume create nov`)"]);
        v.run(&["dict", "get", "nod", "k"])
            .fails(1, &["(create it with `vessel dict create nod`)"]);
        v.run(&["dict", "put", "nod", "k", "1"])
            .fails(1, &["(create it with `vessel dict create nod`)"]);
    };
    check(&v);
    let probe = vessel_tests::guest("volprobe");
    let out = v.run(&[
        "call",
        probe.to_str().unwrap(),
        "fs-list",
        "--volume",
        "nov:/data",
        "--args",
        "[\"/data\"]",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("(create it with `vessel volume create nov`)"),
        "{}",
        out.stderr
    );
    let _server = vessel_tests::serve(v.command(), &[]);
    check(&v);
}
