//! Installing vessel as the README says (`cargo install --path host
//! --locked`), and what an installed CLI offers beside its commands:
//! `--version`, shell completions and man pages.

use std::path::Path;
use std::process::Command;

use vessel_tests::{BuildLayout, Vessel, cargo_command, repo_root};

/// What `--version` must say for this checkout: the crate version, the
/// commit (when the tests run from a git checkout) and wasmtime's version
/// from Cargo.lock.
fn expected_version() -> String {
    let root = repo_root();
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let mut lines = lock.lines();
    let wasmtime = loop {
        let line = lines.next().expect("Cargo.lock names wasmtime");
        if line == "name = \"wasmtime\"" {
            let v = lines.next().unwrap();
            break v
                .trim_start_matches("version = \"")
                .trim_end_matches('"')
                .to_owned();
        }
    };
    format!(
        "vessel {} (commit {commit}, wasmtime {wasmtime})",
        env!("CARGO_PKG_VERSION")
    )
}

fn run(bin: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cargo_install_puts_a_vessel_that_knows_its_version_on_path() {
    // The README's command, into a private root. `--debug` and this test's
    // target dir reuse the build the harness made, so the test costs a link
    // rather than a release build of wasmtime; what it checks (the path,
    // --locked, the installed binary and what it prints) is the same.
    let layout = BuildLayout::of_this_test().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut cmd = cargo_command();
    cmd.current_dir(repo_root())
        .args(["install", "--quiet", "--path", "host", "--locked"])
        .arg("--root")
        .arg(root.path())
        .arg("--target-dir")
        .arg(&layout.target_dir);
    if layout.profile == "debug" {
        cmd.arg("--debug");
    }
    if let Some(t) = layout.target {
        cmd.args(["--target", t]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo install failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = root.path().join("bin").join("vessel");
    assert!(bin.exists(), "cargo install put no {}", bin.display());

    // On PATH, as a user would run it.
    let path = format!(
        "{}:{}",
        root.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("vessel")
        .arg("--version")
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        expected_version()
    );

    // Bash completion: the script parses, and once sourced completes
    // vessel's own subcommands.
    let (code, script, err) = run(&bin, &["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vessel.bash");
    std::fs::write(&file, &script).unwrap();
    let probe = format!(
        "source {}; complete -p vessel; COMP_WORDS=(vessel vol); COMP_CWORD=1; \
         COMP_LINE='vessel vol'; COMP_POINT=10; _vessel vessel vol vessel; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &probe])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("-F _vessel vessel"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "volume"),
        "`vessel vol<TAB>` should offer volume:\n{stdout}"
    );
}

#[test]
fn completions_for_each_shell_name_vessels_commands() {
    let v = Vessel::new();
    for (shell, marker) in [
        ("bash", "complete -F _vessel"),
        ("zsh", "#compdef vessel"),
        ("fish", "complete -c vessel"),
    ] {
        let out = v.run(&["completions", shell]).ok().to_owned();
        assert!(out.contains(marker), "{shell}: {out}");
        for sub in ["call", "volume", "dict", "serve", "token"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // An unknown shell is a usage error that lists the ones there are.
    let out = v.run(&["completions", "tcsh"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("tcsh"), "{}", out.stderr);
    assert!(out.stderr.contains("bash"), "{}", out.stderr);
}

#[test]
fn man_pages_cover_every_command() {
    let v = Vessel::new();
    let page = v.run(&["man"]).ok().to_owned();
    assert!(
        page.starts_with(".ie") || page.contains(".TH vessel 1"),
        "{page}"
    );
    assert!(page.contains("vessel\\-volume"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let listing = v
        .run(&["man", "--out-dir", out_dir.to_str().unwrap()])
        .ok()
        .to_owned();
    for name in [
        "vessel.1",
        "vessel-volume.1",
        "vessel-dict-put.1",
        "vessel-call.1",
    ] {
        let path = out_dir.join(name);
        assert!(path.exists(), "no {name} in {listing}");
        assert!(listing.contains(&path.display().to_string()), "{listing}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(".TH"), "{name} is not a man page");
    }

    // A directory that cannot be made is named in the error.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let bad = blocker.join("man1");
    let out = v.run(&["man", "--out-dir", bad.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&bad.display().to_string()),
        "{}",
        out.stderr
    );
}

#[test]
fn every_subcommand_reports_the_same_version() {
    let v = Vessel::new();
    assert_eq!(v.run(&["--version"]).ok().trim(), expected_version());
    assert_eq!(v.run(&["-V"]).ok().trim(), expected_version());
    // propagate_version: `vessel volume --version` says the same.
    assert_eq!(
        v.run(&["volume", "--version"]).ok().trim(),
        expected_version().replacen("vessel ", "vessel-volume ", 1)
    );
}
