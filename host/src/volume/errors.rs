//! How volume failures reach guests: domain errors (store, mount, host
//! I/O) mapped to the WIT `error` cases.

use std::io;

use super::{MountError, disk};
use crate::error::{StorageError, WitError};
use crate::storage::volume::VolumeError;

impl From<VolumeError> for StorageError {
    fn from(e: VolumeError) -> Self {
        StorageError::Guest(crate::error::wit_error(e.kind(), e.to_string()))
    }
}

impl From<MountError> for StorageError {
    fn from(e: MountError) -> Self {
        match e {
            MountError::Store(e) => e.into(),
            MountError::ReadOnly { .. } => {
                StorageError::Guest(WitError::AccessDenied(e.to_string()))
            }
            MountError::Io { .. } => StorageError::Guest(WitError::Io(e.to_string())),
            MountError::Deleted { .. } => StorageError::Guest(WitError::NotFound(e.to_string())),
            // `commit` has no room for the paths: `commit-with` returns
            // them (see `commit_with`).
            MountError::Conflict { .. } => StorageError::Guest(WitError::PreconditionFailed),
        }
    }
}

pub(super) fn io_to_wit(path: &str, e: io::Error) -> StorageError {
    let msg = format!("{path}: {e}");
    StorageError::Guest(match e.kind() {
        io::ErrorKind::NotFound => WitError::NotFound(msg),
        io::ErrorKind::AlreadyExists => WitError::AlreadyExists(msg),
        io::ErrorKind::PermissionDenied => WitError::AccessDenied(msg),
        io::ErrorKind::InvalidInput
        | io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory => WitError::InvalidArgument(msg),
        _ => WitError::Io(msg),
    })
}

pub(super) fn no_space(e: disk::NoSpace) -> StorageError {
    StorageError::Guest(WitError::NoSpace(e.to_string()))
}

pub(super) fn invalid(msg: impl Into<String>) -> StorageError {
    StorageError::Guest(WitError::InvalidArgument(msg.into()))
}
