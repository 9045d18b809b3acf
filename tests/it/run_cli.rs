//! `vessel run` of a command component: stdio, exit codes, mounts, scratch.

use vessel_tests::{Vessel, guest};

fn cmd() -> String {
    guest("command").display().to_string()
}

#[test]
fn runs_with_args_and_exit_code() {
    let v = Vessel::new();
    assert_eq!(
        v.run(&["run", &cmd(), "--", "echo", "hi there"]).ok(),
        "hi there\n"
    );
    // WASI 0.2's `exit` carries only success or failure, so a Rust guest's
    // `exit(7)` arrives as failure: 1.
    let out = v.run(&["run", &cmd(), "--", "echo", "x", "exit", "7"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "x\n");
    assert_eq!(v.run(&["run", &cmd(), "--", "exit", "0"]).code, 0);
}

#[test]
fn stdin_reaches_the_guest() {
    use std::io::Write;
    let v = Vessel::new();
    let mut child = v
        .command()
        .args(["run", &cmd(), "--", "stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped text")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped text");
}

#[test]
fn mounts_read_write_and_read_only() {
    let v = Vessel::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in.txt"), "from host\n").unwrap();
    let mount = format!("{}:/data", host.path().display());
    let out = v.run(&[
        "run",
        &cmd(),
        "--mount",
        &mount,
        "--",
        "cat",
        "/data/in.txt",
        "write",
        "/data/out.txt",
        "from guest",
    ]);
    assert_eq!(out.ok(), "from host\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("out.txt")).unwrap(),
        "from guest"
    );

    let ro = format!("{}:/data:ro", host.path().display());
    let out = v.run(&[
        "run",
        &cmd(),
        "--mount",
        &ro,
        "--",
        "write",
        "/data/x.txt",
        "no",
    ]);
    out.fails(1, &["write /data/x.txt: Operation not permitted"]);
    assert!(!host.path().join("x.txt").exists());

    // No escape through `..` from a mount.
    let out = v.run(&[
        "run",
        &cmd(),
        "--mount",
        &mount,
        "--",
        "cat",
        "/data/../../etc/passwd",
    ]);
    out.fails(1, &["cat /data/../../etc/passwd:"]);
    assert!(!out.stdout.contains("root:"), "{out:?}");
}

#[test]
fn scratch_writes_stay_in_the_container() {
    let v = Vessel::new();
    let out = v.run(&[
        "run",
        &cmd(),
        "--",
        "write",
        "/note.txt",
        "scratch",
        "cat",
        "/note.txt",
        "write",
        "/tmp/t.txt",
        "temp",
        "cat",
        "/tmp/t.txt",
        "ls",
        "/",
    ]);
    assert_eq!(out.ok(), "scratchtempnote.txt tmp\n");
    // A second container starts with a scratch dir holding only /tmp.
    let out = v.run(&["run", &cmd(), "--", "ls", "/", "ls", "/tmp"]);
    assert_eq!(out.ok(), "tmp\n\n");
    // Host files are not visible.
    let out = v.run(&["run", &cmd(), "--", "cat", "/etc/passwd"]);
    out.fails(1, &["cat /etc/passwd: No such file or directory"]);
}

#[test]
fn bad_mount_specs_are_usage_errors() {
    let v = Vessel::new();
    v.run(&["run", &cmd(), "--mount", "nocolon"])
        .fails(2, &["HOST_DIR:GUEST_PATH"]);
    v.run(&["run", &cmd(), "--mount", "/definitely/not/here:/data"])
        .fails(2, &["not a directory"]);
    let missing = Vessel::new();
    missing
        .run(&["run", "/nope.wasm"])
        .fails(2, &["/nope.wasm"]);
}

#[test]
fn readlen_counts_what_it_reads() {
    // The read benchmark's guest command: chunked reads, checked length.
    let v = Vessel::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), vec![7u8; 100_000]).unwrap();
    let mount = format!("{}:/d:ro", host.path().display());
    let readlen = |bytes: &str| {
        v.run(&[
            "run",
            &cmd(),
            "--mount",
            &mount,
            "--",
            "readlen",
            "/d/f",
            "4096",
            bytes,
        ])
    };
    assert_eq!(readlen("100000").ok(), "");
    let out = readlen("99999");
    out.fails(1, &["readlen /d/f: read 100000 bytes, expected 99999"]);
}
