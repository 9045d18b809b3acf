//! A consistent copy of a live embedded store: `vessel admin backup DIR`.
//!
//! The copy is itself a data dir: `vessel --data-dir DIR` opens it as the
//! store stood at one moment, and restoring is copying it back. To get
//! that moment, volume writes and blob collection are held off (see
//! `volumes_frozen`) and the dict log is stopped with every record it
//! holds applied to sled (`Wal::frozen`); then every sled tree is copied
//! key by key into a fresh database, whose log marker is set to the last
//! record, so the copy needs no log of its own. Blobs are immutable and
//! content-addressed, so they are hard-linked into the copy when it is on
//! the same filesystem (copied otherwise). Writers wait while this runs
//! and none fails; the pause is reported.
//!
//! The data dir's `tokens.json` and `config.toml` go along, so the copy
//! serves the same tokens with the same settings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error_kind::ErrorKind;

use super::EmbeddedStore;
use crate::storage::blobs::BlobStore;

/// What a backup copied.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct BackupReport {
    /// The new data dir.
    #[cfg_attr(feature = "server", schema(value_type = String))]
    pub dir: PathBuf,
    /// sled trees and the keys in them.
    pub trees: u64,
    pub keys: u64,
    /// Blobs, their bytes, and how many were hard links (the rest copies).
    pub blobs: u64,
    pub blob_bytes: u64,
    pub linked: u64,
    /// How long writers waited, in milliseconds.
    pub paused_ms: u64,
}

/// Why a backup failed; the destination is removed again.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists and is not empty: back up into a new folder")]
    NotEmpty(PathBuf),
    #[error("{0} is inside the data dir being backed up")]
    Inside(PathBuf),
    #[error("backing up into {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

impl BackupError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::NotEmpty(_) | BackupError::Inside(_) => ErrorKind::InvalidArgument,
            BackupError::Io { .. } => ErrorKind::Io,
        }
    }
}

/// Files of the data dir copied beside the stores.
const SIDE_FILES: [&str; 2] = ["tokens.json", "config.toml"];

impl EmbeddedStore {
    /// Copies the store, as it stands at one moment, into `dest` (a new
    /// or empty folder, made owner-only), which becomes a data dir.
    pub fn backup(&self, dest: &Path) -> Result<BackupReport, BackupError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |e: std::io::Error| BackupError::Io {
                path: path.clone(),
                reason: e.to_string(),
            }
        };
        match std::fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(BackupError::NotEmpty(dest.to_owned()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(dest)(e)),
        }
        crate::private::create_dir_all(dest).map_err(io(dest))?;
        let here = std::fs::canonicalize(self.dir()).map_err(io(self.dir()))?;
        let there = std::fs::canonicalize(dest).map_err(io(dest))?;
        if there.starts_with(&here) {
            let _ = std::fs::remove_dir(dest);
            return Err(BackupError::Inside(dest.to_owned()));
        }
        let result = self.copy_into(dest);
        if result.is_err() {
            // Half a backup is worse than none: it would open as a store.
            let _ = std::fs::remove_dir_all(dest);
        }
        result
    }

    fn copy_into(&self, dest: &Path) -> Result<BackupReport, BackupError> {
        let fail = |path: &Path, e: &dyn std::fmt::Display| BackupError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let db_dir = dest.join("db");
        let copy = sled::Config::new()
            .path(&db_dir)
            .flush_every_ms(None)
            .open()
            .map_err(|e| fail(&db_dir, &e))?;
        let target = BlobStore::open(dest.join("blobs")).map_err(|e| fail(dest, &e))?;
        let mut report = BackupReport {
            dir: dest.to_owned(),
            ..BackupReport::default()
        };
        let started = Instant::now();
        self.volumes_frozen(|| {
            self.wal.frozen(|last| {
                copy_trees(&self.db, &copy, &mut report)?;
                super::wal::mark_copy(&copy, last)?;
                copy_blobs(&self.blobs, &target, &mut report)
            })
        })
        .map_err(|e| fail(dest, &e))?;
        report.paused_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        copy.flush().map_err(|e| fail(&db_dir, &e))?;
        drop(copy);
        for name in SIDE_FILES {
            let from = self.dir().join(name);
            if from.is_file() {
                std::fs::copy(&from, dest.join(name)).map_err(|e| fail(&from, &e))?;
            }
        }
        // The copy is durable before it is reported: every file and folder
        // it wrote is fsynced.
        sync_tree(dest).map_err(|e| fail(dest, &e))?;
        crate::private::restrict_tree(dest).map_err(|e| fail(dest, &e))?;
        Ok(report)
    }
}

/// Copies every tree of `from` into `to`, key by key.
fn copy_trees(from: &sled::Db, to: &sled::Db, report: &mut BackupReport) -> std::io::Result<()> {
    let err = |e: sled::Error| std::io::Error::other(e.to_string());
    for name in from.tree_names() {
        let (src, dst) = (
            from.open_tree(&name).map_err(err)?,
            to.open_tree(&name).map_err(err)?,
        );
        report.trees += 1;
        let mut batch = sled::Batch::default();
        let mut n = 0usize;
        for kv in src.iter() {
            let (k, v) = kv.map_err(err)?;
            batch.insert(k, v);
            n += 1;
            report.keys += 1;
            if n == 10_000 {
                dst.apply_batch(std::mem::take(&mut batch)).map_err(err)?;
                n = 0;
            }
        }
        dst.apply_batch(batch).map_err(err)?;
    }
    Ok(())
}

/// Puts every blob of `from` into `to`: a hard link when both are on one
/// filesystem (blobs are never written in place), else a copy.
fn copy_blobs(from: &BlobStore, to: &BlobStore, report: &mut BackupReport) -> std::io::Result<()> {
    for id in from.list()? {
        let (src, dst) = (from.path(&id), to.path(&id));
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        report.blob_bytes += std::fs::metadata(&src)?.len();
        report.blobs += 1;
        match std::fs::hard_link(&src, &dst) {
            Ok(()) => report.linked += 1,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                std::fs::copy(&src, &dst)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// fsyncs every file and folder under `dir`.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}
