//! [`Operations`] over HTTP: each method is one request to the process
//! that owns the data dir (its socket), or to `vessel serve`.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use super::{OpError, Operations};
use crate::server::client::{Body, ClientError, OwnerClient};
use crate::service::dict::{DictItem, DictItems, DictSummary};
use crate::service::volume::{DiffEntry, EntryInfo, GetReport, Progress, PutReport, VolumeSummary};
use crate::storage::embedded::backup::BackupReport;
use crate::storage::volume::{CommitInfo, GcReport, History};

use super::http::{self, urls};

impl Operations for OwnerClient {
    fn reports_progress(&self) -> bool {
        // The server moves the bytes; this process sees none of them.
        false
    }

    fn volume_create(
        &self,
        name: &str,
        max_bytes: Option<u64>,
        retention_ms: Option<u64>,
    ) -> Result<(), OpError> {
        Ok(http::volume_create(self, name, max_bytes, retention_ms)?)
    }

    fn volume_set_retention(
        &self,
        name: &str,
        retention_ms: u64,
    ) -> Result<VolumeSummary, OpError> {
        Ok(http::volume_set_retention(self, name, retention_ms)?)
    }

    fn volume_history(&self, name: &str, limit: usize) -> Result<History, OpError> {
        Ok(http::volume_history(self, name, limit)?)
    }

