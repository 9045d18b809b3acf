//! The reference examples in components/, run as a user would run them
//! (`vessel run components/NAME ...`), with their output checked.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use vessel_tests::{Vessel, example_app};

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn reload_example_prints_what_modal_prints() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = example_app("reload", dir.path());
    let out = v.run(&["run", &s(&app)]);
    assert_eq!(
        out.ok(),
        "p=/root/foo/bar.txt does not exist!\n\
         Created p=/root/foo/bar.txt\n\
         Committed p=/root/foo/bar.txt\n\
         p=/root/foo/bar.txt does not exist!\n\
         p=/root/foo/bar.txt contains hello\n"
    );
    // The committed file is in the volume for everyone.
    assert_eq!(
        v.run(&["volume", "get", "my-volume", "/bar.txt", "-"]).ok(),
        "hello"
    );
}

#[test]
fn kv_example_entrypoint_takes_modal_style_flags() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = s(&example_app("kv", dir.path()));
    assert_eq!(v.run(&["run", &app]).ok(), "cloud: dictionary\n");
    assert_eq!(
        v.run(&["run", &app, "--key", "k", "--value", "v"]).ok(),
        "k: v\n"
    );
    assert_eq!(
        v.run(&["run", &app, "--", "--key", "k", "--value", "w", "--no-put"])
            .ok(),
        "k: v\n"
    );
    assert_eq!(
        v.run(&[
            "run",
            &app,
            "--entrypoint",
            "main",
            "--key",
            "cloud",
            "--no-put"
        ])
        .ok(),
        "cloud: dictionary\n"
    );
    // The dict is an ordinary dict outside the app.
    assert_eq!(v.run(&["dict", "get", "kv", "k"]).ok(), "\"v\"\n");
    v.run(&["run", &app, "--nope", "1"]).fails(
        2,
        &["unknown parameter `--nope`", "main(key: option<string>"],
    );
}

#[test]
fn model_store_inference_reloads_on_a_miss() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = example_app("model-store", dir.path());
    let out = v.run(&["run", &s(&app)]);
    assert_eq!(
        out.ok(),
        "m1: not in this container's snapshot; reloading\n\
         before training: {\"err\":\"no model m1\"}\n\
         trained m1 (version 1)\n\
         m1: not in this container's snapshot; reloading\n\
         after training: {\"ok\":9.5}\n\
         again: {\"ok\":9.5}\n"
    );
    // A second run finds the model at once: it was committed.
    let out = v.run(&[
        "call",
        &s(&app),
        "inference",
        "--model-id",
        "m1",
        "--request",
        "[2, 0, 0]",
    ]);
    assert_eq!(out.ok(), "{\"ok\":1.0}\n");
}

/// What the trainer computes for `steps` steps, uninterrupted.
fn expected_value(steps: u32) -> u64 {
    (0..steps).fold(1u64, |v, s| {
        (v.wrapping_mul(31).wrapping_add(u64::from(s))) % 1_000_003
    })
}

