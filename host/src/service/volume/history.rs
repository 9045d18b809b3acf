//! The versioned side of the volume operations: `NAME@VERSION` in reads,
//! the history listing, diffs, restores, forks and retention. Every surface (CLI,
//! HTTP, clients) reaches history through these methods.
//!
//! A volume read takes `NAME` or `NAME@VERSION`; a name whose text after
//! its last `@` is all digits always means a version, so such names cannot
//! be created.

use serde::{Deserialize, Serialize};

use super::{EntryKind, Service, VolumeOpError};
use crate::storage::volume::{
    Change, CommitInfo, CommitOptions, DiffKind, History, Node, VolumeError, VolumeStore,
};

/// A volume as a read names it: the volume, and a version or the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeRef<'a> {
    pub name: &'a str,
    pub version: Option<u64>,
}

impl<'a> VolumeRef<'a> {
    /// Splits `NAME@VERSION` (the version in decimal); anything else is a
    /// plain name.
    pub fn parse(text: &'a str) -> Result<Self, VolumeOpError> {
        match text.rsplit_once('@') {
            Some((name, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                let version = v.parse().map_err(|_| {
                    VolumeOpError::Invalid(format!(
                        "{text}: version {v} is larger than {}",
                        u64::MAX
                    ))
                })?;
                Ok(VolumeRef {
                    name,
                    version: Some(version),
                })
            }
            _ => Ok(VolumeRef {
                name: text,
                version: None,
            }),
        }
    }

    /// The node at `path` in this version.
    pub(crate) fn node(
        &self,
        store: &dyn VolumeStore,
        path: &str,
    ) -> Result<Option<Node>, VolumeError> {
        match self.version {
            None => store.node(self.name, path),
            Some(v) => store.node_at(self.name, path, v),
        }
    }

    /// The entries under directory `path` in this version.
    pub(crate) fn list_dir(
        &self,
        store: &dyn VolumeStore,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<(String, Node)>, VolumeError> {
        match self.version {
            None => store.list_dir(self.name, path, recursive),
            Some(v) => store.list_dir_at(self.name, path, recursive, v),
        }
    }
}

/// Refuses `NAME@VERSION` where something is written: older versions are
/// read-only.
pub(crate) fn writable(text: &str) -> Result<(), VolumeOpError> {
    match VolumeRef::parse(text)? {
        VolumeRef {
            name,
            version: Some(v),
        } => Err(VolumeOpError::Invalid(format!(
            "{text}: version {v} of volume `{name}` is read-only; write to `{name}` \
             (or restore it with `vessel volume restore {text}`)"
        ))),
        _ => Ok(()),
    }
}

/// One path of a diff, as the CLI's JSON and the HTTP API spell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DiffEntry {
    pub path: String,
    pub change: DiffKind,
    /// What the path is in the newer version (in the older one when it
    /// was removed).
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Its size in the older version (absent: it did not exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_before: Option<u64>,
    /// Its size in the newer version (absent: it does not exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_after: Option<u64>,
}

/// How many times a restore replans when commits keep landing meanwhile.
const RESTORE_ATTEMPTS: usize = 8;

impl Service {
    /// The kept versions of volume `name`, newest first, at most `limit`.
    pub fn volume_history(&self, name: &str, limit: usize) -> Result<History, VolumeOpError> {
        Ok(self.volume_store()?.history(name, limit)?)
    }

    /// The paths that differ between versions `from` and `to` (`None`: the
    /// head) of volume `name`.
    pub fn volume_diff(
        &self,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<DiffEntry>, VolumeOpError> {
        let diffs = self.volume_store()?.diff(name, from, to)?;
        Ok(diffs
            .into_iter()
            .filter_map(|d| {
                let shown = d.after.as_ref().or(d.before.as_ref())?;
                Some(DiffEntry {
                    kind: shown.kind.into(),
                    size_before: d.before.as_ref().map(|n| n.size),
                    size_after: d.after.as_ref().map(|n| n.size),
                    path: d.path,
                    change: d.kind,
                })
            })
            .collect())
    }

    /// Makes version `version`'s tree the head of volume `name` again, as
    /// a new version (so the history shows the restore). Costs the paths
    /// changed since then, not the volume's size; copies no file contents.
    pub fn volume_restore(&self, name: &str, version: u64) -> Result<CommitInfo, VolumeOpError> {
        let store = self.volume_store()?;
        for _ in 0..RESTORE_ATTEMPTS {
            let head = store.info(name)?.version;
            let mut removes = Vec::new();
            let mut puts = Vec::new();
            for d in store.diff(name, version, Some(head))? {
                // `diff(version, head)`: `before` is the node to bring back.
                match d.before {
                    Some(node) => puts.push(Change::Put { path: d.path, node }),
                    None => removes.push(Change::Remove { path: d.path }),
                }
            }
            // Removals first (a directory in the way of a restored file
            // goes), then puts in path order (parents before children).
            let changes: Vec<Change> = removes.into_iter().chain(puts).collect();
            let options = CommitOptions {
                expect_head: Some(head),
                ..CommitOptions::default()
            };
            match store.commit_with(name, &changes, &options) {
                Err(VolumeError::HeadMoved { .. }) => continue,
                other => return Ok(other?),
            }
        }
        Err(VolumeError::Unavailable(format!(
            "volume `{name}` kept changing during the restore of version {version}; try again"
        ))
        .into())
    }

    /// Makes volume `dst` a fork of `src` (`NAME` or `NAME@VERSION`): a new
    /// volume whose version 1 is that tree, made without copying it (see
    /// [`crate::storage::volume::fork`]). Returns the new volume.
    pub fn volume_fork(&self, src: &str, dst: &str) -> Result<super::VolumeSummary, VolumeOpError> {
        let r = VolumeRef::parse(src)?;
        super::check_name(dst)?;
        Ok(self.volume_store()?.fork(r.name, r.version, dst)?.into())
    }

    /// Sets how long volume `name`'s replaced versions stay readable.
    pub fn volume_set_retention(
        &self,
        name: &str,
        retention_ms: u64,
    ) -> Result<super::VolumeSummary, VolumeOpError> {
        Ok(self
            .volume_store()?
            .set_retention(name, retention_ms)?
            .into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_number_after_at_is_a_version() {
        let r = VolumeRef::parse("data@12").unwrap();
        assert_eq!((r.name, r.version), ("data", Some(12)));
        let r = VolumeRef::parse("a@b@3").unwrap();
        assert_eq!((r.name, r.version), ("a@b", Some(3)));
        for plain in ["data", "data@", "data@x1", "@home"] {
            assert_eq!(VolumeRef::parse(plain).unwrap().version, None, "{plain}");
        }
        assert!(VolumeRef::parse("d@99999999999999999999999").is_err());
        assert!(writable("data@3").is_err());
        assert!(writable("data").is_ok());
    }
}
