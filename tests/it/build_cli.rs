//! `vessel init` and `vessel build`, as a new user meets them: from an
//! empty folder, with the `vessel` binary on PATH and no checkout of
//! vessel anywhere in reach, an app is made, built and run in each guest
//! language; an edit rebuilds it on the next run, and the same sources
//! give the same bytes.

use std::path::Path;
use std::process::Command;

use vessel_tests::{Run, Vessel, js_tools_dir, vessel_bin};

/// A folder holding only a `vessel` binary (a hard link to the one under
/// test), for PATH.
fn bin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let linked = dir.path().join("vessel");
    if std::fs::hard_link(vessel_bin(), &linked).is_err() {
        std::fs::copy(vessel_bin(), &linked).unwrap();
    }
    dir
}

/// A new user: a data dir, a PATH whose only vessel is a link to the
/// binary under test, and an empty folder to work in.
struct User {
    v: Vessel,
    bin: tempfile::TempDir,
    root: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User {
            v: Vessel::new(),
            bin: bin_dir(),
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// `vessel ARGS` run as a user would: by name from PATH, in `cwd`,
    /// with nothing in the environment naming the checkout or its target
    /// directory.
    fn run(&self, cwd: &Path, args: &[&str]) -> Run {
        let out = Command::new("vessel")
            .args(args)
            .current_dir(cwd)
            .env("PATH", self.path())
            .env("VESSEL_HOME", self.v.home.path())
            .env("VESSEL_JS_TOOLS", js_tools_dir())
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_MANIFEST_DIR")
            .env_remove("VESSEL_PY_BUILDS")
            .env_remove("VESSEL_JS_BUILDS")
            .env_remove("VESSEL_CACHE_DIR")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run vessel: {e}"));
        Run::from(out)
    }

    /// PATH with the folder holding only `vessel` first.
    fn path(&self) -> std::ffi::OsString {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bin.path().to_owned()];
        dirs.extend(std::env::split_paths(&path));
        std::env::join_paths(dirs).unwrap()
    }

