//! Storage backends, behind traits with domain errors.
//!
//! The rest of the host talks to the [`dict::DictStore`] and
//! [`volume::VolumeStore`] traits only; the embedded backend ([`embedded`]:
//! sled plus a content-addressed blob folder) is the default, and nothing
//! outside this module names sled, PostgreSQL or S3 (the shared backend,
//! `remote`, behind the feature of that name). [`disk`] is the seam for the storage
//! layer's own file I/O, where tests inject faults and model power loss.

pub mod blobs;
pub mod clock;
pub mod dict;
pub mod disk;
pub mod embedded;
#[cfg(feature = "remote")]
pub mod remote;
pub mod tokens;
pub mod volume;

use std::sync::Arc;

/// The stores a host serves its containers from. Either may be absent: a
/// component run without storage (`vessel call x.wasm` of a component that
/// imports no volume or dict) must not take the data dir's lock, and its
/// guest gets a clear `unavailable` if it asks anyway.
#[derive(Debug, Clone, Default)]
pub struct Stores {
    pub dicts: Option<Arc<dyn dict::DictStore>>,
    pub volumes: Option<Arc<dyn volume::VolumeStore>>,
}
