//! Conflict-detecting commits from guests: 100 containers racing to
//! commit the same file under `conflicts = "fail"` (each round exactly one
//! lands, every other gets the conflict naming the path, nothing is lost
//! silently) and under last-writer-wins (all land, as before); and the
//! versioned guest calls (`at-version`, `history`, `diff`, `fork`) of a
//! component through the real CLI.

use serde_json::{Value, json};
use vessel_host::app::Function;
use vessel_tests::Vessel;
use vessel_tests::harness::Host;

const WRITERS: usize = 100;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One round: every writer writes its text into its container's mount,
/// waits for the same instant, then commits under `fail` or not. The
/// outcomes, by writer.
async fn round(f: &Function, r: usize, fail: bool, wait_ms: u64) -> Vec<String> {
    let at = now_ms() + wait_ms;
    let calls: Vec<_> = (0..WRITERS)
        .map(|w| {
            let f = f.clone();
            tokio::spawn(async move {
                let args = json!(["/data", "/data/shared.txt", format!("w{w} r{r}"), at, fail]);
                f.call(args).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for c in calls {
        let got: Value = c.await.unwrap().unwrap();
        let text = got["ok"]
            .as_str()
            .unwrap_or_else(|| panic!("round {r}: {got}"))
            .to_owned();
        out.push(text);
    }
    out
}

/// The bytes the volume's `shared.txt` holds at its head.
fn shared_bytes(volumes: &dyn vessel_host::storage::volume::VolumeStore) -> Vec<u8> {
    let node = volumes.node("shared", "shared.txt").unwrap().unwrap();
    volumes.read_blob(&node.blob.unwrap(), 0, u64::MAX).unwrap()
}

fn race_app(host: &Host, conflicts: &str) -> vessel_host::app::App {
    let manifest = format!(
        r#"
[app]
name = "race"

[volumes.shared]
create_if_missing = true

[functions.race]
component = "@VOLPROBE@"
export = "write-and-commit"
mounts = {{ "/data" = {{ volume = "shared", conflicts = "{conflicts}" }} }}
max_containers = {WRITERS}
idle_timeout = 600
commit_every = 0
timeout = 120
"#
    );
    host.load(&manifest, &["volprobe"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_containers_commit_one_file_under_fail() {
    race_under_fail(Host::new()).await;
}

#[test]
fn a_hundred_containers_commit_one_file_under_fail_on_postgres_and_s3() {
    // The shared store blocks on its own runtime while it opens: outside
    // the test's.
    let (m, b) = vessel_tests::servers::shared().fresh();
    let host = Host::on_shared(&m, &b);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(race_under_fail(host));
}

async fn race_under_fail(host: Host) {
    let app = race_app(&host, "fail");
    let f = app.function("race").unwrap();
    let volumes = host.volumes().clone();
    for r in 0..3 {
        let before = volumes.info("shared").map(|i| i.version).unwrap_or(0);
        // The first round starts 100 containers: give them time to mount.
        let outcomes = round(&f, r, true, if r == 0 { 8_000 } else { 1_500 }).await;
        let winners: Vec<usize> = (0..WRITERS)
            .filter(|w| outcomes[*w].starts_with("committed "))
            .collect();
        assert_eq!(winners.len(), 1, "round {r}: {outcomes:?}");
        let w = winners[0];
        for (i, o) in outcomes.iter().enumerate() {
            if i != w {
                assert!(
                    o.starts_with("conflict ") && o.ends_with(" shared.txt"),
                    "round {r}, writer {i}: {o}"
                );
            }
        }
        // The winner's bytes are what the volume holds, in exactly one new
        // version.
        let info = volumes.info("shared").unwrap();
        assert_eq!(info.version, before + 1, "round {r}");
        assert_eq!(outcomes[w], format!("committed {}", info.version));
        let bytes = shared_bytes(volumes.as_ref());
        assert_eq!(bytes, format!("w{w} r{r}").as_bytes(), "round {r}");
        eprintln!("round {r}: writer {w} won");
    }
    assert_eq!(f.stats().started, WRITERS as u64, "{:?}", f.stats());
    // A container that commits again lands, with nothing newer in
    // between: a loser was told of version 3 by its report, the winner
    // wrote it.
    let retry = f
        .call(json!(["/data", "/data/shared.txt", "merged", 0, true]))
        .await
        .unwrap();
    assert_eq!(retry, json!({"ok": "committed 4"}));
    // The other losers still hold their uncommitted write, which they
    // never committed again: their final commits check it against what
    // they read, conflict, and shutdown says so rather than publishing it.
    let err = app.shutdown().await.unwrap_err().to_string();
    assert!(
        err.contains("another commit changed") && err.contains("shared.txt"),
        "{err}"
    );
    let info = volumes.info("shared").unwrap();
    assert_eq!(info.version, 4, "nothing landed at shutdown");
    let bytes = shared_bytes(volumes.as_ref());
    assert_eq!(bytes, b"merged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_containers_commit_one_file_last_writer_wins() {
    let host = Host::new();
    let app = race_app(&host, "last-writer-wins");
    let f = app.function("race").unwrap();
    let volumes = host.volumes().clone();
    for r in 0..2 {
        let before = volumes.info("shared").map(|i| i.version).unwrap_or(0);
        let outcomes = round(&f, r, false, if r == 0 { 8_000 } else { 1_500 }).await;
        let mut versions: Vec<(u64, usize)> = outcomes
            .iter()
            .enumerate()
            .map(|(w, o)| {
                let v = o
                    .strip_prefix("committed ")
                    .unwrap_or_else(|| panic!("round {r}, writer {w}: {o}"));
                (v.parse().unwrap(), w)
            })
            .collect();
        versions.sort_unstable();
        let numbers: Vec<u64> = versions.iter().map(|(v, _)| *v).collect();
        assert_eq!(
            numbers,
            ((before + 1)..=(before + WRITERS as u64)).collect::<Vec<_>>()
        );
        // The last commit's bytes win, as before conflict checks existed.
        let (_, last) = versions[WRITERS - 1];
        let bytes = shared_bytes(volumes.as_ref());
        assert_eq!(bytes, format!("w{last} r{r}").as_bytes());
    }
    app.shutdown().await.unwrap();
}

/// The versioned calls of the guest API through `vessel call`: a handle
/// on an old version reads it and refuses writes, history and diff of a
/// mount, a fork made by the guest, and a conflict then a merge from one
/// container.
#[test]
fn a_guest_reads_versions_forks_and_sees_conflicts() {
    let v = Vessel::new();
    let probe = vessel_tests::guest("volprobe").display().to_string();
    v.run(&["volume", "create", "g"]).ok();
    let put = |path: &str, text: &str| {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("f");
        std::fs::write(&local, text).unwrap();
        v.run(&[
            "volume",
            "put",
            "g",
            &local.display().to_string(),
            path,
            "--force",
        ])
        .ok();
    };
    put("/a.txt", "one"); // 1
    put("/a.txt", "two"); // 2
    put("/b.txt", "bee"); // 3
    let call = |mount: &str, function: &str, args: Value| {
        v.run(&[
            "call",
            &probe,
            function,
            "--volume",
            mount,
            "--args",
            &args.to_string(),
        ])
    };
    assert_eq!(
        call("g:/data", "read-at", json!(["g", 1, "a.txt"])).ok(),
        "{\"ok\":\"one\"}\n"
    );
    let w = call("g:/data", "write-at", json!(["g", 1, "c.txt"]));
    assert!(w.ok().contains("read-only"), "{w:?}");
    let gone = call("g:/data", "read-at", json!(["g", 9, "a.txt"]));
    assert!(gone.ok().contains("head is version 3"), "{gone:?}");
    assert_eq!(
        call("g:/data", "history-of", json!(["/data", 2])).ok(),
        "{\"ok\":[\"3 0\",\"3 1 0\",\"2 1 0\"]}\n"
    );
    assert_eq!(
        call("g:/data", "diff-of", json!(["/data", 1, null])).ok(),
        "{\"ok\":[\"M a.txt\",\"A b.txt\"]}\n"
    );
    assert_eq!(
        call("g:/data", "fork-to", json!(["/data", "g-fork"])).ok(),
        "{\"ok\":1}\n"
    );
    assert_eq!(
        v.run(&["volume", "get", "g-fork", "/b.txt", "-"]).ok(),
        "bee"
    );
    // Without a conflict, a commit under fail lands.
    assert!(
        call(
            "g:/data:fail",
            "write-and-commit",
            json!(["/data", "/data/a.txt", "mine", 0, true])
        )
        .ok()
        .contains("committed 4")
    );
    assert_eq!(v.run(&["volume", "get", "g", "/a.txt", "-"]).ok(), "mine");
}

/// A component built against vessel:storage@0.1.0 as first published
/// (before `at-version`, `history`, `diff`, `fork` and `commit-with` were
/// added to it) links and runs unchanged: mount, commit, listing, dicts.
#[test]
fn a_guest_built_against_the_first_package_runs_unchanged() {
    let v = Vessel::new();
    let old = vessel_tests::guest("oldguest").display().to_string();
    v.run(&["volume", "create", "o"]).ok();
    for n in 1..=2 {
        let out = v
            .run(&[
                "call",
                &old,
                "run",
                "--volume",
                "o:/data",
                "--args",
                r#"["/data", "counts"]"#,
            ])
            .ok()
            .to_owned();
        assert_eq!(out, format!("{{\"ok\":\"{n} 1 {n}\"}}\n"));
    }
    assert_eq!(
        v.run(&["volume", "get", "o", "/old.txt", "-"]).ok(),
        "from an old guest"
    );
}