    /// How many compiled components the data dir's compile cache holds.
    fn cached(&self) -> usize {
        let listed = self.run(self.root.path(), &["cache", "ls", "--json"]);
        let all: serde_json::Value = serde_json::from_str(listed.ok()).unwrap();
        all.as_array().unwrap().len()
    }
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

#[test]
fn a_python_app_from_init_builds_and_runs_with_the_binary_alone() {
    let user = User::new();
    let root = &user.root;
    let made = user.run(root.path(), &["init", "--lang", "python", "hello"]);
    assert!(made.ok().contains("Made a Python app in hello"), "{made:?}");
    let app = root.path().join("hello");
    for f in ["app.py", "test_app.py", "README.md", ".gitignore"] {
        assert!(app.join(f).is_file(), "{f} missing");
    }
    // One file: no world, no manifest.
    assert!(!app.join("vessel.toml").exists() && !app.join("world.wit").exists());

    // The first run builds (there is no component yet), then runs `main`.
    let first = user.run(&app, &["run", "app.py::main", "--name", "ada"]);
    assert_eq!(first.ok(), "hello, ada (visit 1)\n", "{first:?}");
    assert!(
        first.stderr.contains(
            "building .vessel-build/app.wasm first: .vessel-build/app.toml does not exist yet"
        ),
        "{first:?}"
    );
    let wasm = app.join(".vessel-build/app.wasm");
    let built = std::fs::read(&wasm).unwrap();
    // The manifest comes from the decorators.
    let manifest = std::fs::read_to_string(app.join(".vessel-build/app.toml")).unwrap();
    assert!(
        manifest.contains("[dicts.\"visits\"]\ncreate_if_missing = true"),
        "{manifest}"
    );
    assert!(manifest.contains("entrypoint = \"main\""), "{manifest}");
    // Current: no build. `call` reaches the other function; `main`'s
    // parameter has a default, so it may be left out.
    let second = user.run(&app, &["call", "app.py", "hello", "--name", "bob"]);
    assert_eq!(second.ok(), "\"hello, bob (visit 1)\"\n");
    assert!(!second.stderr.contains("building"), "{second:?}");
    let default = user.run(&app, &["run", "app.py"]);
    assert_eq!(default.ok(), "hello, world (visit 1)\n");

    // An edit is built on the next run; --no-build runs the old one.
    edit(&app.join("app.py"), "hello, {name}", "hi, {name}");
    let stale = user.run(&app, &["run", "app.py", "--no-build", "--name", "ada"]);
    assert_eq!(stale.ok(), "hello, ada (visit 2)\n");
    let edited = user.run(&app, &["run", ".", "--name", "ada"]);
    assert_eq!(edited.ok(), "hi, ada (visit 3)\n", "{edited:?}");
    assert!(
        edited.stderr.contains(
            "building .vessel-build/app.wasm first: app.py is newer than .vessel-build/app.wasm"
        ),
        "{edited:?}"
    );
    assert_eq!(user.cached(), 2);

    // Undone, the edit gives the first build's bytes again, which the
    // compile cache already holds.
    edit(&app.join("app.py"), "hi, {name}", "hello, {name}");
    let undone = user.run(&app, &["run", "app.py::main", "--name", "ada"]);
    assert_eq!(undone.ok(), "hello, ada (visit 4)\n");
    assert_eq!(std::fs::read(&wasm).unwrap(), built);
    assert_eq!(user.cached(), 2);
    let again = user.run(&app, &["build", "-o", "again.wasm"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(std::fs::read(app.join("again.wasm")).unwrap(), built);

    // Its test runs on the host with vessel.testing, from the SDK the
    // binary writes.
    let sdk = user.run(&app, &["sdk", "python", ".vessel-sdk"]);
    assert!(sdk.ok().contains("pip install .vessel-sdk"), "{sdk:?}");
    let pytest = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&app)
        .env("PYTHONPATH", app.join(".vessel-sdk"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&pytest.stdout);
    assert!(
        pytest.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&pytest.stderr)
    );
    assert!(out.contains("2 passed"), "{out}");
}

#[test]
fn a_javascript_app_from_init_builds_and_runs_with_the_binary_alone() {
    let user = User::new();
    let root = &user.root;
    user.run(root.path(), &["init", "--lang", "js", "hello-js"])
        .ok();
    let app = root.path().join("hello-js");
    let run = user.run(&app, &["run", "app.js::main", "--name", "ada"]);
    assert_eq!(run.ok(), "hello, ada (visit 1)\n", "{run:?}");
    let run = user.run(&app, &["run", "."]);
    assert_eq!(run.ok(), "hello, world (visit 1)\n", "{run:?}");
    // The same sources, the same bytes.
    user.run(&app, &["build", ".", "-o", "again.wasm"]).ok();
    assert_eq!(
        std::fs::read(app.join("again.wasm")).unwrap(),
        std::fs::read(app.join("hello-js.wasm")).unwrap()
    );
    // Its test passes.
    let test = Command::new("sh")
        .arg("test.sh")
        .current_dir(&app)
        .env("PATH", user.path())
        .env("VESSEL_HOME", user.v.home.path())
        .env("VESSEL_JS_TOOLS", js_tools_dir())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(out.ends_with("all good\n"), "{out}");
    // vessel.d.ts types the SDK: the app type-checks strictly against it
    // (TypeScript's compiler comes with componentize-js's tools).
    let tsc = || {
        let out = Command::new(js_tools_dir().join("node_modules/.bin/tsc"))
            .args([
                "--noEmit",
                "--allowJs",
                "--checkJs",
                "--strict",
                "--target",
                "es2022",
            ])
            .args([
                "--module",
                "es2022",
                "--moduleResolution",
                "bundler",
                "app.js",
            ])
            .current_dir(&app)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = tsc();
    assert!(ok, "{text}");
    // And a misuse of it is caught.
    edit(
        &app.join("app.js"),
        "visits.set(name, n);",
        "visits.set(name, n, 3);",
    );
    let (ok, text) = tsc();
    assert!(
        !ok && text.contains("Expected 2 arguments, but got 3"),
        "{text}"
    );
}

#[test]
fn a_rust_app_from_init_builds_and_runs_with_the_binary_alone() {
    let user = User::new();
    let root = &user.root;
    let made = user.run(root.path(), &["init", "--lang", "rust", "hello-rs"]);
    assert!(
        made.ok().contains("and vessel-sdk/ (the Rust SDK)"),
        "{made:?}"
    );
    let app = root.path().join("hello-rs");
    let run = user.run(&app, &["run", "src/lib.rs::main", "--name", "ada"]);
    assert_eq!(run.ok(), "hello, ada (visit 1)\n", "{run:?}");
    let wasm = app.join("target/wasm32-wasip2/release/hello_rs.wasm");
    assert!(wasm.is_file());
    user.run(&app, &["build", "-o", "again.wasm"]).ok();
    assert_eq!(
        std::fs::read(app.join("again.wasm")).unwrap(),
        std::fs::read(&wasm).unwrap()
    );
}

#[test]
fn init_build_and_run_refuse_bad_input_by_name() {
    let user = User::new();
    let root = &user.root;
    let cwd = root.path();
    user.run(cwd, &["init", "My_App"]).fails(
        2,
        &["`My_App` cannot name an app: use lower-case letters, digits and single hyphens"],
    );
    std::fs::create_dir(cwd.join("taken")).unwrap();
    std::fs::write(cwd.join("taken/notes.txt"), "mine").unwrap();
    user.run(cwd, &["init", "taken"])
        .fails(2, &["taken exists and is not empty: choose a new folder"]);
    assert_eq!(
        std::fs::read_to_string(cwd.join("taken/notes.txt")).unwrap(),
        "mine"
    );
    user.run(cwd, &["build", "taken"]).fails(
        2,
        &["taken: no guest sources found: a guest's folder holds Cargo.toml (Rust), app.py"],
    );
    user.run(cwd, &["init", "ok"]).ok();
    user.run(cwd, &["run", "ok/app.py::main", "--entrypoint", "hello"])
        .fails(
            2,
            &["ok/app.py::main names the function already; drop --entrypoint hello"],
        );
    // A one-file app's unsupported hint names the function, the parameter
    // and the types there are.
    std::fs::create_dir(cwd.join("hints")).unwrap();
    std::fs::write(
        cwd.join("hints/app.py"),
        "import vessel\n\n\n@vessel.function()\ndef tally(seen: set[int]) -> int:\n    return len(seen)\n",
    )
    .unwrap();
    user.run(cwd, &["build", "hints/app.py"]).fails(
        1,
        &[
            "app.py: line 5: function `tally`, parameter `seen`: type `set[int]` is not \
             supported; use str, int, float, bool, bytes, None (results), list[T], dict[str, T], \
             Optional[T] (or T | None), tuple[A, B, ...] and dataclasses defined in the app",
        ],
    );
    std::fs::write(
        cwd.join("hints/app.py"),
        "import vessel\n\n\n@vessel.function(memory=\"lots\")\ndef f() -> None:\n    pass\n",
    )
    .unwrap();
    user.run(cwd, &["run", "hints/app.py::f"]).fails(
        1,
        &["line 4: option `memory` of `f` is 'lots'; it must be a int"],
    );
    // A build that fails says which, and runs nothing.
    std::fs::write(
        cwd.join("ok/app.py"),
        "import vessel\n@vessel.function()\ndef f( -> None:\n",
    )
    .unwrap();
    let out = user.run(cwd, &["run", "ok"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("ok/app.py: line 3: "), "{out:?}");
    assert!(
        out.stderr.contains("the Python build failed for ok/app.py"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    // Without decorators or a manifest there is no app.
    std::fs::write(cwd.join("ok/app.py"), "print('hi')\n").unwrap();
    user.run(cwd, &["run", "ok"]).fails(
        2,
        &["ok holds no vessel.toml and its app.py marks no function with @vessel.function"],
    );
}

/// requirements.txt is installed (with pip, into the build's own folder)
/// and bundled, so an import inside a function finds the package; a
/// package with native code is refused by name.
#[test]
fn python_dependencies_are_bundled_and_native_ones_refused() {
    let user = User::new();
    let root = &user.root;
    user.run(root.path(), &["init", "deps"]).ok();
    let app = root.path().join("deps");
    edit(
        &app.join("app.py"),
        "    return greeting(name, n)\n",
        "    import six\n\n    return greeting(name, n) + f\" with six {six.__version__}\"\n",
    );
    std::fs::write(app.join("requirements.txt"), "six==1.17.0\n").unwrap();
    let run = user.run(&app, &["run", ".", "--name", "ada"]);
    assert_eq!(
        run.ok(),
        "hello, ada (visit 1) with six 1.17.0\n",
        "{run:?}"
    );
    // A new requirement is a new build.
    std::fs::write(
        app.join("requirements.txt"),
        "six==1.17.0\nmarkupsafe==3.0.2\n",
    )
    .unwrap();
    let out = user.run(&app, &["run", ".", "--name", "ada"]);
    out.fails(
        1,
        &[
            "building .vessel-build/app.wasm first: requirements.txt is newer than .vessel-build/app.wasm",
            "these dependencies contain native code, compiled for this machine, which a \
             WebAssembly guest cannot load:\n  MarkupSafe (markupsafe/_speedups.",
            "the Python build failed for",
        ],
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}
