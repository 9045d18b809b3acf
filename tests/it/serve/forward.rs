//! Commands forwarded to the owner of a data dir (`vessel serve` or a
//! running app): the same output and exit codes as when they run here, and
//! what happens when either side dies.

use super::*;

/// Runs the same dict commands in a data dir without an owner and in one
/// owned by `vessel serve`: the forwarded commands must print the same
/// output and exit with the same codes.
#[test]
fn dict_commands_reach_the_owner_with_the_same_output() {
    let script: &[&[&str]] = &[
        &["dict", "create", "kv"],
        &["dict", "create", "kv"],
        &["dict", "put", "kv", "a", "\"x\""],
        &["dict", "put", "kv", "b", "{\"n\": 1}"],
        &["dict", "put", "kv", "c", "raw bytes", "--raw"],
        &["dict", "put", "kv", "key with / and ü", "1"],
        &["dict", "get", "kv", "a"],
        &["dict", "get", "kv", "key with / and ü"],
        &["dict", "get", "kv", "missing"],
        &["dict", "get", "kv", "c", "--raw"],
        &["dict", "get", "kv", "b", "--raw"],
        &["dict", "put", "kv", "gone", "2"],
        &["dict", "rm", "kv", "gone"],
        &["dict", "rm", "kv", "gone"],
        &["dict", "get", "kv", "gone"],
        &["dict", "items", "kv"],
        &["dict", "items", "kv", "--json"],
        &["dict", "items", "kv", "-n", "1"],
        &["dict", "items", "kv", "--all"],
        &["dict", "list"],
        &["dict", "put", "kv", "a", "not json"],
        &["dict", "put", "nope", "k", "1"],
        &["dict", "get", "nope", "k"],
        &["dict", "clear", "kv"],
        &["dict", "items", "kv"],
        &["dict", "delete", "kv", "--yes"],
        &["dict", "delete", "kv", "--yes"],
    ];
    let run_all = |v: &Vessel| -> Vec<Outcome> {
        script
            .iter()
            .map(|args| {
                let r = v.run(args);
                (r.code, r.stdout, r.stderr)
            })
            .collect()
    };
    let labels: Vec<String> = script.iter().map(|a| a.join(" ")).collect();
    let (direct, _v, _server) = same_when_forwarded(&labels, run_all);
    let at = |args: &[&str]| {
        let i = script.iter().position(|s| *s == args).unwrap();
        direct[i].clone()
    };
    // `get --raw` writes the bytes `put --raw` stored, as they are (no
    // newline), and the JSON's bytes for a JSON value.
    assert_eq!(at(&["dict", "get", "kv", "c", "--raw"]).1, "raw bytes");
    assert_eq!(at(&["dict", "get", "kv", "b", "--raw"]).1, "{\"n\":1}");
    assert_eq!(at(&["dict", "rm", "kv", "gone"]).0, 0);
    assert_eq!(at(&["dict", "get", "kv", "gone"]).0, 1);
}

