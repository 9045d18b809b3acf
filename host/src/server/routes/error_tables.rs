//! The four tables over [`ErrorKind`] agree: for every kind, the guest's
//! WIT error, the `wasi:keyvalue` error, the HTTP status and body, and the
//! CLI's exit code say the same thing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::bindings::wasi::keyvalue::store;
use crate::error::{WitError, wit_error};
use crate::keyvalue::keyvalue_error;

/// The WIT name of a guest error's case.
fn wit_label(e: &WitError) -> &'static str {
    match e {
        WitError::NotFound(_) => "not-found",
        WitError::AccessDenied(_) => "access-denied",
        WitError::AlreadyExists(_) => "already-exists",
        WitError::InvalidArgument(_) => "invalid-argument",
        WitError::TooLarge(_) => "too-large",
        WitError::PreconditionFailed => "precondition-failed",
        WitError::Busy(_) => "busy",
        WitError::Unavailable(_) => "unavailable",
        WitError::NoSpace(_) => "no-space",
        WitError::Io(_) => "io",
        WitError::CallFailed(_) => "call-failed",
    }
}

/// Kinds that are the caller's to fix: a 4xx over HTTP. The rest are the
/// service's: a 5xx (503 for unavailable, 507 for a full disk).
fn callers_fault(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::InvalidArgument
            | ErrorKind::TooLarge
            | ErrorKind::PreconditionFailed
            | ErrorKind::Busy
            // 422: the request was understood; the function it ran failed.
            | ErrorKind::CallFailed
    )
}

#[test]
fn every_kind_reads_the_same_on_every_surface() {
    for kind in ErrorKind::ALL {
        let label = kind.label();
        // Guest: the WIT case of the same name.
        assert_eq!(wit_label(&wit_error(kind, "m".into())), label, "{kind:?}");
        // wasi:keyvalue: no-such-store for a missing store, else the name.
        match keyvalue_error(kind, "m") {
            store::Error::NoSuchStore => assert_eq!(kind, ErrorKind::NotFound),
            store::Error::Other(text) => {
                assert!(text.starts_with(&format!("{label}: ")), "{kind:?}: {text}")
            }
            other => panic!("{kind:?} became {other:?}"),
        }
        // HTTP: the body names the kind; the class says whose fault it is.
        let (status, name) = http_status(kind);
        assert_eq!(name, label.replace('-', "_"), "{kind:?}");
        assert_eq!(
            status.is_client_error(),
            callers_fault(kind),
            "{kind:?} is {status}"
        );
        assert!(status.is_client_error() || status.is_server_error());
        // CLI: usage errors exit 2 and are the caller's fault; others exit 1.
        let code = kind.exit_code();
        assert_eq!(code == 2, kind.is_usage(), "{kind:?}");
        assert!(code == 1 || callers_fault(kind), "{kind:?}");
    }
}

/// The disagreement the architecture issue found: a value that is not a
/// counter was `invalid-argument` for guests and 409 over HTTP. It is one
/// kind now, on every surface.
#[test]
fn not_a_counter_is_an_argument_error_everywhere() {
    use crate::storage::dict::DictError;
    let e = DictError::NotACounter { key: "k".into() };
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(http_status(e.kind()).0, StatusCode::BAD_REQUEST);
    assert_eq!(
        wit_label(&wit_error(e.kind(), e.to_string())),
        "invalid-argument"
    );
}
