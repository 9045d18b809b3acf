//! The one `bindgen!` of the host: Rust types and traits for the
//! `vessel:storage` WIT package and the standard `wasi:keyvalue` interfaces
//! vessel serves (world `vessel:storage/host`).
//!
//! WIT resources map to the host's own handle types, and the WIT `error`
//! variants map to [`StorageError`](crate::error::StorageError) and
//! [`KeyValueError`](crate::keyvalue::KeyValueError) so a host function can
//! return either an error the guest handles or a trap.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "vessel:storage/host",
    imports: {
        // A dict read is a few hundred nanoseconds on the embedded store:
        // a synchronous host function spares it the future and its poll.
        "vessel:storage/dict.[method]dict.get": trappable,
        default: async | trappable,
    },
    with: {
        "vessel:storage/volume.volume": crate::volume::VolumeHandle,
        "vessel:storage/dict.dict": crate::dict::DictHandle,
        "vessel:storage/dict.lease": crate::dict::LeaseHandle,
        "vessel:storage/functions.call": crate::functions::CallHandle,
        "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
        "wasi:keyvalue/atomics.cas": crate::keyvalue::Cas,
    },
    trappable_error_type: {
        "vessel:storage/types.error" => crate::error::StorageError,
        "wasi:keyvalue/store.error" => crate::keyvalue::KeyValueError,
    },
});

pub use vessel::storage::types::Error as WitError;