#[test]
fn a_running_app_serves_other_commands() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = vessel_tests::example_app("trainer", dir.path());
    let mut child = v
        .command()
        .args([
            "run",
            &app.display().to_string(),
            "--steps",
            "400",
            "--checkpoint-every",
            "5",
            "--step-ms",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Wait for a committed checkpoint.
    loop {
        let line = lines.next().expect("the trainer ended early").unwrap();
        if line.starts_with("checkpoint at step") {
            break;
        }
    }
    // While it runs, it owns the store; these go through its socket.
    let ls = v.run(&["volume", "ls", "checkpoints"]);
    assert_eq!(ls.ok(), "state\n");
    // A second run of the app goes through the owner: it runs there, on
    // the store the first run holds, and its output comes back here.
    let second = v.run(&["run", &app.display().to_string(), "--steps", "1"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(second.stdout.contains("step"), "{second:?}");
    v.run(&["dict", "create", "side"]).ok();
    assert_eq!(v.run(&["dict", "list"]).ok(), "side\t0\n");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The volume commands, side by side: without an owner and through
/// `vessel serve`'s socket.
#[test]
fn volume_commands_reach_the_owner_with_the_same_output() {
    let script: &[&[&str]] = &[
        &["volume", "create", "vol"],
        &["volume", "create", "vol"],
        &["volume", "put", "vol", "WORK/in/a.txt", "/a.txt"],
        &["volume", "put", "vol", "WORK/in/a.txt", "/a.txt"],
        &["volume", "put", "vol", "WORK/in/a.txt", "/a.txt", "--force"],
        &["volume", "put", "vol", "WORK/in", "/tree"],
        &["volume", "put", "vol", "WORK/in/a.txt", "/tree/"],
        &["volume", "put", "vol", "WORK/missing.txt", "/x"],
        &["volume", "put", "vol", "-", "/empty"],
        &["volume", "put", "nope", "WORK/in/a.txt"],
        &["volume", "ls", "vol"],
        &["volume", "ls", "vol", "tree", "--recursive"],
        &["volume", "ls", "vol", "nope"],
        &["volume", "get", "vol", "/a.txt", "-"],
        &["volume", "get", "vol", "/tree", "WORK/out"],
        &["volume", "get", "vol", "/tree", "WORK/out"],
        &["volume", "get", "vol", "/missing", "-"],
        &["volume", "cp", "vol", "a.txt", "b.txt"],
        &["volume", "cp", "vol", "tree", "tree2"],
        &["volume", "rm", "vol", "b.txt"],
        &["volume", "rm", "vol", "tree2"],
        &["volume", "rm", "vol", "tree2", "-r"],
        &["volume", "rename", "vol", "vol2"],
        &["volume", "ls", "vol2", "/", "-r"],
        &["volume", "gc", "--json"],
        &["volume", "delete", "vol2", "--yes"],
        &["volume", "delete", "vol2", "--yes"],
    ];
    let run_all = |v: &Vessel| -> Vec<Outcome> {
        let work = tempfile::tempdir().unwrap();
        let w = work.path().display().to_string();
        std::fs::create_dir_all(work.path().join("in/sub")).unwrap();
        std::fs::write(work.path().join("in/a.txt"), "alpha").unwrap();
        std::fs::write(work.path().join("in/sub/b.txt"), "beta").unwrap();
        script
            .iter()
            .map(|args| {
                let args: Vec<String> = args.iter().map(|a| a.replace("WORK", &w)).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let r = v.run(&args);
                (
                    r.code,
                    r.stdout.replace(&w, "WORK"),
                    r.stderr.replace(&w, "WORK"),
                )
            })
            .collect()
    };
    let labels: Vec<String> = script.iter().map(|a| a.join(" ")).collect();
    same_when_forwarded(&labels, run_all);
}

/// `vessel call` and `vessel run` side by side: without an owner, and
/// forwarded to `vessel serve` (the owner runs them on its store and the
/// output, exit codes and errors come back unchanged). Run from a work
/// directory with relative paths, since the owner's directory differs.
#[test]
fn call_and_run_reach_the_owner_with_the_same_output() {
    let guests = vessel_tests::guest_dir().display().to_string();
    let script: &[(&[&str], &str)] = &[
        (
            &[
                "call",
                "G/dictprobe.wasm",
                "op",
                "--args",
                r#"["put","d","k","v1",0]"#,
            ],
            "",
        ),
        (
            &[
                "call",
                "G/dictprobe.wasm",
                "op",
                "--args",
                r#"["get","d","k","",0]"#,
            ],
            "",
        ),
        (&["dict", "get", "d", "k"], ""),
        (&["call", "G/add.wasm", "add", "--a", "2", "--b", "3"], ""),
        (
            &["call", "G/add.wasm", "add", "--args-file", "args.json"],
            "",
        ),
        (
            &["call", "G/add.wasm", "add", "--args-file", "-"],
            "[40, 2]",
        ),
        (
            &["call", "G/add.wasm", "add", "--a", "@a.json", "--b", "1"],
            "",
        ),
        (
            &[
                "call",
                "G/add.wasm",
                "add",
                "--a",
                "@missing.json",
                "--b",
                "1",
            ],
            "",
        ),
        (&["call", "G/add.wasm", "nope"], ""),
        (&["call", "G/add.wasm", "add", "--a", "x", "--b", "1"], ""),
        (&["call", "missing.wasm", "f"], ""),
        (
            &["run", "G/command.wasm", "--", "echo", "hi", "exit", "3"],
            "",
        ),
        (
            &[
                "run",
                "G/command.wasm",
                "--mount",
                "in:/data",
                "--",
                "cat",
                "/data/a.txt",
                "ls",
                "/data",
            ],
            "",
        ),
        (
            &[
                "run",
                "G/command.wasm",
                "--mount",
                "nope:/data",
                "--",
                "ls",
                "/data",
            ],
            "",
        ),
        (
            &[
                "run",
                "G/command.wasm",
                "--",
                "cat",
                "/nope",
                "echo",
                "after",
            ],
            "",
        ),
        (&["run", "G/command.wasm", "--", "stdin"], "piped text"),
    ];
    let run_all = |v: &Vessel| -> Vec<Outcome> {
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(work.path().join("in")).unwrap();
        std::fs::write(work.path().join("in/a.txt"), "alpha\n").unwrap();
        std::fs::write(work.path().join("args.json"), "[5, 6]").unwrap();
        std::fs::write(work.path().join("a.json"), "41").unwrap();
        std::os::unix::fs::symlink(&guests, work.path().join("G")).unwrap();
        script
            .iter()
            .map(|(args, stdin)| {
                use std::io::Write as _;
                let mut child = v
                    .command()
                    .current_dir(work.path())
                    .args(*args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut input = child.stdin.take().unwrap();
                input.write_all(stdin.as_bytes()).unwrap();
                drop(input);
                let r = vessel_tests::Run::from(child.wait_with_output().unwrap());
                (r.code, r.stdout, r.stderr)
            })
            .collect()
    };
    let labels: Vec<String> = script.iter().map(|a| a.0.join(" ")).collect();
    let (direct, v, _server) = same_when_forwarded(&labels, run_all);
    assert_eq!(direct[1].1, "\"some v1 v1\"\n", "{direct:?}");
    assert_eq!(direct[15].1, "piped text", "{direct:?}");
    // The forwarded calls ran in the server: it holds the dict they wrote.
    assert_eq!(v.run(&["dict", "get", "d", "k"]).ok(), direct[2].1);
}

/// Either side of a forwarded command can die. A killed caller leaves the
/// owner serving; a killed owner fails the caller with exit code 1 and a
/// message saying so, and the next command opens the store itself.
#[test]
fn forwarded_commands_survive_either_side_dying() {
    let v = Vessel::new();
    let mut server = start(&v, &[]);
    let cmd = vessel_tests::guest("command").display().to_string();
    let spawn_reader = || {
        // `stdin` reads to the end of input, which the test never sends.
        v.command()
            .args(["run", &cmd, "--", "stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut caller = spawn_reader();
    std::thread::sleep(Duration::from_secs(2));
    caller.kill().unwrap();
    caller.wait().unwrap();
    v.run(&["dict", "create", "after-caller"]).ok();

    let caller = spawn_reader();
    std::thread::sleep(Duration::from_secs(2));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let out = vessel_tests::Run::from(caller.wait_with_output().unwrap());
    out.fails(1, &["stopped answering before the command finished"]);
    assert_eq!(v.run(&["dict", "list"]).ok(), "after-caller\t0\n");
}

/// The issue's acceptance test: while `vessel serve` runs a function, a
/// second `vessel` process puts a file, and the running function sees it
/// after `reload()`.
#[test]
fn a_file_put_by_another_process_reaches_a_running_function_after_reload() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = wait_app(dir.path(), true);
    let server = start(&v, &["--app", &app.display().to_string()]);
    let tok = v.token(&["app:probe", "volume:shared:rw"], None);
    // Another process puts the file, through the server's socket.
    a_running_call_sees_a_put(&server.addr, &tok, &v, "hello from outside");
}

/// Deleting a volume that a running call mounts is refused over HTTP with
/// 409 `busy` (the kind the CLI exits 1 for), and nothing is deleted.
#[test]
fn deleting_a_mounted_volume_over_http_is_409_busy() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let (server, tok) = serve_wait_app(&v, dir.path());
    let (status, body) = wait_over_http(&server, &tok, "spawn", 60000);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    // The container mounts the volume once it starts: until then a rename
    // to the same name (which changes nothing either way) is not refused
    // as busy.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = http(
            &server.addr,
            "POST",
            "/v1/volumes/shared/rename",
            Some(&tok),
            &[("Content-Type", "application/json")],
            br#"{"to": "shared"}"#,
        );
        // 204 (empty) until the mount is in, then 409 busy.
        let kind = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["kind"].as_str().map(str::to_owned));
        if kind.as_deref() == Some("busy") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never mounted: {}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = http(
        &server.addr,
        "DELETE",
        "/v1/volumes/shared",
        Some(&tok),
        &[],
        b"",
    );
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    let err = json_of(&body);
    assert_eq!(err["error"]["kind"], "busy", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("is mounted by 1"),
        "{err}"
    );
    let (status, _) = http(
        &server.addr,
        "GET",
        "/v1/volumes/shared",
        Some(&tok),
        &[],
        b"",
    );
    assert_eq!(status, 200, "still there");
}

/// The probe app with one function, `wait`, that waits for
/// /data/inbox/msg.txt in its mount of volume `shared`, reloading the
/// mount; `create` makes the app create the volume.
pub(crate) fn wait_app(dir: &Path, create: bool) -> PathBuf {
    let create = if create {
        "create_if_missing = true\n"
    } else {
        ""
    };
    write_app(
        dir,
        &format!(
            "[app]\nname = \"probe\"\n[volumes.shared]\n{create}\
             [functions.wait]\ncomponent = \"@PROBE@\"\nexport = \"wait-for-file\"\n\
             mounts = {{ \"/data\" = \"shared\" }}\ntimeout = 120\n"
        ),
    )
}

/// `vessel serve` of the [`wait_app`] (creating its volume), and a token
/// for its function and volume.
fn serve_wait_app(v: &Vessel, dir: &Path) -> (Server, String) {
    let app = wait_app(dir, true);
    let server = start(v, &["--app", &app.display().to_string()]);
    let tok = v.token(&["app:probe", "volume:shared:rw"], None);
    (server, tok)
}

/// `wait` over HTTP (`verb`: call or spawn) for a file that never comes,
/// giving up after `ms`.
fn wait_over_http(server: &Server, tok: &str, verb: &str, ms: u64) -> (u16, Vec<u8>) {
    let route = format!("/v1/apps/probe/functions/wait/{verb}");
    let body = format!(r#"["/data", "/data/never", {ms}]"#);
    http(
        &server.addr,
        "POST",
        &route,
        Some(tok),
        &[],
        body.as_bytes(),
    )
}

/// Spawns the [`wait_app`]'s `wait` on the server at `addr` with token
/// `tok`, checks it is running without the file, has `putter` (another
/// `vessel` process) put the file holding `text`, and checks the call
/// then answers with `text`.
pub(crate) fn a_running_call_sees_a_put(addr: &str, tok: &str, putter: &Vessel, text: &str) {
    let (status, body) = http(
        addr,
        "POST",
        "/v1/apps/probe/functions/wait/spawn",
        Some(tok),
        &[],
        br#"["/data", "/data/inbox/msg.txt", 60000]"#,
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let id = json_of(&body)["call_id"].as_str().unwrap().to_owned();
    // The function is running and has not seen the file.
    std::thread::sleep(Duration::from_millis(500));
    let (_, body) = http(addr, "GET", &format!("/v1/calls/{id}"), Some(tok), &[], b"");
    assert_eq!(json_of(&body), json!({"status": "running"}));
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("msg.txt");
    std::fs::write(&local, text).unwrap();
    let out = putter.run(&[
        "volume",
        "put",
        "shared",
        &local.display().to_string(),
        "/inbox/msg.txt",
    ]);
    assert!(out.ok().starts_with("Uploaded"), "{}", out.stdout);
    let (status, body) = http(
        addr,
        "GET",
        &format!("/v1/calls/{id}?wait=60"),
        Some(tok),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(
        json_of(&body),
        json!({"status": "done", "result": {"ok": text}})
    );
}

/// With an owner, forwarded `vessel call`s of the same component with the
/// same options reuse one warm container (its guest state survives), and
/// each call still sees what a fresh container would: its mounts at the
/// volume's head, its writes committed when the command returns, its
/// output on its own caller's stdio.
#[test]
fn forwarded_calls_reuse_a_warm_container_with_fresh_mounts() {
    let probe = vessel_tests::guest("appprobe");
    let copy = tempfile::tempdir().unwrap();
    let probe_copy = copy.path().join("appprobe.wasm");
    std::fs::copy(&probe, &probe_copy).unwrap();
    let probe = probe.display().to_string();
    // Without an owner, every call is a fresh container.
    let alone = Vessel::new();
    assert_eq!(alone.run(&["call", &probe, "count"]).ok(), "1\n");
    assert_eq!(alone.run(&["call", &probe, "count"]).ok(), "1\n");

    let v = Vessel::new();
    v.run(&["volume", "create", "w"]).ok();
    let _server = start(&v, &[]);
    for n in 1..=3 {
        assert_eq!(v.run(&["call", &probe, "count"]).ok(), format!("{n}\n"));
    }
    // Other options, or another export, are another container.
    let other = v.run(&["call", &probe, "count", "--memory", "256"]);
    assert_eq!(other.ok(), "1\n");
    assert_eq!(v.run(&["call", &probe, "count"]).ok(), "4\n");

    // A write in a kept container is committed when its command returns.
    let put = v.run(&[
        "call",
        &probe,
        "put-text",
        "--args",
        r#"["/data/a.txt", "one"]"#,
        "--volume",
        "w:/data",
    ]);
    assert_eq!(put.ok(), "{\"ok\":null}\n");
    assert_eq!(v.run(&["volume", "get", "w", "/a.txt", "-"]).ok(), "one");
    assert_eq!(v.run(&["volume", "history", "w"]).code, 0);
    // A file changed from outside between two calls of one kept container
    // is seen by the second, as a fresh mount would see it.
    let read = || {
        v.run(&[
            "call",
            &probe,
            "count-read",
            "--args",
            r#"["/data/a.txt"]"#,
            "--volume",
            "w:/data",
        ])
    };
    let first = read();
    assert_eq!(first.ok(), "\"1 one\"\n");
    assert!(first.stderr.contains("count-read call 1"), "{first:?}");
    let src = copy.path().join("two.txt");
    std::fs::write(&src, "two").unwrap();
    v.run(&[
        "volume",
        "put",
        "w",
        &src.display().to_string(),
        "/a.txt",
        "--force",
    ])
    .ok();
    // The kept container's output goes to the caller of the call that
    // wrote it.
    let second = read();
    assert_eq!(second.ok(), "\"2 two\"\n");
    assert!(second.stderr.contains("count-read call 2"), "{second:?}");
    assert!(!second.stderr.contains("call 1"), "{second:?}");
    // A third call in the same container: the reload before it finds
    // nothing new (one metadata read) and it still reads the head.
    assert_eq!(read().ok(), "\"3 two\"\n");
    // A container kept with a volume mounted, waiting for its next call,
    // does not block deleting or renaming that volume: it is let go.
    v.run(&["volume", "create", "gone"]).ok();
    let keep = v.run(&["call", &probe, "count", "--volume", "gone:/g"]);
    assert_eq!(keep.ok(), "1\n");
    v.run(&["volume", "rename", "gone", "gone2"]).ok();
    v.run(&["volume", "delete", "gone2", "--yes"]).ok();
    v.run(&["volume", "delete", "w", "--yes"]).ok();
    // A guest's panic reaches its own caller.
    let boom = v.run(&["call", &probe, "boom", "--args", r#"["boom here"]"#]);
    assert_eq!(boom.code, 1, "{boom:?}");
    assert!(boom.stderr.contains("boom here"), "{boom:?}");

    // A rebuilt component (another file stamp) starts afresh.
    let copy_arg = probe_copy.display().to_string();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(v.run(&["call", &copy_arg, "count"]).ok(), "1\n");
    assert_eq!(v.run(&["call", &copy_arg, "count"]).ok(), "2\n");
    std::fs::copy(vessel_tests::guest("appprobe"), &probe_copy).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(v.run(&["call", &copy_arg, "count"]).ok(), "1\n");
}

/// An app's container that waits for its next call (idle, warm) does not
/// block deleting the volume it mounts: it is retired first, with its
/// final commit. A running one does (above).
#[test]
fn an_idle_warm_container_does_not_block_deleting_its_volume() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let (server, tok) = serve_wait_app(&v, dir.path());
    let (status, body) = wait_over_http(&server, &tok, "call", 0);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The container now waits for a call, the volume still mounted in it.
    let (status, body) = http(
        &server.addr,
        "DELETE",
        "/v1/volumes/shared",
        Some(&tok),
        &[],
        b"",
    );
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    let (status, _) = http(
        &server.addr,
        "GET",
        "/v1/volumes/shared",
        Some(&tok),
        &[],
        b"",
    );
    assert_eq!(status, 404);
}
