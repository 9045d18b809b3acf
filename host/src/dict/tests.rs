//! Unit tests of the dict Host impl without wasm: a `DictCtxView` over an
//! embedded store and a resource table, called as the bindings would call
//! it, so grants, argument checks and handle rules are checked here and
//! not only through a guest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use wit::HostDict as _;

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: DictCtx,
    table: ResourceTable,
}

impl Fixture {
    /// A store holding dict `kv`, and a context granted only `kv`.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        store.create("kv").unwrap();
        store.create("secret").unwrap();
        let grant = Grant::Only(["kv".to_owned()].into_iter().collect());
        Fixture {
            _dir: dir,
            ctx: DictCtx::new(Some(Arc::new(store)), grant),
            table: ResourceTable::new(),
        }
    }

    fn view(&mut self) -> DictCtxView<'_> {
        DictCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn guest_error(e: StorageError) -> WitError {
    match e {
        StorageError::Guest(w) => w,
        StorageError::Trap(t) => panic!("expected a guest error, got a trap: {t}"),
    }
}

fn opts() -> PutOptions {
    PutOptions {
        if_absent: false,
        if_version: None,
        ttl_seconds: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_decide_which_dicts_open() {
    let mut f = Fixture::new();
    let mut v = f.view();
    let e = guest_error(v.open("secret".into(), false).await.unwrap_err());
    assert!(
        matches!(e, WitError::AccessDenied(ref m) if m.contains("secret")),
        "{e:?}"
    );
    let e = guest_error(v.open("bad\0name".into(), false).await.unwrap_err());
    assert!(matches!(e, WitError::InvalidArgument(_)), "{e:?}");
    let h = v.open("kv".into(), false).await.unwrap();
    assert_eq!(v.name(Resource::new_borrow(h.rep())).await.unwrap(), "kv");
}

#[tokio::test(flavor = "multi_thread")]
async fn put_get_and_conditions_as_the_wit_says() {
    let mut f = Fixture::new();
    let mut v = f.view();
    let h = v.open("kv".into(), false).await.unwrap();
    let rep = h.rep();
    let d = || Resource::<DictHandle>::new_borrow(rep);
    let version = v
        .put(d(), "k".into(), b"one".to_vec(), opts())
        .await
        .unwrap()
        .unwrap();
    let got = v.get(d(), "k".into()).unwrap().unwrap();
    assert_eq!((got.value, got.version), (b"one".to_vec(), version));
    // if-absent on a present key writes nothing.
    let absent = PutOptions {
        if_absent: true,
        ..opts()
    };
    assert_eq!(
        v.put(d(), "k".into(), b"two".to_vec(), absent)
            .await
            .unwrap(),
        None
    );
    // A stale version is refused; the current one wins.
    let stale = PutOptions {
        if_version: Some(version + 1),
        ..opts()
    };
    assert!(
        v.put(d(), "k".into(), b"two".to_vec(), stale)
            .await
            .is_err()
    );
    let current = PutOptions {
        if_version: Some(version),
        ..opts()
    };
    assert!(
        v.put(d(), "k".into(), b"two".to_vec(), current)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(v.get(d(), "k".into()).unwrap().unwrap().value, b"two");
    // A zero TTL is an argument error, and nothing is written.
    let zero = PutOptions {
        ttl_seconds: Some(0),
        ..opts()
    };
    let e = guest_error(
        v.put(d(), "z".into(), b"x".to_vec(), zero)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, WitError::InvalidArgument(ref m) if m.contains("ttl-seconds")),
        "{e:?}"
    );
    assert!(v.get(d(), "z".into()).unwrap().is_none());
    assert!(v.contains(d(), "k".into()).await.unwrap());
    assert_eq!(v.len(d()).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_handle_traps_and_no_store_is_unavailable() {
    let mut f = Fixture::new();
    let mut v = f.view();
    let h = v.open("kv".into(), false).await.unwrap();
    let rep = h.rep();
    v.drop(h).await.unwrap();
    match v.get(Resource::new_borrow(rep), "k".into()) {
        Err(StorageError::Trap(_)) => {}
        other => panic!("a dropped handle must trap, got {other:?}"),
    }

    let mut ctx = DictCtx::new(None, Grant::All);
    let mut table = ResourceTable::new();
    let mut v = DictCtxView {
        ctx: &mut ctx,
        table: &mut table,
    };
    let e = guest_error(v.open("kv".into(), true).await.unwrap_err());
    assert!(matches!(e, WitError::Unavailable(_)), "{e:?}");
}
