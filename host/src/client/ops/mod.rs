//! One surface for the operations on volumes and dicts from outside a
//! guest: the [`Operations`] trait, implemented by the local [`Service`]
//! (the store, opened in this process) and by [`OwnerClient`] (HTTP to the
//! process that owns the data dir, or to `vessel serve`). The CLI holds a
//! `Box<dyn Operations>` and never asks which one it has; both run the
//! same service code in the end, so output and exit codes agree.
//!
//! The HTTP side's calls are written once, in [`http`], which the Rust
//! [`Client`](super::Client) uses too; their URLs come from the route
//! table ([`crate::server::api::urls`]).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::server::client::{Body, ClientError, OwnerClient};
use crate::service::Service;
use crate::service::dict::{DictItem, DictItems, DictServiceError, DictSummary};
use crate::service::volume::{
    DiffEntry, EntryInfo, EntryKind, GetReport, Progress, PutReport, VolumeOpError, VolumeSummary,
};
use crate::storage::embedded::backup::BackupReport;
use crate::storage::volume::{CommitInfo, GcReport, History};

mod owner;

/// Why an operation failed: the service's own error when it ran here, the
/// server's answer when it ran there.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Volume(#[from] VolumeOpError),
    #[error(transparent)]
    Dict(#[from] DictServiceError),
    #[error(transparent)]
    Http(#[from] ClientError),
}

/// The operations on volumes and dicts, wherever the store is. Methods
/// block; run them on a blocking thread from async code.
pub trait Operations: Send + Sync {
    /// Whether transfers can report progress here (they can when the bytes
    /// move in this process).
    fn reports_progress(&self) -> bool;

    /// Creates a volume with a byte quota and a retention (`None`: none,
    /// and the default).
    fn volume_create(
        &self,
        name: &str,
        max_bytes: Option<u64>,
        retention_ms: Option<u64>,
    ) -> Result<(), OpError>;
    /// Sets how long replaced versions stay readable.
    fn volume_set_retention(&self, name: &str, retention_ms: u64)
    -> Result<VolumeSummary, OpError>;
    /// The kept versions, newest first, at most `limit`.
    fn volume_history(&self, name: &str, limit: usize) -> Result<History, OpError>;
    /// The paths that differ between two versions (`to`: default the head).
    fn volume_diff(
        &self,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<DiffEntry>, OpError>;
    /// Makes version `version` the head again, as a new version.
    fn volume_restore(&self, name: &str, version: u64) -> Result<CommitInfo, OpError>;
    /// Makes `dst` a fork of `src` (`NAME[@VERSION]`), copying nothing.
    fn volume_fork(&self, src: &str, dst: &str) -> Result<VolumeSummary, OpError>;
    fn volume_info(&self, name: &str) -> Result<VolumeSummary, OpError>;
    /// Sets (`None`: removes) the byte quota.
    fn volume_set_quota(
        &self,
        name: &str,
        max_bytes: Option<u64>,
    ) -> Result<VolumeSummary, OpError>;
    fn volume_list(&self) -> Result<Vec<VolumeSummary>, OpError>;
    fn volume_ls(&self, name: &str, path: &str, recursive: bool)
    -> Result<Vec<EntryInfo>, OpError>;
    fn volume_cp(
        &self,
        name: &str,
        srcs: &[&str],
        dst: &str,
        recursive: bool,
    ) -> Result<CommitInfo, OpError>;
    fn volume_rm(&self, name: &str, path: &str, recursive: bool) -> Result<CommitInfo, OpError>;
    fn volume_rename(&self, old: &str, new: &str) -> Result<(), OpError>;
    fn volume_delete(&self, name: &str, force: bool) -> Result<(), OpError>;
    fn volume_gc(&self, min_age: Option<Duration>) -> Result<GcReport, OpError>;
    /// Copies the data dir's store, at one moment, into the new data dir
    /// `dest` (an absolute path, read by the process that holds the store).
    fn backup(&self, dest: &Path) -> Result<BackupReport, OpError>;
    /// Streams `reader` into file `remote`; returns the new version.
    /// (`if_version`: only if no commit after that version changed it.)
    fn volume_put_reader(
        &self,
        name: &str,
        remote: &str,
        reader: &mut dyn Read,
        force: bool,
        if_version: Option<u64>,
    ) -> Result<u64, OpError>;
    /// Uploads a local file or tree (see [`Service::volume_put_local`]).
    fn volume_put_local(
        &self,
        name: &str,
        local: &Path,
        remote: Option<&str>,
        force: bool,
        if_version: Option<u64>,
        progress: Option<Progress>,
    ) -> Result<PutReport, OpError>;
    /// Downloads `remote` to a local path (see [`Service::volume_get`]).
    fn volume_get_local(
        &self,
        name: &str,
        remote: &str,
        local: &Path,
        force: bool,
        progress: Option<&Progress>,
    ) -> Result<GetReport, OpError>;
    /// Streams file `remote` into `out`; returns the bytes written.
    fn volume_read(
        &self,
        name: &str,
        remote: &str,
        out: &mut dyn Write,
        progress: Option<&Progress>,
    ) -> Result<u64, OpError>;
    /// The bytes a get of `remote` would move (a progress bar's length).
    fn volume_size(&self, name: &str, remote: &str) -> Result<u64, OpError> {
        let entries = self.volume_ls(name, remote, true)?;
        Ok(entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum())
    }

    /// Creates a dict; false if it existed.
    fn dict_create(&self, name: &str) -> Result<bool, OpError>;
    fn dict_exists(&self, name: &str) -> Result<bool, OpError>;
    fn dict_delete(&self, name: &str) -> Result<(), OpError>;
    fn dict_list(&self) -> Result<Vec<DictSummary>, OpError>;
    fn dict_clear(&self, name: &str) -> Result<(), OpError>;
    fn dict_get(&self, name: &str, key: &str) -> Result<DictItem, OpError>;
    /// The bytes stored at `key`, as they are.
    fn dict_get_raw(&self, name: &str, key: &str) -> Result<Vec<u8>, OpError>;
    /// Removes `key` (`NotFound` when absent).
    fn dict_remove(&self, name: &str, key: &str) -> Result<(), OpError>;
    /// Stores `value`'s bytes at `key`; returns the entry's version.
    fn dict_put(&self, name: &str, key: &str, value: &[u8]) -> Result<u64, OpError>;
    /// Up to `limit` entries in key order (`None`: all).
    fn dict_items(&self, name: &str, limit: Option<usize>) -> Result<DictItems, OpError>;
}

impl Operations for Service {
    fn reports_progress(&self) -> bool {
        true
    }

    fn volume_create(
        &self,
        name: &str,
        max_bytes: Option<u64>,
        retention_ms: Option<u64>,
    ) -> Result<(), OpError> {
        Ok(self.volume_create_with(name, max_bytes, retention_ms)?)
    }

    fn volume_set_retention(
        &self,
        name: &str,
        retention_ms: u64,
    ) -> Result<VolumeSummary, OpError> {
        Ok(Service::volume_set_retention(self, name, retention_ms)?)
    }

    fn volume_history(&self, name: &str, limit: usize) -> Result<History, OpError> {
        Ok(Service::volume_history(self, name, limit)?)
    }

    fn volume_diff(
        &self,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<DiffEntry>, OpError> {
        Ok(Service::volume_diff(self, name, from, to)?)
    }

    fn volume_restore(&self, name: &str, version: u64) -> Result<CommitInfo, OpError> {
        Ok(Service::volume_restore(self, name, version)?)
    }

    fn volume_fork(&self, src: &str, dst: &str) -> Result<VolumeSummary, OpError> {
        Ok(Service::volume_fork(self, src, dst)?)
    }

    fn volume_info(&self, name: &str) -> Result<VolumeSummary, OpError> {
        Ok(Service::volume_info(self, name)?)
    }

    fn volume_set_quota(
        &self,
        name: &str,
        max_bytes: Option<u64>,
    ) -> Result<VolumeSummary, OpError> {
        Ok(Service::volume_set_quota(self, name, max_bytes)?)
    }

    fn volume_list(&self) -> Result<Vec<VolumeSummary>, OpError> {
        Ok(Service::volume_list(self)?)
    }

    fn volume_ls(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<EntryInfo>, OpError> {
        Ok(Service::volume_ls(self, name, path, recursive)?)
    }

    fn volume_cp(
        &self,
        name: &str,
        srcs: &[&str],
        dst: &str,
        recursive: bool,
    ) -> Result<CommitInfo, OpError> {
        Ok(Service::volume_cp(self, name, srcs, dst, recursive)?)
    }

    fn volume_rm(&self, name: &str, path: &str, recursive: bool) -> Result<CommitInfo, OpError> {
        Ok(Service::volume_rm(self, name, path, recursive)?)
    }

    fn volume_rename(&self, old: &str, new: &str) -> Result<(), OpError> {
        Ok(Service::volume_rename(self, old, new)?)
    }

    fn volume_delete(&self, name: &str, force: bool) -> Result<(), OpError> {
        Ok(Service::volume_delete(self, name, force)?)
    }

    fn volume_gc(&self, min_age: Option<Duration>) -> Result<GcReport, OpError> {
        Ok(Service::volume_gc(self, min_age)?)
    }

    fn backup(&self, dest: &Path) -> Result<BackupReport, OpError> {
        Ok(Service::backup(self, dest)?)
    }

    fn volume_put_reader(
        &self,
        name: &str,
        remote: &str,
        reader: &mut dyn Read,
        force: bool,
        if_version: Option<u64>,
    ) -> Result<u64, OpError> {
        let mut batch = self.volume_batch(name, force)?.if_version(if_version);
        batch.put_reader(reader, remote)?;
        Ok(batch.commit()?.version)
    }

    fn volume_put_local(
        &self,
        name: &str,
        local: &Path,
        remote: Option<&str>,
        force: bool,
        if_version: Option<u64>,
        progress: Option<Progress>,
    ) -> Result<PutReport, OpError> {
        Ok(Service::volume_put_local(
            self, name, local, remote, force, if_version, progress,
        )?)
    }

    fn volume_get_local(
        &self,
        name: &str,
        remote: &str,
        local: &Path,
        force: bool,
        progress: Option<&Progress>,
    ) -> Result<GetReport, OpError> {
        Ok(self.volume_get(name, remote, local, force, progress)?)
    }

    fn volume_read(
        &self,
        name: &str,
        remote: &str,
        out: &mut dyn Write,
        progress: Option<&Progress>,
    ) -> Result<u64, OpError> {
        Ok(Service::volume_read(self, name, remote, out, progress)?)
    }

    fn volume_size(&self, name: &str, remote: &str) -> Result<u64, OpError> {
        Ok(Service::volume_size(self, name, remote)?)
    }

    fn dict_create(&self, name: &str) -> Result<bool, OpError> {
        Ok(Service::dict_create(self, name)?)
    }

    fn dict_exists(&self, name: &str) -> Result<bool, OpError> {
        Ok(Service::dict_exists(self, name)?)
    }

    fn dict_delete(&self, name: &str) -> Result<(), OpError> {
        Ok(Service::dict_delete(self, name)?)
    }

    fn dict_list(&self) -> Result<Vec<DictSummary>, OpError> {
        Ok(Service::dict_list(self)?)
    }

    fn dict_clear(&self, name: &str) -> Result<(), OpError> {
        Ok(Service::dict_clear(self, name)?)
    }

    fn dict_get(&self, name: &str, key: &str) -> Result<DictItem, OpError> {
        Ok(Service::dict_get(self, name, key)?)
    }

    fn dict_get_raw(&self, name: &str, key: &str) -> Result<Vec<u8>, OpError> {
        Ok(Service::dict_get_raw(self, name, key)?.0)
    }

    fn dict_remove(&self, name: &str, key: &str) -> Result<(), OpError> {
        Service::dict_remove(self, name, key)?;
        Ok(())
    }

    fn dict_put(&self, name: &str, key: &str, value: &[u8]) -> Result<u64, OpError> {
        Ok(Service::dict_put(self, name, key, value)?)
    }

    fn dict_items(&self, name: &str, limit: Option<usize>) -> Result<DictItems, OpError> {
        Ok(Service::dict_items(self, name, limit)?)
    }
}

/// The HTTP calls both the CLI's [`Operations`] and the Rust
/// [`Client`](super::Client) make, on the route table's URLs.
pub(crate) mod http {
    use serde_json::Value as Json;

    use super::*;
    pub(crate) use crate::server::api::urls;

    pub(crate) fn volume_create(
        c: &OwnerClient,
        name: &str,
        max_bytes: Option<u64>,
        retention_ms: Option<u64>,
    ) -> Result<(), ClientError> {
        let mut q: Vec<String> = Vec::new();
        if let Some(n) = max_bytes {
            q.push(format!("max_bytes={n}"));
        }
        if let Some(r) = retention_ms {
            q.push(format!("retention_ms={r}"));
        }
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        c.request(
            "POST",
            &format!("{}{q}", urls::volume(name)),
            &[],
            Body::Empty,
        )?;
        Ok(())
    }

    pub(crate) fn volume_set_retention(
        c: &OwnerClient,
        name: &str,
        retention_ms: u64,
    ) -> Result<VolumeSummary, ClientError> {
        let path = urls::volume_retention(name);
        c.json(
            "PUT",
            &format!("{path}?retention_ms={retention_ms}"),
            Body::Empty,
        )
    }

    pub(crate) fn volume_history(
        c: &OwnerClient,
        name: &str,
        limit: usize,
    ) -> Result<History, ClientError> {
        let path = urls::volume_history(name);
        c.json("GET", &format!("{path}?limit={limit}"), Body::Empty)
    }

    pub(crate) fn volume_diff(
        c: &OwnerClient,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<DiffEntry>, ClientError> {
        let to = to.map_or(String::new(), |t| format!("&to={t}"));
        let path = urls::volume_diff(name);
        c.json("GET", &format!("{path}?from={from}{to}"), Body::Empty)
    }

    pub(crate) fn volume_restore(
        c: &OwnerClient,
        name: &str,
        version: u64,
    ) -> Result<CommitInfo, ClientError> {
        let path = urls::volume_restore(name);
        c.json("POST", &format!("{path}?version={version}"), Body::Empty)
    }

    /// `src` may be `NAME@VERSION`, or `version` says which.
    pub(crate) fn volume_fork(
        c: &OwnerClient,
        src: &str,
        version: Option<u64>,
        dst: &str,
    ) -> Result<VolumeSummary, ClientError> {
        let path = urls::volume_fork(src);
        let version = version.map_or(String::new(), |v| format!("&version={v}"));
        let to = crate::server::client::enc(dst);
        c.json("POST", &format!("{path}?to={to}{version}"), Body::Empty)
    }

    pub(crate) fn volume_list(c: &OwnerClient) -> Result<Vec<VolumeSummary>, ClientError> {
        c.json("GET", &urls::volumes(), Body::Empty)
    }

    pub(crate) fn volume_ls(
        c: &OwnerClient,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<EntryInfo>, ClientError> {
        c.json(
            "GET",
            &format!(
                "{}?path={}&recursive={recursive}",
                urls::volume_ls(name),
                crate::server::client::enc(path)
            ),
            Body::Empty,
        )
    }

    pub(crate) fn volume_reader(
        c: &OwnerClient,
        name: &str,
        path: &str,
    ) -> Result<Box<dyn Read + Send>, ClientError> {
        Ok(
            c.request("GET", &urls::volume_file(name, path), &[], Body::Empty)?
                .reader(),
        )
    }

    /// Writes file `path`; returns the volume's new version.
    pub(crate) fn volume_put(
        c: &OwnerClient,
        name: &str,
        path: &str,
        body: Body<'_>,
        force: bool,
        if_version: Option<u64>,
    ) -> Result<u64, ClientError> {
        // The version rides in If-Match, quoted like an entity tag.
        let tag = if_version.map(|v| format!("\"{v}\""));
        let headers: Vec<(&str, &str)> = tag.iter().map(|t| ("If-Match", t.as_str())).collect();
        let v: Json = c.json_with(
            "PUT",
            &format!("{}?force={force}", urls::volume_file(name, path)),
            &headers,
            body,
        )?;
        Ok(v.get("version").and_then(Json::as_u64).unwrap_or(0))
    }

    pub(crate) fn volume_rm(
        c: &OwnerClient,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<CommitInfo, ClientError> {
        c.json(
            "DELETE",
            &format!("{}?recursive={recursive}", urls::volume_file(name, path)),
            Body::Empty,
        )
    }

    /// Creates a dict; false if it existed.
    pub(crate) fn dict_create(c: &OwnerClient, name: &str) -> Result<bool, ClientError> {
        match c.request("POST", &urls::dict(name), &[], Body::Empty) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn dict_list(c: &OwnerClient) -> Result<Vec<DictSummary>, ClientError> {
        c.json("GET", &urls::dicts(), Body::Empty)
    }

    pub(crate) fn dict_get(
        c: &OwnerClient,
        name: &str,
        key: &str,
    ) -> Result<DictItem, ClientError> {
        c.json("GET", &urls::dict_key(name, key), Body::Empty)
    }

    /// Stores bytes at `key`; returns the entry's version.
    pub(crate) fn dict_put(
        c: &OwnerClient,
        name: &str,
        key: &str,
        value: &[u8],
    ) -> Result<u64, ClientError> {
        let v: Json = c.json("PUT", &urls::dict_key(name, key), Body::Bytes(value))?;
        Ok(v.get("version").and_then(Json::as_u64).unwrap_or(0))
    }

    pub(crate) fn dict_items(
        c: &OwnerClient,
        name: &str,
        limit: Option<usize>,
    ) -> Result<DictItems, ClientError> {
        let q = match limit {
            Some(n) => format!("limit={n}"),
            None => "all=true".to_owned(),
        };
        c.json(
            "GET",
            &format!("{}?{q}", urls::dict_items(name)),
            Body::Empty,
        )
    }
}
