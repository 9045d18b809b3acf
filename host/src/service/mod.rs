//! The service API: every operation the CLI, the control socket and the
//! HTTP API of `vessel serve` perform on volumes and dicts, as plain
//! methods with serialisable inputs and outputs. The CLI calls these
//! directly; a command forwarded to the data dir's owner, and an HTTP
//! request, call the same methods in the owning process, so every path
//! runs the same code.

pub mod dict;
pub mod items;
mod quota;
pub mod volume;

use crate::storage::Stores;
use crate::storage::dict::{DictStore, Sweeper, spawn_sweeper};
use crate::storage::embedded::backup::BackupReport;
use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore, OpenError};
#[cfg(feature = "remote")]
use crate::storage::remote::{RemoteError, RemoteOptions, RemoteStore};
use crate::storage::tokens::TokenTable;
use std::path::Path;
use std::sync::Arc;

/// The operations on one data directory's stores.
#[derive(Debug, Clone)]
pub struct Service {
    pub stores: Stores,
    pub embedded: Option<EmbeddedStore>,
    /// The API's tokens when the backend keeps them (the shared one, so
    /// every host accepts the same); `None`: the data dir's `tokens.json`.
    pub tokens: Option<Arc<dyn TokenTable>>,
    /// Removes expired dict entries in the background while the service
    /// lives (the reads hide them anyway; this reclaims the space).
    _dict_sweeper: Option<Arc<Sweeper>>,
}

/// How often the background sweep removes expired dict entries.
pub const DICT_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl Service {
    /// Whether each part of the stores can serve now, by name: for the
    /// shared backend `metadata` (a PostgreSQL round trip) and `blobs` (a
    /// listing of the bucket); for the embedded store, that no failed
    /// fsync stopped its writes.
    pub fn readiness(&self) -> Vec<(&'static str, Result<(), String>)> {
        match &self.stores.volumes {
            Some(v) => v.readiness(),
            None => Vec::new(),
        }
    }

    /// Copies the embedded store, as it stands at one moment, into the new
    /// data dir `dest` (see `storage::embedded::backup`). The shared
    /// backend is backed up with PostgreSQL's and S3's own tools instead.
    pub fn backup(&self, dest: &Path) -> Result<BackupReport, volume::VolumeOpError> {
        match &self.embedded {
            Some(store) => Ok(store.backup(dest)?),
            None => Err(volume::VolumeOpError::Invalid(
                "this data dir's stores are on the shared backend: back it up with \
                 PostgreSQL's tools (pg_dump or base backups) and S3 bucket versioning \
                 (see docs/operations.md)"
                    .into(),
            )),
        }
    }

    /// Opens the embedded store in `data_dir`.
    pub fn open_embedded(data_dir: &Path, options: EmbeddedOptions) -> Result<Self, OpenError> {
        let store = EmbeddedStore::open(data_dir, options)?;
        Ok(Service::from_embedded(store))
    }

    /// Serves an already open embedded store.
    pub fn from_embedded(store: EmbeddedStore) -> Self {
        let dicts: Arc<dyn DictStore> = Arc::new(store.clone());
        Service {
            stores: Stores {
                dicts: Some(dicts.clone()),
                volumes: Some(Arc::new(store.clone())),
            },
            tokens: None,
            _dict_sweeper: Some(Arc::new(spawn_sweeper(dicts, DICT_SWEEP_INTERVAL))),
            embedded: Some(store),
        }
    }

    /// Opens the shared backend (PostgreSQL + S3) that several hosts use
    /// at once.
    #[cfg(feature = "remote")]
    pub fn open_remote(options: RemoteOptions) -> Result<Self, RemoteError> {
        Ok(Service::from_remote(RemoteStore::open(options)?))
    }

    /// Serves an already open shared backend.
    #[cfg(feature = "remote")]
    pub fn from_remote(store: RemoteStore) -> Self {
        let dicts: Arc<dyn DictStore> = Arc::new(store.clone());
        Service {
            stores: Stores {
                dicts: Some(dicts.clone()),
                volumes: Some(Arc::new(store.clone())),
            },
            tokens: Some(Arc::new(store)),
            embedded: None,
            _dict_sweeper: Some(Arc::new(spawn_sweeper(dicts, DICT_SWEEP_INTERVAL))),
        }
    }
}
