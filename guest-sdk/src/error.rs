use std::fmt;

use crate::bindings::vessel::storage::types::Error as WitError;

/// Everything that can go wrong in a vessel call, as one readable type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The volume, dict, path, key or function does not exist.
    NotFound(String),
    /// Not granted to this function, or read-only.
    AccessDenied(String),
    /// Exists already and overwriting was not asked for.
    AlreadyExists(String),
    /// A malformed argument.
    InvalidArgument(String),
    /// Over a documented limit.
    TooLarge(String),
    /// Files are open under the mount (reload); the open paths.
    Busy(Vec<String>),
    /// A quota is exhausted (inode limit, disk).
    NoSpace(String),
    /// A conditional write lost.
    PreconditionFailed,
    /// A commit under [`Conflicts::Fail`](crate::Conflicts::Fail) found
    /// that other commits changed these paths since this container read
    /// them: nothing was committed and the changes stay. Read the paths at
    /// `head` ([`Volume::at_version`](crate::Volume::at_version)) to merge;
    /// the next such commit lands unless yet another commit changed them.
    Conflict { paths: Vec<String>, head: u64 },
    /// The store or callee cannot serve now; a retry may succeed.
    Unavailable(String),
    /// Host storage I/O failed.
    Io(String),
    /// A called function failed.
    CallFailed(String),
    /// A called function ended with an error it raised and did not catch
    /// (a Python exception, a JavaScript error, or [`fail`](crate::fail)).
    Raised(Raised),
    /// A value could not be encoded or decoded (serde).
    Codec(String),
}

/// What a called function raised, as its language named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// The host's description of the failed call.
    pub detail: String,
    /// The error's type: `ValueError`, `RangeError`, the app's own.
    pub type_name: String,
    /// Its message.
    pub message: String,
    /// The callee's traceback or stack, as its language prints it.
    pub traceback: String,
}

impl From<WitError> for Error {
    fn from(e: WitError) -> Self {
        match e {
            WitError::NotFound(s) => Error::NotFound(s),
            WitError::AccessDenied(s) => Error::AccessDenied(s),
            WitError::AlreadyExists(s) => Error::AlreadyExists(s),
            WitError::InvalidArgument(s) => Error::InvalidArgument(s),
            WitError::TooLarge(s) => Error::TooLarge(s),
            WitError::Busy(p) => Error::Busy(p),
            WitError::NoSpace(s) => Error::NoSpace(s),
            WitError::PreconditionFailed => Error::PreconditionFailed,
            WitError::Unavailable(s) => Error::Unavailable(s),
            WitError::Io(s) => Error::Io(s),
            WitError::CallFailed(s) => Error::CallFailed(s),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Codec(e.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound(s) => write!(f, "not found: {s}"),
            Error::AccessDenied(s) => write!(f, "access denied: {s}"),
            Error::AlreadyExists(s) => write!(f, "already exists: {s}"),
            Error::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            Error::TooLarge(s) => write!(f, "too large: {s}"),
            Error::Busy(p) => write!(f, "volume busy: open files: {}", p.join(", ")),
            Error::NoSpace(s) => write!(f, "no space: {s}"),
            Error::PreconditionFailed => write!(f, "precondition failed"),
            Error::Conflict { paths, head } => write!(
                f,
                "conflict: other commits (up to version {head}) changed {}",
                paths.join(", ")
            ),
            Error::Unavailable(s) => write!(f, "unavailable: {s}"),
            Error::Io(s) => write!(f, "i/o error: {s}"),
            Error::CallFailed(s) => write!(f, "call failed: {s}"),
            Error::Raised(r) => write!(f, "call failed: {}", r.detail),
            Error::Codec(s) => write!(f, "cannot encode or decode the value: {s}"),
        }
    }
}

impl std::error::Error for Error {}
