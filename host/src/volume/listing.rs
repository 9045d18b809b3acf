//! Listings of a mount's working tree for the guest volume API
//! (`listdir`, and `remove`'s check that a directory is empty).

use std::io;

use crate::bindings::vessel::storage::volume::{Entry, EntryKind};

/// Lists `dir` of a working tree (cap-std, so it cannot leave the mount),
/// in sorted pre-order. A work list, not recursion: a tree may be thousands
/// of levels deep, and this runs on the guest's fiber stack.
pub(super) fn walk(
    root: &cap_std::fs::Dir,
    dir: &str,
    recursive: bool,
    out: &mut Vec<Entry>,
) -> io::Result<()> {
    let children = |dir: &str| -> io::Result<Vec<String>> {
        let listing = if dir.is_empty() {
            root.entries()?
        } else {
            root.read_dir(dir)?
        };
        let mut names: Vec<String> = Vec::new();
        for e in listing {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name.starts_with(".vessel-copy-up-") {
                continue;
            }
            names.push(if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            });
        }
        // Reversed: popped from the end in order.
        names.sort_unstable_by(|a, b| b.cmp(a));
        Ok(names)
    };
    let mut todo = children(dir)?;
    while let Some(path) = todo.pop() {
        let meta = root.symlink_metadata(&path)?;
        let kind = if meta.is_dir() {
            EntryKind::Directory
        } else if meta.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::File
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let is_dir = meta.is_dir();
        out.push(Entry {
            path: path.clone(),
            kind,
            size: if is_dir { 0 } else { meta.len() },
            mtime,
        });
        if recursive && is_dir {
            todo.extend(children(&path)?);
        }
    }
    Ok(())
}
