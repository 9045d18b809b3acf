//! The versioned side of the guest volume API: handles on a kept version
//! (`at-version`), `history`, `diff`, `fork` and `commit-with`. Every one
//! is the storage operation of the same name (see
//! [`crate::storage::volume::history`] and [`crate::storage::volume::fork`]);
//! this file checks the guest's grant and maps the types.

use wasmtime::component::Resource;

use super::{MountError, VolumeCtxView, VolumeHandle, entry_of, invalid};
use crate::bindings::vessel::storage::volume as wit;
use crate::blocking::off_worker;
use crate::error::{StorageError, WitError};
use crate::storage::volume::{
    DiffKind, Node, VolumeError, VolumeStore, check_new_volume_name, check_volume_name,
};

/// A path of volume `name`: at kept version `at`, or at the head.
pub(super) fn node(
    store: &dyn VolumeStore,
    name: &str,
    at: Option<u64>,
    rel: &str,
) -> Result<Option<Node>, VolumeError> {
    match at {
        Some(v) => store.node_at(name, rel, v),
        None => store.node(name, rel),
    }
}

/// A listing of volume `name`: at kept version `at`, or at the head.
pub(super) fn list_dir(
    store: &dyn VolumeStore,
    name: &str,
    at: Option<u64>,
    rel: &str,
    recursive: bool,
) -> Result<Vec<(String, Node)>, VolumeError> {
    match at {
        Some(v) => store.list_dir_at(name, rel, recursive, v),
        None => store.list_dir(name, rel, recursive),
    }
}

fn denied(name: &str) -> StorageError {
    StorageError::Guest(WitError::AccessDenied(format!(
        "this function is not granted volume `{name}`"
    )))
}

pub(super) fn at_version(
    v: &mut VolumeCtxView<'_>,
    name: String,
    version: u64,
) -> Result<Resource<VolumeHandle>, StorageError> {
    check_volume_name(&name)?;
    if !v.ctx.grant.allows(&name) {
        return Err(denied(&name));
    }
    let store = v.ctx.store()?.clone();
    // The root at that version: checks the volume and that the version is
    // kept, with the message naming the head or the oldest kept.
    off_worker(|| store.node_at(&name, "", version))?;
    Ok(v.table.push(VolumeHandle {
        name,
        mount: None,
        version,
        at: Some(version),
    })?)
}

pub(super) fn history(
    v: &mut VolumeCtxView<'_>,
    h: &Resource<VolumeHandle>,
    limit: u32,
) -> Result<wit::VersionHistory, StorageError> {
    if limit == 0 {
        return Err(invalid("history needs a limit of at least 1"));
    }
    let name = v.table.get(h)?.name.clone();
    let store = v.ctx.store()?.clone();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let got = off_worker(|| store.history(&name, limit))?;
    Ok(wit::VersionHistory {
        head: got.head,
        oldest: got.oldest,
        retention_ms: got.retention_ms,
        versions: got
            .versions
            .into_iter()
            .map(|x| wit::VersionInfo {
                version: x.version,
                time_ms: x.time_ms,
                changed: x.changed,
                removed: x.removed,
                bytes_added: x.bytes_added,
            })
            .collect(),
    })
}

/// The version a handle reads: the one it is at, its mount's, or (an
/// unmounted handle) `None`, the head.
fn handle_version(
    v: &VolumeCtxView<'_>,
    h: &Resource<VolumeHandle>,
) -> Result<Option<u64>, StorageError> {
    let handle = v.table.get(h)?;
    Ok(match (handle.at, handle.mount) {
        (Some(at), _) => Some(at),
        (None, Some(i)) => v.ctx.mounts.get(i).map(|m| m.version),
        (None, None) => None,
    })
}

pub(super) fn diff(
    v: &mut VolumeCtxView<'_>,
    h: &Resource<VolumeHandle>,
    since: u64,
    until: Option<u64>,
) -> Result<Vec<wit::DiffEntry>, StorageError> {
    let name = v.table.get(h)?.name.clone();
    let until = match until {
        Some(u) => Some(u),
        None => handle_version(v, h)?,
    };
    let store = v.ctx.store()?.clone();
    let diffs = off_worker(|| store.diff(&name, since, until))?;
    Ok(diffs
        .into_iter()
        .filter_map(|d| {
            let shown = d.after.as_ref().or(d.before.as_ref())?;
            let kind = entry_of(String::new(), shown).kind;
            Some(wit::DiffEntry {
                kind,
                size_before: d.before.as_ref().map(|n| n.size),
                size_after: d.after.as_ref().map(|n| n.size),
                path: d.path,
                change: match d.kind {
                    DiffKind::Added => wit::DiffChange::Added,
                    DiffKind::Modified => wit::DiffChange::Modified,
                    DiffKind::Removed => wit::DiffChange::Removed,
                },
            })
        })
        .collect())
}

pub(super) fn fork(
    v: &mut VolumeCtxView<'_>,
    h: &Resource<VolumeHandle>,
    name: String,
) -> Result<Resource<VolumeHandle>, StorageError> {
    check_new_volume_name(&name)?;
    if !v.ctx.grant.allows(&name) {
        return Err(denied(&name));
    }
    let src = v.table.get(h)?.name.clone();
    let version = handle_version(v, h)?;
    let store = v.ctx.store()?.clone();
    let info = off_worker(|| store.fork(&src, version, &name))?;
    Ok(v.table.push(VolumeHandle {
        name,
        mount: None,
        version: info.version,
        at: None,
    })?)
}

pub(super) fn commit_with(
    v: &mut VolumeCtxView<'_>,
    h: &Resource<VolumeHandle>,
    policy: wit::ConflictPolicy,
) -> Result<wit::CommitOutcome, StorageError> {
    v.refuse_version(h)?;
    let (name, mount, _) = v.handle(h)?;
    let policy = match policy {
        wit::ConflictPolicy::LastWriterWins => super::Conflicts::LastWriterWins,
        wit::ConflictPolicy::Fail => super::Conflicts::Fail,
    };
    let info = match mount {
        Some(i) => {
            let m = v.writable_mount(i)?;
            match off_worker(|| m.commit_by_guest(policy, true)) {
                Ok(info) => info,
                Err(MountError::Conflict { paths, head, .. }) => {
                    return Ok(wit::CommitOutcome::Conflict(wit::Conflict { paths, head }));
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            // Each write of an unmounted handle is a commit of its own:
            // nothing is pending.
            let store = v.ctx.store()?.clone();
            let version = store.info(&name)?.version;
            v.table.get_mut(h)?.version = version;
            crate::storage::volume::CommitInfo {
                version,
                changed: 0,
                removed: 0,
            }
        }
    };
    Ok(wit::CommitOutcome::Committed(wit::CommitInfo {
        version: info.version,
        changed: info.changed,
        removed: info.removed,
    }))
}
