//! The guest toolchain's own files, carried inside the binary: the build
//! scripts, the Python and JavaScript SDKs, the pinned componentize-js
//! lock file and the WIT package. `vessel build` writes them once into a
//! folder named after their hash and runs the scripts from there, so a
//! guest builds with no checkout of vessel, and the checkout's scripts and
//! `vessel build` are one implementation that cannot drift apart.

use std::path::{Path, PathBuf};

use super::BuildError;

/// The files, by their path in vessel's repository (the scripts find the
/// rest relative to themselves, as in a checkout).
const FILES: &[(&str, &str)] = &[
    (
        "scripts/build-python",
        include_str!("../../../scripts/build-python"),
    ),
    (
        "scripts/build-js",
        include_str!("../../../scripts/build-js"),
    ),
    (
        "scripts/build-cache",
        include_str!("../../../scripts/build-cache"),
    ),
    (
        "scripts/py-app.py",
        include_str!("../../../scripts/py-app.py"),
    ),
    (
        "scripts/js-tools/package.json",
        include_str!("../../../scripts/js-tools/package.json"),
    ),
    (
        "scripts/js-tools/package-lock.json",
        include_str!("../../../scripts/js-tools/package-lock.json"),
    ),
    (
        "guest-sdk/python/vessel/__init__.py",
        include_str!("../../../guest-sdk/python/vessel/__init__.py"),
    ),
    (
        "guest-sdk/python/vessel/_app.py",
        include_str!("../../../guest-sdk/python/vessel/_app.py"),
    ),
    (
        "guest-sdk/python/vessel/_bindings.py",
        include_str!("../../../guest-sdk/python/vessel/_bindings.py"),
    ),
    (
        "guest-sdk/python/vessel/_dict.py",
        include_str!("../../../guest-sdk/python/vessel/_dict.py"),
    ),
    (
        "guest-sdk/python/vessel/_functions.py",
        include_str!("../../../guest-sdk/python/vessel/_functions.py"),
    ),
    (
        "guest-sdk/python/vessel/_volume.py",
        include_str!("../../../guest-sdk/python/vessel/_volume.py"),
    ),
    (
        "guest-sdk/python/vessel/errors.py",
        include_str!("../../../guest-sdk/python/vessel/errors.py"),
    ),
    (
        "guest-sdk/python/vessel/testing.py",
        include_str!("../../../guest-sdk/python/vessel/testing.py"),
    ),
    (
        "guest-sdk/python/vessel/py.typed",
        include_str!("../../../guest-sdk/python/vessel/py.typed"),
    ),
    (
        "guest-sdk/python/pyproject.toml",
        include_str!("../../../guest-sdk/python/pyproject.toml"),
    ),
    (
        "guest-sdk/js/vessel.js",
        include_str!("../../../guest-sdk/js/vessel.js"),
    ),
    (
        "guest-sdk/js/vessel.d.ts",
        include_str!("../../../guest-sdk/js/vessel.d.ts"),
    ),
];

/// The Rust SDK's sources (`guest-sdk/src`), which `vessel init --lang
/// rust` writes into a new app as a path dependency.
pub(super) const RUST_SDK: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../../guest-sdk/src/lib.rs")),
    (
        "src/dict.rs",
        include_str!("../../../guest-sdk/src/dict.rs"),
    ),
    (
        "src/error.rs",
        include_str!("../../../guest-sdk/src/error.rs"),
    ),
    (
        "src/functions.rs",
        include_str!("../../../guest-sdk/src/functions.rs"),
    ),
    (
        "src/volume.rs",
        include_str!("../../../guest-sdk/src/volume.rs"),
    ),
];

/// The carried files under `prefix` (`guest-sdk/python/`), by their path
/// below it.
pub(super) fn under(prefix: &str) -> impl Iterator<Item = (&'static str, &'static str)> {
    FILES
        .iter()
        .filter_map(move |(p, t)| p.strip_prefix(prefix).map(|rest| (rest, *t)))
}

