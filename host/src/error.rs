//! Errors that cross the guest boundary.
//!
//! Three layers: [`WitError`] is what a guest sees and can handle; each host
//! module has its own `thiserror` enum for domain failures that converts into
//! a `WitError`; and a trap (`wasmtime::Error`) is for host bugs and bad
//! handles, which end the guest's call. [`StorageError`] carries either of the
//! last two out of a host function.

pub use crate::bindings::WitError;

/// What a host function of the `vessel:storage` interfaces returns on failure:
/// an error for the guest, or a trap.
#[derive(Debug)]
pub enum StorageError {
    /// Returned to the guest as the WIT `error`.
    Guest(WitError),
    /// Ends the guest's call with a trap.
    Trap(wasmtime::Error),
}

impl StorageError {
    /// A trap with a message, for host bugs and invalid handles.
    pub fn trap(msg: impl std::fmt::Display) -> Self {
        StorageError::Trap(wasmtime::Error::msg(msg.to_string()))
    }

    /// Turns this into what the generated bindings expect: the WIT error, or
    /// the trap.
    pub fn into_wit(self) -> wasmtime::Result<WitError> {
        match self {
            StorageError::Guest(e) => Ok(e),
            StorageError::Trap(e) => Err(e),
        }
    }
}

impl From<WitError> for StorageError {
    fn from(e: WitError) -> Self {
        StorageError::Guest(e)
    }
}

impl From<wasmtime::Error> for StorageError {
    fn from(e: wasmtime::Error) -> Self {
        StorageError::Trap(e)
    }
}

impl From<wasmtime::component::ResourceTableError> for StorageError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        // A bad handle is the guest's bug or ours; either way the call cannot
        // go on meaningfully.
        StorageError::Trap(wasmtime::Error::new(e))
    }
}

/// Renders a wasmtime error with its whole cause chain on one line.
pub fn chain(e: &wasmtime::Error) -> String {
    let mut out = String::new();
    for (i, cause) in e.chain().enumerate() {
        if i > 0 {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string());
    }
    out
}

/// The WIT `error` for a failure of kind `kind` with message `msg`: the
/// guest's table over [`ErrorKind`](crate::error_kind::ErrorKind).
pub fn wit_error(kind: crate::error_kind::ErrorKind, msg: String) -> WitError {
    use crate::error_kind::ErrorKind as K;
    match kind {
        K::NotFound => WitError::NotFound(msg),
        K::AlreadyExists => WitError::AlreadyExists(msg),
        K::InvalidArgument => WitError::InvalidArgument(msg),
        K::TooLarge => WitError::TooLarge(msg),
        K::PreconditionFailed => WitError::PreconditionFailed,
        // The WIT case lists open paths; a volume in use says why instead.
        K::Busy => WitError::Busy(vec![msg]),
        K::Unavailable => WitError::Unavailable(msg),
        K::NoSpace => WitError::NoSpace(msg),
        K::Io => WitError::Io(msg),
        K::CallFailed => WitError::CallFailed(msg),
    }
}
