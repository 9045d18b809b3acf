//! Checks on the `vessel` binary itself. (The behaviour tests live in the
//! workspace's tests/ crate; this file also makes `cargo test` build the
//! binary those tests run.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn version_and_help() {
    let bin = env!("CARGO_BIN_EXE_vessel");
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("vessel "));
    let out = Command::new(bin).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no subcommand is a usage error");
}
