//! The one `bindgen!` of the host: Rust types and traits for the
//! `vessel:storage` WIT package.
//!
//! WIT resources map to the host's own handle types, and the WIT `error`
//! variant maps to [`StorageError`](crate::error::StorageError) so a host
//! function can return either an error the guest handles or a trap.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "vessel:storage/imports",
    imports: { default: async | trappable },
    with: {
        "vessel:storage/volume.volume": crate::volume::VolumeHandle,
        "vessel:storage/dict.dict": crate::dict::DictHandle,
        "vessel:storage/dict.lease": crate::dict::LeaseHandle,
        "vessel:storage/functions.call": crate::functions::CallHandle,
    },
    trappable_error_type: {
        "vessel:storage/types.error" => crate::error::StorageError,
    },
});

pub use vessel::storage::types::Error as WitError;
