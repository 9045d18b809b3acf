//! Unit tests of the volume Host impl without wasm, on handles opened by
//! name (no mount): a `VolumeCtxView` over an embedded store and a
//! resource table, called as the bindings would call it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use wit::HostVolume as _;

fn guest_error(e: StorageError) -> WitError {
    match e {
        StorageError::Guest(w) => w,
        StorageError::Trap(t) => panic!("expected a guest error, got a trap: {t}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn by_name_handles_follow_grants_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let grant = Grant::Only(["data".to_owned()].into_iter().collect());
    let mut ctx = VolumeCtx::new(Some(Arc::new(store)), grant, Vec::new());
    let mut table = ResourceTable::new();
    let mut v = VolumeCtxView {
        ctx: &mut ctx,
        table: &mut table,
    };

    let e = guest_error(v.from_name("other".into(), true).await.unwrap_err());
    assert!(
        matches!(e, WitError::AccessDenied(ref m) if m.contains("other")),
        "{e:?}"
    );
    let e = guest_error(v.mounted("/nowhere".into()).await.unwrap_err());
    assert!(
        matches!(e, WitError::NotFound(ref m) if m.contains("/nowhere")),
        "{e:?}"
    );
    let e = guest_error(v.from_name("data".into(), false).await.unwrap_err());
    assert!(matches!(e, WitError::NotFound(_)), "{e:?}");

    let h = v.from_name("data".into(), true).await.unwrap();
    let rep = h.rep();
    let vol = || Resource::<VolumeHandle>::new_borrow(rep);
    v.write_file(vol(), "/a/b.txt".into(), b"hello".to_vec(), false)
        .await
        .unwrap();
    assert_eq!(
        v.read_file(vol(), "a/b.txt".into(), 1, 3).await.unwrap(),
        b"ell"
    );
    let names: Vec<String> = v
        .listdir(vol(), "/".into(), true)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(names.contains(&"a/b.txt".to_owned()), "{names:?}");
    let e = guest_error(
        v.write_file(vol(), "/".into(), b"x".to_vec(), true)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, WitError::InvalidArgument(_)), "{e:?}");
    let e = guest_error(
        v.read_file(vol(), "a/b.txt".into(), 0, MAX_READ_BYTES + 1)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, WitError::TooLarge(ref m) if m.contains("read in ranges")),
        "{e:?}"
    );
    let e = guest_error(
        v.write_file(vol(), "a/b.txt".into(), b"again".to_vec(), false)
            .await
            .unwrap_err(),
    );
    assert!(
        !matches!(e, WitError::Io(_)),
        "an existing file without overwrite: {e:?}"
    );

    v.drop(h).await.unwrap();
    assert!(matches!(
        v.read_file(vol(), "a/b.txt".into(), 0, 1).await,
        Err(StorageError::Trap(_))
    ));
}
