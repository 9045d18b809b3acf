//! Small rules the object functions (`write-file`, `copy`) share: what
//! they refuse to write over, the inode check, joining a name to a
//! directory.

use super::{Mount, StorageError, WitError};

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
