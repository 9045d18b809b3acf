//! `wasi:keyvalue` over dicts: the `kvprobe` test program (a plain
//! wasi:keyvalue component with no vessel imports) through the real
//! `vessel call`, checked against `vessel dict`; grants and concurrent CAS
//! through the library, since `vessel call` grants every dict.

use std::collections::BTreeSet;

use serde_json::json;
use vessel_host::container::{ContainerConfig, Grant, Grants};
use vessel_host::engine::VesselEngine;
use vessel_tests::harness::{Host, call_once};
use vessel_tests::{Vessel, guest};

/// `vessel call kvprobe.wasm op ...`; returns the operation's report.
fn op(v: &Vessel, name: &str, bucket: &str, key: &str, arg: &str, n: i64) -> String {
    let args = json!([name, bucket, key, arg, n]).to_string();
    let kv = guest("kvprobe");
    let out = v.run(&["call", kv.to_str().unwrap(), "op", "--args", &args]);
    let text = out.ok().trim().to_owned();
    serde_json::from_str::<String>(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn keyvalue_store_through_the_cli() {
    let v = Vessel::new();
    // `open` creates the bucket's dict, which the dict CLI then lists.
    assert_eq!(op(&v, "get", "kv", "a", "", 0), "none");
    assert!(v.run(&["dict", "list"]).ok().contains("kv\t0"));
    assert_eq!(op(&v, "exists", "kv", "a", "", 0), "false");
    assert_eq!(op(&v, "set", "kv", "a", "one", 0), "ok");
    assert_eq!(op(&v, "get", "kv", "a", "", 0), "some one");
    assert_eq!(op(&v, "exists", "kv", "a", "", 0), "true");
    // Same bytes in the dict: `vessel dict` shows non-JSON as hex.
    assert_eq!(v.run(&["dict", "get", "kv", "a"]).ok().trim(), "hex:6f6e65");
    // And the other way: a dict write is a keyvalue value.
    v.run(&["dict", "put", "kv", "b", r#"{"x":1}"#]).ok();
    assert_eq!(op(&v, "get", "kv", "b", "", 0), r#"some {"x":1}"#);
    assert_eq!(op(&v, "set", "kv", "a", "two", 0), "ok");
    assert_eq!(op(&v, "get", "kv", "a", "", 0), "some two");
    assert_eq!(op(&v, "delete", "kv", "a", "", 0), "ok");
    assert_eq!(
        op(&v, "delete", "kv", "a", "", 0),
        "ok",
        "deleting a missing key is no error"
    );
    assert_eq!(op(&v, "exists", "kv", "a", "", 0), "false");
    assert_eq!(op(&v, "get", "kv", "a", "", 0), "none");
    let out = v.run(&["dict", "get", "kv", "a"]);
    assert_eq!(out.code, 1, "{out:?}");

    // The empty identifier is the dict `default`; a name that cannot be a
    // dict is no store at all.
    assert_eq!(op(&v, "set", "", "d", "x", 0), "ok");
    assert_eq!(
        v.run(&["dict", "get", "default", "d"]).ok().trim(),
        "hex:78"
    );
    assert_eq!(
        op(&v, "open", "no such/name", "", "", 0),
        "error: no-such-store"
    );

    // Limits come back as `other` with the vessel error kind.
    let long = "k".repeat(4097);
    let e = op(&v, "set", "kv", &long, "x", 0);
    assert!(
        e.starts_with("error: other: invalid-argument:") && e.contains("4097"),
        "{e}"
    );
    let e = op(&v, "get-many-n", "kv", "", "", 10_001);
    assert!(
        e.starts_with("error: other: too-large:") && e.contains("10001"),
        "{e}"
    );
}

#[test]
fn keyvalue_list_keys_pages_with_a_cursor() {
    let v = Vessel::new();
    assert_eq!(op(&v, "fill", "big", "k", "", 2_500), "ok");
    assert_eq!(op(&v, "set", "big", "a-first", "x", 0), "ok");
    // 2,501 keys: pages of at most 1,000, in key order, none repeated.
    assert_eq!(
        op(&v, "list-all", "big", "", "", 0),
        "ok 2501 3 ordered=true"
    );
    // The cursor is the last key of the page: the next page starts after it.
    let small = Vessel::new();
    op(&small, "set-many", "s", "", "c=3,a=1,b=2", 0);
    assert_eq!(
        op(&small, "list-page", "s", "", "", 0),
        "ok a,b,c cursor=none"
    );
    assert_eq!(
        op(&small, "list-page", "s", "", "a", 0),
        "ok b,c cursor=none"
    );
    assert_eq!(op(&small, "list-page", "s", "", "c", 0), "ok  cursor=none");
    let first = op(&v, "list-page", "big", "", "", 0);
    assert!(
        first.ends_with("cursor=k00998"),
        "{}",
        &first[first.len() - 40..]
    );
    let second = op(&v, "list-page", "big", "", "k00998", 0);
    assert!(second.starts_with("ok k00999,k01000,"), "{}", &second[..40]);
    assert!(
        second.ends_with("cursor=k01998"),
        "{}",
        &second[second.len() - 40..]
    );
}

#[test]
fn keyvalue_atomics_share_the_dict_counter() {
    let v = Vessel::new();
    assert_eq!(op(&v, "incr", "kv", "n", "", 5), "ok 5");
    assert_eq!(op(&v, "incr", "kv", "n", "", -7), "ok -2");
    // The dict CLI reads the same counter (decimal text is JSON).
    assert_eq!(v.run(&["dict", "get", "kv", "n"]).ok().trim(), "-2");
    // A counter written through the dict CLI is incremented in place.
    v.run(&["dict", "put", "kv", "m", "41"]).ok();
    assert_eq!(op(&v, "incr", "kv", "m", "", 1), "ok 42");
    assert_eq!(v.run(&["dict", "get", "kv", "m"]).ok().trim(), "42");
    // Not a counter: an error, and the value is untouched.
    v.run(&["dict", "put", "kv", "s", r#""text""#]).ok();
    let e = op(&v, "incr", "kv", "s", "", 1);
    assert!(
        e.starts_with("error: other: invalid-argument:") && e.contains("not a counter"),
        "{e}"
    );
    assert_eq!(v.run(&["dict", "get", "kv", "s"]).ok().trim(), r#""text""#);
    v.run(&["dict", "put", "kv", "max", &i64::MAX.to_string()])
        .ok();
    let e = op(&v, "incr", "kv", "max", "", 1);
    assert!(e.contains("overflows"), "{e}");
}

#[test]
fn keyvalue_cas_compares_versions() {
    let v = Vessel::new();
    // Absent key: the swap creates it.
    assert_eq!(op(&v, "cas", "kv", "c", "first", 0), "ok was=none");
    assert_eq!(op(&v, "get", "kv", "c", "", 0), "some first");
    // Present key, nothing in between: the swap wins and saw the old value.
    assert_eq!(op(&v, "cas", "kv", "c", "second", 0), "ok was=first");
    assert_eq!(op(&v, "get", "kv", "c", "", 0), "some second");
    // A write between `new` and `swap` makes it lose; the fresh handle
    // sees that write and wins.
    assert_eq!(
        op(&v, "cas-race", "kv", "c", "third", 0),
        "lost, fresh handle saw intruder, retry won"
    );
    assert_eq!(op(&v, "get", "kv", "c", "", 0), "some third");
    // The same for a key that was absent when the handle was made.
    assert_eq!(
        op(&v, "cas-race", "kv", "fresh", "mine", 0),
        "lost, fresh handle saw intruder, retry won"
    );
    // Writing the same value back still changes the version: no ABA.
    assert_eq!(op(&v, "cas-aba", "kv", "c", "fourth", 0), "lost");
    assert_eq!(op(&v, "get", "kv", "c", "", 0), "some third");
    // CAS-based counters use the same encoding as increment.
    assert_eq!(op(&v, "cas-loop", "kv", "n", "", 3), "ok lost=0");
    assert_eq!(op(&v, "incr", "kv", "n", "", 1), "ok 4");
}

#[test]
fn keyvalue_batch_operations() {
    let v = Vessel::new();
    assert_eq!(op(&v, "set-many", "kv", "", "a=1,b=2,c=3", 0), "ok");
    assert_eq!(op(&v, "get-many", "kv", "", "a,zz,c", 0), "a=1,zz=none,c=3");
    assert!(v.run(&["dict", "items", "kv"]).ok().contains("b\t2"));
    assert_eq!(op(&v, "delete-many", "kv", "", "a,c,missing,a", 0), "ok");
    assert_eq!(
        op(&v, "get-many", "kv", "", "a,b,c", 0),
        "a=none,b=2,c=none"
    );
    // `len` stays exact after a batch delete with repeats and misses.
    assert!(
        v.run(&["dict", "list"]).ok().contains("kv\t1"),
        "one key left"
    );
}

/// A config over `h`'s stores granting `dicts`.
fn config(h: &Host, dicts: Grant) -> ContainerConfig {
    ContainerConfig {
        stores: h.service.stores.clone(),
        grants: Grants {
            dicts,
            ..Grants::default()
        },
        ..ContainerConfig::default()
    }
}

/// Runs `program`'s `op` in a fresh container; its answer.
async fn call(
    engine: &VesselEngine,
    config: &ContainerConfig,
    program: &str,
    args: serde_json::Value,
) -> String {
    match call_once(engine, program, "op", args, config)
        .await
        .unwrap()
    {
        Some(serde_json::Value::String(s)) => s,
        other => panic!("unexpected result {other:?}"),
    }
}

#[tokio::test]
async fn keyvalue_respects_dict_grants() {
    let h = Host::new();
    let only = config(&h, Grant::Only(BTreeSet::from(["granted".to_owned()])));
    let kv = |bucket: &str| json!(["set", bucket, "k", "v", 0]);
    assert_eq!(call(&h.engine, &only, "kvprobe", kv("granted")).await, "ok");
    // Not granted: denied whether the dict exists or not, and nothing is
    // created.
    h.service.dict_create("exists").unwrap();
    assert_eq!(
        call(&h.engine, &only, "kvprobe", kv("exists")).await,
        "error: access-denied"
    );
    assert_eq!(
        call(&h.engine, &only, "kvprobe", kv("absent")).await,
        "error: access-denied"
    );
    assert!(!h.service.dict_exists("absent").unwrap());
    // The empty identifier is the dict `default`, which needs its grant.
    assert_eq!(
        call(&h.engine, &only, "kvprobe", kv("")).await,
        "error: access-denied"
    );
    // A dict guest sees the keyvalue write, with a version.
    let all = config(&h, Grant::All);
    let got = call(
        &h.engine,
        &all,
        "dictprobe",
        json!({"name": "get", "dict": "granted", "key": "k", "arg": "", "n": 0}),
    )
    .await;
    assert!(got.starts_with("some v v"), "{got}");
}

#[tokio::test]
async fn concurrent_cas_and_increments_lose_nothing() {
    let h = Host::new();
    let config = config(&h, Grant::All);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let engine = h.engine.clone();
        let config = config.clone();
        let name = if i % 2 == 0 { "cas-loop" } else { "incr-loop" };
        tasks.push(tokio::spawn(async move {
            call(
                &engine,
                &config,
                "kvprobe",
                json!([name, "race", "n", "", 20]),
            )
            .await
        }));
    }
    for t in tasks {
        let out = t.await.unwrap();
        assert!(out.starts_with("ok"), "{out}");
    }
    let n = call(
        &h.engine,
        &config,
        "kvprobe",
        json!(["get", "race", "n", "", 0]),
    )
    .await;
    assert_eq!(n, "some 120");
}
