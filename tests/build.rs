//! Builds the test programs (tests/programs) and the example components
//! (components/) for wasm32-wasip2 from source, with a nested cargo and a
//! target directory of their own, and tells the tests where they are.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let out_dir = PathBuf::from(env("OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out; keep the guests
    // beside the profile dirs so a changed build-script hash does not force
    // a rebuild from nothing.
    let target_root = out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.clone());
    let guest_target = target_root.join("guests");

    for watched in [
        "tests/programs",
        "components",
        "guest-sdk",
        "wit",
        "scripts/wasi-cc",
        "scripts/wasi-ar",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let workspaces = [root.join("tests/programs"), root.join("components")];
    for ws in &workspaces {
        build_workspace(ws, &guest_target);
    }
    let wasm_dir = guest_target.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=VESSEL_GUEST_DIR={}", wasm_dir.display());
    // tests/lib.rs builds the vessel binary for the same target.
    println!("cargo:rustc-env=VESSEL_TEST_TARGET={}", env("TARGET"));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("build script: {name} is not set"))
}

fn build_workspace(ws: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Cargo reads `.cargo/config.toml` from the current directory up, not
    // from the manifest's: components/.cargo/config.toml names the C
    // compiler for guests with C code (SQLite in components/dataset).
    cmd.current_dir(ws)
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg("wasm32-wasip2")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's flags and target are for the host, not for guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    if !status.success() {
        panic!(
            "building the guests in {} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)",
            ws.display()
        );
    }
}
