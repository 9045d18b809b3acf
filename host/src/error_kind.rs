//! One vocabulary of failure kinds, in the manner of `std::io::ErrorKind`.
//! A domain error says which kind it is (`DictError::kind`), and each
//! surface turns the kind into its own form with one table: the WIT
//! `error` a guest sees (`error::wit_error`), the `wasi:keyvalue` error
//! (`keyvalue`), the HTTP status (`server::routes`) and the CLI's exit
//! code ([`ErrorKind::exit_code`]). A unit test checks the tables agree.

/// What kind of failure an error is, whatever surface reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named thing does not exist.
    NotFound,
    /// The thing to be created exists already.
    AlreadyExists,
    /// An argument is malformed or does not fit (a bad name, key, range,
    /// or an increment of a value that is not a counter).
    InvalidArgument,
    /// Something is over a documented limit.
    TooLarge,
    /// A condition the caller set no longer holds (a version, a lease).
    PreconditionFailed,
    /// The thing is in use: a volume that running containers mount.
    Busy,
    /// The store cannot be reached, or there is none.
    Unavailable,
    /// The disk holding the store is full.
    NoSpace,
    /// The store failed (I/O, corruption), or the host did.
    Io,
    /// A called function ran and failed: it trapped, timed out, or its
    /// container's final commit failed.
    CallFailed,
}

impl ErrorKind {
    /// Every kind, for the tables' agreement test.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::InvalidArgument,
        ErrorKind::TooLarge,
        ErrorKind::PreconditionFailed,
        ErrorKind::Busy,
        ErrorKind::Unavailable,
        ErrorKind::NoSpace,
        ErrorKind::Io,
        ErrorKind::CallFailed,
    ];

    /// The kind's name as the WIT spells it (`not-found`); the keyvalue
    /// error's text and the HTTP error body (with `_`) use the same words.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::AlreadyExists => "already-exists",
            ErrorKind::InvalidArgument => "invalid-argument",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::PreconditionFailed => "precondition-failed",
            ErrorKind::Busy => "busy",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NoSpace => "no-space",
            ErrorKind::Io => "io",
            ErrorKind::CallFailed => "call-failed",
        }
    }

    /// Whether the caller got something wrong, rather than the operation
    /// failing: the CLI's usage errors.
    pub fn is_usage(self) -> bool {
        matches!(self, ErrorKind::InvalidArgument | ErrorKind::TooLarge)
    }

    /// The CLI's exit code: 2 for usage errors, 1 for the rest.
    pub fn exit_code(self) -> u8 {
        if self.is_usage() { 2 } else { 1 }
    }
}
