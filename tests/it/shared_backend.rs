//! The shared backend end to end: two real `vessel` processes (hosts) on
//! one PostgreSQL + S3, and what happens when those services die.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vessel_host::storage::clock::SystemClock;
use vessel_host::storage::dict::{DictError, DictStore, PutOptions};
use vessel_host::storage::remote::{RemoteOptions, RemoteStore};
use vessel_host::storage::volume::{Change, Node, NodeKind, VolumeError, VolumeStore};
use vessel_tests::servers::{Postgres, Seaweed, shared};
use vessel_tests::{Server, Vessel, guest, http, json_of};

/// Starts `vessel serve` on `h` (a host on the shared backend).
fn serve(h: &Vessel, extra: &[&str]) -> Server {
    vessel_tests::serve(h.command(), extra)
}

/// Host B runs a function that waits, reloading its mount, for a file;
/// host A (another process, another data dir) puts it; B sees it.
#[test]
fn a_commit_on_one_host_is_seen_by_reload_on_the_other() {
    let (m, b) = shared().fresh();
    let (a_host, b_host) = (Vessel::on_backend(&m, &b), Vessel::on_backend(&m, &b));
    a_host.run(&["volume", "create", "shared"]).ok();
    let dir = tempfile::tempdir().unwrap();
    let app = crate::serve::wait_app(dir.path(), false);
    let server = serve(&b_host, &["--app", &app.display().to_string()]);
    let tok = b_host.token(&["app:probe"], None);
    // Host A commits the file: no socket, no owner, only the database.
    crate::serve::a_running_call_sees_a_put(&server.addr, &tok, &a_host, "hello from host A");
    // And B's own commits reach A.
    let out = b_host.run(&["volume", "ls", "shared", "inbox"]);
    assert!(out.ok().contains("msg.txt"), "{}", out.stdout);
    assert_eq!(
        a_host
            .run(&["volume", "get", "shared", "/inbox/msg.txt", "-"])
            .ok(),
        "hello from host A"
    );
}

