//! What vessel makes on disk is its user's alone: other local users of the
//! host must not read dict values, volume files, tokens or guests' scratch.
//!
//! - Directories vessel creates (the data dir and every part of it, the
//!   compile cache, the owner socket's directory) are made 0700 and files
//!   0600, with the mode given at creation, so that no moment exists in
//!   which they have wider rights, whatever the umask.
//! - sled cannot be told a mode; [`restrict_tree`] narrows its files after
//!   the fact, each time the store opens. Until then they sit in `db/`,
//!   which is 0700 like the data dir around it.
//! - Files a guest creates (through wasmtime-wasi, with the umask's modes)
//!   stay in its container directory, which is 0700: no other user reaches
//!   anything below it.
//! - A data dir that already exists with rights for group or others gets a
//!   warning naming it and the `chmod` that fixes it ([`exposure`]).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of every directory vessel creates.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file vessel creates.
pub const FILE_MODE: u32 = 0o600;

/// The effective uid of this process: who owns what vessel makes.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Mode 0700, for builders that take permissions (tempfile's).
pub fn dir_permissions() -> Permissions {
    Permissions::from_mode(DIR_MODE)
}

/// Creates the directory `path` (its parent must exist) with mode 0700.
pub fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(path)?;
    // The umask can only take bits away; a umask that took the owner's
    // own bits would leave a directory vessel cannot use.
    let mode = std::fs::symlink_metadata(path)?.mode() & 0o7777;
    if mode != DIR_MODE {
        std::fs::set_permissions(path, Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Creates `path` and its missing parents, each with mode 0700. Existing
/// directories keep their modes.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_all(parent)?;
    }
    match create_dir(path) {
        Ok(()) => Ok(()),
        // Made meanwhile by another thread or process.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Options that create files with mode 0600 (set read, write, create...
/// on them as needed).
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Takes every right of group and others away from the files and
/// directories under `root` (not following symlinks): for what others
/// created there with the umask's modes (sled). Entries that vanish
/// meanwhile are skipped.
pub fn restrict_tree(root: &Path) -> io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.file_type().is_symlink() {
                continue;
            }
            let path = entry.path();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            restrict(&path, meta.mode())?;
        }
    }
    let meta = std::fs::symlink_metadata(root)?;
    restrict(root, meta.mode())
}

/// Removes group and other bits from `path`, whose mode is `mode`.
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    if mode & 0o077 == 0 {
        return Ok(());
    }
    match std::fs::set_permissions(path, Permissions::from_mode(mode & 0o7700)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A warning when the existing data dir `dir` grants group or others any
/// right: it names the path and the `chmod` that fixes it. `None` when it
/// is private or does not exist yet (vessel will make it 0700).
pub fn exposure(dir: &Path) -> Option<String> {
    let meta = std::fs::metadata(dir).ok()?;
    let mode = meta.mode() & 0o777;
    if !meta.is_dir() || mode & 0o077 == 0 {
        return None;
    }
    let shown = dir.display();
    Some(format!(
        "the data dir {shown} is open to group or others (mode {mode:03o}): other users of this host can read its dicts, volumes and tokens; fix it with `chmod -R go-rwx {shown}`"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn directories_are_private_whatever_exists_above() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        for p in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&dir.path().join(p)), 0o700, "{p}");
        }
        // Existing directories are left as they are.
        std::fs::set_permissions(dir.path().join("a"), Permissions::from_mode(0o755)).unwrap();
        create_dir_all(&deep.join("d")).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o755);
        assert_eq!(mode(&deep.join("d")), 0o700);
    }

    #[test]
    fn restrict_tree_takes_group_and_other_rights() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("db");
        std::fs::create_dir_all(root.join("blobs")).unwrap();
        std::fs::write(root.join("conf"), b"x").unwrap();
        std::fs::write(root.join("blobs/1"), b"x").unwrap();
        for (p, m) in [
            ("", 0o755),
            ("blobs", 0o775),
            ("conf", 0o644),
            ("blobs/1", 0o666),
        ] {
            std::fs::set_permissions(root.join(p), Permissions::from_mode(m)).unwrap();
        }
        std::os::unix::fs::symlink("conf", root.join("link")).unwrap();
        restrict_tree(&root).unwrap();
        for (p, m) in [
            ("", 0o700),
            ("blobs", 0o700),
            ("conf", 0o600),
            ("blobs/1", 0o600),
        ] {
            assert_eq!(mode(&root.join(p)), m, "{p}");
        }
    }

    #[test]
    fn exposure_names_the_path_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(exposure(&data), None, "a missing dir is made private");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, Permissions::from_mode(0o700)).unwrap();
        assert_eq!(exposure(&data), None);
        std::fs::set_permissions(&data, Permissions::from_mode(0o750)).unwrap();
        let w = exposure(&data).unwrap();
        assert!(w.contains(&data.display().to_string()), "{w}");
        assert!(w.contains("mode 750"), "{w}");
        assert!(
            w.contains(&format!("chmod -R go-rwx {}", data.display())),
            "{w}"
        );
    }
}
