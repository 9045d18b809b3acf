//! Dicts through real components (the `dictprobe` test program, using the
//! SDK) and through the real `vessel` binary.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use vessel_host::container::{ContainerConfig, Grant, Grants};
use vessel_tests::harness::{Host, call_once};
use vessel_tests::{Vessel, guest};

/// A host, and the config of the dictprobe's containers on it.
struct Probe {
    host: Host,
    config: ContainerConfig,
}

fn host() -> Probe {
    let host = Host::new();
    let config = ContainerConfig {
        stores: host.service.stores.clone(),
        ..ContainerConfig::default()
    };
    Probe { host, config }
}

impl Probe {
    /// Runs the dictprobe's `op` in a fresh container; its answer.
    async fn op(&self, name: &str, dict: &str, key: &str, arg: &str, n: i64) -> String {
        let args = json!({"name": name, "dict": dict, "key": key, "arg": arg, "n": n});
        let out = call_once(&self.host.engine, "dictprobe", "op", args, &self.config)
            .await
            .unwrap();
        match out {
            Some(serde_json::Value::String(s)) => s,
            other => panic!("unexpected result {other:?}"),
        }
    }
}

#[tokio::test]
async fn guest_dict_operations() {
    let h = host();
    assert_eq!(
        h.op("open", "kv", "", "", 0).await,
        "error: not found: dict `kv` does not exist"
    );
    assert_eq!(h.op("open", "kv", "", "create", 0).await, "ok kv");
    let v1 = h.op("put", "kv", "a", "one", 0).await;
    assert!(v1.starts_with("ok v"), "{v1}");
    let ver: i64 = v1.trim_start_matches("ok v").parse().unwrap();
    assert_eq!(
        h.op("get", "kv", "a", "", 0).await,
        format!("some one v{ver}")
    );
    assert_eq!(h.op("get", "kv", "zz", "", 0).await, "none");
    // CAS on the version: the current one wins, a stale one loses.
    let v2 = h.op("cas", "kv", "a", "two", ver).await;
    assert!(v2.starts_with("ok v"), "{v2}");
    assert_eq!(
        h.op("cas", "kv", "a", "three", ver).await,
        "error: precondition failed"
    );
    // if-absent.
    assert_eq!(h.op("if-absent", "kv", "once", "x", 0).await, "wrote");
    assert_eq!(h.op("if-absent", "kv", "once", "y", 0).await, "skipped");
    // JSON by default, with a default for a missing key.
    h.op("put-json", "kv", "cloud", "dictionary", 0).await;
    assert_eq!(h.op("get-or", "kv", "cloud", "dflt", 0).await, "dictionary");
    assert_eq!(h.op("get-or", "kv", "nope", "dflt", 0).await, "dflt");
    // Counters.
    assert_eq!(h.op("incr", "kv", "n", "", 5).await, "ok 5");
    assert_eq!(h.op("incr", "kv", "n", "", -7).await, "ok -2");
    assert_eq!(
        h.op("get", "kv", "n", "", 0).await.split(' ').nth(1),
        Some("-2")
    );
    let e = h.op("incr", "kv", "a", "", 1).await;
    assert!(
        e.contains("invalid argument") && e.contains("not a counter"),
        "{e}"
    );
    h.op("put", "kv", "max", &i64::MAX.to_string(), 0).await;
    let e = h.op("incr", "kv", "max", "", 1).await;
    assert!(e.contains("overflows"), "{e}");
    // Locks with fencing tokens; dropping a lease handle releases it.
    let l = h.op("lock", "kv", "job", "", 0).await;
    assert!(l.starts_with("ok "), "{l}");
    // pop, contains, len, get-many, clear.
    assert_eq!(h.op("contains", "kv", "once", "", 0).await, "true");
    assert_eq!(
        h.op("pop", "kv", "once", "", 0).await.split(' ').nth(1),
        Some("\"x\""),
        "if-absent stores JSON"
    );
    assert_eq!(h.op("contains", "kv", "once", "", 0).await, "false");
    assert_eq!(h.op("get-many", "kv", "", "a,zz,n", 0).await, "two,-,-2");
    // a, cloud, n, max.
    assert_eq!(h.op("len", "kv", "", "", 0).await, "4");
    assert_eq!(h.op("clear", "kv", "", "", 0).await, "ok");
    assert_eq!(h.op("len", "kv", "", "", 0).await, "0");
    // Limits, readable and enforced.
    assert_eq!(
        h.op("limits", "kv", "", "", 0).await,
        "4096 104857600 10000 1000 604800"
    );
    let e = h.op("long-key", "kv", "", "", 4097).await;
    assert!(
        e.starts_with("error: invalid argument") && e.contains("4096"),
        "{e}"
    );
    assert!(h.op("long-key", "kv", "", "", 4096).await.starts_with("ok"));
    let e = h
        .op("big-value", "kv", "big", "", 100 * 1024 * 1024 + 1)
        .await;
    assert!(
        e.starts_with("error: too large") && e.contains("104857600"),
        "{e}"
    );
    let e = h.op("update", "kv", "u", "", 10_001).await;
    assert!(
        e.starts_with("error: too large") && e.contains("10000"),
        "{e}"
    );
    assert_eq!(
        h.op("len", "kv", "", "", 0).await,
        "1",
        "nothing of it landed"
    );
    assert_eq!(h.op("update", "kv", "u", "", 10_000).await, "ok");
    assert_eq!(h.op("len", "kv", "", "", 0).await, "10001");
    let e = h.op("ttl", "kv", "t", "x", 0).await;
    assert!(e.starts_with("error: invalid argument"), "{e}");
    let e = h.op("open", "bad/name", "", "create", 0).await;
    assert!(e.starts_with("error: invalid argument"), "{e}");
}

