//! Storage backends, behind traits with domain errors.
//!
//! The rest of the host talks to the [`dict::DictStore`] and
//! [`volume::VolumeStore`] traits only; the embedded backend ([`embedded`]:
//! sled plus a content-addressed blob folder) is the default, and nothing
//! outside this module names sled. [`disk`] is the seam for the storage
//! layer's own file I/O, where tests inject faults and model power loss.

pub mod blobs;
pub mod clock;
pub mod dict;
pub mod disk;
pub mod embedded;
#[cfg(feature = "remote")]
pub mod remote;
pub mod volume;

use std::sync::Arc;

/// The stores a host serves its containers from.
// TODO(issues 3 and 4 land in steps): both become required once the
// embedded backend implements both traits.
#[derive(Debug, Clone, Default)]
pub struct Stores {
    pub dicts: Option<Arc<dyn dict::DictStore>>,
    pub volumes: Option<Arc<dyn volume::VolumeStore>>,
}
