//! Dependency hygiene (issue #7 item 8): every Cargo.lock in the repository
//! pins versions at or above those that fix the advisories below.
//!
//! `cargo audit` and `cargo deny` need the RustSec advisory database,
//! fetched from GitHub, which this machine and CI cannot reach; this check
//! runs offline instead. A crate below its minimum fails with its name,
//! version, lock file and the advisory.

use std::path::{Path, PathBuf};

/// Crate, lowest acceptable version, and why.
const MINIMUMS: [(&str, [u64; 3], &str); 6] = [
    (
        "wasmtime",
        [48, 0, 4],
        "wasmtime 48 security release (GHSA-vqjp-4c8c-hfgg and the fixes released with it)",
    ),
    (
        "wasmtime-wasi",
        [48, 0, 4],
        "released with wasmtime 48.0.4 (its filesystem sandbox)",
    ),
    (
        "cap-primitives",
        [4, 0, 3],
        "GHSA-vqjp-4c8c-hfgg: symlinks with a trailing slash escaping a sandbox",
    ),
    ("cap-std", [4, 0, 3], "built on cap-primitives 4.0.3"),
    (
        "tokio",
        [1, 44, 2],
        "RUSTSEC-2025-0023: broadcast channel clones values without Sync",
    ),
    (
        "idna",
        [1, 0, 0],
        "RUSTSEC-2024-0421: Punycode labels that decode to ASCII",
    ),
];

/// (name, version) of every package in a Cargo.lock.
fn packages(lock: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name: Option<String> = None;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            name = None;
        } else if let Some(v) = line.strip_prefix("name = ") {
            name = Some(v.trim_matches('"').to_owned());
        } else if let Some(v) = line.strip_prefix("version = ")
            && let Some(n) = name.take()
        {
            out.push((n, v.trim_matches('"').to_owned()));
        }
    }
    out
}

/// `1.2.3+build` or `1.2.3-pre` as numbers; pre-releases count as below.
fn parse(version: &str) -> Option<([u64; 3], bool)> {
    let core = version.split('+').next()?;
    let (core, pre) = match core.split_once('-') {
        Some((c, _)) => (c, true),
        None => (core, false),
    };
    let mut parts = core.split('.').map(str::parse::<u64>);
    let v = [
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    ];
    Some((v, pre))
}

/// What in `lock` (read from `file`) is below its minimum.
fn violations(file: &str, lock: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (name, version) in packages(lock) {
        for (crate_name, min, why) in MINIMUMS {
            if name != crate_name {
                continue;
            }
            let ok = match parse(&version) {
                Some((v, pre)) => v > min || (v == min && !pre),
                None => false,
            };
            if !ok {
                out.push(format!(
                    "{file}: {name} {version} is below the minimum {}.{}.{} ({why}); run `cargo update -p {name}`",
                    min[0], min[1], min[2]
                ));
            }
        }
    }
    out
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn every_lock_file_pins_patched_versions() {
    let root = repo_root();
    let mut checked = Vec::new();
    let mut bad = Vec::new();
    for rel in [
        "Cargo.lock",
        "fuzz/Cargo.lock",
        "tests/programs/Cargo.lock",
        "components/Cargo.lock",
    ] {
        let path = root.join(rel);
        let Ok(lock) = std::fs::read_to_string(&path) else {
            assert_ne!(rel, "Cargo.lock", "the workspace has no Cargo.lock");
            continue;
        };
        let names: Vec<String> = packages(&lock).into_iter().map(|(n, _)| n).collect();
        checked.extend(
            MINIMUMS
                .iter()
                .filter(|(c, _, _)| names.iter().any(|n| n == c))
                .map(|(c, _, _)| format!("{rel}:{c}")),
        );
        bad.extend(violations(rel, &lock));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The host's own lock has the sandbox crates: the check saw them.
    for c in [
        "wasmtime",
        "wasmtime-wasi",
        "cap-primitives",
        "cap-std",
        "tokio",
    ] {
        assert!(
            checked.contains(&format!("Cargo.lock:{c}")),
            "{c} is not in Cargo.lock: {checked:?}"
        );
    }
}

#[test]
fn a_version_below_its_minimum_is_named() {
    let lock = r#"
[[package]]
name = "wasmtime"
version = "48.0.3"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "cap-primitives"
version = "4.0.3-rc.1"

[[package]]
name = "tokio"
version = "1.44.2"

[[package]]
name = "cap-std"
version = "10.0.0"
"#;
    let bad = violations("x/Cargo.lock", lock);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0].contains("x/Cargo.lock: wasmtime 48.0.3 is below the minimum 48.0.4"),
        "{}",
        bad[0]
    );
    assert!(bad[1].contains("cap-primitives 4.0.3-rc.1"), "{}", bad[1]);
}
