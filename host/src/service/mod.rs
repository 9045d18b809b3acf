//! The service API: every operation the CLI (and later the control socket
//! and HTTP API of `vessel serve`) performs on volumes and dicts, as plain
//! methods with serialisable inputs and outputs. The CLI calls these; a
//! forwarded command will call the same methods in the owning process, so
//! both paths run the same code.

use crate::storage::Stores;
use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore, OpenError};
use std::path::Path;
use std::sync::Arc;

/// The operations on one data directory's stores.
#[derive(Debug, Clone)]
pub struct Service {
    pub stores: Stores,
    pub embedded: Option<EmbeddedStore>,
}

impl Service {
    /// Opens the embedded store in `data_dir`.
    pub fn open_embedded(data_dir: &Path, options: EmbeddedOptions) -> Result<Self, OpenError> {
        let store = EmbeddedStore::open(data_dir, options)?;
        Ok(Service::from_embedded(store))
    }

    /// Serves an already open embedded store.
    pub fn from_embedded(store: EmbeddedStore) -> Self {
        let stores = Stores {
            dicts: Some(Arc::new(store.clone())),
            volumes: Some(Arc::new(store.clone())),
        };
        Service {
            stores,
            embedded: Some(store),
        }
    }
}
