//! Containers' scratch directories: made under a work directory with a
//! flocked `.lock`, and removed by the next process when a crash left them
//! behind.

use super::*;

/// The lock file inside a container directory.
pub(super) const LOCK_FILE: &str = ".lock";
/// The lock file while it is being made (see [`lock_dir`]).
pub(super) const LOCK_NEW: &str = ".lock.new";
/// Names of container directories in a work directory.
pub(super) const DIR_PREFIX: &str = "vessel-container-";
/// A stale container directory, renamed before removal so that a removal
/// cut short is finished later (no lock to check: it is dead).
pub(super) const TRASH_PREFIX: &str = ".trash-";

/// Locks a new container directory for the container's life. The lock file
/// is created under another name, locked, then renamed into place, so
/// [`remove_stale_dirs`] never sees an unlocked `.lock` of a live
/// container.
pub(super) fn lock_dir(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    let tmp = dir.join(LOCK_NEW);
    let f = crate::private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.lock()?;
    std::fs::rename(&tmp, dir.join(LOCK_FILE))?;
    Ok(f)
}

/// Removes the container directories in `parent` that no live container
/// holds: those a killed process left behind. A directory whose lock is
/// held, or that has no lock yet (being created), is kept. Returns how many
/// went. One that cannot be removed (another user's, in a shared
/// temporary directory) is passed over, not a reason to stop.
pub fn remove_stale_dirs(parent: &std::path::Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(TRASH_PREFIX) {
            // Another cleaner may be removing it at the same time.
            let _ = std::fs::remove_dir_all(&path);
            continue;
        }
        if !name.starts_with(DIR_PREFIX) {
            continue;
        }
        if !is_stale(&path) {
            continue;
        }
        let trash = parent.join(format!("{TRASH_PREFIX}{name}"));
        let gone = std::fs::rename(&path, &trash).and_then(|()| std::fs::remove_dir_all(&trash));
        match gone {
            Ok(()) => removed += 1,
            Err(e) => tracing::debug!("cannot remove {}: {e}", path.display()),
        }
    }
    Ok(removed)
}

/// Whether the container directory at `path` belongs to no live process:
/// its lock is free, or it has no held lock at all (the lock being made,
/// `.lock.new`, is free or absent). The latter is a process killed while it
/// made the directory; such directories used to be kept for ever, and piled
/// up. A live process making a directory at that moment loses it to the
/// cleaner and makes another ([`make_dir`]).
pub(super) fn is_stale(path: &std::path::Path) -> bool {
    let free = |name: &str| {
        std::fs::File::open(path.join(name))
            .ok()
            .map(|f| f.try_lock().is_ok())
    };
    free(LOCK_FILE).or_else(|| free(LOCK_NEW)).unwrap_or(true)
}

/// Makes and locks a container directory in `parent` (the system's
/// temporary directory when `None`), removing stale ones there first. A
/// directory another process's cleaner took before its lock was held is
/// made again.
pub(super) fn make_dir(
    parent: Option<&std::path::Path>,
) -> std::io::Result<(tempfile::TempDir, std::fs::File)> {
    let mut builder = tempfile::Builder::new();
    // 0700: the files a guest makes in its scratch and mounts get the
    // umask's modes (wasmtime-wasi sets none), and no other user may reach
    // them.
    builder
        .prefix(DIR_PREFIX)
        .permissions(crate::private::dir_permissions());
    // The system's temporary directory is swept like a work dir: an
    // embedder that sets no work dir would otherwise leak each killed
    // process's scratch (up to its disk limit) there for good.
    let parent = match parent {
        Some(parent) => {
            crate::private::create_dir_all(parent)?;
            parent.to_owned()
        }
        None => std::env::temp_dir(),
    };
    let mut attempt = 0;
    loop {
        clean_once(&parent);
        let dir = builder.tempdir_in(&parent)?;
        match lock_dir(dir.path()) {
            Ok(lock) => return Ok((dir, lock)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Runs [`remove_stale_dirs`] on `parent` the first time this process
/// starts a container there.
pub(super) fn clean_once(parent: &std::path::Path) {
    static CLEANED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut done = CLEANED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if done.iter().any(|p| p == parent) {
        return;
    }
    done.push(parent.to_owned());
    match remove_stale_dirs(parent) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            "removed {n} container director{} left by a process that died in {}",
            if n == 1 { "y" } else { "ies" },
            parent.display()
        ),
        Err(e) => tracing::warn!(
            "cannot remove stale container directories in {}: {e}",
            parent.display()
        ),
    }
}