/// Every carried file with its path in the toolkit folder: [`FILES`] and
/// the WIT package under `wit/`.
fn all() -> impl Iterator<Item = (String, &'static str)> {
    FILES.iter().map(|(p, t)| ((*p).to_owned(), *t)).chain(
        crate::wit::FILES
            .iter()
            .map(|(p, t)| (format!("wit/{p}"), *t)),
    )
}

/// Writes the toolkit under `root` (once per content: the folder is named
/// after the files' hash) and returns its folder. A half-written folder
/// never has the final name: it is written beside it and renamed.
pub(super) fn unpack(root: &Path) -> Result<PathBuf, BuildError> {
    let mut hasher = blake3::Hasher::new();
    for (path, text) in all() {
        hasher.update(path.as_bytes());
        hasher.update(&[0]);
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    let hash = hasher.finalize().to_hex();
    let dir = root.join(format!("toolkit-{}", hash.get(..16).unwrap_or_default()));
    if dir.is_dir() {
        return Ok(dir);
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    crate::private::create_dir_all(root).map_err(io(root))?;
    let staging = tempfile::Builder::new()
        .prefix(".toolkit-")
        .tempdir_in(root)
        .map_err(io(root))?;
    for (path, text) in all() {
        let file = staging.path().join(&path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&file, text).map_err(io(&file))?;
    }
    let staged = staging.keep();
    match std::fs::rename(&staged, &dir) {
        Ok(()) => Ok(dir),
        // Another build unpacked the same files first: use theirs.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&staged);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            Err(io(&dir)(e))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn listed(dir: &str, ext: &str) -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../");
        let mut found: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .map(|p| {
                p.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        found.sort();
        found
    }

    /// A new SDK module that is not carried would build in a checkout and
    /// fail with `vessel build`.
    #[test]
    fn every_sdk_file_is_carried() {
        let carried: Vec<&str> = FILES.iter().map(|(p, _)| *p).collect();
        for file in listed("guest-sdk/python/vessel", "py")
            .into_iter()
            .chain(listed("guest-sdk/python/vessel", "typed"))
            .chain(listed("guest-sdk/python", "toml"))
            .chain(listed("guest-sdk/js", "js"))
            .chain(listed("guest-sdk/js", "ts"))
        {
            assert!(carried.contains(&file.as_str()), "{file} is not carried");
        }
        let rust: Vec<String> = RUST_SDK
            .iter()
            .map(|(p, _)| format!("guest-sdk/{p}"))
            .collect();
        assert_eq!(rust.len(), listed("guest-sdk/src", "rs").len());
        for file in listed("guest-sdk/src", "rs") {
            assert!(rust.contains(&file), "{file} is not carried");
        }
    }

    /// vessel.d.ts declares every export of vessel.js, and nothing else.
    #[test]
    fn the_js_types_cover_the_js_sdk() {
        let names = |text: &str| {
            let mut found: Vec<String> = text
                .lines()
                .filter_map(|l| {
                    let rest = l
                        .strip_prefix("export class ")
                        .or_else(|| l.strip_prefix("export function "))?;
                    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
                    rest.get(..end).map(str::to_owned)
                })
                .collect();
            found.sort();
            found
        };
        let js = names(include_str!("../../../guest-sdk/js/vessel.js"));
        let ts = names(include_str!("../../../guest-sdk/js/vessel.d.ts"));
        assert!(js.len() > 20, "{js:?}");
        assert_eq!(ts, js);
    }

    #[test]
    fn unpacks_once_per_content() {
        let root = tempfile::tempdir().unwrap();
        let dir = unpack(root.path()).unwrap();
        assert_eq!(unpack(root.path()).unwrap(), dir);
        assert_eq!(
            std::fs::read_to_string(dir.join("scripts/build-python")).unwrap(),
            include_str!("../../../scripts/build-python")
        );
        assert!(dir.join("wit/deps/keyvalue/store.wit").is_file());
        // Nothing but the toolkit folder is left behind.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