/// Both hosts hammer the same keys through a component: counters, CAS
/// loops and leases stay exact.
#[test]
fn dict_writes_cas_counters_and_leases_agree_across_hosts() {
    let (m, b) = shared().fresh();
    let hosts = [Vessel::on_backend(&m, &b), Vessel::on_backend(&m, &b)];
    hosts[0].run(&["dict", "create", "kv"]).ok();
    let probe = guest("dictprobe").display().to_string();
    let op = |h: &Vessel, name: &str, key: &str, n: i64| -> String {
        h.run(&[
            "call",
            &probe,
            "op",
            "--name",
            name,
            "--dict",
            "kv",
            "--key",
            key,
            "--arg",
            "\"x\"",
            "--n",
            &n.to_string(),
        ])
        .ok()
        .trim()
        .to_owned()
    };
    std::thread::scope(|s| {
        for h in &hosts {
            s.spawn(|| {
                for _ in 0..2 {
                    assert_eq!(op(h, "incr-loop", "n", 25), "\"ok\"");
                    assert_eq!(op(h, "cas-loop", "c", 15), "\"ok\"");
                }
            });
        }
    });
    assert_eq!(hosts[1].run(&["dict", "get", "kv", "n"]).ok(), "100\n");
    assert_eq!(hosts[0].run(&["dict", "get", "kv", "c"]).ok(), "60\n");
    // A lease one host holds is busy for the other; tokens grow across
    // hosts.
    let held = op(&hosts[0], "hold", "job", 60_000);
    let t1: u64 = held
        .trim_matches('"')
        .strip_prefix("ok ")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(op(&hosts[1], "hold", "job", 60_000), "\"busy\"");
    let fenced = op(&hosts[1], "lock", "other", 0);
    let first: u64 = fenced
        .trim_matches('"')
        .strip_prefix("ok ")
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first > t1, "{fenced} after token {t1}");
    // if-absent: exactly one host wins.
    let outs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = hosts
            .iter()
            .map(|h| s.spawn(|| op(h, "if-absent", "once", 0)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = outs.clone();
    sorted.sort();
    assert_eq!(sorted, ["\"skipped\"", "\"wrote\""], "{outs:?}");
}

fn opts(pg: &Postgres, s3: &Seaweed, cache: &std::path::Path) -> RemoteOptions {
    let mut o = RemoteOptions::new(&pg.url_for("public"), &s3.url("fail"), cache.to_owned());
    o.op_timeout = Duration::from_secs(5);
    o.request_timeout = Duration::from_secs(5);
    o
}

fn file_node(s: &dyn VolumeStore, bytes: &[u8]) -> Result<Node, VolumeError> {
    Ok(Node {
        kind: NodeKind::File,
        blob: Some(s.put_blob(bytes)?),
        size: bytes.len() as u64,
        mtime_ms: 1,
        mode: 0o644,
        target: None,
    })
}

/// Writes dict entries and volume commits in a loop, killing PostgreSQL
/// (SIGKILL) after a few: the failures are `Unavailable`, quickly; once it
/// is back, retries pass, and every acknowledged write is there, whole.
#[test]
fn postgres_dying_mid_write_fails_unavailable_and_loses_nothing_acknowledged() {
    let mut pg = Postgres::start();
    let s3 = Seaweed::start();
    let dir = tempfile::tempdir().unwrap();
    let store =
        RemoteStore::open_with_clock(opts(&pg, &s3, dir.path()), Arc::new(SystemClock)).unwrap();
    DictStore::create(&store, "d").unwrap();
    VolumeStore::create(&store, "v").unwrap();
    // A host serving a guest that writes the dict, started while the
    // database is up.
    let h = Vessel::on_backend(&pg.url_for("public"), &s3.url("fail"));
    let manifest = dir.path().join("vessel.toml");
    std::fs::write(
        &manifest,
        format!(
            "[app]\nname = \"probe\"\n[functions.op]\ncomponent = {:?}\ndicts = [\"d\"]\n",
            guest("dictprobe").display().to_string()
        ),
    )
    .unwrap();
    let server = serve(&h, &["--app", &manifest.display().to_string()]);
    let tok = h.token(&["app:probe"], None);
    // Made, but first presented while the database is down.
    let unchecked = h.token(&["app:probe"], None);
    let guest_put = |key: &str| -> String {
        let body = format!("[\"put\", \"d\", \"{key}\", \"v\", 0]");
        let (status, out) = http(
            &server.addr,
            "POST",
            "/v1/apps/probe/functions/op/call",
            Some(&tok),
            &[],
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
        json_of(&out)["result"].as_str().unwrap().to_owned()
    };
    assert!(guest_put("g0").starts_with("ok v"));
    let mut acked_keys = Vec::new();
    // Readiness: each part of the shared backend, by name.
    let ready = || {
        let (status, body) = http(&server.addr, "GET", "/v1/ready", None, &[], b"");
        (status, json_of(&body))
    };
    let (status, up) = ready();
    assert_eq!(status, 200, "{up}");
    assert_eq!(
        up,
        serde_json::json!({"ready": true, "checks": [
            {"part": "metadata", "ok": true}, {"part": "blobs", "ok": true}]})
    );
    let mut acked_commits = 0u64;
    let mut failures = Vec::new();
    for i in 0..400u64 {
        if i == 40 {
            pg.stop(true);
        }
        let started = Instant::now();
        let key = format!("k{i:04}");
        match store.put("d", &key, key.as_bytes(), &PutOptions::default()) {
            Ok(_) => acked_keys.push(key.clone()),
            Err(e) => failures.push((
                format!("{e}"),
                matches!(e, DictError::Unavailable(_)),
                started.elapsed(),
            )),
        }
        let commit = file_node(&store, format!("file {i}").as_bytes()).and_then(|n| {
            store.commit(
                "v",
                &[Change::Put {
                    path: format!("f/{i:04}"),
                    node: n,
                }],
            )
        });
        match commit {
            Ok(_) => acked_commits += 1,
            Err(e) => failures.push((
                format!("{e}"),
                matches!(e, VolumeError::Unavailable(_)),
                started.elapsed(),
            )),
        }
        if failures.len() >= 6 {
            break;
        }
    }
    assert!(
        acked_keys.len() >= 40 && acked_commits >= 40,
        "{} {}",
        acked_keys.len(),
        acked_commits
    );
    assert!(
        failures.len() >= 6,
        "writes kept passing with PostgreSQL dead"
    );
    for (msg, unavailable, took) in &failures {
        assert!(unavailable, "not `unavailable`: {msg}");
        assert!(*took < Duration::from_secs(12), "took {took:?}: {msg}");
    }
    // Readiness says so (503), naming the part, with no detail for the
    // public; liveness is still 200: the server itself answers.
    let (status, down) = ready();
    assert_eq!(status, 503, "{down}");
    assert_eq!(
        down,
        serde_json::json!({"ready": false, "checks": [
            {"part": "metadata", "ok": false}, {"part": "blobs", "ok": true}]})
    );
    let (status, body) = http(&server.addr, "GET", "/v1/health", None, &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // A guest gets `unavailable` (the WIT error), and so does the CLI.
    // The caller's token was checked before the outage, so it still
    // passes (see `auth::OUTAGE_GRACE`); one never checked cannot be.
    let g = guest_put("g1");
    assert!(g.starts_with("error: ") && g.contains("unavailable"), "{g}");
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/apps/probe/functions/op/call",
        Some(&unchecked),
        &[],
        b"[\"put\", \"d\", \"x\", \"v\", 0]",
    );
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    h.run(&["dict", "put", "d", "cli", "1"])
        .fails(1, &["unavailable"]);
    pg.run();
    // Back: a retry passes (the pool replaces its dead connections).
    let retry = (0..3).find_map(|_| store.put("d", "after", b"1", &PutOptions::default()).ok());
    assert!(retry.is_some(), "no retry passed once PostgreSQL was back");
    store
        .commit(
            "v",
            &[Change::Put {
                path: "after".into(),
                node: file_node(&store, b"after").unwrap(),
            }],
        )
        .unwrap();
    // Nothing acknowledged is lost, and what is there is whole.
    for k in &acked_keys {
        assert_eq!(
            store.get("d", k).unwrap().map(|e| e.value),
            Some(k.as_bytes().to_vec()),
            "{k}"
        );
    }
    let snap = store.snapshot("v").unwrap();
    let info = VolumeStore::info(&store, "v").unwrap();
    assert_eq!(info.inodes, snap.nodes.len() as u64);
    let files = snap
        .nodes
        .iter()
        .filter(|(p, _)| p.starts_with("f/"))
        .count() as u64;
    // A commit whose answer was lost with the connection may have landed:
    // at most one more than acknowledged, never less.
    assert!(
        files == acked_commits || files == acked_commits + 1,
        "{files} files, {acked_commits} acknowledged"
    );
    assert_eq!(snap.version, files + 1);
    // Healthy again once the database is back.
    let start = Instant::now();
    while ready().0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "readiness never recovered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The guest's retry passes too, on the same host process.
    let g = (0..3)
        .map(|_| guest_put("g2"))
        .find(|g| g.starts_with("ok v"));
    assert!(g.is_some(), "the guest's retry did not pass");
    assert_eq!(
        store.get("d", "g0").unwrap().map(|e| e.value),
        Some(b"v".to_vec())
    );
}

/// Kills SeaweedFS in a put loop: puts fail `unavailable` quickly; once it
/// is back, retries pass and every acknowledged blob reads back (from S3,
/// not a local cache).
#[test]
fn s3_dying_mid_put_fails_unavailable_and_loses_nothing_acknowledged() {
    let pg = Postgres::start();
    let mut s3 = Seaweed::start();
    let dir = tempfile::tempdir().unwrap();
    let store =
        RemoteStore::open_with_clock(opts(&pg, &s3, &dir.path().join("a")), Arc::new(SystemClock))
            .unwrap();
    VolumeStore::create(&store, "v").unwrap();
    let mut acked = Vec::new();
    let mut failures = Vec::new();
    for i in 0..400u64 {
        if i == 30 {
            s3.stop(true);
        }
        let started = Instant::now();
        let body = format!("blob {i}").repeat(100);
        match file_node(&store, body.as_bytes()).and_then(|n| {
            store
                .commit(
                    "v",
                    &[Change::Put {
                        path: format!("{i:04}"),
                        node: n,
                    }],
                )
                .map(|_| ())
        }) {
            Ok(()) => acked.push((format!("{i:04}"), body)),
            Err(e) => failures.push((
                format!("{e}"),
                matches!(e, VolumeError::Unavailable(_)),
                started.elapsed(),
            )),
        }
        if failures.len() >= 3 {
            break;
        }
    }
    assert!(acked.len() >= 30);
    for (msg, unavailable, took) in &failures {
        assert!(unavailable, "not `unavailable`: {msg}");
        assert!(*took < Duration::from_secs(30), "took {took:?}: {msg}");
    }
    let before = store.snapshot("v").unwrap();
    assert_eq!(
        before.version,
        acked.len() as u64,
        "no commit landed without its blob"
    );
    // Readiness names the part that is down.
    let ready = VolumeStore::readiness(&store);
    assert!(
        matches!(ready.as_slice(), [("metadata", Ok(())), ("blobs", Err(_))]),
        "{ready:?}"
    );
    s3.run();
    let retry = (0..5).find_map(|_| {
        let r = file_node(&store, b"after").and_then(|n| {
            store.commit(
                "v",
                &[Change::Put {
                    path: "after".into(),
                    node: n,
                }],
            )
        });
        if r.is_err() {
            std::thread::sleep(Duration::from_secs(1));
        }
        r.ok()
    });
    assert!(retry.is_some(), "no retry passed once S3 was back");
    // A second host with an empty cache reads every acknowledged file.
    let other = RemoteStore::open(opts(&pg, &s3, &dir.path().join("b"))).unwrap();
    for (path, body) in &acked {
        let n = other.node("v", path).unwrap().unwrap();
        assert_eq!(
            other.read_blob(&n.blob.unwrap(), 0, u64::MAX).unwrap(),
            body.as_bytes(),
            "{path}"
        );
    }
    assert!(other.s3_stats().downloads >= acked.len() as u64);
}

/// One host commits new files (sometimes waiting between the upload and
/// the commit), another collects garbage with a 1 s minimum age the whole
/// time: no commit ever lands naming a collected blob (a late one fails
/// whole with `missing`), and every file of the final head reads back on a
/// third host with an empty cache.
#[test]
fn gc_on_one_host_is_safe_while_another_commits() {
    let (m, b) = shared().fresh();
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let mut o = RemoteOptions::new(&m, &b, dir.path().join(name));
        o.blob_gc_grace = Duration::from_secs(1);
        RemoteStore::open(o).unwrap()
    };
    let (writer, collector) = (open("w"), open("c"));
    VolumeStore::create(&writer, "v").unwrap();
    writer.set_retention("v", 0).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (landed, late, collected) = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            let mut removed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = collector
                    .gc(&vessel_host::storage::volume::GcOptions {
                        pinned: &|_| false,
                        min_age: None,
                    })
                    .unwrap();
                removed += r.removed_blobs;
                std::thread::sleep(Duration::from_millis(50));
            }
            removed
        });
        let (mut landed, mut late) = (0u64, 0u64);
        for i in 0..40u64 {
            let body = format!("contents {i}");
            let node = file_node(&writer, body.as_bytes()).unwrap();
            if i % 4 == 3 {
                // Past the minimum age: gc may take the blob first.
                std::thread::sleep(Duration::from_millis(1500));
            }
            // Replacing a file makes its old blob garbage.
            let path = format!("f{}", i % 10);
            match writer.commit("v", &[Change::Put { path, node }]) {
                Ok(_) => landed += 1,
                Err(VolumeError::Blob(vessel_host::storage::blobs::BlobError::Missing(_))) => {
                    late += 1
                }
                Err(e) => panic!("commit {i}: {e}"),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (landed, late, gc.join().unwrap())
    });
    assert_eq!(landed + late, 40);
    assert!(
        collected > 0,
        "gc collected nothing: the test did not race it"
    );
    let reader = open("r");
    let snap = reader.snapshot("v").unwrap();
    assert_eq!(snap.version, landed, "every landed commit, no other");
    for (path, node) in &snap.nodes {
        let bytes = reader.read_blob(&node.blob.unwrap(), 0, u64::MAX).unwrap();
        assert!(
            String::from_utf8(bytes).unwrap().starts_with("contents "),
            "{path}"
        );
    }
}

