//! Calls between functions of one app: the `vessel:storage/functions`
//! interface (`remote`, `spawn`, `call.get`).
//!
//! Apps, manifests and containers land with the apps issue; until then a
//! component run alone has no other functions to call, and every operation
//! answers `unavailable("... not implemented yet")`.

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::bindings::vessel::storage::functions as wit;
use crate::error::StorageError;

/// The host state behind one guest `call` handle.
#[derive(Debug)]
pub struct CallHandle {
    pub function: String,
}

/// Per-container state of the functions interface.
#[derive(Debug, Default)]
pub struct FunctionsCtx {}

/// A [`FunctionsCtx`] with the resource table: the `self` of the host traits.
pub struct FunctionsCtxView<'a> {
    pub ctx: &'a mut FunctionsCtx,
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend a [`FunctionsCtxView`].
pub trait FunctionsView: Send {
    fn functions(&mut self) -> FunctionsCtxView<'_>;
}

struct HasFunctions;

impl HasData for HasFunctions {
    type Data<'a> = FunctionsCtxView<'a>;
}

/// Adds `vessel:storage/functions` to `linker`.
pub fn add_to_linker<T: FunctionsView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasFunctions>(linker, |t| t.functions())
}

impl crate::bindings::vessel::storage::types::Host for FunctionsCtxView<'_> {
    fn convert_error(&mut self, err: StorageError) -> wasmtime::Result<crate::error::WitError> {
        err.into_wit()
    }
}

impl wit::Host for FunctionsCtxView<'_> {
    async fn remote(
        &mut self,
        _function: String,
        _args_json: String,
    ) -> Result<String, StorageError> {
        Err(StorageError::not_implemented("functions.remote"))
    }

    async fn spawn(
        &mut self,
        _function: String,
        _args_json: String,
    ) -> Result<Resource<CallHandle>, StorageError> {
        Err(StorageError::not_implemented("functions.spawn"))
    }
}

impl wit::HostCall for FunctionsCtxView<'_> {
    async fn get(&mut self, _self_: Resource<CallHandle>) -> Result<String, StorageError> {
        Err(StorageError::not_implemented("call.get"))
    }

    async fn drop(&mut self, rep: Resource<CallHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
