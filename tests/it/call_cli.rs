//! `vessel call` through the real binary: argument forms and bad input.

use vessel_tests::{Vessel, guest};

fn s(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[test]
fn add_with_positional_and_named_args_prints_5() {
    let v = Vessel::new();
    let add = s(&guest("add"));
    assert_eq!(v.run(&["call", &add, "add", "--args", "[2,3]"]).ok(), "5\n");
    assert_eq!(
        v.run(&["call", &add, "add", "--args", r#"{"a":2,"b":3}"#])
            .ok(),
        "5\n"
    );
    assert_eq!(
        v.run(&["call", &add, "add", "--a", "2", "--b", "3"]).ok(),
        "5\n"
    );
    assert_eq!(
        v.run(&["call", &add, "add", "--a=-7", "--b", "3"]).ok(),
        "-4\n"
    );
}

#[test]
fn args_file_and_param_file() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("blob.json");
    std::fs::write(&blob, r#"{"numbers": [1, 2, 3, 40]}"#).unwrap();
    let types = s(&guest("types"));
    // `sum` prints the total itself and returns it.
    let out = v.run(&[
        "call",
        &types,
        "sum",
        "--a",
        &format!("@{}", blob.display()),
    ]);
    assert_eq!(out.ok(), "46\n46\n");
    let args = dir.path().join("args.json");
    std::fs::write(&args, r#"[{"numbers": [5, -6]}]"#).unwrap();
    let out = v.run(&["call", &types, "sum", "--args-file", &s(&args)]);
    assert_eq!(out.ok(), "-1\n-1\n");
}

#[test]
fn bool_flags_and_string_fallback() {
    let v = Vessel::new();
    let types = s(&guest("types"));
    let out = v.run(&[
        "call",
        &types,
        "greet",
        "--name",
        "bob",
        "--excited",
        "--times",
        "2",
    ]);
    assert_eq!(out.ok(), "\"hello, bob! hello, bob!\"\n");
    let out = v.run(&[
        "call",
        &types,
        "greet",
        "--name",
        "bob",
        "--no-excited",
        "--times",
        "1",
    ]);
    assert_eq!(out.ok(), "\"hello, bob\"\n");
    let out = v.run(&[
        "call",
        &types,
        "greet",
        "--excited",
        "false",
        "--name",
        "7",
        "--times",
        "1",
    ]);
    // A string parameter takes the text as written, even when it would
    // parse as JSON (as `modal run --name 7` would).
    assert_eq!(out.ok(), "\"hello, 7\"\n");
    let out = v.run(&[
        "call",
        &types,
        "greet",
        "--excited",
        "false",
        "--name",
        "\"7\"",
        "--times",
        "1",
    ]);
    assert_eq!(out.ok(), "\"hello, 7\"\n");
}

#[test]
fn function_without_results_prints_nothing() {
    let v = Vessel::new();
    assert_eq!(v.run(&["call", &s(&guest("types")), "nothing"]).ok(), "");
}

#[test]
fn interface_export_by_short_and_full_name() {
    let v = Vessel::new();
    let types = s(&guest("types"));
    assert_eq!(
        v.run(&["call", &types, "maths#mul", "--args", "[6,7]"])
            .ok(),
        "42\n"
    );
    assert_eq!(
        v.run(&[
            "call",
            &types,
            "test:types/maths#mul",
            "--a",
            "3",
            "--b",
            "5"
        ])
        .ok(),
        "15\n"
    );
}

#[test]
fn bad_inputs_get_clear_errors_and_exit_2() {
    let v = Vessel::new();
    let add = s(&guest("add"));
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.wasm");
    v.run(&["call", &s(&missing), "add"])
        .fails(2, &["missing.wasm"]);

    let corrupt = dir.path().join("corrupt.wasm");
    std::fs::write(&corrupt, b"this is not wasm at all").unwrap();
    v.run(&["call", &s(&corrupt), "add"])
        .fails(2, &["corrupt.wasm", "not a WebAssembly component"]);

    let truncated = dir.path().join("truncated.wasm");
    let bytes = std::fs::read(guest("add")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    v.run(&["call", &s(&truncated), "add"])
        .fails(2, &["truncated.wasm", "not a valid component"]);

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    v.run(&["call", &s(&core), "add"])
        .fails(2, &["core.wasm", "core WebAssembly module"]);

    // A name that does not exist is not-found (exit 1), as a missing dict
    // or volume is; the command line itself was well formed.
    v.run(&["call", &add, "sub", "--args", "[1,2]"])
        .fails(1, &["no exported function `sub`", "add"]);
    v.run(&["call", &add, "add", "--args", r#"["x", 2]"#])
        .fails(
            2,
            &["function `add`", "parameter a", "expected s32", "\"x\""],
        );
    v.run(&["call", &add, "add", "--args", "[2147483648, 0]"])
        .fails(2, &["parameter a", "2147483648 is out of range for s32"]);
    v.run(&["call", &add, "add", "--args", "[1]"]).fails(
        2,
        &[
            "missing argument `b` of type s32",
            "add(a: s32, b: s32) -> s32",
        ],
    );
    v.run(&["call", &add, "add", "--args", "[1,2,3]"])
        .fails(2, &["takes 2 argument(s), got 3"]);
    v.run(&["call", &add, "add", "--a", "1", "--c", "2"])
        .fails(2, &["unknown parameter `--c`"]);
    v.run(&["call", &add, "add", "--args", r#"{"a":1,"z":2}"#])
        .fails(2, &["unknown parameter `z`"]);
    v.run(&["call", &add, "add", "--args", "[1,"])
        .fails(2, &["--args is not valid JSON"]);
    v.run(&["call", &add, "add", "--args", "5"])
        .fails(2, &["must be a JSON array"]);
    v.run(&["call", &add, "add", "--args", "[1]", "--a", "2"])
        .fails(2, &["given twice"]);
    v.run(&[
        "call",
        &add,
        "add",
        "--a",
        "1",
        "--b",
        "@/nonexistent/file.json",
    ])
    .fails(2, &["--b", "/nonexistent/file.json"]);
    v.run(&["call", &add, "add", "stray"])
        .fails(2, &["unexpected argument `stray`"]);
    v.run(&["call", &add, "add", "--timeout", "-1", "--args", "[1,2]"])
        .fails(2, &["--timeout"]);
    // vessel's own options after a parameter flag are still vessel's.
    v.run(&[
        "call", &add, "add", "--a", "1", "--b", "2", "--memory", "64", "--memory", "32",
    ])
    .fails(2, &["--memory is given twice"]);
    v.run(&[
        "call", &add, "add", "--a", "1", "--b", "2", "--volume", "nocolon",
    ])
    .fails(2, &["--volume nocolon: expected VOLUME:GUEST_PATH"]);
    v.run(&[
        "call",
        &add,
        "add",
        "--a",
        "1",
        "--b",
        "2",
        "--commit-every",
        "soon",
    ])
    .fails(2, &["--commit-every must be a number of seconds, got soon"]);
    v.run(&["call", &add]).fails(2, &[]);
}

#[test]
fn help_on_every_command() {
    let v = Vessel::new();
    for cmd in [&["--help"][..], &["call", "--help"], &["run", "--help"]] {
        let out = v.run(cmd);
        assert!(out.ok().contains("Usage"), "{out:?}");
    }
    assert!(v.run(&["call", "--help"]).ok().contains("--NAME VALUE"));
    // The global options are listed once, at the top, in full; a
    // subcommand's help names them in one line, and they still work after
    // the subcommand.
    let top = v.run(&["--help"]).ok().to_owned();
    for global in [
        "--data-dir <DIR>",
        "--metadata <URL>",
        "[possible values: sync, relaxed]",
    ] {
        assert!(top.contains(global), "{global} missing from\n{top}");
    }
    for sub in [
        &["dict", "get", "--help"][..],
        &["volume", "put", "--help"],
        &["serve", "--help"],
    ] {
        let help = v.run(sub).ok().to_owned();
        assert!(
            !help.contains("--metadata <URL>"),
            "{sub:?} repeats the globals:\n{help}"
        );
        assert!(
            help.contains("Global options (--data-dir, --durability")
                && help.contains("see `vessel --help`"),
            "{sub:?}:\n{help}"
        );
    }
    let other = tempfile::tempdir().unwrap();
    let dir = other.path().join("d");
    v.run(&["dict", "list", "--data-dir", dir.to_str().unwrap()])
        .ok();
    assert!(
        dir.join("db").exists(),
        "--data-dir after the subcommand was ignored"
    );
}

#[test]
fn two_mib_inline_argument() {
    let v = Vessel::new();
    let types = s(&guest("types"));
    // 2 MiB of bytes as base64 on the command line would exceed ARG_MAX, so
    // pass it through --args-file, which takes the same path.
    let dir = tempfile::tempdir().unwrap();
    let data = vec![7u8; 2 << 20];
    let doc = serde_json::json!([data]);
    let file = dir.path().join("big.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = v.run(&["call", &types, "bytes-len", "--args-file", &s(&file)]);
    assert_eq!(out.ok(), format!("{}\n", 2 << 20));
}

#[test]
fn components_without_storage_do_not_take_the_store() {
    use vessel_host::service::Service;
    use vessel_host::storage::embedded::EmbeddedOptions;
    let v = Vessel::new();
    // Another process (here: this test) owns the data dir's store.
    let _owner = Service::open_embedded(v.home.path(), EmbeddedOptions::default()).unwrap();
    let add = s(&guest("add"));
    assert_eq!(v.run(&["call", &add, "add", "--args", "[2,3]"]).ok(), "5\n");
    // A component that imports dicts needs the store, and says who has it.
    let dictprobe = s(&guest("volprobe"));
    v.run(&[
        "call",
        &dictprobe,
        "obj-list",
        "--args",
        r#"["v", "", false]"#,
    ])
    .fails(1, &["another process has it open"]);
}

/// `vessel wit DIR` writes, from inside the binary, the very WIT package
/// every guest in this repository is built against; `vessel wit` prints it.
#[test]
fn wit_writes_the_package_guests_build_against() {
    let v = Vessel::new();
    let out_dir = tempfile::tempdir().unwrap();
    let dir = out_dir.path().join("wit");
    let dir_arg = dir.display().to_string();
    let out = v.run(&["wit", &dir_arg]);
    assert!(
        out.ok().contains("(10 file(s) written, 0 already current)"),
        "{out:?}"
    );
    let repo_wit = vessel_tests::repo_root().join("wit");
    let mut todo = vec![repo_wit.clone()];
    let mut compared = 0;
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
                continue;
            }
            let rel = p.strip_prefix(&repo_wit).unwrap();
            assert_eq!(
                std::fs::read(dir.join(rel)).unwrap(),
                std::fs::read(&p).unwrap(),
                "{}",
                rel.display()
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 10);
    // Again: nothing to write. An edited file is not clobbered...
    assert!(
        v.run(&["wit", &dir_arg])
            .ok()
            .contains("0 file(s) written, 10 already current")
    );
    std::fs::write(dir.join("volume.wit"), "// mine").unwrap();
    v.run(&["wit", &dir_arg])
        .fails(2, &["volume.wit exists with other content", "--force"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("volume.wit")).unwrap(),
        "// mine"
    );
    // ...unless forced.
    assert!(
        v.run(&["wit", &dir_arg, "--force"])
            .ok()
            .contains("1 file(s) written")
    );
    // Printed, each file after its name.
    let printed = v.run(&["wit"]);
    let text = printed.ok();
    assert!(
        text.starts_with("// types.wit\npackage vessel:storage@"),
        "{text}"
    );
    assert!(text.contains("\n// deps/keyvalue/store.wit\n"), "{text}");
    assert!(text.contains("world imports {"), "{text}");
}

/// A component that is missing, or guest source given instead of one,
/// says how to build it, from what the folder holds.
#[test]
fn missing_components_say_how_to_build_them() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let run_in = |sub: &str, args: &[&str]| {
        let out = v
            .command()
            .current_dir(dir.path().join(sub))
            .args(args)
            .output()
            .unwrap();
        vessel_tests::Run::from(out)
    };
    let py = dir.path().join("py");
    std::fs::create_dir(&py).unwrap();
    std::fs::write(py.join("app.py"), "import wit_world\n").unwrap();
    std::fs::write(
        py.join("vessel.toml"),
        "[app]\nname = \"g\"\n[functions.f]\ncomponent = \"guestbook.wasm\"\nexport = \"f\"\n",
    )
    .unwrap();
    let out = run_in("py", &["run", "app.py"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("app.py is not a WebAssembly component"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("this is a Python guest: build the component with `vessel build .`"),
        "{out:?}"
    );
    // Without --no-build, `vessel run .` builds first; this app has no
    // world, so that build fails saying so.
    let out = run_in("py", &["run", "."]);
    assert!(
        out.stderr
            .contains("building guestbook.wasm first: guestbook.wasm does not exist yet"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("no world.wit (or wit/*.wit) in"),
        "{out:?}"
    );
    let out = run_in("py", &["run", ".", "--no-build"]);
    assert!(out.stderr.contains("guestbook.wasm"), "{out:?}");
    assert!(
        out.stderr.contains("the folder holds a Python guest"),
        "{out:?}"
    );

    let js = dir.path().join("js");
    std::fs::create_dir(&js).unwrap();
    std::fs::write(js.join("package.json"), "{}").unwrap();
    let out = run_in("js", &["call", "app.wasm", "f"]);
    assert!(
        out.stderr.contains("cannot read component app.wasm"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("a JavaScript guest: build the component with `vessel build .`"),
        "{out:?}"
    );

    let rs = dir.path().join("rs");
    std::fs::create_dir(&rs).unwrap();
    std::fs::write(rs.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    let wasm = "target/wasm32-wasip2/release/x.wasm";
    let out = run_in("rs", &["call", wasm, "f"]);
    assert!(
        out.stderr
            .contains("a Rust guest: build the component with `vessel build .`"),
        "{out:?}"
    );

    // Nothing there says which toolchain: no hint.
    let out = v.run(&["call", "/nonexistent/x.wasm", "f"]);
    assert!(
        out.stderr
            .contains("cannot read component /nonexistent/x.wasm"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("build the component"), "{out:?}");
}

/// A guest's panic reads as the guest's own message plus one line from
/// vessel; wasmtime's backtrace of wasm function numbers only with -v.
#[test]
fn a_guest_panic_prints_its_message_without_wasm_frames() {
    let v = Vessel::new();
    let probe = guest("appprobe").display().to_string();
    let out = v.run(&["call", &probe, "boom", "--args", r#"["boom here"]"#]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("boom here"), "{out:?}");
    assert!(
        out.stderr.contains(
            "error: function `boom`: the guest trapped: wasm trap: wasm `unreachable` instruction executed (the guest panicked or aborted; what it printed is on its stderr)"
        ),
        "{out:?}"
    );
    assert!(!out.stderr.contains("wasm function"), "{out:?}");
    let verbose = v.run(&["-v", "call", &probe, "boom", "--args", r#"["boom here"]"#]);
    assert_eq!(verbose.code, 1, "{verbose:?}");
    assert!(verbose.stderr.contains("wasm function"), "{verbose:?}");
}
