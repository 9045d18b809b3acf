//! Volumes as guests see them: the `vessel:storage/volume` interface.
//!
//! This module owns the per-container volume state ([`VolumeCtx`]) and the
//! host side of the WIT resource. Snapshots, mounts, commit and reload land
//! with the volumes issue; until then every operation answers
//! `unavailable("... not implemented yet")` rather than pretending.

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::bindings::vessel::storage::volume::{self as wit, CommitInfo, Entry};
use crate::error::StorageError;

/// The host state behind one guest `volume` handle.
#[derive(Debug)]
pub struct VolumeHandle {
    /// The volume's name.
    pub name: String,
}

/// Per-container volume state: which volumes are mounted where, and which
/// the function may open by name.
#[derive(Debug, Default)]
pub struct VolumeCtx {
    /// Guest mount path to volume name.
    pub mounts: Vec<(String, String)>,
}

/// A [`VolumeCtx`] together with the resource table, the `self` of the
/// generated host traits.
pub struct VolumeCtxView<'a> {
    pub ctx: &'a mut VolumeCtx,
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend a [`VolumeCtxView`]; the store's data implements it.
pub trait VolumeView: Send {
    fn volume(&mut self) -> VolumeCtxView<'_>;
}

struct HasVolume;

impl HasData for HasVolume {
    type Data<'a> = VolumeCtxView<'a>;
}

/// Adds `vessel:storage/volume` to `linker`.
pub fn add_to_linker<T: VolumeView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasVolume>(linker, |t| t.volume())
}

impl crate::bindings::vessel::storage::types::Host for VolumeCtxView<'_> {
    fn convert_error(&mut self, err: StorageError) -> wasmtime::Result<crate::error::WitError> {
        err.into_wit()
    }
}

impl wit::Host for VolumeCtxView<'_> {}

impl wit::HostVolume for VolumeCtxView<'_> {
    async fn mounted(&mut self, _path: String) -> Result<Resource<VolumeHandle>, StorageError> {
        Err(StorageError::not_implemented("volume.mounted"))
    }

    async fn from_name(
        &mut self,
        _name: String,
        _create_if_missing: bool,
    ) -> Result<Resource<VolumeHandle>, StorageError> {
        Err(StorageError::not_implemented("volume.from-name"))
    }

    async fn name(&mut self, self_: Resource<VolumeHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&self_)?.name.clone())
    }

    async fn version(&mut self, _self_: Resource<VolumeHandle>) -> wasmtime::Result<u64> {
        // No handle can exist before `mounted`/`from-name` land.
        Err(wasmtime::Error::msg(
            "volume.version: no volume handles exist yet",
        ))
    }

    async fn commit(&mut self, _self_: Resource<VolumeHandle>) -> Result<CommitInfo, StorageError> {
        Err(StorageError::not_implemented("volume.commit"))
    }

    async fn reload(&mut self, _self_: Resource<VolumeHandle>) -> Result<u64, StorageError> {
        Err(StorageError::not_implemented("volume.reload"))
    }

    async fn listdir(
        &mut self,
        _self_: Resource<VolumeHandle>,
        _path: String,
        _recursive: bool,
    ) -> Result<Vec<Entry>, StorageError> {
        Err(StorageError::not_implemented("volume.listdir"))
    }

    async fn read_file(
        &mut self,
        _self_: Resource<VolumeHandle>,
        _path: String,
        _offset: u64,
        _length: u64,
    ) -> Result<Vec<u8>, StorageError> {
        Err(StorageError::not_implemented("volume.read-file"))
    }

    async fn write_file(
        &mut self,
        _self_: Resource<VolumeHandle>,
        _path: String,
        _data: Vec<u8>,
        _overwrite: bool,
    ) -> Result<(), StorageError> {
        Err(StorageError::not_implemented("volume.write-file"))
    }

    async fn remove(
        &mut self,
        _self_: Resource<VolumeHandle>,
        _path: String,
        _recursive: bool,
    ) -> Result<(), StorageError> {
        Err(StorageError::not_implemented("volume.remove"))
    }

    async fn copy(
        &mut self,
        _self_: Resource<VolumeHandle>,
        _srcs: Vec<String>,
        _dst: String,
    ) -> Result<(), StorageError> {
        Err(StorageError::not_implemented("volume.copy"))
    }

    async fn drop(&mut self, rep: Resource<VolumeHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