#[tokio::test]
async fn scan_pages_through_the_guest() {
    let h = host();
    h.op("update", "s", "p", "", 25).await;
    h.op("put", "s", "q", "x", 0).await;
    let out = h.op("scan", "s", "", "p", 10).await;
    let (pages, keys) = out.split_once(": ").unwrap();
    assert_eq!(pages, "3 pages");
    let keys: Vec<&str> = keys.split(',').collect();
    assert_eq!(keys.len(), 25);
    let want: Vec<String> = (0..25).map(|i| format!("p{i:05}")).collect();
    assert_eq!(keys, want.iter().map(String::as_str).collect::<Vec<_>>());
    // Limits above the host's are clamped.
    let out = h.op("scan", "s", "", "", 5000).await;
    assert!(out.starts_with("1 pages"), "{out}");
}

#[tokio::test]
async fn ungranted_dicts_are_denied() {
    let mut h = host();
    h.config.grants = Grants {
        dicts: Grant::Only(BTreeSet::from(["mine".to_string()])),
        ..Grants::default()
    };
    assert_eq!(h.op("open", "mine", "", "create", 0).await, "ok mine");
    assert_eq!(
        h.op("open", "theirs", "", "create", 0).await,
        "error: access denied: this function is not granted dict `theirs`"
    );
}