/// `--metadata`/`--blobs`, their environment variables and
/// DATA_DIR/config.toml all select the shared backend; one without the
/// other is a usage error naming the missing one.
#[test]
fn the_backend_comes_from_flags_env_or_the_config_file() {
    let (m, b) = shared().fresh();
    let flags = Vessel::new();
    flags
        .run(&[
            "--metadata",
            &m,
            "--blobs",
            &b,
            "dict",
            "create",
            "from-flags",
        ])
        .ok();
    let file = Vessel::new();
    std::fs::write(
        file.home.path().join("config.toml"),
        format!("metadata = {m:?}\nblobs = {b:?}\n"),
    )
    .unwrap();
    file.run(&["dict", "put", "from-flags", "k", "\"v\""]).ok();
    let env = Vessel::on_backend(&m, &b);
    assert_eq!(env.run(&["dict", "get", "from-flags", "k"]).ok(), "\"v\"\n");
    // The same data dir without the settings refuses, rather than show an
    // empty embedded store (a split brain that looks like data loss).
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(env.home.path());
    assert!(before.contains(&"shared-backend".to_owned()), "{before:?}");
    let mut plain = env.command();
    plain
        .env_remove("VESSEL_METADATA")
        .env_remove("VESSEL_BLOBS")
        .args(["dict", "list"]);
    let out = plain.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("uses the shared backend") && err.contains("--metadata"),
        "{err}"
    );
    assert_eq!(
        listing(env.home.path()),
        before,
        "no embedded store was started"
    );
    // The embedded default is untouched by all that.
    assert_eq!(Vessel::new().run(&["dict", "list"]).ok(), "");
    flags
        .run(&["--metadata", &m, "dict", "list"])
        .fails(2, &["--metadata needs --blobs"]);
    flags
        .run(&["--blobs", &b, "dict", "list"])
        .fails(2, &["--blobs needs --metadata"]);
    flags
        .run(&["--metadata", "mysql://x", "--blobs", &b, "dict", "list"])
        .fails(2, &["expected postgres://"]);
    flags
        .run(&["--metadata", &m, "--blobs", "http://nope", "dict", "list"])
        .fails(1, &["s3://"]);
    std::fs::write(flags.home.path().join("config.toml"), "metadta = \"x\"\n").unwrap();
    flags
        .run(&["dict", "list"])
        .fails(2, &["config.toml", "metadta"]);
}