    fn volume_diff(
        &self,
        name: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<DiffEntry>, OpError> {
        Ok(http::volume_diff(self, name, from, to)?)
    }

    fn volume_restore(&self, name: &str, version: u64) -> Result<CommitInfo, OpError> {
        Ok(http::volume_restore(self, name, version)?)
    }

    fn volume_fork(&self, src: &str, dst: &str) -> Result<VolumeSummary, OpError> {
        Ok(http::volume_fork(self, src, None, dst)?)
    }

    fn volume_info(&self, name: &str) -> Result<VolumeSummary, OpError> {
        Ok(self.json("GET", &urls::volume(name), Body::Empty)?)
    }

    fn volume_set_quota(
        &self,
        name: &str,
        max_bytes: Option<u64>,
    ) -> Result<VolumeSummary, OpError> {
        let path = urls::volume_quota(name);
        Ok(match max_bytes {
            Some(n) => self.json("PUT", &format!("{path}?max_bytes={n}"), Body::Empty)?,
            None => self.json("DELETE", &path, Body::Empty)?,
        })
    }

    fn volume_list(&self) -> Result<Vec<VolumeSummary>, OpError> {
        Ok(http::volume_list(self)?)
    }

    fn volume_ls(
        &self,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<EntryInfo>, OpError> {
        Ok(http::volume_ls(self, name, path, recursive)?)
    }

    fn volume_cp(
        &self,
        name: &str,
        srcs: &[&str],
        dst: &str,
        recursive: bool,
    ) -> Result<CommitInfo, OpError> {
        Ok(self.post_json(
            &urls::volume_cp(name),
            &serde_json::json!({"srcs": srcs, "dst": dst, "recursive": recursive}),
        )?)
    }

    fn volume_rm(&self, name: &str, path: &str, recursive: bool) -> Result<CommitInfo, OpError> {
        Ok(http::volume_rm(self, name, path, recursive)?)
    }

    fn volume_rename(&self, old: &str, new: &str) -> Result<(), OpError> {
        let body =
            serde_json::to_vec(&serde_json::json!({"to": new})).map_err(|e| ClientError::Api {
                status: 400,
                kind: "invalid_argument".into(),
                message: format!("cannot encode the new name: {e}"),
            })?;
        self.request(
            "POST",
            &urls::volume_rename(old),
            &[("Content-Type", "application/json")],
            Body::Bytes(&body),
        )?;
        Ok(())
    }

    fn volume_delete(&self, name: &str, force: bool) -> Result<(), OpError> {
        self.request(
            "DELETE",
            &format!("{}?force={force}", urls::volume(name)),
            &[],
            Body::Empty,
        )?;
        Ok(())
    }

    fn volume_gc(&self, min_age: Option<Duration>) -> Result<GcReport, OpError> {
        let q = min_age.map_or(String::new(), |d| format!("?min_age={}", d.as_secs()));
        Ok(self.json("POST", &format!("{}{q}", urls::gc()), Body::Empty)?)
    }

    fn backup(&self, dest: &Path) -> Result<BackupReport, OpError> {
        let body = serde_json::to_vec(&serde_json::json!({ "dir": dest })).map_err(|e| {
            ClientError::Api {
                status: 400,
                kind: "invalid_argument".into(),
                message: format!("cannot encode the backup folder: {e}"),
            }
        })?;
        Ok(self.json("POST", &urls::admin_backup(), Body::Bytes(&body))?)
    }

    fn volume_put_reader(
        &self,
        name: &str,
        remote: &str,
        reader: &mut dyn Read,
        force: bool,
        if_version: Option<u64>,
    ) -> Result<u64, OpError> {
        Ok(http::volume_put(
            self,
            name,
            remote,
            Body::Stream(reader),
            force,
            if_version,
        )?)
    }

    fn volume_put_local(
        &self,
        name: &str,
        local: &Path,
        remote: Option<&str>,
        force: bool,
        if_version: Option<u64>,
        _progress: Option<Progress>,
    ) -> Result<PutReport, OpError> {
        // The owner reads the files itself: it runs on this machine as this
        // user (the socket is owner-only).
        Ok(self.post_json(
            &urls::volume_put_local(name),
            &serde_json::json!({
                "local": local, "remote": remote, "force": force, "if_version": if_version
            }),
        )?)
    }

    fn volume_get_local(
        &self,
        name: &str,
        remote: &str,
        local: &Path,
        force: bool,
        _progress: Option<&Progress>,
    ) -> Result<GetReport, OpError> {
        Ok(self.post_json(
            &urls::volume_get_local(name),
            &serde_json::json!({"remote": remote, "local": local, "force": force}),
        )?)
    }

    fn volume_read(
        &self,
        name: &str,
        remote: &str,
        out: &mut dyn Write,
        _progress: Option<&Progress>,
    ) -> Result<u64, OpError> {
        let mut body = http::volume_reader(self, name, remote)?;
        std::io::copy(&mut body, out).map_err(|e| {
            OpError::Http(ClientError::Io {
                socket: remote.into(),
                reason: e.to_string(),
            })
        })
    }

    fn dict_create(&self, name: &str) -> Result<bool, OpError> {
        Ok(http::dict_create(self, name)?)
    }

    fn dict_exists(&self, name: &str) -> Result<bool, OpError> {
        match self.request("GET", &urls::dict(name), &[], Body::Empty) {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn dict_delete(&self, name: &str) -> Result<(), OpError> {
        self.request("DELETE", &urls::dict(name), &[], Body::Empty)?;
        Ok(())
    }

    fn dict_list(&self) -> Result<Vec<DictSummary>, OpError> {
        Ok(http::dict_list(self)?)
    }

    fn dict_clear(&self, name: &str) -> Result<(), OpError> {
        let path = urls::dict_clear(name);
        self.request("POST", &path, &[], Body::Empty)?;
        Ok(())
    }

    fn dict_get(&self, name: &str, key: &str) -> Result<DictItem, OpError> {
        Ok(http::dict_get(self, name, key)?)
    }

    fn dict_get_raw(&self, name: &str, key: &str) -> Result<Vec<u8>, OpError> {
        let r = self.request(
            "GET",
            &urls::dict_key(name, key),
            &[("Accept", "application/octet-stream")],
            Body::Empty,
        )?;
        Ok(r.bytes().map_err(|e| ClientError::Api {
            status: 500,
            kind: "io".into(),
            message: format!("reading the value of `{key}`: {e}"),
        })?)
    }

    fn dict_remove(&self, name: &str, key: &str) -> Result<(), OpError> {
        self.request("DELETE", &urls::dict_key(name, key), &[], Body::Empty)?;
        Ok(())
    }

    fn dict_put(&self, name: &str, key: &str, value: &[u8]) -> Result<u64, OpError> {
        Ok(http::dict_put(self, name, key, value)?)
    }

    fn dict_items(&self, name: &str, limit: Option<usize>) -> Result<DictItems, OpError> {
        Ok(http::dict_items(self, name, limit)?)
    }
}
