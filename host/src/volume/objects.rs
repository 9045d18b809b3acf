//! Small rules the object functions (`listdir`, `write-file`, `copy`)
//! share: the listing entry of a node, what they refuse to write over, the
//! inode check, joining a name to a directory.

use super::{Entry, EntryKind, Mount, StorageError, WitError};
use crate::storage::volume::{Node, NodeKind};

pub(super) fn entry_of(path: String, node: &Node) -> Entry {
    Entry {
        path,
        kind: match node.kind {
            NodeKind::File => EntryKind::File,
            NodeKind::Dir => EntryKind::Directory,
            NodeKind::Symlink => EntryKind::Symlink,
        },
        size: node.size,
        mtime: node.mtime_ms / 1000,
    }
}

/// Refuses to write a file over a directory, or over a file without
/// `overwrite`. `existing` is `Some(is_dir)` when something is at `path`.
pub(super) fn refuse_existing(
    path: &str,
    existing: Option<bool>,
    overwrite: bool,
) -> Result<(), StorageError> {
    let why = match existing {
        Some(true) => format!("{path} is a directory"),
        Some(false) if !overwrite => format!("{path} exists (pass overwrite to replace it)"),
        _ => return Ok(()),
    };
    Err(StorageError::Guest(WitError::AlreadyExists(why)))
}

impl Mount {
    /// `no-space` unless `extra` more inodes fit under the volume's limit.
    pub(super) fn check_room(&self, extra: u64) -> Result<(), StorageError> {
        if self.inodes.saturating_add(extra) > self.inode_limit {
            return Err(StorageError::Guest(WitError::NoSpace(format!(
                "volume `{}` would exceed its limit of {} inodes",
                self.volume, self.inode_limit
            ))));
        }
        Ok(())
    }
}

pub(super) fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}