#[test]
fn trainer_resumes_from_its_last_checkpoint_after_kill_9() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = s(&example_app("trainer", dir.path()));
    let args = [
        "run",
        &app,
        "--steps",
        "60",
        "--checkpoint-every",
        "5",
        "--step-ms",
        "40",
    ];
    let mut child = v
        .command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acknowledged = 0u32;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("checkpoint at step ") {
            acknowledged = n.parse().unwrap();
            if acknowledged >= 20 {
                break;
            }
        }
    }
    assert!(acknowledged >= 20, "the trainer never reached step 20");
    child.kill().unwrap(); // SIGKILL: no final commit, no clean shutdown
    child.wait().unwrap();

    let out = v.run(&args);
    let text = out.ok();
    let first = text.lines().next().unwrap();
    let resumed: u32 = first
        .strip_prefix("resumed from step ")
        .unwrap_or_else(|| panic!("did not resume: {text}"))
        .parse()
        .unwrap();
    assert!(
        resumed >= acknowledged && resumed.is_multiple_of(5),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            "done: step 60 value {}\n{}\n",
            expected_value(60),
            expected_value(60)
        )),
        "{text}"
    );
    // Done is done: a third run starts at the end.
    let out = v.run(&args);
    assert!(
        out.ok().starts_with("resumed from step 60\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn dataset_keeps_a_sqlite_database_on_a_volume() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = s(&example_app("dataset", dir.path()));
    // Three concurrent ingests, each in its own container, all land: the
    // writer lease puts them in turn (without it the last commit of
    // dataset.db would win and keep one batch of three).
    assert_eq!(
        v.run(&["run", &app]).ok(),
        "rows before: 0\n\
         ingested 9 rows in 3 concurrent batches\n\
         dataset.db: 9 rows in 3 batches (volume version 3)\n\
         apples: 3 rows, total 7.5, mean 2.5\n\
         pears: 3 rows, total 12, mean 4\n\
         plums: 3 rows, total 1.5, mean 0.5\n"
    );
    // A second run starts from the committed database.
    assert_eq!(
        v.run(&["run", &app]).ok(),
        "rows before: 9\n\
         ingested 9 rows in 3 concurrent batches\n\
         dataset.db: 18 rows in 6 batches (volume version 6)\n\
         apples: 6 rows, total 15, mean 2.5\n\
         pears: 6 rows, total 24, mean 4\n\
         plums: 6 rows, total 3, mean 0.5\n"
    );

    assert_eq!(
        v.run(&["call", &app, "query", "--category", "pears"]).ok(),
        "{\"ok\":[{\"category\":\"pears\",\"count\":6,\"total\":24.0,\"mean\":4.0}]}\n"
    );
    assert_eq!(
        v.run(&[
            "call",
            &app,
            "sql",
            "--statement",
            "SELECT count(*), count(DISTINCT id), sum(rows) FROM batches"
        ])
        .ok(),
        "{\"ok\":{\"columns\":[\"count(*)\",\"count(DISTINCT id)\",\"sum(rows)\"],\
         \"rows\":[[{\"integer\":6},{\"integer\":6},{\"integer\":18}]]}}\n"
    );
    assert_eq!(
        v.run(&[
            "call",
            &app,
            "sql",
            "--statement",
            "DELETE FROM measurements"
        ])
        .ok(),
        "{\"err\":\"only read-only statements are allowed\"}\n"
    );
    assert_eq!(
        v.run(&[
            "call",
            &app,
            "ingest",
            "--rows",
            r#"[{"category": "figs", "value": 1}, {"category": "figs", "value": "inf"}]"#
        ])
        .ok(),
        "{\"err\":\"rows[1].value: inf is not a finite number\"}\n"
    );
    let out = v.run(&[
        "call",
        &app,
        "ingest",
        "--rows",
        r#"[{"category": "figs", "value": 0.125}]"#,
    ]);
    let info: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    let info = &info["ok"];
    assert_eq!(
        (
            &info["inserted"],
            &info["total-rows"],
            &info["total-batches"],
            &info["version"]
        ),
        (&1.into(), &19.into(), &7.into(), &7.into()),
        "{info}"
    );
    // The batch id is the writer lease's fencing token: later than all.
    assert!(info["batch"].as_u64().unwrap() > 6, "{info}");

    // Only the database was committed: no journal, no lock files.
    assert_eq!(v.run(&["volume", "ls", "dataset"]).ok(), "dataset.db\n");
    // It is an ordinary SQLite file: its header, and a size of exactly
    // page size x page count.
    let file = dir.path().join("dataset.db");
    v.run(&["volume", "get", "dataset", "dataset.db", &s(&file)])
        .ok();
    let db = std::fs::read(&file).unwrap();
    assert!(db.starts_with(b"SQLite format 3\0"), "not a SQLite file");
    let header = |at: usize, len: usize| {
        db.get(at..at + len)
            .unwrap()
            .iter()
            .fold(0usize, |n, b| n << 8 | usize::from(*b))
    };
    let page_size = match header(16, 2) {
        1 => 65_536,
        n => n,
    };
    assert_eq!(db.len(), page_size * header(28, 4));
}
