//! The WIT package guests build against (`vessel:storage`, with its
//! dependency `wasi:keyvalue`), carried inside the host so that a guest can
//! be built with nothing but the `vessel` binary: `vessel wit DIR` writes
//! it where wit-bindgen, componentize-py and jco take a WIT directory.
//! These are the very files `bindings`' `bindgen!` reads, so a guest built
//! against them matches this host.

use std::path::{Path, PathBuf};

/// The package's files, by path inside a WIT directory.
pub const FILES: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../wit/types.wit")),
    ("dict.wit", include_str!("../../wit/dict.wit")),
    ("volume.wit", include_str!("../../wit/volume.wit")),
    ("functions.wit", include_str!("../../wit/functions.wit")),
    ("worlds.wit", include_str!("../../wit/worlds.wit")),
    (
        "deps/keyvalue/store.wit",
        include_str!("../../wit/deps/keyvalue/store.wit"),
    ),
    (
        "deps/keyvalue/atomic.wit",
        include_str!("../../wit/deps/keyvalue/atomic.wit"),
    ),
    (
        "deps/keyvalue/batch.wit",
        include_str!("../../wit/deps/keyvalue/batch.wit"),
    ),
    (
        "deps/keyvalue/watch.wit",
        include_str!("../../wit/deps/keyvalue/watch.wit"),
    ),
    (
        "deps/keyvalue/world.wit",
        include_str!("../../wit/deps/keyvalue/world.wit"),
    ),
];

/// Why the package could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WitError {
    #[error(
        "{0} exists with other content (an older vessel's, or edited); pass --force to replace it"
    )]
    Differs(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes the package into `dir` (made if missing). A file that is there
/// with the same content is left alone; one with other content is an
/// error unless `force`, and then nothing has been written. Returns the
/// files written.
pub fn write_to(dir: &Path, force: bool) -> Result<Vec<PathBuf>, WitError> {
    write_files(dir, FILES, force)
}

/// Writes `files` (path inside `dir`, content) into `dir` as
/// [`write_to`] writes the package: the SDKs `vessel sdk` writes go the
/// same way.
pub fn write_files<P: AsRef<str>, T: AsRef<str>>(
    dir: &Path,
    files: &[(P, T)],
    force: bool,
) -> Result<Vec<PathBuf>, WitError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| WitError::Io { path, source }
    };
    let mut todo = Vec::new();
    for (name, text) in files {
        let (path, text) = (dir.join(name.as_ref()), text.as_ref());
        match std::fs::read(&path) {
            Ok(old) if old == text.as_bytes() => {}
            Ok(_) if !force => return Err(WitError::Differs(path)),
            Ok(_) => todo.push((path, text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => todo.push((path, text)),
            Err(e) => return Err(io(&path)(e)),
        }
    }
    let mut written = Vec::new();
    for (path, text) in todo {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every file of the repository's `wit/` is carried, and nothing else.
    #[test]
    fn the_carried_files_are_the_whole_wit_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk = Vec::new();
        let mut todo = vec![root.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else if p.extension().is_some_and(|x| x == "wit") {
                    let rel = p.strip_prefix(&root).unwrap();
                    on_disk.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut carried: Vec<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
        carried.sort();
        assert_eq!(carried, on_disk);
    }

    #[test]
    fn writes_once_and_refuses_to_clobber_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("wit");
        assert_eq!(write_to(&out, false).unwrap().len(), FILES.len());
        // The same content again writes nothing.
        assert!(write_to(&out, false).unwrap().is_empty());
        std::fs::write(out.join("dict.wit"), "edited").unwrap();
        let err = write_to(&out, false).unwrap_err();
        assert!(
            err.to_string()
                .contains("dict.wit exists with other content"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("dict.wit")).unwrap(),
            "edited"
        );
        assert_eq!(write_to(&out, true).unwrap().len(), 1);
        assert_eq!(
            std::fs::read_to_string(out.join("dict.wit")).unwrap(),
            include_str!("../../wit/dict.wit")
        );
    }
}
