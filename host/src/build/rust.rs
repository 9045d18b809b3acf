//! Rust guests: `cargo build --release --target wasm32-wasip2` of the
//! folder's crate, with the target installed first when rustup is there,
//! and the `.wasm` cargo reports copied where the app expects it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::BuildError;

const TARGET: &str = "wasm32-wasip2";

/// Installs the target with rustup when it is missing. Without rustup
/// (a distribution's Rust), cargo's own error says what is missing.
fn ensure_target() -> Result<(), BuildError> {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if !out.status.success()
        || String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target with rustup (once)");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map_err(|source| BuildError::Spawn {
            tool: "rustup".to_owned(),
            source,
            hint: "",
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Rust(format!(
            "`rustup target add {TARGET}` failed (see above)"
        )))
    }
}

/// Builds the crate in `dir` and returns its component: copied to `out`
/// when given, else where cargo wrote it.
pub(super) fn build(dir: &Path, out: Option<&Path>) -> Result<PathBuf, BuildError> {
    ensure_target()?;
    let manifest = dir.join("Cargo.toml");
    let wanted = std::fs::canonicalize(&manifest).map_err(|source| BuildError::Io {
        path: manifest.clone(),
        source,
    })?;
    let started = std::time::Instant::now();
    let mut child = Command::new("cargo")
        .args(["build", "--release", "--target", TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        // Flags meant for the build of whatever ran vessel (a build script,
        // a test) are not for the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Spawn {
            tool: "cargo".to_owned(),
            source,
            hint: " (Rust guests build with cargo: see https://rustup.rs)",
        })?;
    let mut artifacts = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let field = |name: &str| msg.get(name).cloned().unwrap_or_default();
            if field("reason") != "compiler-artifact" {
                continue;
            }
            let ours = field("manifest_path")
                .as_str()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .is_some_and(|p| p == wanted);
            if !ours {
                continue;
            }
            for f in field("filenames").as_array().into_iter().flatten() {
                if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                    artifacts.push(PathBuf::from(f));
                }
            }
        }
    }
    let status = child.wait().map_err(|source| BuildError::Spawn {
        tool: "cargo".to_owned(),
        source,
        hint: "",
    })?;
    if !status.success() {
        return Err(BuildError::Failed {
            what: format!("cargo build --release --target {TARGET}"),
            path: manifest,
        });
    }
    artifacts.dedup();
    let built = match artifacts.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(BuildError::Rust(format!(
                "{}: cargo built no .wasm for this crate: a guest is a `cdylib` \
                 (`[lib] crate-type = [\"cdylib\"]`) or a binary",
                manifest.display()
            )));
        }
        several => {
            return Err(BuildError::Rust(format!(
                "{}: cargo built {} components ({}); name one with -o and build \
                 each crate on its own",
                manifest.display(),
                several.len(),
                several
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let result = match out {
        Some(out) => {
            if !same_file(&built, out) {
                copy_into_place(&built, out)?;
            }
            out.to_owned()
        }
        None => built,
    };
    let size = std::fs::metadata(&result).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "built {} ({:.1} MB) in {} s",
        result.display(),
        size as f64 / 1e6,
        started.elapsed().as_secs()
    );
    Ok(result)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies `from` to `to` through a temporary file beside it, so a reader
/// never sees half a component.
fn copy_into_place(from: &Path, to: &Path) -> Result<(), BuildError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = tempfile::NamedTempFile::new_in(&parent).map_err(io(&parent))?;
    std::fs::copy(from, tmp.path()).map_err(io(from))?;
    tmp.persist(to).map_err(|e| io(to)(e.error))?;
    Ok(())
}
