//! Build facts for `vessel --version`: the git commit the binary was built
//! from and the wasmtime version it embeds.
//!
//! Both are best effort: a build outside a git checkout (a source tarball)
//! says `unknown` for the commit unless `VESSEL_GIT_COMMIT` names it, and
//! the wasmtime version comes from the workspace's Cargo.lock, falling back
//! to the major version the manifest requires.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VESSEL_GIT_COMMIT");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());

    let commit = match std::env::var("VESSEL_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => git_commit(&manifest_dir).unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=VESSEL_GIT_COMMIT={commit}");

    let lock = manifest_dir.join("..").join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let wasmtime = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| locked_version(&text, "wasmtime"))
        .unwrap_or_else(|| "48".to_owned());
    println!("cargo:rustc-env=VESSEL_WASMTIME_VERSION={wasmtime}");
}

/// `git rev-parse --short=12 HEAD`, with rerun triggers on the files that
/// move when HEAD does (HEAD itself, the branch's ref, packed-refs), so a
/// new commit rebuilds the version string and nothing else does.
fn git_commit(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).ok()?;
        Some(text.trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Only files that exist: cargo reruns the script on every build while
    // a named file is missing.
    let watch = |path: PathBuf| {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    };
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watch(Path::new(&git_dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        let common = dir.join(common);
        watch(common.join("packed-refs"));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(common.join(branch));
        }
    }
    Some(commit)
}

/// The version of `name` in a Cargo.lock: the line after `name = "NAME"`.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let next = lines.next()?.trim();
            let version = next.strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_owned());
        }
    }
    None
}