/// Issue #17, point 8, on the shared backend: a commit is one transaction
/// whose blobs are uploaded first, and it becomes visible to other hosts at
/// COMMIT, so it must not be visible before PostgreSQL has flushed it. A
/// server (or role, or database) configured with `synchronous_commit = off`
/// would show, and acknowledge, commits a crash can take back: vessel's
/// sessions run with it on, unless the URL's `options` say otherwise.
#[test]
fn sessions_flush_commits_before_they_are_visible_whatever_the_server_default() {
    let s = shared();
    let (url, blobs) = s.fresh();
    // A role whose sessions default to asynchronous commits, as a server
    // tuned for speed would be.
    let role = format!("vessel_async_{}", std::process::id());
    s.pg.sql(&format!(
        "DO $$ BEGIN CREATE ROLE {role} LOGIN SUPERUSER; EXCEPTION WHEN duplicate_object THEN \
         NULL; END $$; ALTER ROLE {role} SET synchronous_commit = off"
    ));
    let as_role = url.replacen("postgres://vessel@", &format!("postgres://{role}@"), 1);
    assert_ne!(as_role, url);
    let cache = tempfile::tempdir().unwrap();
    let store = RemoteStore::open(RemoteOptions::new(
        &as_role,
        &blobs,
        cache.path().join("c1"),
    ))
    .unwrap();
    assert_eq!(store.session_setting("synchronous_commit").unwrap(), "on");
    // It works as before: a volume and a commit through those sessions.
    store.create_with("v", Some(1 << 20)).unwrap();
    let node = file_node(&store, b"flushed before seen").unwrap();
    store
        .commit(
            "v",
            &[Change::Put {
                path: "f".into(),
                node,
            }],
        )
        .unwrap();
    assert_eq!(store.info("v").unwrap().version, 1);
    // The role's default is really off (so the assertion above is the
    // override's doing), and an explicit choice in the URL wins.
    let explicit = format!("{as_role}%20-csynchronous_commit%3Doff");
    let chosen = RemoteStore::open(RemoteOptions::new(
        &explicit,
        &blobs,
        cache.path().join("c2"),
    ))
    .unwrap();
    assert_eq!(chosen.session_setting("synchronous_commit").unwrap(), "off");
}

