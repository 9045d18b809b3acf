//! `vessel admin backup DIR`: a copy of the embedded store as it stood at
//! one moment, made while a server holds the data dir and writers run,
//! that opens as a data dir of its own.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use vessel_tests::{Vessel, http};

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The numbers in `names` (`k00012` → 12), sorted.
fn numbers<'a>(names: impl Iterator<Item = &'a str>, prefix: &str) -> Vec<usize> {
    let mut out: Vec<usize> = names
        .map(|n| n.strip_prefix(prefix).unwrap().parse().unwrap())
        .collect();
    out.sort_unstable();
    out
}

/// Two writers run against a server: one puts dict keys k0, k1, ... one
/// after another, the other commits files f0, f1, ... one per version.
/// A backup made meanwhile holds a prefix of each (no later write without
/// every earlier one), its volume's head version counts exactly its files,
/// the copy opens and takes writes of its own, and the original never
/// sees them.
#[test]
fn a_backup_taken_while_writers_run_is_one_moment_of_the_store() {
    let v = Vessel::new();
    v.run(&["dict", "create", "d"]).ok();
    v.run(&["volume", "create", "vol"]).ok();
    let server = vessel_tests::serve(v.command(), &[]);
    let stop = AtomicBool::new(false);
    let (keys, files) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let src = tempfile::tempdir().unwrap();
    let backup_root = tempfile::tempdir().unwrap();
    let dest = backup_root.path().join("copy");
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let i = keys.load(Ordering::Relaxed);
                v.run(&["dict", "put", "d", &format!("k{i:05}"), &i.to_string()])
                    .ok();
                keys.fetch_add(1, Ordering::Relaxed);
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let i = files.load(Ordering::Relaxed);
                let local = src.path().join(format!("f{i}"));
                std::fs::write(&local, format!("file {i}")).unwrap();
                v.run(&[
                    "volume",
                    "put",
                    "vol",
                    local.to_str().unwrap(),
                    &format!("/f{i:05}"),
                ])
                .ok();
                files.fetch_add(1, Ordering::Relaxed);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while keys.load(Ordering::Relaxed) < 10 || files.load(Ordering::Relaxed) < 10 {
            assert!(Instant::now() < deadline, "the writers made no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = v.run(&["admin", "backup", dest.to_str().unwrap(), "--json"]);
        // Writers go on after the backup, so the original moves past it.
        let (k, f) = (keys.load(Ordering::Relaxed), files.load(Ordering::Relaxed));
        while keys.load(Ordering::Relaxed) < k + 5 || files.load(Ordering::Relaxed) < f + 5 {
            assert!(Instant::now() < deadline + Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        json(out.ok())
    });
    assert_eq!(report["dir"], dest.to_str().unwrap());
    assert!(report["blobs"].as_u64().unwrap() >= 10, "{report}");
    assert_eq!(report["linked"], report["blobs"], "same filesystem: links");
    // The original is past the backup, and the server still answers.
    drop(server);

    let copy = Vessel::new();
    let on_copy = |args: &[&str]| -> String {
        let mut c = copy.command();
        c.arg("--data-dir").arg(&dest).args(args);
        let out = c.output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let items = json(&on_copy(&["dict", "items", "d", "--all", "--json"]));
    let items = items.as_array().unwrap();
    let got_keys = numbers(items.iter().map(|e| e["key"].as_str().unwrap()), "k");
    assert!(got_keys.len() >= 10, "{got_keys:?}");
    assert_eq!(
        got_keys,
        (0..got_keys.len()).collect::<Vec<_>>(),
        "keys not a prefix"
    );
    for e in items {
        let n: usize = e["key"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(e["value"], n);
    }
    let listed = json(&on_copy(&["volume", "ls", "vol", "--json"]));
    let got_files = numbers(
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap()),
        "f",
    );
    assert_eq!(
        got_files,
        (0..got_files.len()).collect::<Vec<_>>(),
        "files not a prefix"
    );
    let history = json(&on_copy(&["volume", "history", "vol", "--json"]));
    assert_eq!(history["head"], got_files.len(), "{history}");
    let last = got_files.len() - 1;
    assert_eq!(
        on_copy(&["volume", "get", "vol", &format!("/f{last:05}"), "-"]),
        format!("file {last}")
    );
    // The original went on past the backup.
    let orig = json(v.run(&["dict", "items", "d", "--all", "--json"]).ok());
    assert!(orig.as_array().unwrap().len() > got_keys.len());
    // The copy takes writes; the original never sees them.
    on_copy(&["dict", "put", "d", "only-in-copy", "1"]);
    let f = src.path().join("new");
    std::fs::write(&f, "new").unwrap();
    on_copy(&["volume", "put", "vol", f.to_str().unwrap(), "/only-in-copy"]);
    assert_eq!(
        on_copy(&["volume", "get", "vol", "/only-in-copy", "-"]),
        "new"
    );
    v.run(&["dict", "get", "d", "only-in-copy"])
        .fails(1, &["only-in-copy"]);
    v.run(&["volume", "get", "vol", "/only-in-copy", "-"])
        .fails(1, &["only-in-copy"]);
}

/// Without a server the command opens the store itself; its refusals name
/// the folder; a token over HTTP may not ask for a backup.
#[test]
fn backups_refuse_what_they_cannot_do_cleanly() {
    let v = Vessel::new();
    v.run(&["dict", "create", "d"]).ok();
    v.run(&["dict", "put", "d", "k", "\"v\""]).ok();
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("b");
    let out = v.run(&["admin", "backup", dest.to_str().unwrap()]);
    assert!(out.ok().contains("Backed up"), "{}", out.stdout);
    // Not into a folder that holds something.
    v.run(&["admin", "backup", dest.to_str().unwrap()])
        .fails(2, &["already exists and is not empty"]);
    // Not into the data dir itself.
    let inside = v.home.path().join("nested");
    v.run(&["admin", "backup", inside.to_str().unwrap()])
        .fails(2, &["inside the data dir"]);
    assert!(!inside.exists(), "a refused backup leaves nothing behind");
    // Tokens never reach it.
    let tok = v.token(&["dict:*:rw", "volume:*:rw"], None);
    let server = vessel_tests::serve(v.command(), &[]);
    let body = format!("{{\"dir\": \"{}\"}}", root.path().join("c").display());
    let (status, text) = http(
        &server.addr,
        "POST",
        "/v1/admin/backup",
        Some(&tok),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&text));
    assert!(!root.path().join("c").exists());
}
