//! Dicts as guests see them: the `vessel:storage/dict` interface.
//!
//! This module owns the per-container dict state ([`DictCtx`]) and the host
//! side of the `dict` and `lease` resources. The store, durability, TTL and
//! locks land with the dicts issue; until then every operation answers
//! `unavailable("... not implemented yet")` rather than pretending.

use std::sync::Arc;

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::container::Grant;
use crate::storage::dict::DictStore;

use crate::bindings::vessel::storage::dict::{self as wit, Entry, Limits, Page, PutOptions};
use crate::error::StorageError;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: u32 = 4096;
/// Largest value, in bytes (100 MiB, as Modal).
pub const MAX_VALUE_BYTES: u64 = 100 * 1024 * 1024;
/// Most pairs in one `update`.
pub const MAX_UPDATE_ENTRIES: u32 = 10_000;
/// Most items in one `scan` page.
pub const MAX_SCAN_LIMIT: u32 = 1_000;
/// Idle period after which an entry expires: 7 days.
pub const DEFAULT_IDLE_EXPIRY_SECONDS: u64 = 7 * 24 * 3600;

/// The host state behind one guest `dict` handle.
#[derive(Debug)]
pub struct DictHandle {
    pub name: String,
}

/// The host state behind one guest `lease` handle.
#[derive(Debug)]
pub struct LeaseHandle {
    pub dict: String,
    pub key: String,
    pub token: u64,
}

/// Per-container dict state: the store (none when the host has no storage)
/// and what the function may open.
#[derive(Debug)]
pub struct DictCtx {
    pub store: Option<Arc<dyn DictStore>>,
    pub grant: Grant,
    pub limits: Limits,
}

impl DictCtx {
    pub fn new(store: Option<Arc<dyn DictStore>>, grant: Grant) -> Self {
        DictCtx {
            store,
            grant,
            limits: Limits {
                max_key_bytes: MAX_KEY_BYTES,
                max_value_bytes: MAX_VALUE_BYTES,
                max_update_entries: MAX_UPDATE_ENTRIES,
                max_scan_limit: MAX_SCAN_LIMIT,
                idle_expiry_seconds: DEFAULT_IDLE_EXPIRY_SECONDS,
            },
        }
    }
}

/// A [`DictCtx`] with the resource table: the `self` of the host traits.
pub struct DictCtxView<'a> {
    pub ctx: &'a mut DictCtx,
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend a [`DictCtxView`]; the store's data implements it.
pub trait DictView: Send {
    fn dict(&mut self) -> DictCtxView<'_>;
}

struct HasDict;

impl HasData for HasDict {
    type Data<'a> = DictCtxView<'a>;
}

/// Adds `vessel:storage/dict` to `linker`.
pub fn add_to_linker<T: DictView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasDict>(linker, |t| t.dict())
}

impl crate::bindings::vessel::storage::types::Host for DictCtxView<'_> {
    fn convert_error(&mut self, err: StorageError) -> wasmtime::Result<crate::error::WitError> {
        err.into_wit()
    }
}

impl wit::Host for DictCtxView<'_> {}

impl wit::HostDict for DictCtxView<'_> {
    async fn open(
        &mut self,
        _name: String,
        _create_if_missing: bool,
    ) -> Result<Resource<DictHandle>, StorageError> {
        Err(StorageError::not_implemented("dict.open"))
    }

    async fn name(&mut self, self_: Resource<DictHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&self_)?.name.clone())
    }

    async fn get(
        &mut self,
        _self_: Resource<DictHandle>,
        _key: String,
    ) -> Result<Option<Entry>, StorageError> {
        Err(StorageError::not_implemented("dict.get"))
    }

    async fn put(
        &mut self,
        _self_: Resource<DictHandle>,
        _key: String,
        _value: Vec<u8>,
        _options: PutOptions,
    ) -> Result<Option<u64>, StorageError> {
        Err(StorageError::not_implemented("dict.put"))
    }

    async fn pop(
        &mut self,
        _self_: Resource<DictHandle>,
        _key: String,
    ) -> Result<Option<Entry>, StorageError> {
        Err(StorageError::not_implemented("dict.pop"))
    }

    async fn contains(
        &mut self,
        _self_: Resource<DictHandle>,
        _key: String,
    ) -> Result<bool, StorageError> {
        Err(StorageError::not_implemented("dict.contains"))
    }

    async fn len(&mut self, _self_: Resource<DictHandle>) -> Result<u64, StorageError> {
        Err(StorageError::not_implemented("dict.len"))
    }

    async fn update(
        &mut self,
        _self_: Resource<DictHandle>,
        _entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        Err(StorageError::not_implemented("dict.update"))
    }

    async fn get_many(
        &mut self,
        _self_: Resource<DictHandle>,
        _keys: Vec<String>,
    ) -> Result<Vec<Option<Entry>>, StorageError> {
        Err(StorageError::not_implemented("dict.get-many"))
    }

    async fn scan(
        &mut self,
        _self_: Resource<DictHandle>,
        _prefix: String,
        _cursor: Option<String>,
        _limit: u32,
        _with_values: bool,
    ) -> Result<Page, StorageError> {
        Err(StorageError::not_implemented("dict.scan"))
    }

    async fn clear(&mut self, _self_: Resource<DictHandle>) -> Result<(), StorageError> {
        Err(StorageError::not_implemented("dict.clear"))
    }

    async fn increment(
        &mut self,
        _self_: Resource<DictHandle>,
        _key: String,
        _delta: i64,
    ) -> Result<i64, StorageError> {
        Err(StorageError::not_implemented("dict.increment"))
    }

    async fn lock(
        &mut self,
        _self_: Resource<DictHandle>,
        _key: String,
        _ttl_ms: u64,
    ) -> Result<Option<Resource<LeaseHandle>>, StorageError> {
        Err(StorageError::not_implemented("dict.lock"))
    }

    async fn limits(&mut self, _self_: Resource<DictHandle>) -> wasmtime::Result<Limits> {
        Ok(self.ctx.limits)
    }

    async fn drop(&mut self, rep: Resource<DictHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl wit::HostLease for DictCtxView<'_> {
    async fn key(&mut self, self_: Resource<LeaseHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&self_)?.key.clone())
    }

    async fn token(&mut self, self_: Resource<LeaseHandle>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&self_)?.token)
    }

    async fn renew(
        &mut self,
        _self_: Resource<LeaseHandle>,
        _ttl_ms: u64,
    ) -> Result<(), StorageError> {
        Err(StorageError::not_implemented("lease.renew"))
    }

    async fn release(&mut self, _self_: Resource<LeaseHandle>) -> Result<(), StorageError> {
        Err(StorageError::not_implemented("lease.release"))
    }

    async fn drop(&mut self, rep: Resource<LeaseHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