/// A mount on one host pins its snapshot's blobs against a collection on
/// another: host B drops a file host A's mount still shows and collects
/// with no minimum age, and the blob stays; B cannot delete the mounted
/// volume. When the mount ends the blob goes; when a host dies with a
/// mount, its record lapses a lease later and the blob goes then.
#[test]
fn a_mount_on_one_host_pins_its_blobs_on_every_host() {
    use vessel_host::service::Service;
    use vessel_host::storage::volume::GcOptions;
    let (m, b) = shared().fresh();
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let mut o = RemoteOptions::new(&m, &b, dir.path().join(name));
        o.mount_lease = Duration::from_secs(2);
        RemoteStore::open(o).unwrap()
    };
    let (a, host_b) = (open("a"), open("b"));
    let collect = |s: &RemoteStore| {
        s.gc(&GcOptions {
            pinned: &|_| false,
            min_age: Some(Duration::ZERO),
        })
        .unwrap()
    };
    VolumeStore::create(&a, "v").unwrap();
    a.set_retention("v", 0).unwrap();
    let old = file_node(&a, b"the mounted snapshot's bytes").unwrap();
    let blob = old.blob.unwrap();
    a.commit(
        "v",
        &[Change::Put {
            path: "f".into(),
            node: old,
        }],
    )
    .unwrap();
    // Host A mounts v (as a container does: register, then read).
    let mount = a.register_mount("v").unwrap();
    let snap = a.snapshot("v").unwrap();
    mount.pin(snap.nodes.iter().filter_map(|(_, n)| n.blob));
    // Host B drops the file and collects: the blob stays for A's mount.
    host_b
        .commit("v", &[Change::Remove { path: "f".into() }])
        .unwrap();
    let r = collect(&host_b);
    assert_eq!((r.removed_blobs, r.kept_pinned), (0, 1), "{r:?}");
    assert_eq!(a.read_blob(&blob, 0, 3).unwrap(), b"the");
    // B sees the mount: deleting or renaming the volume is refused.
    assert_eq!(host_b.mounts_elsewhere("v").unwrap(), 1);
    assert_eq!(a.mounts_elsewhere("v").unwrap(), 0, "its own are local");
    let svc = Service::from_remote(host_b.clone());
    let e = svc.volume_delete("v", false).unwrap_err().to_string();
    assert!(e.contains("on this and other hosts"), "{e}");
    assert!(svc.volume_rename("v", "w").is_err());
    // The mount ends: its record goes, and so does the blob.
    drop(mount);
    let start = Instant::now();
    loop {
        let r = collect(&host_b);
        if r.removed_blobs == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never released: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(host_b.mounts_elsewhere("v").unwrap(), 0);
    // A host that dies with a mount: its record lapses a lease later.
    let other = file_node(&a, b"bytes of a host that died").unwrap();
    let other_blob = other.blob.unwrap();
    a.commit(
        "v",
        &[Change::Put {
            path: "g".into(),
            node: other,
        }],
    )
    .unwrap();
    let dying = a.register_mount("v").unwrap();
    host_b
        .commit("v", &[Change::Remove { path: "g".into() }])
        .unwrap();
    // No clean-up: the registration is leaked, the store closed.
    std::mem::forget(dying);
    drop(a);
    let r = collect(&host_b);
    assert_eq!(r.kept_pinned, 1, "still within the lease: {r:?}");
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        if collect(&host_b).removed_blobs == 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the dead host's record never lapsed"
        );
    }
    assert!(host_b.read_blob(&other_blob, 0, 1).is_err());
    svc.volume_delete("v", false).unwrap();
}

