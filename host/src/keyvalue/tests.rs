//! Unit tests of the `wasi:keyvalue` Host impls without wasm, as
//! wasmtime-wasi tests its own: a `KeyValueCtxView` over an embedded store
//! and a resource table, called as the bindings would call it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use atomics::{Host as _, HostCas as _};
use store::{Host as _, HostBucket as _};

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: KeyValueCtx,
    table: ResourceTable,
}

impl Fixture {
    /// A context granted bucket `kv` only.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        let grant = Grant::Only(["kv".to_owned()].into_iter().collect());
        Fixture {
            _dir: dir,
            ctx: KeyValueCtx::new(Some(Arc::new(store)), grant),
            table: ResourceTable::new(),
        }
    }

    fn view(&mut self) -> KeyValueCtxView<'_> {
        KeyValueCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn guest(e: KeyValueError) -> store::Error {
    match e {
        KeyValueError::Guest(g) => g,
        KeyValueError::Trap(t) => panic!("expected a guest error, got a trap: {t}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_open_by_grant_and_hold_values() {
    let mut f = Fixture::new();
    let mut v = f.view();
    assert!(matches!(
        guest(v.open("other".into()).await.unwrap_err()),
        store::Error::AccessDenied
    ));
    assert!(matches!(
        guest(v.open("bad\0name".into()).await.unwrap_err()),
        store::Error::NoSuchStore
    ));
    let b = v.open("kv".into()).await.unwrap();
    let rep = b.rep();
    let bucket = || Resource::<Bucket>::new_borrow(rep);
    assert_eq!(v.get(bucket(), "k".into()).await.unwrap(), None);
    v.set(bucket(), "k".into(), b"v".to_vec()).await.unwrap();
    assert_eq!(
        v.get(bucket(), "k".into()).await.unwrap(),
        Some(b"v".to_vec())
    );
    assert!(v.exists(bucket(), "k".into()).await.unwrap());
    v.delete(bucket(), "k".into()).await.unwrap();
    assert!(!v.exists(bucket(), "k".into()).await.unwrap());
    // Counters are decimal text; text that is not one is an argument error.
    assert_eq!(v.increment(bucket(), "n".into(), 5).await.unwrap(), 5);
    assert_eq!(v.increment(bucket(), "n".into(), -2).await.unwrap(), 3);
    v.set(bucket(), "t".into(), b"text".to_vec()).await.unwrap();
    match guest(v.increment(bucket(), "t".into(), 1).await.unwrap_err()) {
        store::Error::Other(m) => assert!(m.starts_with("invalid-argument"), "{m}"),
        other => panic!("{other:?}"),
    }
    store::HostBucket::drop(&mut v, b).await.unwrap();
    assert!(matches!(
        v.get(bucket(), "k".into()).await,
        Err(KeyValueError::Trap(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cas_swaps_once_and_a_stale_one_fails_with_a_fresh_cas() {
    let mut f = Fixture::new();
    let mut v = f.view();
    let b = v.open("kv".into()).await.unwrap();
    let bucket = Resource::<Bucket>::new_borrow(b.rep());
    v.set(bucket, "k".into(), b"1".to_vec()).await.unwrap();
    let first = v
        .new(Resource::new_borrow(b.rep()), "k".into())
        .await
        .unwrap();
    let second = v
        .new(Resource::new_borrow(b.rep()), "k".into())
        .await
        .unwrap();
    v.swap(first, b"2".to_vec()).await.unwrap().unwrap();
    match v.swap(second, b"3".to_vec()).await.unwrap() {
        Err(atomics::CasError::CasFailed(fresh)) => {
            assert_eq!(v.current(fresh).await.unwrap(), Some(b"2".to_vec()));
        }
        other => panic!("a stale cas must fail: {other:?}"),
    }
}