#[tokio::test]
async fn no_store_is_unavailable() {
    let mut h = host();
    h.config.stores = Default::default();
    assert_eq!(
        h.op("open", "kv", "", "create", 0).await,
        "error: unavailable: no dict store configured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_containers_contend_without_losing_writes() {
    let h = Arc::new(host());
    h.op("open", "c", "", "create", 0).await;
    const CONTAINERS: usize = 12;
    let mut tasks = Vec::new();
    for i in 0..CONTAINERS {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let claim = h.op("if-absent", "c", "leader", &format!("{i}"), 0).await;
            assert_eq!(h.op("incr-loop", "c", "hits", "", 10).await, "ok");
            assert_eq!(h.op("cas-loop", "c", "cas", "", 5).await, "ok");
            claim
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap().as_str() {
            "wrote" => winners += 1,
            "skipped" => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(winners, 1, "exactly one if-absent winner");
    assert_eq!(
        h.op("get", "c", "hits", "", 0).await.split(' ').nth(1),
        Some((CONTAINERS * 10).to_string().as_str()),
        "no lost increments"
    );
    assert_eq!(
        h.op("get", "c", "cas", "", 0).await.split(' ').nth(1),
        Some((CONTAINERS * 5).to_string().as_str()),
        "no lost compare-and-swap updates"
    );
}

#[test]
fn cli_put_get_persist_across_processes() {
    let v = Vessel::new();
    v.run(&["dict", "create", "kv"]).ok();
    v.run(&["dict", "create", "kv"])
        .fails(1, &["dict `kv` already exists"]);
    v.run(&["dict", "put", "kv", "cloud", "\"dictionary\""])
        .ok();
    v.run(&["dict", "put", "kv", "n", "{\"a\": [1, 2]}"]).ok();
    v.run(&["dict", "put", "kv", "raw", "not json", "--raw"])
        .ok();
    // Each command is a new process opening the store afresh.
    assert_eq!(
        v.run(&["dict", "get", "kv", "cloud"]).ok(),
        "\"dictionary\"\n"
    );
    assert_eq!(v.run(&["dict", "get", "kv", "n"]).ok(), "{\"a\":[1,2]}\n");
    assert_eq!(
        v.run(&["dict", "get", "kv", "raw"]).ok(),
        "hex:6e6f74206a736f6e\n"
    );
    assert_eq!(v.run(&["dict", "list"]).ok(), "kv\t3\n");
    let list: serde_json::Value =
        serde_json::from_str(v.run(&["dict", "list", "--json"]).ok()).unwrap();
    assert_eq!(list[0]["name"], "kv");
    assert_eq!(list[0]["len"], 3);
    // A component sees what the CLI wrote, and the CLI what it writes.
    let probe = guest("dictprobe").display().to_string();
    let out = v.run(&[
        "call", &probe, "op", "--name", "get-or", "--dict", "kv", "--key", "cloud", "--arg",
        "\"-\"", "--n", "0",
    ]);
    assert_eq!(out.ok(), "\"dictionary\"\n");
    v.run(&[
        "call", &probe, "op", "--name", "incr", "--dict", "kv", "--key", "hits", "--arg", "\"\"",
        "--n", "41",
    ])
    .ok();
    assert_eq!(v.run(&["dict", "get", "kv", "hits"]).ok(), "41\n");
}

#[test]
fn cli_items_pages_and_decodes() {
    let v = Vessel::new();
    v.run(&["dict", "create", "many"]).ok();
    let probe = guest("dictprobe").display().to_string();
    v.run(&[
        "call", &probe, "op", "--name", "update", "--dict", "many", "--key", "k", "--arg", "\"\"",
        "--n", "30",
    ])
    .ok();
    let out = v.run(&["dict", "items", "many"]);
    assert_eq!(out.ok().lines().count(), 20, "20 by default");
    assert!(out.stdout.starts_with("k00000\t0\n"), "{}", out.stdout);
    assert!(out.stderr.contains("--all"), "{}", out.stderr);
    assert_eq!(
        v.run(&["dict", "items", "many", "--all"])
            .ok()
            .lines()
            .count(),
        30
    );
    assert_eq!(
        v.run(&["dict", "items", "many", "-n", "3"])
            .ok()
            .lines()
            .count(),
        3
    );
    let json: serde_json::Value =
        serde_json::from_str(v.run(&["dict", "items", "many", "--json", "-n", "2"]).ok()).unwrap();
    assert_eq!(json[1]["key"], "k00001");
    assert_eq!(json[1]["value"], 1);
    v.run(&["dict", "clear", "many"]).ok();
    assert_eq!(v.run(&["dict", "items", "many"]).ok(), "");
}

#[test]
fn cli_errors_are_clear() {
    let v = Vessel::new();
    v.run(&["dict", "get", "nope", "k"])
        .fails(1, &["dict `nope` does not exist"]);
    v.run(&["dict", "create", "kv"]).ok();
    v.run(&["dict", "get", "kv", "missing"])
        .fails(1, &["key `missing` is not in dict `kv`"]);
    v.run(&["dict", "put", "kv", "k", "not json"])
        .fails(2, &["not valid JSON", "--raw"]);
    v.run(&["dict", "put", "nope", "k", "1"])
        .fails(1, &["dict `nope` does not exist"]);
    v.run(&["dict", "create", "bad/name"])
        .fails(2, &["invalid dict name", "not allowed"]);
    v.run(&["dict", "items", "nope"])
        .fails(1, &["does not exist"]);
    v.run(&["dict", "frobnicate"]).fails(2, &[]);
    // Delete asks first; without a terminal that is a no.
    v.run(&["dict", "delete", "kv"])
        .fails(1, &["not deleted", "--yes"]);
    v.run(&["dict", "delete", "kv", "--yes"]).ok();
    v.run(&["dict", "delete", "kv", "--yes"])
        .fails(1, &["does not exist"]);
}