/// `-v` on the shared backend shows vessel's own lines, not a PostgreSQL
/// NOTICE per table at every start ("relation ... already exists,
/// skipping").
#[test]
fn verbose_starts_print_no_postgres_notices() {
    let (m, b) = shared().fresh();
    let host = Vessel::on_backend(&m, &b);
    host.run(&["volume", "list"]).ok();
    let out = host.run(&["-v", "volume", "list"]);
    out.ok();
    assert!(
        !out.stderr.contains("NOTICE") && !out.stderr.contains("skipping"),
        "{}",
        out.stderr
    );
}

/// A mount of an older version pins that version's blobs on every host,
/// even once the version's history is pruned: host A mounts version 1,
/// whose file version 2 replaced; the retention drops to 0 and host B
/// collects, and the blob stays until A's mount ends.
#[test]
fn a_mount_of_an_old_version_pins_its_blobs_past_retention() {
    use vessel_host::storage::volume::GcOptions;
    let (m, b) = shared().fresh();
    let dir = tempfile::tempdir().unwrap();
    let open =
        |name: &str| RemoteStore::open(RemoteOptions::new(&m, &b, dir.path().join(name))).unwrap();
    let (a, host_b) = (open("a"), open("b"));
    let collect = |s: &RemoteStore| {
        s.gc(&GcOptions {
            pinned: &|_| false,
            min_age: Some(Duration::ZERO),
        })
        .unwrap()
    };
    VolumeStore::create(&a, "v").unwrap();
    let old = file_node(&a, b"version one's bytes").unwrap();
    let blob = old.blob.unwrap();
    let put = |node: Node| Change::Put {
        path: "f".into(),
        node,
    };
    a.commit("v", &[put(old)]).unwrap();
    a.commit("v", &[put(file_node(&a, b"version two").unwrap())])
        .unwrap();
    // Host A mounts version 1, as a container pinned to it does.
    let mount = a.register_mount_at("v", Some(1)).unwrap();
    let snap = a.snapshot_at("v", 1).unwrap();
    mount.pin(snap.nodes.iter().filter_map(|(_, n)| n.blob));
    // Only the head is kept now; B prunes version 1's rows and collects.
    host_b.set_retention("v", 0).unwrap();
    let r = collect(&host_b);
    assert_eq!((r.removed_blobs, r.kept_pinned), (0, 1), "{r:?}");
    assert!(host_b.node_at("v", "f", 1).is_err(), "version 1 is pruned");
    assert_eq!(a.read_blob(&blob, 0, 7).unwrap(), b"version");
    drop(mount);
    let start = Instant::now();
    while collect(&host_b).removed_blobs != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "never released");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(host_b.read_blob(&blob, 0, 1).is_err());
}
